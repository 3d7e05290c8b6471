"""Tolerant readers of an object as the API server returns it: a missing field, or one of
the wrong type, reads as empty or None, never as an exception. Pure. Used by the view model
(:mod:`controlplane.view.canary`, :mod:`controlplane.view.checks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from controlplane.spec.units import Duration, parse_duration


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


def as_duration(value: Any) -> Duration | None:
    """A duration of the spec (``5m``); None when missing or unreadable."""
    try:
        return parse_duration(value)
    except (TypeError, ValueError):
        return None


def duration_text(value: Any) -> str | None:
    """A duration as the spec writes it (``1h30m``), the raw text when unreadable, None when
    missing."""
    parsed = as_duration(value)
    return None if value is None else str(parsed if parsed is not None else value)
