"""Tests of the shift test (``test: shift``):
controlplane.analysis.sequential.latency_judges.judge_shift.

Validity under continuous monitoring (identical variants, a candidate that is faster, a load
change that slows both variants during the step, buckets that differ between variants), power
on a shift and on a slow drift, the e-value against a brute-force product over requests, and
the edge cases (no reference, no requests, different bucket layouts).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special

from controlplane.analysis.sequential.latency_judges import judge_shift
from controlplane.analysis.sequential.rank_shift import (
    TILTS,
    midrank_scores,
    shift_log_e,
    shift_null_tilt,
)
from controlplane.errors import NoData, SpecError

EDGES = np.array([0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.75, 1.0, 2.5])
SIGMA = math.log(2.0) / 2.326  # P99 twice the median
RUNS = 1000
LOOKS = 60


def _probs(median: np.ndarray) -> np.ndarray:
    """(looks, buckets) bucket probabilities of lognormal latencies with these medians."""
    z = (np.log(EDGES)[None, :] - np.log(median)[:, None]) / SIGMA
    cdf = special.ndtr(z)
    ones = np.ones((median.size, 1))
    return np.diff(np.concatenate([0 * ones, cdf, ones], 1), 1)


def _streams(
    cand_factor: np.ndarray,
    shared_factor: np.ndarray,
    per_look: float,
    seed: int,
    weight: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (runs, looks, buckets) counts of both variants and the pre-step reference."""
    rng = np.random.default_rng(seed)
    stable_p = _probs(0.2 * shared_factor)
    cand_p = _probs(0.2 * shared_factor * cand_factor)
    cand = rng.poisson(per_look * weight * cand_p, size=(RUNS, *cand_p.shape)).cumsum(1)
    stable = rng.poisson(per_look * (1 - weight) * stable_p, size=(RUNS, *stable_p.shape))
    before = _probs(np.array([0.2]))[0]
    reference = rng.poisson(5 * per_look * (1 - weight) * before, size=(RUNS, before.size))
    return cand, stable.cumsum(1), reference


def _breaches(cand: np.ndarray, stable: np.ndarray, reference: np.ndarray, alpha: float):
    scores = midrank_scores(reference)[:, None, :]  # fixed for the whole step
    breach, passed = shift_log_e(cand, stable, scores)
    thr = math.log(1 / alpha)
    return (breach >= thr).any(1), (passed >= thr).any(1), breach >= thr


def _slack(alpha: float) -> float:
    return alpha + 3.0 * math.sqrt(alpha * (1 - alpha) / RUNS)


FLAT = np.ones(LOOKS)
MINUTES = np.arange(1, LOOKS + 1) - 0.5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cand_factor", "shared", "per_look"),
    [
        pytest.param(FLAT, FLAT, 600.0, id="identical-10rps"),
        pytest.param(FLAT, FLAT, 12_000.0, id="identical-200rps"),
        pytest.param(FLAT, 1 + MINUTES / 60, 3000.0, id="both-slow-down-during-the-step"),
        pytest.param(FLAT * 0.9, FLAT, 3000.0, id="candidate-faster"),
    ],
)
def test_false_breach_rate_under_continuous_monitoring_is_at_most_alpha(
    cand_factor: np.ndarray, shared: np.ndarray, per_look: float
) -> None:
    alpha = 0.05
    cand, stable, reference = _streams(cand_factor, shared, per_look, seed=31)
    breached, _, _ = _breaches(cand, stable, reference, alpha)
    assert breached.mean() <= _slack(alpha)


@pytest.mark.slow
def test_a_faster_candidate_passes_and_a_slower_one_never_passes() -> None:
    faster = _streams(FLAT * 0.9, FLAT, 3000.0, seed=5)
    _, passed, _ = _breaches(*faster, alpha=0.01)
    assert passed.mean() > 0.99
    slower = _streams(FLAT * 1.02, FLAT, 3000.0, seed=5)
    _, passed, _ = _breaches(*slower, alpha=0.01)
    assert passed.mean() <= _slack(0.01)


@pytest.mark.slow
def test_a_slow_drift_is_caught_within_minutes_while_its_tail_barely_moved() -> None:
    # 10 candidate req/s, latency drifting from +0 % to +50 % over the hour: the share over
    # the stable's P99 is still under 2 % at minute 8, yet the shift test has seen it.
    drift = 1 + 0.5 * MINUTES / 60
    cand, stable, reference = _streams(drift, FLAT, 12_000.0, seed=9)
    _, _, hits = _breaches(cand, stable, reference, alpha=0.0005)
    first = np.where(hits.any(1), hits.argmax(1) + 1, LOOKS + 1)
    assert np.median(first) <= 8
    assert (first <= LOOKS).all()


def test_e_value_is_the_mixture_of_per_request_likelihood_ratios() -> None:
    rng = np.random.default_rng(3)
    cand = rng.integers(0, 6, size=5).astype(float)
    stable = rng.integers(0, 40, size=5).astype(float)
    scores = midrank_scores(rng.integers(1, 50, size=5))
    total = cand + stable
    pi = cand.sum() / total.sum()

    def intercept(b: float) -> float:
        # each tilt's maximum-likelihood intercept: it accounts for every candidate request
        def excess(a: float) -> float:
            return float((total / (1 + np.exp(-(a + b * scores)))).sum() - cand.sum())

        return float(optimize.brentq(excess, -50.0, 50.0, xtol=1e-14))

    # brute force: one Bernoulli factor per request, per tilt, then the equal-weight mixture
    ratios = []
    for b in TILTS:
        a = intercept(float(b))
        lr = 1.0
        for j in range(5):
            p = 1 / (1 + math.exp(-(a + b * scores[j])))
            lr *= (p / pi) ** cand[j] * ((1 - p) / (1 - pi)) ** stable[j]
        ratios.append(lr)
    breach, _ = shift_log_e(cand, stable, scores)
    assert float(breach) == pytest.approx(math.log(np.mean(ratios)), rel=1e-9)
    assert intercept(0.0) == pytest.approx(math.log(pi / (1 - pi)), abs=1e-9)


def test_scores_are_ordered_mid_ranks() -> None:
    u = midrank_scores(np.array([10, 80, 10, 0]))
    assert np.all(np.diff(u) > 0)
    assert -1 < u[0] < 0 < u[-1] < 1
    assert u[1] == pytest.approx(0.0, abs=0.02)  # the median bucket scores about 0


def _cum(counts: list[float], les: list[float]) -> dict[float, float]:
    return dict(zip(les, np.cumsum(counts).tolist(), strict=True))


LES = [0.1, 0.2, 0.5, math.inf]


def test_judge_shift_breaches_on_a_slower_candidate_and_reports_its_index() -> None:
    ref = _cum([100, 400, 450, 50], LES)
    stable = _cum([200, 800, 900, 100], LES)
    r = judge_shift(_cum([5, 25, 50, 20], LES), stable, ref, 0.01)
    assert r.decision == "breach"
    assert 0.6 < r.estimate < 0.7
    assert "of request pairs" in r.message
    same = judge_shift(_cum([10, 40, 45, 5], LES), stable, ref, 0.01)
    assert same.decision == "continue"
    assert same.estimate == pytest.approx(0.5, abs=0.01)


def test_judge_shift_uses_the_buckets_both_variants_share() -> None:
    # the candidate has extra boundaries: merged into the stable's coarser buckets, exactly
    les = [0.1, 0.15, 0.2, 0.3, 0.5, math.inf]
    cand = _cum([5, 10, 15, 20, 30, 20], les)
    stable = _cum([200, 800, 900, 100], LES)
    ref = _cum([100, 400, 450, 50], LES)
    merged = judge_shift(_cum([5, 25, 50, 20], LES), stable, ref, 0.01)
    assert judge_shift(cand, stable, ref, 0.01).e_value == pytest.approx(merged.e_value)
    assert "4 buckets" in judge_shift(cand, stable, ref, 0.01).message


def test_judge_shift_edge_cases() -> None:
    stable = _cum([200, 800, 900, 100], LES)
    with pytest.raises(NoData, match="before the step started"):
        judge_shift(_cum([5, 25, 50, 20], LES), stable, _cum([0, 0, 0, 0], LES), 0.01)
    ref = _cum([100, 400, 450, 50], LES)
    empty = judge_shift(_cum([0, 0, 0, 0], LES), stable, ref, 0.01)
    assert (empty.decision, empty.message) == ("continue", "no requests on the candidate yet")
    with pytest.raises(NoData, match="Inf"):
        judge_shift({0.1: 1.0}, stable, ref, 0.01)
    # different bucket layouts with no finite boundary in common: said, not silently passed
    with pytest.raises(NoData, match="share no finite bucket boundary"):
        judge_shift({0.15: 40.0, math.inf: 100.0}, stable, ref, 0.01)


def _tolerance_breaches(factor: float, tolerance: float, alpha: float = 0.01) -> float:
    """Share of runs the shift test with ``tolerance`` rolls back, looked at every minute."""
    cand, stable, reference = _streams(np.full(LOOKS, factor), np.ones(LOOKS), 200 * 60.0, 3)
    les = np.append(EDGES, np.inf)
    b0 = shift_null_tilt(reference, les, tolerance, 0.05)[:, None]
    up, _ = shift_log_e(cand, stable, midrank_scores(reference)[:, None, :], b0)
    return float((up >= math.log(1 / alpha)).any(1).mean())


@pytest.mark.parametrize("factor", [1.0, 1.05, 1.10])
def test_a_candidate_within_the_shift_tolerance_is_rolled_back_at_most_alpha(
    factor: float,
) -> None:
    # 1.10 is exactly on the tolerance: the boundary of the null, still at most alpha.
    assert _tolerance_breaches(factor, 0.10) <= 0.01


def test_a_candidate_beyond_the_shift_tolerance_is_rolled_back() -> None:
    assert _tolerance_breaches(1.3, 0.10) == 1.0
    assert _tolerance_breaches(1.05, 0.0) == 1.0  # no tolerance: any slowdown


def test_the_null_tilt_is_the_projection_of_the_stretched_reference() -> None:
    les = np.append(EDGES, np.inf)
    ref = _probs(np.array([0.2]))[0] * 1e6
    assert shift_null_tilt(ref, les, 0.0, 0.05) == 0.0
    small, large = shift_null_tilt(ref, les, 0.05, 0.05), shift_null_tilt(ref, les, 0.10, 0.05)
    assert 0 < small < large
    # The maximum-likelihood tilt of a candidate exactly 10 % slower, from its own buckets.
    cand = _probs(np.array([0.22]))[0] * 0.05e6
    u = midrank_scores(ref)
    a = b = 0.0
    for _ in range(50):
        s = special.expit(a + b * u)
        r = cand * (1 - s) - 0.95 * ref * s
        w = (cand + 0.95 * ref) * s * (1 - s)
        ga, gb = r.sum(), (r * u).sum()
        haa, hab, hbb = w.sum(), (w * u).sum(), (w * u * u).sum()
        det = haa * hbb - hab * hab
        a, b = a + (hbb * ga - hab * gb) / det, b + (haa * gb - hab * ga) / det
    assert large == pytest.approx(b, rel=0.02)


def test_judge_shift_with_a_tolerance_spares_a_slightly_slower_candidate() -> None:
    les = [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, math.inf]
    p = _probs(np.array([0.2]))[0]
    merged = np.array([p[0], p[1], p[2], p[3], p[4] + p[5], p[6] + p[7], p[8:].sum()])
    slower_p = _probs(np.array([0.21]))[0]
    slower = np.array(
        [
            slower_p[0],
            slower_p[1],
            slower_p[2],
            slower_p[3],
            slower_p[4] + slower_p[5],
            slower_p[6] + slower_p[7],
            slower_p[8:].sum(),
        ]
    )
    ref = _cum(list(merged * 50000), les)
    stable = _cum(list(merged * 95000), les)
    cand = _cum(list(slower * 5000), les)
    strict = judge_shift(cand, stable, ref, 0.01)
    tolerant = judge_shift(cand, stable, ref, 0.01, tolerance=0.10)
    assert strict.decision == "breach"
    assert tolerant.decision == "pass"
    assert tolerant.boundary > 0.5
    assert "tolerated: 10% slower" in tolerant.message
    with pytest.raises(SpecError):
        judge_shift(cand, stable, ref, 0.01, tolerance=-0.1)
