"""Unit tests of controlplane.analysis.sequential.check and the evaluator's sequential path."""

from __future__ import annotations

import math

import pytest
from support.canaries import model_canary

from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.sequential import check as sequential_check
from controlplane.analysis.sequential import support as sequential_support
from controlplane.promql import sequential as sequential_promql
from controlplane.rollout.observations import DueCheck
from controlplane.spec.models import CheckSpec
from harness.providers import StaticProvider

CANARY = model_canary()
NOW = 1_800_000_000.0
SINCE = NOW - 600.0


def check(**fields: object) -> CheckSpec:
    return CheckSpec.model_validate({"judge": "sequential", **fields})


def errors_plan(c: CheckSpec) -> sequential_promql.Plan:
    return sequential_check.plan(CANARY, c, SINCE, NOW)


@pytest.mark.parametrize(
    ("errors", "total", "verdict", "decided"),
    [
        pytest.param(40.0, 1000.0, "breach", "breach", id="4pct-over-0.1pct"),
        pytest.param(0.0, 20000.0, "pass", "pass", id="clean-passes-early"),
        pytest.param(1.0, 500.0, "pass", None, id="no-evidence-counts-as-pass"),
        pytest.param(0.0, 50.0, "inconclusive", None, id="below-minSamples"),
    ],
)
def test_absolute_error_rate(
    errors: float, total: float, verdict: str, decided: str | None
) -> None:
    c = check(metric="errors", above="0.1%")
    plan = errors_plan(c)
    assert plan.cand_events is not None
    assert plan.cand_total is not None
    assert "[600s]" in plan.cand_total or "[10m]" in plan.cand_total
    provider = StaticProvider({plan.cand_events: errors, plan.cand_total: total})
    result = evaluate(CANARY, [DueCheck("k", c)], provider, NOW, since=SINCE).checks["k"]
    assert (result.verdict, result.decided) == (verdict, decided), result.message
    assert not result.provider_error


def test_without_a_step_start_the_check_says_so() -> None:
    c = check(metric="errors", above="0.1%")
    result = evaluate(CANARY, [DueCheck("k", c)], StaticProvider(), NOW).checks["k"]
    assert result.verdict == "inconclusive"
    assert "step started" in result.message


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        pytest.param({"metric": "kpi", "above": "5%"}, "not a custom query", id="custom"),
        pytest.param({"metric": "errors", "below": "1%"}, "'above' only", id="below"),
    ],
)
def test_unsupported_checks_are_provider_errors(fields: dict[str, object], fragment: str) -> None:
    c = check(**fields)
    assert sequential_support.problems(CANARY, c, "x")
    result = evaluate(CANARY, [DueCheck("k", c)], StaticProvider(), NOW, since=SINCE).checks["k"]
    assert result.verdict == "inconclusive"
    assert result.provider_error
    assert fragment.split()[-1] in result.message


def test_latency_needs_vectors_and_snaps_up() -> None:
    c = check(metric="latency", above="190ms")  # p95; next boundary up is 0.2s
    plan = sequential_check.plan(CANARY, c, SINCE, NOW)
    assert plan.cand_buckets is not None
    slow = [({"le": "0.1"}, 500.0), ({"le": "0.2"}, 800.0), ({"le": "+Inf"}, 1000.0)]
    provider = StaticProvider(vectors={plan.cand_buckets: slow})
    result = evaluate(CANARY, [DueCheck("k", c)], provider, NOW, since=SINCE).checks["k"]
    # 20 % of requests slower than 0.2s against 5 % allowed: a breach
    assert result.decided == "breach"
    assert "0.2s" in result.message
    assert result.value is not None
    assert math.isfinite(result.value)


def _vector(counts: list[float]) -> list[tuple[dict[str, str], float]]:
    les = ("0.1", "0.2", "0.5", "+Inf")
    return [({"le": le}, c) for le, c in zip(les, counts, strict=True)]


@pytest.mark.parametrize(
    ("cand", "decided", "sign"),
    [
        pytest.param([5.0, 30.0, 80.0, 100.0], "breach", 1, id="slower"),
        pytest.param([40.0, 90.0, 99.0, 100.0], "pass", -1, id="faster-passes-early"),
    ],
)
def test_shift_test_queries_the_pre_step_reference_and_reports_cliffs_delta(
    cand: list[float], decided: str, sign: int
) -> None:
    c = check(metric="latency", compare="baseline", above="0%", test="shift")
    plan = sequential_check.plan(CANARY, c, SINCE, NOW)
    assert plan.reference is not None
    assert plan.boundary is None
    assert f"@ {SINCE:.3f}" in plan.reference  # fixed before the step: valid at every look
    assert plan.cand_buckets is not None
    assert plan.stable_buckets is not None
    provider = StaticProvider(
        vectors={
            plan.cand_buckets: _vector(cand),
            plan.stable_buckets: _vector([200.0, 1000.0, 1900.0, 2000.0]),
            plan.reference: _vector([100.0, 500.0, 950.0, 1000.0]),
        }
    )
    result = evaluate(CANARY, [DueCheck("k", c)], provider, NOW, since=SINCE).checks["k"]
    assert result.decided == decided, result.message
    assert result.value is not None
    assert sign * result.value > 0.1  # Cliff's delta: the share of pairs slower minus faster
    assert "of request pairs" in result.message


def test_shift_test_without_a_reference_before_or_in_the_step_is_inconclusive() -> None:
    c = check(metric="latency", compare="baseline", above="0%", test="shift")
    plan = sequential_check.plan(CANARY, c, SINCE, NOW)
    assert plan.cand_buckets is not None
    assert plan.stable_buckets is not None
    provider = StaticProvider(
        vectors={
            plan.cand_buckets: _vector([5.0, 30.0, 80.0, 100.0]),
            plan.stable_buckets: _vector([200.0, 1000.0, 1900.0, 2000.0]),
        }
    )
    result = evaluate(CANARY, [DueCheck("k", c)], provider, NOW, since=SINCE).checks["k"]
    assert result.verdict == "inconclusive"
    assert not result.provider_error
    assert "before the step started nor in its first 300 s" in result.message


STEP_START_STABLE = [({"le": le}, 0.0) for le in ("0.1", "0.2", "0.5", "+Inf")]
"""The stable's histogram over a window before its first scrape: every bucket at 0."""


@pytest.mark.parametrize("test", ["shift", "quantile"])
@pytest.mark.parametrize("found_at", [60.0, 180.0])
def test_a_stable_without_history_is_compared_from_the_first_look_that_finds_its_data(
    test: str, found_at: float
) -> None:
    """A stable deployed (or adopted) as the step starts has no data in the window before it:
    the check looks again every interval (1m) up to one window (5m) into the step, and at the
    first look that finds the stable's data the reference (shift) or boundary (quantile) is the
    stable's window up to it, pinned there, and the counts judged start there, so the scores
    never look at the data they judge; before that, the check says when it looks again."""
    fields = {"test": "shift"} if test == "shift" else {}
    c = check(metric="latency", compare="baseline", above="10%", **fields)
    starts = sequential_promql.later_starts(CANARY, c, SINCE)
    assert [s - SINCE for s in starts] == [60.0, 120.0, 180.0, 240.0, 300.0]
    stable = [200.0, 1000.0, 1900.0, 2000.0]
    slow = [20.0, 120.0, 320.0, 400.0]

    def pinned(start: float) -> str:
        plan = sequential_check.plan(CANARY, c, start, NOW)
        found = plan.reference if test == "shift" else plan.boundary
        assert found is not None
        assert f"[5m] @ {start:.3f}" in found  # the stable's data up to it, fixed from then on
        return found

    answers: dict[str, float] = {}
    vectors: dict[str, list[tuple[dict[str, str], float]]] = {}
    for start in [SINCE, *starts]:
        if test == "shift":  # every bucket at 0 until the stable's data is found
            data = start - SINCE >= found_at
            vectors[pinned(start)] = (
                _vector([100.0, 500.0, 950.0, 1000.0]) if data else (STEP_START_STABLE)
            )
        elif start - SINCE >= found_at:
            answers[pinned(start)] = 0.5  # before: no series
    plan = sequential_check.plan(CANARY, c, SINCE + found_at, NOW)
    assert plan.cand_buckets is not None
    assert plan.stable_buckets is not None
    vectors[plan.cand_buckets] = _vector(slow)
    vectors[plan.stable_buckets] = _vector(stable)
    due = [DueCheck("k", c)]
    provider = StaticProvider(answers, vectors)
    result = evaluate(CANARY, due, provider, NOW, since=SINCE).checks["k"]
    assert result.decided == "breach", result.message
    assert f"candidate requests since {found_at:g} s into the step]" in result.message
    # 30 s into the step no look has found it yet: the check says when it looks again
    soon = sequential_check.plan(CANARY, c, SINCE, SINCE + 30.0)
    assert soon.cand_buckets is not None
    assert soon.stable_buckets is not None
    vectors = {soon.cand_buckets: _vector(slow), soon.stable_buckets: _vector(stable)}
    if test == "shift":
        vectors[pinned(SINCE)] = STEP_START_STABLE
    provider = StaticProvider(answers, vectors)
    early = evaluate(CANARY, due, provider, SINCE + 30.0, since=SINCE).checks["k"]
    assert early.verdict == "inconclusive"
    assert not early.provider_error
    assert "every 60 s, up to 300 s into the step" in early.message, early.message
    assert "next look in 30 s" in early.message


def _shift_result(above: str, cand: list[float]) -> object:
    c = check(metric="latency", compare="baseline", above=above, test="shift")
    plan = sequential_check.plan(CANARY, c, SINCE, NOW)
    assert plan.cand_buckets is not None
    assert plan.stable_buckets is not None
    assert plan.reference is not None
    provider = StaticProvider(
        vectors={
            plan.cand_buckets: _vector(cand),
            plan.stable_buckets: _vector([2000.0, 10000.0, 19000.0, 20000.0]),
            plan.reference: _vector([1000.0, 5000.0, 9500.0, 10000.0]),
        }
    )
    return evaluate(CANARY, [DueCheck("k", c)], provider, NOW, since=SINCE).checks["k"]


def test_a_shift_tolerance_spares_a_slightly_slower_candidate() -> None:
    # 2,000 candidate requests a little slower than the stable's 10/50/95 % cumulative shares.
    slightly = [140.0, 900.0, 1870.0, 2000.0]
    strict = _shift_result("0%", slightly)
    tolerant = _shift_result("20%", slightly)
    assert strict.decided == "breach", strict.message
    assert tolerant.decided != "breach", tolerant.message
    assert "tolerated: 20% slower" in tolerant.message
    much = _shift_result("20%", [20.0, 300.0, 1500.0, 2000.0])
    assert much.decided == "breach", much.message


@pytest.mark.parametrize(
    ("fields", "path", "said"),
    [
        ({"above": "-5%"}, "check.above", "from 0% to 1000%"),
        ({"above": "10%", "finalLook": 0.5}, "check.finalLook", "rank test against no shift"),
    ],
)
def test_shift_tolerance_problems(fields: dict[str, object], path: str, said: str) -> None:
    c = check(metric="latency", compare="baseline", test="shift", **fields)
    found = sequential_support.problems(CANARY, c, "check")
    assert [p.path for p in found] == [path]
    assert said in found[0].message
    assert not sequential_support.problems(
        CANARY, check(metric="latency", compare="baseline", test="shift", above="10%"), "check"
    )


@pytest.mark.parametrize(
    ("errors", "total", "decided"),
    [
        pytest.param(40.0, 1000.0, "breach", id="breach-reaches-the-bound"),
        pytest.param(1.0, 500.0, None, id="no-evidence-stays-below"),
    ],
)
def test_the_result_carries_the_log_e_value_and_its_bound(
    errors: float, total: float, decided: str | None
) -> None:
    """What the dashboard draws: the breach side's log e-value against ``log(1 / alpha)``, and
    the state keeps them, with both variants' values and the samples, in ``recent``."""
    from controlplane.rollout.records import next_check_state

    c = check(metric="errors", above="0.1%", alpha=0.01)
    plan = errors_plan(c)
    assert plan.cand_events is not None
    assert plan.cand_total is not None
    provider = StaticProvider({plan.cand_events: errors, plan.cand_total: total})
    due = DueCheck("k", c)
    result = evaluate(CANARY, [due], provider, NOW, since=SINCE).checks["k"]
    assert result.decided == decided, result.message
    assert result.evidence is not None
    assert result.evidence_bound == pytest.approx(math.log(100))
    assert (result.evidence >= result.evidence_bound) == (decided == "breach")
    state = next_check_state(due, None, result, NOW)
    assert (state.evidence, state.evidence_bound, state.samples) == (
        result.evidence,
        result.evidence_bound,
        total,
    )
    (sample,) = state.recent
    assert (sample.evidence, sample.samples, sample.candidate) == (
        result.evidence,
        total,
        result.candidate,
    )
