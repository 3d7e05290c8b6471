"""The tools folder outside the repository: ``$XDG_CACHE_HOME/controlplane-tools`` (the Makefile's
``TOOLS``), where the build scripts put the binaries, images and environments the tests use."""

from __future__ import annotations

import os
from pathlib import Path


def tools_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "controlplane-tools"
