#!/bin/sh
# Export a 120 MiB file-backed LUN as iqn.2003-01.io.k8s:e2e.volume (no auth, any
# initiator), as upstream's test target does.  Needs a privileged pod with configfs.
set -eu
truncate -s 120M /srv/iscsi.img 2>/dev/null || { mkdir -p /srv && truncate -s 120M /srv/iscsi.img; }
targetcli /backstores/fileio create block /srv/iscsi.img 120M
targetcli /iscsi create iqn.2003-01.io.k8s:e2e.volume
targetcli /iscsi/iqn.2003-01.io.k8s:e2e.volume/tpg1/luns create /backstores/fileio/block
targetcli /iscsi/iqn.2003-01.io.k8s:e2e.volume/tpg1 set attribute authentication=0 demo_mode_write_protect=0 generate_node_acls=1 cache_dynamic_acls=1
trap 'targetcli clearconfig confirm=True; exit 0' TERM INT
echo "run_iscsi_target: serving iqn.2003-01.io.k8s:e2e.volume"
while true; do sleep 5 & wait $!; done
