#!/bin/sh
# hyperkube for Kubernetes >= v1.17: dispatch to the server binary named by the first
# argument (or by the name this script was called as), like the Go hyperkube did.
set -e
known="kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl"
name=$(basename "$0")
if [ "$name" = hyperkube ]; then
  name=${1:-}
  [ -n "$name" ] && shift
fi
case "$name" in
  apiserver|controller-manager|scheduler|proxy) name="kube-$name" ;;
esac
for k in $known; do
  if [ "$k" = "$name" ]; then
    exec "/usr/local/bin/$name" "$@"
  fi
done
echo "usage: hyperkube COMMAND [flags]; COMMAND is one of: $known" >&2
exit 1
