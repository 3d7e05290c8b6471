"""Fast replay: prefetch every series a simulation needs, then answer instant queries from memory.

``canaryctl simulate`` evaluates weeks of history; instead of one instant query per evaluation it
fetches each distinct query once with ``query_range`` on the evaluation grid (each step is
evaluated as an instant query would be) and looks values up. Errors are the live provider's.
The steps: docs/analysis.md, "Replay (``canaryctl simulate``)".
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from controlplane.analysis import evaluator
from controlplane.analysis.metric_provider import MetricProvider, VectorProvider
from controlplane.errors import NoData, ProviderQueryError, SpecError
from controlplane.promql import queries
from controlplane.promql.samples import Sample
from controlplane.spec.models import ModelCanary

MAX_POINTS_PER_QUERY = 10_000
"""Points per range request; Prometheus refuses more than 11,000 per series."""

_GRID_TOLERANCE_S = 1e-3


def replay_queries(canary: ModelCanary) -> list[str]:
    """Every distinct query an evaluation of ``canary`` may ask (checks with windows, cost).

    Checks whose query cannot be rendered are left out: the evaluator reports them itself.
    """
    found: list[str] = []
    for _key, check in queries.all_checks(canary):
        try:
            found += queries.check_queries(canary, check).all()
        except SpecError:
            continue
        if evaluator.compares_variants(check):
            # a breached comparison reads each variant's load (analysis.evaluator.fair)
            window = canary.window_s(check)
            for variant in (canary.spec.candidate, canary.spec.stable):
                try:
                    found.append(queries.load_query(canary, variant.name, window))
                except SpecError:
                    continue
    if canary.spec.plan is not None:
        variants = [canary.spec.stable.name, canary.spec.candidate.name]
        window = canary.spec.analysis.window.seconds
        with contextlib.suppress(SpecError):
            found.append(queries.demand_query(canary, variants, window))
    try:
        cost = queries.cost_query(canary)
    except SpecError:
        cost = None
    if cost is not None:
        found.append(cost)
    return list(dict.fromkeys(found))


def on_demand_queries(canary: ModelCanary) -> list[str]:
    """The queries of :func:`replay_queries` read only for a breached comparison: each variant's
    load (:func:`controlplane.analysis.evaluator.fair`). Fetching them up front cost every
    four-week replay two range queries it never read."""
    found: list[str] = []
    for _key, check in queries.all_checks(canary):
        if not evaluator.compares_variants(check):
            continue
        window = canary.window_s(check)
        for variant in (canary.spec.candidate, canary.spec.stable):
            with contextlib.suppress(SpecError):
                found.append(queries.load_query(canary, variant.name, window))
    return list(dict.fromkeys(found))


def grid_size(start: float, end: float, step: float) -> int:
    """Number of grid points ``start + k * step`` within ``[start, end]``."""
    if step <= 0:
        raise ValueError(f"step must be positive, got {step!r}")
    if end < start:
        raise ValueError(f"end {end!r} is before start {start!r}")
    return math.floor((end - start) / step + 1e-9) + 1


def chunks(
    start: float, end: float, step: float, max_points: int = MAX_POINTS_PER_QUERY
) -> list[tuple[float, float]]:
    """Split ``[start, end]`` on the step grid into ranges of at most ``max_points`` points."""
    n = grid_size(start, end, step)
    out: list[tuple[float, float]] = []
    for first in range(0, n, max_points):
        last = min(first + max_points, n) - 1
        out.append((start + first * step, start + last * step))
    return out


class ReplayProvider:
    """A :class:`~controlplane.analysis.metric_provider.MetricProvider` answering from prefetched
    series on the grid ``start + k * step``; other queries and times go to ``source``."""

    def __init__(
        self,
        source: MetricProvider,
        start: float,
        step: float,
        series: dict[str, npt.NDArray[np.float64]],
        errors: dict[str, ProviderQueryError] | None = None,
        *,
        on_demand: Iterable[str] = (),
        end: float | None = None,
        max_points: int = MAX_POINTS_PER_QUERY,
    ) -> None:
        self.source = source
        self.start = start
        self.step = step
        self._series = series
        self._errors = dict(errors or {})
        self._on_demand = set() if end is None else set(on_demand) - set(series) - set(self._errors)
        self._end = start if end is None else end
        self._max_points = max_points

    @classmethod
    def prefetch(
        cls,
        source: MetricProvider,
        plan: Iterable[str],
        start: float,
        end: float,
        step: float,
        *,
        workers: int = 4,
        max_points: int = MAX_POINTS_PER_QUERY,
        on_demand: Iterable[str] = (),
    ) -> ReplayProvider:
        """Fetch every query of ``plan`` over ``[start, end]`` once, ``workers`` requests at a time;
        the queries of ``on_demand`` (not in ``plan``) are fetched alike the first time one is
        asked (:meth:`instant`).

        Raises :class:`~controlplane.errors.ProviderUnavailable` when the source cannot be used.
        """
        wanted = list(dict.fromkeys(plan))
        series, errors = _fetch_all(source, wanted, start, end, step, workers, max_points)
        later = [q for q in on_demand if q not in series and q not in errors]
        return cls(
            source, start, step, series, errors, on_demand=later, end=end, max_points=max_points
        )

    @property
    def queries(self) -> list[str]:
        """The prefetched queries."""
        return [*self._series, *self._errors]

    def _index(self, query: str, at: float) -> int | None:
        values = self._series.get(query)
        if values is None:
            return None
        k = round((at - self.start) / self.step)
        if not 0 <= k < len(values) or abs(self.start + k * self.step - at) > _GRID_TOLERANCE_S:
            return None
        return k

    def _fetch_on_demand(self, query: str) -> None:
        """Fetch ``query`` of the on-demand plan over the whole range (once)."""
        self._on_demand.discard(query)
        series, errors = _fetch_all(
            self.source, [query], self.start, self._end, self.step, 1, self._max_points
        )
        self._series.update(series)
        self._errors.update(errors)

    def instant(self, query: str, at: float) -> float:
        if query in self._on_demand:
            self._fetch_on_demand(query)
        error = self._errors.get(query)
        if error is not None:
            raise error
        k = self._index(query, at)
        if k is None:
            return self.source.instant(query, at)
        value = float(self._series[query][k])
        if not math.isfinite(value):
            raise NoData(f"no value for {query!r} at {at}")
        return value

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return self.source.range(query, start, end, step)

    def vector(self, query: str, at: float) -> list[Sample]:
        """Vector queries (histogram buckets of sequential checks) go to the source."""
        if not isinstance(self.source, VectorProvider):
            raise ProviderQueryError(f"the metric source cannot answer vector queries: {query!r}")
        return self.source.vector(query, at)


def _fetch_all(
    source: MetricProvider,
    wanted: list[str],
    start: float,
    end: float,
    step: float,
    workers: int,
    max_points: int,
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, ProviderQueryError]]:
    """Each query of ``wanted`` on the grid of ``[start, end]`` (chunked range queries,
    ``workers`` at a time), and the queries Prometheus rejected."""
    n = grid_size(start, end, step)
    spans = chunks(start, end, step, max_points)
    jobs = [(q, s, e) for q in wanted for s, e in spans]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        answers = list(pool.map(lambda job: _fetch(source, job[0], job[1], job[2], step), jobs))

    series = {q: np.full(n, np.nan) for q in wanted}
    errors: dict[str, ProviderQueryError] = {}
    for (query, _s, _e), answer in zip(jobs, answers, strict=True):
        if isinstance(answer, ProviderQueryError):
            errors.setdefault(query, answer)
            continue
        if not answer:
            continue
        times = np.fromiter((t for t, _v in answer), dtype=np.float64, count=len(answer))
        values = np.fromiter((v for _t, v in answer), dtype=np.float64, count=len(answer))
        index = np.rint((times - start) / step).astype(np.int64)
        ok = (index >= 0) & (index < n)
        series[query][index[ok]] = values[ok]
    for query in errors:
        series.pop(query, None)
    return series, errors


def _fetch(
    source: MetricProvider, query: str, start: float, end: float, step: float
) -> list[tuple[float, float]] | ProviderQueryError:
    try:
        return source.range(query, start, end, step)
    except ProviderQueryError as exc:
        return exc
