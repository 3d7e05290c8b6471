"""Tolerant readers of an object as the API server returns it: a missing field, or one of
the wrong type, reads as empty or None, never as an exception. Pure. Used by the view model
(:mod:`controlplane.view.canary`, :mod:`controlplane.view.checks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def as_time(value: Any) -> float | None:
    """A time of the status (RFC 3339, or an older controller's unix seconds); None when missing
    or unreadable."""
    from controlplane.spec.units import time_value

    if value is None:
        return None
    try:
        return time_value(value)
    except ValueError:
        return None


def as_timestamp(value: Any) -> float | None:
    from controlplane.errors import KubeError
    from controlplane.status.times import parse_time

    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except KubeError:
        return None
