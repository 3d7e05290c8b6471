#!/usr/bin/env bash
# Make sure the real Prometheus binaries (prometheus, promtool, prometheus-alertmanager) the tests
# and the demo use are here, shellcheck (the kind script's test) and zsh (the completion test).
# Installs the Debian package when they are missing and we are allowed to (root, or sudo).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null \
  && command -v prometheus-alertmanager >/dev/null && command -v shellcheck >/dev/null \
  && command -v zsh >/dev/null; then
  exit 0
fi
echo "installing the Debian packages prometheus, prometheus-alertmanager, shellcheck and zsh..." >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: need root to run: apt-get install -y prometheus prometheus-alertmanager shellcheck zsh" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager shellcheck zsh \
  >/dev/null
# the package starts a system service on Debian; we never use it (tests start their own instance)
for svc in prometheus prometheus-alertmanager; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
command -v prometheus >/dev/null && command -v promtool >/dev/null \
  && command -v prometheus-alertmanager >/dev/null && command -v shellcheck >/dev/null \
  && command -v zsh >/dev/null
