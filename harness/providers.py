"""An in-memory fake metric provider for unit tests of the evaluator and replay.

Implements :class:`~controlplane.analysis.metric_provider.MetricProvider`.

Maps a PromQL string to a constant, a function of time, or an exception to raise; a query it does
not know raises :class:`~controlplane.errors.NoData`, as an empty Prometheus result would.
``vectors`` maps a query to the series ``vector`` returns (a list, a function of time, or an
exception); an unknown query is an empty vector. Every
call is recorded in ``calls`` so tests can assert what was asked, and how often.
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
