"""The metric-provider protocol: how analysis asks a metric source for numbers.

Owns the contract every provider honours (Prometheus, the replay cache, the static fake):

- ``instant(query, at)`` returns one finite float, or raises
  :class:`~controlplane.errors.NoData` (empty result, NaN, ±Inf),
  :class:`~controlplane.errors.ProviderUnavailable` (connection error, timeout, 5xx) or
  :class:`~controlplane.errors.ProviderQueryError` (the source rejected the query, or the query
  returned several series where one number was expected).
- ``range(query, start, end, step)`` returns the ``(timestamp, value)`` points of the query's one
  series on the grid ``start + k * step`` (values may be NaN or ±Inf; an empty result is ``[]``),
  with the same errors except ``NoData``.

Some providers also answer ``vector(query, at)``: every series of an instant query as
``(labels, value)`` pairs (values may be NaN; an empty result is ``[]``), with the errors of
``range``. The sequential judge needs it for histogram buckets (``sum by (le) (...)``); the
evaluator checks for it with ``isinstance(provider, VectorProvider)``.

Called by :mod:`controlplane.analysis.evaluator` and :mod:`controlplane.providers.replay`; the
implementations live outside the pure core, in :mod:`controlplane.providers`.
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
