#!/bin/sh
# Export each directory given (default /exports) read-write to everyone, then run the
# NFS daemons in the foreground.  Stops them on SIGTERM.
set -eu
[ $# -gt 0 ] || set -- /exports
: > /etc/exports
fsid=0
for dir in "$@"; do
  mkdir -p "$dir"
  chmod 777 "$dir"
  echo "$dir *(rw,fsid=$fsid,insecure,no_root_squash)" >> /etc/exports
  fsid=$((fsid + 1))
done
stop() {
  echo "run_nfs: stopping"
  exportfs -ua || true
  rpc.nfsd 0 || true
  kill "$(pidof rpc.mountd)" "$(pidof rpcbind)" 2>/dev/null || true
  exit 0
}
trap stop TERM INT
mount -t nfsd nfsd /proc/fs/nfsd 2>/dev/null || true
rpcbind -w
rpc.mountd -N 2 -V 3 --port 20048
exportfs -r
rpc.nfsd -N 2 -V 3 8
echo "run_nfs: serving $*"
while true; do sleep 5 & wait $!; done
