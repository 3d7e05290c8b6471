"""The metric-provider protocol: how analysis asks a metric source for numbers.

Every provider (Prometheus, the replay cache, the static fake) honours it: ``instant`` returns one
finite float or raises ``NoData`` (empty, NaN, ±Inf), ``ProviderUnavailable`` or
``ProviderQueryError`` (rejected, or several series); ``range`` and ``vector`` return their points
or series, NaN included, ``[]`` when empty, with the same errors but ``NoData``. Implementations
live in :mod:`controlplane.providers`; docs/analysis.md, "No data, errors and the evaluator".
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from controlplane.promql.samples import Sample


@runtime_checkable
class MetricProvider(Protocol):
    """A metric source that answers PromQL at a given time."""

    def instant(self, query: str, at: float) -> float:
        """The value of ``query`` evaluated at unix time ``at``."""
        ...

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        """The points of ``query`` from ``start`` to ``end`` (inclusive) every ``step`` seconds."""
        ...


@runtime_checkable
class VectorProvider(MetricProvider, Protocol):
    """A metric source that also answers a query with every series it returns."""

    def vector(self, query: str, at: float) -> list[Sample]:
        """Every series of ``query`` at ``at`` as (labels, value); values may be NaN."""
        ...
