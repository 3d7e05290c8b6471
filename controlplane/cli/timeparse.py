"""Parsing command-line times: RFC 3339, unix seconds, or ``now[-DURATION]``."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from controlplane.errors import UsageError
from controlplane.spec.units import parse_duration


def parse_time(text: str, *, now: float | None = None) -> float:
    """Unix seconds from ``2026-11-01T12:00:00Z``, ``1761998400``, ``now`` or ``now-28d``."""
    raw = text.strip()
    current = time.time() if now is None else now
    if raw == "now":
        return current
    if raw.startswith("now-"):
        try:
            return current - parse_duration(raw[4:]).seconds
        except ValueError as exc:
            raise UsageError(f"invalid time {text!r}: {exc}") from None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid time {text!r}: use RFC 3339 (2026-11-01T12:00:00Z), unix seconds, "
            "or now-DURATION (now-28d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
