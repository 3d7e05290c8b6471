"""vLLM version strings: the one syntax and the one parser.

Owns what a vLLM version looks like (``0.24.0``, ``v0.24.0``, ``0.8.5.post1``) and its comparable
key; in spec, the lowest layer that needs it (the spec field, the catalogue, serving). Pure.
"""

from __future__ import annotations

import re

VersionKey = tuple[int, int, int]
VLLM_VERSION_PATTERN = r"^v?(\d+)\.(\d+)\.(\d+)(?:\.post\d+|\.\d+)?$"
_VLLM_VERSION = re.compile(VLLM_VERSION_PATTERN)


def parse_vllm_version(text: str) -> VersionKey | None:
    """``"0.24.0"`` (or ``v0.24.0``, ``0.8.5.post1``) -> ``(0, 24, 0)``; None when unparseable.

    A ``.postN`` or fourth number is a rebuild of the same release: it compares as its release.
    """
    match = _VLLM_VERSION.match(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def format_version(key: VersionKey) -> str:
    """``(0, 24, 0)`` -> ``"0.24.0"``."""
    return ".".join(str(part) for part in key)


def checked_vllm_version(value: str) -> str:
    """``value`` when it is a vLLM version; ValueError saying what to write when not (the
    validator of ``spec.model.vllmVersion`` in the models)."""
    if parse_vllm_version(value) is None:
        raise ValueError(
            f"{value!r} is not a vLLM version: write the release the runtime image runs, "
            "e.g. 0.24.0"
        )
    return value
