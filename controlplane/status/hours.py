"""The GPU-hours of ``status.capacity`` at a given time.

Owns the one formula: the hours recorded up to the record's time plus the GPUs held since.
:class:`controlplane.status.document.CapacityRecord` and the views (``kubectl canary get``,
without pydantic at start-up) call it; the dashboard computes the same in its ``detail.js``. Pure.
"""

from __future__ import annotations


def held_hours(hours: float, gpus: int, at: float, now: float) -> float:
    """``hours`` GPU-hours at ``at`` and ``gpus`` held since: the GPU-hours at ``now``."""
    return hours + gpus * max(0.0, now - at) / 3600.0
