#!/usr/bin/env bash
# Make sure the Debian packages a real node needs are here (harness/node/): containerd and runc
# (the container runtime), containernetworking-plugins (the CNI bridge, host-local and loopback
# plugins), umoci, mmdebstrap and buildah (the images are built here, never pulled; buildah builds
# the controller's from the Dockerfile), iproute2 and iptables.
# Installs the missing ones when we are allowed to (root, or sudo).
set -euo pipefail
have() {
  command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null \
    && [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
    && command -v umoci >/dev/null && command -v mmdebstrap >/dev/null && command -v buildah >/dev/null \
    && command -v ip >/dev/null && command -v iptables-save >/dev/null
}
have && exit 0
PACKAGES="containerd runc containernetworking-plugins umoci mmdebstrap buildah iproute2 iptables"
echo "installing the Debian packages ${PACKAGES}..." >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: need root to run: apt-get install -y ${PACKAGES}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # the list is words
$SUDO apt-get install -y -qq --no-install-recommends ${PACKAGES} >/dev/null
# the package may start a system containerd; the node starts its own (harness/node/node.py)
$SUDO systemctl stop containerd >/dev/null 2>&1 || $SUDO service containerd stop >/dev/null 2>&1 || true
have
