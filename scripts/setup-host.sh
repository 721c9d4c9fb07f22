#!/usr/bin/env bash
# Prepare a Debian 12 host (as root) for building: packages, QEMU binfmt, Docker daemon,
# and the project's Python environment in .venv.  Idempotent: a second run changes
# nothing and takes seconds.  Mirrors come from this host's apt sources; none is named here.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/setup-host.sh [--python-only]

  (no option)     packages, QEMU binfmt, Docker daemon and the project's .venv
  --python-only   only the project's .venv (planning and merging need no daemon)
USAGE
}
python_only=false
for arg in "$@"; do
  case "$arg" in
    --python-only) python_only=true ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[setup-host] %s\n' "$*"; }
die() { printf '[setup-host] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd)"
command -v apt-get >/dev/null || die "this script is for Debian 12 (apt-get not found)"

# --- packages -----------------------------------------------------------------------------
packages=(
  docker.io            # the engine: runs smoke checks and Dockerfile builds
  qemu-user-static     # foreign-arch binaries and containers (binfmt F flag)
  binfmt-support
  docker-registry      # the embedded registry (CNCF distribution)
  mmdebstrap arch-test # debian-base root filesystems
  patchelf             # the host's perl made to run inside a foreign image (maintainer scripts)
  gcc libc6-dev        # native static C (pause for the host arch)
  gcc-mips64el-linux-gnuabi64 libc6-dev-mips64el-cross  # cross static C
  golang-go            # Go cross-compiling (CGO_ENABLED=0)
  skopeo               # independent read-back of what was published
  containernetworking-plugins  # the local cluster's CNI: bridge, host-local, portmap, loopback
  socat                # the kubelet's port-forward (kubectl port-forward) with dockershim
  nftables             # cluster-down removes the netfilter tables the cluster left empty
  python3 python3-venv
  git ca-certificates
)
if $python_only; then
  packages=(python3 python3-venv git ca-certificates)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "packages: all present"
fi

# QEMU binfmt and the Docker daemon: what building and smoke-checking need.
setup_engine() {
  # --- QEMU binfmt ---------------------------------------------------------------------------
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    log "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  # Enable every qemu-user-static entry (the project's arch table decides which it uses).
  update-binfmts --enable >/dev/null 2>&1 || true
  enabled=$(grep -l '^enabled' /proc/sys/fs/binfmt_misc/qemu-* 2>/dev/null | wc -l)
  [ "$enabled" -gt 0 ] || die "no QEMU binfmt entry could be enabled"
  log "binfmt: $enabled QEMU entries enabled"

  # --- Docker daemon -------------------------------------------------------------------------
  docker_cli=/usr/bin/docker
  if ! "$docker_cli" info >/dev/null 2>&1; then
    log "starting dockerd (--iptables=false --bridge=none; host networking only)"
    mkdir -p /var/log
    nohup dockerd --iptables=false --bridge=none >/var/log/kubemips-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
      "$docker_cli" info >/dev/null 2>&1 && break
      sleep 0.5
    done
    "$docker_cli" info >/dev/null 2>&1 || die "dockerd did not start; see /var/log/kubemips-dockerd.log"
  fi
  log "docker: engine $("$docker_cli" version --format '{{.Server.Version}}') answering"
}
$python_only || setup_engine

# --- Python environment --------------------------------------------------------------------
venv="$here/.venv"
stamp="$venv/.installed"
if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  log "installing the project and its test tools into .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q -e "$here[test]"
  touch "$stamp"
else
  log "python: .venv up to date"
fi
log "ready"
