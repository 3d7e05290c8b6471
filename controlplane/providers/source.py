"""Where a tick's metrics come from: a source, Prometheus' and one that counts.

Owns :class:`MetricSource`, :class:`PrometheusSource` and :class:`CountingSource`, which counts a
tick's queries and turns whatever a query raises into a :class:`~controlplane.errors.ProviderError`,
so it counts towards ``analysis.errorLimit`` rather than failing the whole tick. Used by
:mod:`controlplane.controller.batch` and the runner.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.errors import ProviderError, ProviderUnavailable
from controlplane.promql.samples import Sample
from controlplane.providers.prometheus import PrometheusClient, PrometheusProvider

T = TypeVar("T")
log = logging.getLogger(__name__)


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
    """Counts every query sent through it (``instant``, ``vector``, ``range``); thread-safe.

    A failure of the inner source that is no :class:`~controlplane.errors.ProviderError` (a
    ``RecursionError`` from a parser, a bug in a source) is logged and raised as
    :class:`~controlplane.errors.ProviderUnavailable` naming only its type: an inconclusive
    check with ``provider_error``, which counts towards ``analysis.errorLimit``."""

    def __init__(self, inner: MetricSource) -> None:
        self.inner = inner
        self.count = 0
        self._lock = threading.Lock()

    def _tick(self) -> None:
        with self._lock:
            self.count += 1

    def _contained(self, call: Callable[[], T]) -> T:
        self._tick()
        try:
            return call()
        except ProviderError:
            raise
        except Exception as exc:
            log.exception("the metric source failed")
            kind = type(exc).__name__
        # raised outside the handler: no context, whose traceback would hold the source's data
        raise ProviderUnavailable(f"the metric source failed ({kind})")

    def instant(self, query: str, at: float) -> float:
        return self._contained(lambda: self.inner.instant(query, at))

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return self._contained(lambda: self.inner.range(query, start, end, step))

    def vector(self, query: str, at: float) -> list[Sample]:
        return self._contained(lambda: self.inner.vector(query, at))
