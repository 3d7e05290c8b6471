"""The times of the status and of Kubernetes objects: RFC 3339 UTC, as the API server writes them.

Owns the one conversion between unix seconds (what the rollout state and the clock use) and the
``Time`` / ``MicroTime`` strings of ``conditions``, Events, Leases and intents. Pure. Called by
:mod:`controlplane.status.conditions`, :mod:`controlplane.kube` (Events, Leases) and the CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.errors import KubeError


def format_time(t: float, *, micro: bool = False) -> str:
    """A unix time as RFC 3339 UTC: ``Time`` (seconds) or, with ``micro``, ``MicroTime``."""
    dt = datetime.fromtimestamp(t, tz=UTC)
    if micro:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """An RFC 3339 timestamp (``Z`` or an offset, optional fraction) as unix seconds."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise KubeError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()
