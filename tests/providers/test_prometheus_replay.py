"""Integration: the replay provider gives the same answers as instant queries, from one fetch."""

from __future__ import annotations

import pytest
from support.canaries import model_canary
from support.history import History

from controlplane.analysis.evaluator import evaluate
from controlplane.errors import NoData
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.providers.replay import ReplayProvider, replay_queries
from controlplane.rollout.observations import DueCheck

pytestmark = pytest.mark.binary

CANARY = model_canary()
STEP = CANARY.spec.analysis.interval.seconds


def answer(provider: object, query: str, at: float) -> float | str:
    try:
        return provider.instant(query, at)  # type: ignore[attr-defined, no-any-return]
    except NoData:
        return "no data"


@pytest.fixture(scope="module")
def live(history: History) -> PrometheusProvider:
    return PrometheusProvider(from_url(history.url, timeout_s=30))


@pytest.fixture(scope="module")
def replay(history: History, live: PrometheusProvider) -> ReplayProvider:
    s = history.scenario
    # small chunks so that the test crosses chunk boundaries
    return ReplayProvider.prefetch(
        live, replay_queries(CANARY), s.start + 3600, s.end, STEP, max_points=997
    )


def sample_times(history: History) -> list[float]:
    s = history.scenario
    start = s.start + 3600
    n = int((s.end - start) // STEP)
    return [start + STEP * (k * n // 23) for k in range(24)] + [s.end]


def test_replay_matches_instant_queries(
    history: History, live: PrometheusProvider, replay: ReplayProvider
) -> None:
    plan = replay_queries(CANARY)
    # + the stable value of the 3 absolute built-in checks (display), and the two variants'
    # loads a breached comparison reads (the KPI drift's), and the demand the capacity plan
    # (the default) follows
    assert len(plan) == 8 + 3 + 2 + 1
    compared = 0
    for at in sample_times(history):
        for query in plan:
            expected = answer(live, query, at)
            got = answer(replay, query, at)
            if isinstance(expected, float):
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (query, at)
            else:
                assert got == expected, (query, at)
            compared += 1
    assert compared == 25 * len(plan)


def test_replay_answers_without_asking_prometheus(
    history: History, live: PrometheusProvider
) -> None:
    class Counting:
        def __init__(self) -> None:
            self.instants = 0

        def instant(self, query: str, at: float) -> float:
            self.instants += 1
            return live.instant(query, at)

        def range(
            self, query: str, start: float, end: float, step: float
        ) -> list[tuple[float, float]]:
            return live.range(query, start, end, step)

    s = history.scenario
    source = Counting()
    replay = ReplayProvider.prefetch(source, replay_queries(CANARY), s.start, s.end, STEP)
    due = [DueCheck(k, c) for k, c in queries.all_checks(CANARY)]
    for k in range(0, int(s.duration // STEP), 97):
        observations = evaluate(CANARY, due, replay, s.start + k * STEP)
        assert len(observations.checks) == len(due)
    assert source.instants == 0
