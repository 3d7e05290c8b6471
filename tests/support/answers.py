"""A metric source that answers every query as a healthy pair of variants would.

:class:`Healthy` picks its answer by what a query reads: a latency quantile
(``histogram_quantile``) is ``latency_s``, an engine error ratio (``finished_reason``) is
``error_ratio``, anything else (request counts, KPIs) is ``1000``. For tests that run a whole
rollout in process without a Prometheus (``simulate``); a test that needs exact queries uses
:class:`harness.StaticProvider`.
"""

from __future__ import annotations


class Healthy:
    """Every query answered, at every time; ``latency_s`` and ``error_ratio`` as given."""

    def __init__(self, latency_s: float = 0.5, error_ratio: float = 0.001) -> None:
        self.latency_s = latency_s
        self.error_ratio = error_ratio

    def instant(self, query: str, at: float) -> float:
        if "histogram_quantile" in query:
            return self.latency_s
        if "finished_reason" in query:
            return self.error_ratio
        return 1000.0

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        n = int((end - start) // step) + 1
        return [(start + i * step, self.instant(query, start + i * step)) for i in range(n)]

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        return [({}, self.instant(query, at))]
