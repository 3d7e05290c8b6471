"""Where a tick's metrics come from: :class:`MetricSource` (a ``MetricProvider`` that also
answers with every series of a query), :class:`PrometheusSource` over ``prometheus-api-client``,
and :class:`CountingSource`, which counts a tick's queries (the runner exposes them as
``canary_controller_analysis_queries``). Used by :mod:`controlplane.controller.batch` and the
runner; the CLI builds a :class:`PrometheusSource`.
"""

from __future__ import annotations

import threading
from typing import Protocol

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.providers.prometheus import PrometheusClient, PrometheusProvider

Labels = dict[str, str]
Sample = tuple[Labels, float]
GROUP_LABELS = ("canary", "variant")


class MetricSource(MetricProvider, Protocol):
    """A :class:`MetricProvider` that also answers a query with every series it returns."""

    def vector(self, query: str, at: float) -> list[Sample]:
        """Every series of ``query`` at ``at`` as (labels, value); values may be NaN."""
        ...


class PrometheusSource:
    """:class:`MetricSource` over an injected ``PrometheusConnect`` (see
    :func:`controlplane.providers.prometheus.from_url`)."""

    def __init__(self, client: PrometheusClient) -> None:
        self._client = client
        self._single = PrometheusProvider(client)

    def instant(self, query: str, at: float) -> float:
        return self._single.instant(query, at)

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return self._single.range(query, start, end, step)

    def vector(self, query: str, at: float) -> list[Sample]:
        return self._single.vector(query, at)


class CountingSource:
    """Counts every query sent through it (``instant``, ``vector``, ``range``); thread-safe."""

    def __init__(self, inner: MetricSource) -> None:
        self.inner = inner
        self.count = 0
        self._lock = threading.Lock()

    def _tick(self) -> None:
        with self._lock:
            self.count += 1

    def instant(self, query: str, at: float) -> float:
        self._tick()
        return self.inner.instant(query, at)

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self._tick()
        return self.inner.range(query, start, end, step)

    def vector(self, query: str, at: float) -> list[Sample]:
        self._tick()
        return self.inner.vector(query, at)
