#!/bin/sh
# Serve /vol as the gluster volume "test_vol" from this pod's address, until stopped.
set -eu
glusterd -p /run/glusterd.pid
for i in $(seq 1 60); do gluster pool list >/dev/null 2>&1 && break; sleep 1; done
ip=$(hostname -i | cut -d' ' -f1)
gluster volume create test_vol "$ip:/vol" force
gluster volume start test_vol
trap 'gluster --mode=script volume stop test_vol force; kill "$(cat /run/glusterd.pid)"; exit 0' TERM INT
echo "run_gluster: serving test_vol from $ip:/vol"
while true; do sleep 5 & wait $!; done
