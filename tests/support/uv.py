"""The uv ``make`` installs, for the tests that run it (the wheel's build, the base install).

``make`` installs the uv pinned in ``scripts/uv-requirements.txt`` into
``$(TOOLS)/uv-$(UV_VERSION)/bin/uv``, outside the repository (Makefile).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pinned_uv() -> Path:
    """The uv ``make`` installs: ``$(TOOLS)/uv-$(UV_VERSION)/bin/uv`` (Makefile)."""
    pins = (ROOT / "scripts" / "uv-requirements.txt").read_text()
    match = re.search(r"^uv==(\S+)", pins, flags=re.M)
    assert match, "scripts/uv-requirements.txt pins no uv"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    uv = Path(cache) / "controlplane-tools" / f"uv-{match.group(1)}" / "bin" / "uv"
    assert uv.exists(), f"{uv} is not installed: run `make setup`"
    return uv
