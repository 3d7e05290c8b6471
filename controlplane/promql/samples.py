"""The shapes of the Prometheus answers the product reads.

Owns :data:`Sample`, the grouping labels (:data:`GROUP_LABELS`) and :func:`parse_le`. Pure; used
by the grouped readers, the provider protocol, the sources and the sequential histograms.
"""

from __future__ import annotations

from controlplane.errors import NoData

Labels = dict[str, str]
"""A series' labels."""

Sample = tuple[Labels, float]
"""One series of an instant vector: its labels and its value (NaN allowed)."""

GROUP_LABELS = ("canary", "variant")
"""The labels every grouped (batched) query aggregates by: one series per variant of a canary."""


def parse_le(value: str) -> float:
    """A bucket's ``le`` label as a float (``+Inf`` included); broken labels are NoData."""
    try:
        return float(value)
    except ValueError:
        raise NoData(f"histogram bucket with a non-numeric le={value!r}") from None
