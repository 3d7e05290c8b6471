"""Whether an environment's modules were compiled to bytecode when it was installed.

``make setup`` syncs ``.venv`` with ``--compile-bytecode`` and ``scripts/ensure-vllm.sh`` compiles
the vLLM environment once: their processes run where they may not write bytecode
(``PYTHONDONTWRITEBYTECODE``, or the site-packages mounted read-only in the node's pods), and
would compile what they import at each start otherwise. Used by ``tests/test_bytecode.py`` and
``tests/serving/test_vllm_cpu.py``.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path


def _valid(source: Path) -> bool:
    """Whether ``source`` has bytecode this Python would load instead of compiling it, checked
    as CPython 3.11's ``importlib._bootstrap_external`` checks it (``_classify_pyc``, then
    ``_validate_timestamp_pyc`` or ``_validate_hash_pyc``; PEP 552): a ``.pyc`` in its
    ``__pycache__`` with this Python's magic number and either the source's modification time
    and size, or, hash-based (what ``compileall`` writes where ``SOURCE_DATE_EPOCH`` is set),
    the source's hash or no check."""
    cached = Path(importlib.util.cache_from_source(str(source)))
    try:
        with cached.open("rb") as pyc:
            head = pyc.read(16)
    except OSError:
        return False
    if len(head) < 16 or head[:4] != importlib.util.MAGIC_NUMBER:
        return False
    (flags,) = struct.unpack("<I", head[4:8])
    if flags & 0b1:  # hash-based; bit 2: check the source against it
        return not flags & 0b10 or head[8:16] == importlib.util.source_hash(source.read_bytes())
    mtime, size = struct.unpack("<II", head[8:16])
    stat = source.stat()
    return flags == 0 and (mtime, size) == (
        int(stat.st_mtime) & 0xFFFFFFFF,
        stat.st_size & 0xFFFFFFFF,
    )


def uncompiled(site: Path) -> list[str]:
    """The modules under ``site`` that would be compiled at import, but for those this Python
    cannot compile at all (a newer Python's syntax: torch ships such a test helper)."""
    missing: list[str] = []
    for folder, dirs, files in os.walk(site):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            source = Path(folder, name)
            if name.endswith(".py") and not _valid(source):
                missing.extend(_compilable(source, site))
    return sorted(missing)


def _compilable(source: Path, site: Path) -> list[str]:
    """``source``'s path under ``site`` if this Python can compile it, else nothing."""
    try:
        compile(source.read_bytes(), str(source), "exec", dont_inherit=True)
    except SyntaxError:
        return []
    return [str(source.relative_to(site))]
