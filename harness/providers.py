"""In-memory fake metric providers for unit tests of the evaluator, replay and ``simulate``.

Both implement :class:`~controlplane.analysis.metric_provider.MetricProvider`.

:class:`StaticProvider` maps a PromQL string to a constant, a function of time, or an exception to
raise; a query it does not know raises :class:`~controlplane.errors.NoData`, as an empty
Prometheus result would. ``vectors`` maps a query to the series ``vector`` returns (a list, a
function of time, or an exception); an unknown query is an empty vector. Every call is recorded in
``calls`` so tests can assert what was asked, and how often.

:class:`Healthy` answers every query as a healthy pair of variants would, picking its answer by
what a query reads: a latency quantile (``histogram_quantile``) is ``latency_s``, an engine error
ratio (``finished_reason``) is ``error_ratio``, anything else (request counts, KPIs) is ``1000``.
For tests that run a whole rollout in process without a Prometheus; a test that needs exact
queries uses :class:`StaticProvider`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from controlplane.errors import NoData, ProviderError

Answer = float | Callable[[float], float] | ProviderError
Series = list[tuple[dict[str, str], float]]
VectorAnswer = Series | Callable[[float], Series] | ProviderError


class StaticProvider:
    """A provider answering from a dict ``query -> value | f(at) | exception``."""

    def __init__(
        self,
        answers: Mapping[str, Answer] | None = None,
        vectors: Mapping[str, VectorAnswer] | None = None,
    ) -> None:
        self.answers: dict[str, Answer] = dict(answers or {})
        self.vectors: dict[str, VectorAnswer] = dict(vectors or {})
        self.calls: list[tuple[str, float]] = []
        self.range_calls: list[tuple[str, float, float, float]] = []

    def _value(self, query: str, at: float) -> float:
        answer = self.answers.get(query)
        if answer is None:
            raise NoData(f"no data for {query!r}")
        if isinstance(answer, ProviderError):
            raise answer
        return answer(at) if callable(answer) else float(answer)

    def instant(self, query: str, at: float) -> float:
        self.calls.append((query, at))
        value = self._value(query, at)
        if not math.isfinite(value):
            raise NoData(f"{query!r} is {value}")
        return value

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self.range_calls.append((query, start, end, step))
        points: list[tuple[float, float]] = []
        n = math.floor((end - start) / step + 1e-9) + 1
        for k in range(n):
            at = start + k * step
            try:
                points.append((at, self._value(query, at)))
            except NoData:
                continue
        return points

    def vector(self, query: str, at: float) -> Series:
        self.calls.append((query, at))
        answer = self.vectors.get(query)
        if answer is None:
            return []
        if isinstance(answer, ProviderError):
            raise answer
        return list(answer(at) if callable(answer) else answer)


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

    def vector(self, query: str, at: float) -> Series:
        return [({}, self.instant(query, at))]
