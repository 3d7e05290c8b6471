#!/usr/bin/env bash
# Make sure Debian's Chromium (the browser the dashboard's tests drive through Playwright) and its
# driver are here. Installs the Debian packages chromium and chromium-driver when they are
# missing and we are allowed to (root, or sudo). Playwright never downloads a browser.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
echo "installing the Debian packages chromium and chromium-driver..." >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: need root to run: apt-get install -y chromium chromium-driver" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
