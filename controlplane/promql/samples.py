"""The shapes of the Prometheus answers the product reads.

Owns a sample (:data:`Sample`: a series' labels and its value), the labels a grouped query
groups by (:data:`GROUP_LABELS`) and the reading of a histogram bucket's ``le`` label
(:func:`parse_le`). Pure. Called by the grouped queries' readers
(:mod:`controlplane.promql.grouped`), the metric provider's interface
(:mod:`controlplane.analysis.metric_provider`), the sources (:mod:`controlplane.providers`) and
the histograms of the sequential judge (:mod:`controlplane.analysis.sequential.buckets`).
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
