"""The closing test (``finalLook``): its p-values, its level, and how a check uses it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from support.canaries import model_canary

from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.sequential import check as sequential_check
from controlplane.analysis.sequential.count_judges import judge_counts, judge_rate
from controlplane.analysis.sequential.eprocess import bernoulli_decisions, binomial_p
from controlplane.analysis.sequential.latency_judges import judge_latency, judge_shift
from controlplane.analysis.sequential.rank_shift import rank_sum_p
from controlplane.promql import sequential as sequential_promql
from controlplane.rollout.observations import DueCheck
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import CheckSpec
from harness.providers import StaticProvider

CANARY = model_canary()
SINCE = 1_800_000_000.0
END = SINCE + 3600.0


def test_binomial_p_is_the_exact_upper_tail_and_interpolates_between_counts() -> None:
    x = np.arange(0, 31)
    assert binomial_p(x, 200, 0.05) == pytest.approx(stats.binom.sf(x - 1, 200, 0.05))
    between = binomial_p(np.linspace(0.0, 30.0, 301), 200.0, 0.05)
    assert np.all(np.diff(between) <= 0)  # more events: less likely under H0
    assert float(binomial_p(0.0, 0.0, 0.5)) == 1.0


def test_rank_sum_p_is_scipys_mann_whitney_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        c, s = rng.integers(0, 40, 6), rng.integers(0, 40, 6)
        if c.sum() == 0 or s.sum() == 0:
            continue
        x, y = np.repeat(np.arange(6), c), np.repeat(np.arange(6), s)
        want = stats.mannwhitneyu(x, y, alternative="greater", use_continuity=True).pvalue
        assert float(rank_sum_p(c, s)) == pytest.approx(want)
    assert float(rank_sum_p([0, 0], [3, 4])) == 1.0


def test_judges_give_only_the_fixed_horizon_p_value_when_asked() -> None:
    cand = {0.1: 10.0, 0.2: 30.0, 0.5: 38.0, math.inf: 40.0}
    stable = {0.1: 200.0, 0.2: 700.0, 0.5: 790.0, math.inf: 800.0}
    calls = {
        "rate": lambda **kw: judge_rate(12.0, 1000.0, 0.005, 0.05, **kw),
        "counts": lambda **kw: judge_counts(12.0, 1000.0, 100.0, 19000.0, 0.0, 0.05, **kw),
        "latency": lambda **kw: judge_latency(cand, None, 0.95, 0.05, bound_s=0.2, **kw),
        "shift": lambda **kw: judge_shift(cand, stable, stable, 0.05, **kw),
    }
    want = {
        "rate": float(binomial_p(12.0, 1000.0, 0.005)),
        "counts": float(binomial_p(12.0, 112.0, 1000.0 / 20000.0)),
        "latency": float(binomial_p(10.0, 40.0, 0.05)),
        "shift": float(rank_sum_p([10.0, 20.0, 8.0, 2.0], [200.0, 500.0, 90.0, 10.0])),
    }
    for name, call in calls.items():
        anytime = call()
        assert anytime.p_fixed == 1.0, name  # the anytime test's every look: not computed
        # The closing test alone: the p-value and the estimate, no anytime test at all.
        alone = call(fixed=True)
        assert alone.p_fixed == pytest.approx(want[name]), name
        assert want[name] < 1.0, name
        assert alone.estimate == pytest.approx(anytime.estimate), name
        assert (alone.decision, alone.e_value, alone.e_pass) == ("continue", 1.0, 1.0), name
        assert anytime.e_value != 1.0, name
        assert math.isnan(alone.ci_low), name
        assert math.isnan(alone.ci_high), name
        assert "CS" not in alone.message, name
        assert "e-value" not in alone.message, name


def test_the_closing_test_computes_no_anytime_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a step's end the closing test runs at every evaluation of a held step: it must
    cost one p-value, not a second run of the anytime test (e-values, confidence sequence)."""
    from controlplane.analysis.sequential import count_judges

    metric = CANARY.metric("errors")
    assert metric is not None
    c = check(alpha=0.01, finalLook=0.5)
    pinned = replace(MILD, closing=MILD)
    runs = {"anytime": 0}
    real = count_judges.cs_bounds  # the anytime test's confidence sequence: once per anytime run

    def counted(*args: object) -> object:
        runs["anytime"] += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(count_judges, "cs_bounds", counted)
    result = sequential_check.judge_check("k", c, metric, pinned, min_samples=None)
    assert result.decided == "breach", result.message
    assert runs["anytime"] == 1  # the live look's anytime test only
    assert "closing test at the step's end" in result.message


@pytest.mark.parametrize("final", [0.0, 0.5, 0.9])
def test_anytime_plus_closing_test_keep_false_rollbacks_under_alpha(final: float) -> None:
    """Identical variants (Poisson errors, 5 % canary weight), 60 looks then the closing test:
    the union bound keeps the share of rolled-back runs under alpha."""
    rng = np.random.default_rng(11)
    runs, looks, alpha = 4000, 60, 0.1
    cand = np.cumsum(rng.poisson(0.3, (runs, looks)), 1).astype(np.float64)
    stable = np.cumsum(rng.poisson(5.7, (runs, looks)), 1).astype(np.float64)
    events = cand + stable
    anytime = bernoulli_decisions(cand, events, 0.05, alpha * (1 - final)) == 1
    closing = binomial_p(cand[:, -1], events[:, -1], 0.05) <= alpha * final
    rolled = anytime.any(1) | (closing if final > 0 else False)
    assert rolled.mean() <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    if final > 0:  # the closing test is near its level: not a test that never rejects
        assert closing.mean() >= 0.5 * alpha * final


def test_rank_sum_closing_test_holds_its_level_on_identical_histograms() -> None:
    rng = np.random.default_rng(5)
    probs = np.array([0.1, 0.4, 0.3, 0.15, 0.05])
    c = rng.multinomial(300, probs, size=4000)
    s = rng.multinomial(6000, probs, size=4000)
    rejected = rank_sum_p(c, s) <= 0.05
    assert 0.03 <= rejected.mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 4000)


def check(**fields: object) -> CheckSpec:
    return CheckSpec.model_validate(
        {"judge": "sequential", "metric": "errors", "compare": "baseline", "above": "0%", **fields}
    )


def test_closing_time_is_the_steps_end_once_it_is_up() -> None:
    c = check(alpha=0.05, finalLook=0.5)
    assert sequential_promql.closing_time(c, END, END - 60.0) is None
    assert sequential_promql.closing_time(c, END, END) == END
    assert sequential_promql.closing_time(c, END, END + 600.0) == END  # held: still the step's end
    assert sequential_promql.closing_time(c, None, END) is None  # a step without a duration
    assert sequential_promql.closing_time(check(alpha=0.05), END, END) is None  # no finalLook


def test_closing_queries_cover_the_whole_step_pinned_at_its_end() -> None:
    c = check(alpha=0.05, finalLook=0.5)
    assert sequential_check.plan(CANARY, c, SINCE, END - 60.0, closes_at=END).closing is None
    plan = sequential_check.plan(CANARY, c, SINCE, END + 600.0, closes_at=END)
    closing = plan.closing
    assert closing is not None
    for query in (closing.cand_events, closing.cand_total, closing.stable_events):
        assert query is not None
        assert f"[1h] @ {END:.3f})" in query
    assert plan.cand_total is not None
    assert "@" not in plan.cand_total  # the anytime test sees everything up to now


def _counts(
    cand_err: float, cand: float, stable_err: float, stable: float
) -> sequential_check.Counts:
    return sequential_check.Counts(
        cand_events=cand_err, cand_total=cand, stable_events=stable_err, stable_total=stable
    )


# 1.2 % errors against 1 % at a quarter of the traffic, one hour: p ~ 2e-4, e-value ~ e^3.3
MILD = _counts(540.0, 45_000.0, 1350.0, 135_000.0)


def test_a_check_breaches_on_the_closing_test_and_spends_the_rest_of_alpha_anytime() -> None:
    metric = CANARY.metric("errors")
    assert metric is not None
    c = check(alpha=0.01, finalLook=0.5)
    closed = replace(MILD, closing=MILD)
    result = sequential_check.judge_check("k", c, metric, closed, min_samples=None)
    assert (result.verdict, result.decided) == ("breach", "breach"), result.message
    assert "closing test at the step's end" in result.message
    assert "<= 0.005" in result.message
    # Before the step's end (no closing counts) the anytime test alone, at alpha/2: no breach.
    before = sequential_check.judge_check("k", c, metric, MILD, min_samples=None)
    assert (before.verdict, before.decided) == ("pass", None), before.message
    assert "alpha 0.005" in before.message
    # Without finalLook the same closing counts are not tested.
    plain = sequential_check.judge_check("k", check(alpha=0.01), metric, closed, min_samples=None)
    assert plain.decided is None, plain.message
    # A good candidate passes the closing test.
    good = _counts(450.0, 45_000.0, 1350.0, 135_000.0)
    fine = replace(good, closing=good)
    assert sequential_check.judge_check("k", c, metric, fine, min_samples=None).verdict == "pass"


def test_the_evaluator_runs_the_closing_test_from_the_due_checks_step_end() -> None:
    c = check(alpha=0.01, finalLook=0.5)
    plan = sequential_check.plan(CANARY, c, SINCE, END, closes_at=END)
    closing = plan.closing
    assert closing is not None
    answers: dict[str, float] = {}
    for p in (plan, closing):
        for query, value in zip(
            (p.cand_events, p.cand_total, p.stable_events, p.stable_total),
            (540.0, 45_000.0, 1350.0, 135_000.0),
            strict=True,
        ):
            assert query is not None
            answers[query] = value
    provider = StaticProvider(answers)
    due = DueCheck("k", c, closes_at=END)
    result = evaluate(CANARY, [due], provider, END, since=SINCE).checks["k"]
    assert result.decided == "breach", result.message
    early = evaluate(CANARY, [DueCheck("k", c)], provider, END, since=SINCE).checks["k"]
    assert early.decided is None, early.message  # no step end known: no closing test


def test_stage_checks_carry_the_steps_end() -> None:
    state = RolloutState(
        spec_hash="x", stage="steps", started_at=SINCE, stage_started_at=SINCE, step_index=0
    )
    due = stage_checks(CANARY, state)
    duration = CANARY.spec.steps[0].duration
    assert duration is not None
    assert due
    assert all(d.closes_at == SINCE + duration.seconds for d in due)
