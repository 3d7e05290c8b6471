"""Unit tests of controlplane.analysis.evaluator and .replay against the static fake provider."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.analysis.evaluator import evaluate
from controlplane.errors import NoData, ProviderQueryError, ProviderUnavailable
from controlplane.promql import queries
from controlplane.providers.replay import ReplayProvider, chunks, replay_queries
from controlplane.rollout.observations import DueCheck
from controlplane.spec.models import ModelCanary
from harness.providers import Answer, StaticProvider

CANARY = model_canary()
NOW = 1_800_000_000.0
DUE = [DueCheck(k, c) for k, c in queries.all_checks(CANARY)]
PLANS = {k: queries.check_queries(CANARY, c) for k, c in queries.all_checks(CANARY)}
LATENCY = PLANS["steps[0].rollbackOn[0]"]
KPI = PLANS["steps[1].rollbackOn[0]"]
COST = queries.cost_query(CANARY)


def demand_of(canary: ModelCanary) -> str:
    """The demand query the default capacity plan reads (both variants, the analysis window)."""
    names = [canary.spec.stable.name, canary.spec.candidate.name]
    return queries.demand_query(canary, names, canary.spec.analysis.window.seconds)


DEMAND = demand_of(CANARY)
assert LATENCY.samples is not None
assert KPI.stable is not None
assert COST is not None


def due(key: str) -> list[DueCheck]:
    return [d for d in DUE if d.key == key]


@pytest.mark.parametrize(
    ("answers", "verdict", "provider_error", "fragment"),
    [
        pytest.param({LATENCY.candidate: 0.41, LATENCY.samples: 500}, "breach", False, "> 300ms",
                     id="breach"),
        pytest.param({LATENCY.candidate: 0.29, LATENCY.samples: 500}, "pass", False, "<= 300ms",
                     id="pass"),
        pytest.param({LATENCY.candidate: 0.25, LATENCY.samples: 50}, "inconclusive", False,
                     "too few samples: 50 of minSamples 100 requests", id="few-samples"),
        pytest.param({LATENCY.candidate: 0.25}, "inconclusive", False,
                     "too few samples: 0 of minSamples", id="samples-no-data-is-zero"),
        pytest.param({LATENCY.samples: 500}, "inconclusive", False,
                     'latency: no data: no series matched vllm:e2e_request_latency_seconds_bucket'
                     '{namespace="ml-serving",canary="support-triage",variant="nf4"}'
                     ' over the last 5m',
                     id="no-data"),
        pytest.param({LATENCY.candidate: float("nan"), LATENCY.samples: 500}, "inconclusive",
                     False, "no data", id="nan"),
        pytest.param({LATENCY.candidate: ProviderUnavailable("connection refused"),
                      LATENCY.samples: 500}, "inconclusive", True, "connection refused",
                     id="unavailable"),
        pytest.param({LATENCY.candidate: 0.25, LATENCY.samples: ProviderUnavailable("timeout")},
                     "inconclusive", True, "timeout", id="samples-unavailable"),
        pytest.param({LATENCY.candidate: ProviderQueryError("parse error"),
                      LATENCY.samples: 500}, "inconclusive", True, "parse error",
                     id="query-error"),
    ],
)  # fmt: skip
def test_latency_check(
    answers: dict[str, Answer], verdict: str, provider_error: bool, fragment: str
) -> None:
    result = evaluate(CANARY, due("steps[0].rollbackOn[0]"), StaticProvider(answers), NOW).checks[
        "steps[0].rollbackOn[0]"
    ]
    assert (result.verdict, result.provider_error) == (verdict, provider_error)
    assert fragment in result.message


def test_compare_baseline_asks_both_variants() -> None:
    provider = StaticProvider({KPI.candidate: 0.63, KPI.stable: 0.70})
    result = evaluate(CANARY, due("steps[1].rollbackOn[0]"), provider, NOW).checks[
        "steps[1].rollbackOn[0]"
    ]
    assert result.verdict == "breach"
    assert result.value == pytest.approx(-0.1)
    assert (result.candidate, result.stable, result.samples) == (0.63, 0.70, None)
    # ... and, since the check compares them, each variant's load (none here: left out)
    assert {q for q, _ in provider.calls} == {KPI.candidate, KPI.stable, COST, DEMAND, *LOADS}
    assert (result.load_candidate, result.load_stable) == (None, None)


WINDOW_4H = 4 * 3600.0
LOADS = (
    queries.load_query(CANARY, CANARY.spec.candidate.name, WINDOW_4H),
    queries.load_query(CANARY, CANARY.spec.stable.name, WINDOW_4H),
)
"""The drift check's loads, over its own 4-hour window."""


@pytest.mark.parametrize(
    ("candidate", "stable", "unfair"),
    [(12.0, 3.0, True), (3.0, 12.0, True), (4.0, 3.0, False), (4.5, 3.0, False)],
)
def test_a_comparison_says_when_one_variant_carries_more_load(
    candidate: float, stable: float, unfair: bool
) -> None:
    answers: dict[str, Answer] = {KPI.candidate: 0.63, KPI.stable: 0.70}
    answers.update(dict(zip(LOADS, (candidate, stable), strict=True)))
    result = evaluate(CANARY, due("steps[1].rollbackOn[0]"), StaticProvider(answers), NOW).checks[
        "steps[1].rollbackOn[0]"
    ]
    assert result.verdict == "breach"  # the verdict is never changed by the loads
    assert (result.load_candidate, result.load_stable) == (candidate, stable)
    assert ("not a fair comparison" in result.message) is unfair
    if unfair:
        heavier = "candidate" if candidate > stable else "stable"
        assert f"the {heavier} carries 4.0x" in result.message


def test_the_allowed_load_ratio_comes_from_the_spec() -> None:
    canary = model_canary(capacity={"maxLoadRatio": 5})
    answers: dict[str, Answer] = {KPI.candidate: 0.63, KPI.stable: 0.70}
    answers.update(dict(zip(LOADS, (12.0, 3.0), strict=True)))
    result = evaluate(canary, due("steps[1].rollbackOn[0]"), StaticProvider(answers), NOW).checks[
        "steps[1].rollbackOn[0]"
    ]
    assert result.load_candidate == 12.0
    assert "not a fair comparison" not in result.message


def test_a_comparison_that_passes_asks_no_load() -> None:
    provider = StaticProvider({KPI.candidate: 0.69, KPI.stable: 0.70})
    result = evaluate(CANARY, due("steps[1].rollbackOn[0]"), provider, NOW).checks[
        "steps[1].rollbackOn[0]"
    ]
    assert result.verdict == "pass"
    assert (result.load_candidate, result.load_stable) == (None, None)
    assert not [q for q, _ in provider.calls if "num_requests_running" in q]


def test_a_check_on_the_candidate_alone_asks_no_load() -> None:
    provider = StaticProvider({LATENCY.candidate: 0.2, LATENCY.samples: 500})
    evaluate(CANARY, due("steps[0].rollbackOn[0]"), provider, NOW)
    assert not [q for q, _ in provider.calls if "num_requests_running" in q]


def test_same_query_is_asked_once_per_evaluation() -> None:
    errors = PLANS["steps[0].rollbackOn[1]"]
    provider = StaticProvider({errors.candidate: 0.02, LATENCY.samples: 500})
    observations = evaluate(CANARY, DUE, provider, NOW)
    assert len(observations.checks) == len(DUE)
    asked = [q for q, _ in provider.calls]
    assert len(asked) == len(set(asked))
    assert all(at == NOW for _, at in provider.calls)
    # errors appears twice (shadow and step 1) and shares the sample count with latency checks
    assert observations.checks["shadow.rollbackOn[0]"].verdict == "breach"
    assert observations.checks["steps[0].rollbackOn[1]"].verdict == "breach"


@pytest.mark.parametrize(
    ("answer", "spend", "spend_error"),
    [
        pytest.param(42.5, 42.5, False, id="value"),
        pytest.param(None, None, False, id="no-data"),
        pytest.param(ProviderUnavailable("down"), None, True, id="unavailable"),
    ],
)
def test_spend(answer: Answer | None, spend: float | None, spend_error: bool) -> None:
    provider = StaticProvider({} if answer is None else {COST: answer})
    observations = evaluate(CANARY, [], provider, NOW)
    assert (observations.spend, observations.spend_error) == (spend, spend_error)


def test_no_budget_means_no_spend_query() -> None:
    provider = StaticProvider()
    canary = model_canary(budget=None)
    observations = evaluate(canary, [], provider, NOW)
    assert observations.spend is None
    assert [q for q, _ in provider.calls] == [demand_of(canary)]  # the plan's, no spend


def test_unrenderable_query_is_inconclusive_not_a_crash() -> None:
    canary = model_canary(
        analysis={"metrics": [{"name": "latency", "query": "x{a=\"{{pod}}\"}"}]},
        shadow=None,
        steps=[{"weight": 5, "duration": "1d", "rollbackOn": [{"metric": "latency", "above": 1}]},
               {"weight": 100}],
    )  # fmt: skip
    checks = [DueCheck(k, c) for k, c in queries.all_checks(canary)]
    result = evaluate(canary, checks, StaticProvider(), NOW).checks["steps[0].rollbackOn[0]"]
    assert result.verdict == "inconclusive"
    assert result.provider_error
    assert "{{pod}}" in result.message


# -- replay ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "step", "max_points", "expected"),
    [
        pytest.param(0, 100, 10, 100, [(0, 100)], id="one-chunk"),
        pytest.param(0, 100, 10, 5, [(0, 40), (50, 90), (100, 100)], id="three-chunks"),
        pytest.param(0, 95, 10, 5, [(0, 40), (50, 90)], id="end-off-grid"),
        pytest.param(7, 7, 60, 5, [(7, 7)], id="single-point"),
    ],
)
def test_chunks(
    start: float, end: float, step: float, max_points: int, expected: list[tuple[float, float]]
) -> None:
    assert chunks(start, end, step, max_points) == expected


def test_four_weeks_every_minute_fits_in_five_requests_per_query() -> None:
    spans = chunks(0, 28 * 86400, 60)
    assert len(spans) == 5
    assert all((e - s) / 60 + 1 <= 11_000 for s, e in spans)


def test_replay_answers_from_memory_on_the_grid() -> None:
    source = StaticProvider(
        {
            "a": lambda t: t / 60,
            "gap": lambda t: float("nan") if t == 120 else 1.0,
            "bad": ProviderQueryError("parse error"),
        }
    )
    replay = ReplayProvider.prefetch(source, ["a", "gap", "bad", "a"], 0, 600, 60, max_points=4)
    assert len(source.range_calls) == 3 * 3  # three distinct queries, three chunks each
    source.calls.clear()
    assert [replay.instant("a", t) for t in (0, 60, 540, 600)] == [0, 1, 9, 10]
    assert replay.instant("gap", 60) == 1.0
    with pytest.raises(NoData):
        replay.instant("gap", 120)
    with pytest.raises(ProviderQueryError, match="parse error"):
        replay.instant("bad", 60)
    assert source.calls == []
    # off the grid, or a query that was not planned: asked from the source
    assert replay.instant("a", 90) == 1.5
    with pytest.raises(NoData):
        replay.instant("unplanned", 60)
    assert [q for q, _ in source.calls] == ["a", "unplanned"]


def test_replay_prefetch_fails_when_the_source_is_down() -> None:
    source = StaticProvider({"a": ProviderUnavailable("connection refused")})
    with pytest.raises(ProviderUnavailable):
        ReplayProvider.prefetch(source, ["a"], 0, 600, 60)


def test_replay_plan_covers_every_query_of_the_example() -> None:
    plan = replay_queries(CANARY)
    wanted = {q for p in PLANS.values() for q in p.all()} | {COST, DEMAND} | set(LOADS)
    assert set(plan) == wanted
    # 8 the verdicts need, the stable variant of the three absolute built-in checks (display),
    # the two variants' loads a breached comparison (the KPI drift) reads, and the demand the
    # default capacity plan sizes replicas for
    shown = {p.stable_shown for p in PLANS.values() if p.stable_shown is not None}
    assert len(shown) == 3
    assert shown <= set(plan)
    assert len(plan) == len(set(plan)) == 8 + 3 + 2 + 1


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        pytest.param(0.18, 0.18, id="answered"),
        pytest.param(NoData("no stable traffic"), None, id="no-data"),
        pytest.param(ProviderUnavailable("timeout"), None, id="unavailable"),
        pytest.param(float("nan"), None, id="nan"),
    ],
)
@pytest.mark.parametrize(("candidate", "verdict"), [(0.41, "breach"), (0.29, "pass")])
def test_absolute_check_shows_the_stable_value_without_judging_it(
    shown: Answer, expected: float | None, candidate: float, verdict: str
) -> None:
    assert LATENCY.stable is None  # absolute: the verdict does not use the stable variant
    assert LATENCY.stable_shown is not None
    assert "bf16" in LATENCY.stable_shown
    assert "nf4" not in LATENCY.stable_shown
    answers: dict[str, Answer] = {
        LATENCY.candidate: candidate,
        LATENCY.samples: 500,
        LATENCY.stable_shown: shown,
    }
    result = evaluate(CANARY, due("steps[0].rollbackOn[0]"), StaticProvider(answers), NOW).checks[
        "steps[0].rollbackOn[0]"
    ]
    assert (result.verdict, result.provider_error) == (verdict, False)
    assert (result.candidate, result.stable) == (candidate, expected)
    assert result.value == candidate


def test_custom_absolute_metric_has_no_stable_query() -> None:
    win_rate = PLANS["shadow.promoteOn"]
    assert win_rate.stable is None
    assert win_rate.stable_shown is None
    assert KPI.stable_shown is None  # baseline checks ask the stable variant for the verdict


def test_the_loads_are_fetched_when_first_asked() -> None:
    """The loads only a breached comparison reads are planned on demand (a replay that never
    breaches never fetches them, issue 41); the first ask fetches the whole range, as the
    prefetch would have, and every later one is answered from memory."""
    from controlplane.providers.replay import on_demand_queries
    from controlplane.simulation import prefetched

    assert set(on_demand_queries(CANARY)) == set(LOADS)
    source = StaticProvider({"a": 1.0, "load": lambda t: t / 60})
    replay = ReplayProvider.prefetch(source, ["a"], 0, 600, 60, max_points=4, on_demand=["load"])
    assert [q for q, *_ in source.range_calls] == ["a"] * 3
    assert replay.instant("load", 120) == 2.0
    assert [q for q, *_ in source.range_calls] == ["a"] * 3 + ["load"] * 3
    assert [replay.instant("load", t) for t in (0, 600)] == [0.0, 10.0]
    assert len(source.range_calls) == 6
    assert source.calls == []

    full = StaticProvider(dict.fromkeys(replay_queries(CANARY), 1.0))
    provider = prefetched(CANARY, full, 0, 600)
    fetched = {q for q, *_ in full.range_calls}
    assert fetched == set(replay_queries(CANARY)) - set(LOADS)
    assert provider.instant(LOADS[0], 60) == 1.0
    assert {q for q, *_ in full.range_calls} == fetched | {LOADS[0]}
