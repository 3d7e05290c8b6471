"""Tests of the sequential judge (controlplane.analysis: eprocess, count_judges, latency_judges).

Validity: thousands of simulated null streams, looked at every interval, must breach at most
alpha of the time (with 3-sigma slack). Power: real regressions are found within a stated number
of requests. Plus the API's edge cases: zero counts, broken counts, bad parameters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.analysis.sequential.buckets import bucket_quantile, snap_bound
from controlplane.analysis.sequential.count_judges import judge_counts, judge_rate
from controlplane.analysis.sequential.eprocess import (
    bernoulli_decisions,
    bernoulli_log_e,
    bernoulli_log_e_above,
    cs_bounds,
    cs_theta,
    log_e,
    two_sample_boundary,
)
from controlplane.analysis.sequential.latency_judges import judge_latency
from controlplane.errors import NoData, SpecError

RUNS = 2000
LOOKS = 150  # one look per simulated minute


def _slack(alpha: float, runs: int = RUNS) -> float:
    return alpha + 3.0 * math.sqrt(alpha * (1.0 - alpha) / runs)


def _first_hit(decisions: np.ndarray, value: int) -> np.ndarray:
    """Look index (1-based) of the first decision == value per run; 0 when never."""
    hit = decisions == value
    return np.where(hit.any(1), hit.argmax(1) + 1, 0)


# --------------------------------------------------------------------------------------------
# Validity: false breaches under continuous monitoring


@pytest.mark.parametrize(
    ("rate", "limit", "per_look", "alpha"),
    [
        pytest.param(0.01, 0.01, 60, 0.01, id="one-sample-at-limit-1rps"),
        pytest.param(0.005, 0.01, 60, 0.01, id="one-sample-inside-null"),
        pytest.param(0.05, 0.05, 20, 0.05, id="one-sample-alpha-0.05"),
        pytest.param(0.2, 0.2, 5, 0.01, id="one-sample-few-trials-per-look"),
    ],
)
def test_one_sample_false_breach_rate_is_at_most_alpha(
    rate: float, limit: float, per_look: int, alpha: float
) -> None:
    rng = np.random.default_rng(7)
    n = rng.poisson(per_look, size=(RUNS, LOOKS))
    x = rng.binomial(n, rate)
    d = bernoulli_decisions(x.cumsum(1), n.cumsum(1), limit, alpha)
    false_breach = (_first_hit(d, 1) > 0).mean()
    assert false_breach <= _slack(alpha)


@pytest.mark.parametrize(
    ("rate_s", "ratio", "tolerance", "weight"),
    [
        pytest.param(0.01, 1.0, 0.0, 0.05, id="equal-rates-5pct-weight"),
        pytest.param(0.01, 1.5, 0.5, 0.05, id="at-tolerance-boundary"),
        pytest.param(0.02, 1.0, 0.0, 0.5, id="equal-rates-50pct-weight"),
        pytest.param(0.001, 1.0, 0.0, 0.25, id="rare-events"),
    ],
)
def test_two_sample_false_breach_rate_is_at_most_alpha(
    rate_s: float, ratio: float, tolerance: float, weight: float
) -> None:
    rng = np.random.default_rng(11)
    total_per_look = 1200
    nc = rng.poisson(total_per_look * weight, size=(RUNS, LOOKS))
    ns = rng.poisson(total_per_look * (1 - weight), size=(RUNS, LOOKS))
    xc = rng.binomial(nc, rate_s * ratio).cumsum(1)
    xs = rng.binomial(ns, rate_s).cumsum(1)
    theta0 = two_sample_boundary(nc.cumsum(1), ns.cumsum(1), tolerance)
    d = bernoulli_decisions(xc, xc + xs, theta0, 0.01)
    assert (_first_hit(d, 1) > 0).mean() <= _slack(0.01)


def test_false_pass_rate_at_the_boundary_is_at_most_alpha() -> None:
    # A candidate exactly at the limit must not be declared good more than alpha of the time.
    rng = np.random.default_rng(3)
    n = rng.poisson(60, size=(RUNS, LOOKS))
    x = rng.binomial(n, 0.01)
    d = bernoulli_decisions(x.cumsum(1), n.cumsum(1), 0.01, 0.01)
    assert (_first_hit(d, -1) > 0).mean() <= _slack(0.01)


def test_repeated_fixed_threshold_looks_would_not_be_valid() -> None:
    # The reason this module exists: a naive z-test looked at every interval blows through alpha,
    # on the very streams where the sequential test stays under it.
    rng = np.random.default_rng(5)
    n = rng.poisson(60, size=(RUNS, LOOKS)).cumsum(1)
    x = rng.binomial(np.diff(n, prepend=0), 0.01).cumsum(1)
    z = (x / n - 0.01) / np.sqrt(0.01 * 0.99 / n)
    naive = (z > 2.326).any(1).mean()  # one-sided 1 % each look
    sequential = (_first_hit(bernoulli_decisions(x, n, 0.01, 0.01), 1) > 0).mean()
    assert naive > 3 * 0.01
    assert sequential <= _slack(0.01)


# --------------------------------------------------------------------------------------------
# Power


@pytest.mark.slow
def test_twice_the_error_rate_is_detected_within_12000_candidate_requests() -> None:
    rng = np.random.default_rng(13)
    runs = 500
    nc = rng.poisson(60, size=(runs, 200))
    ns = rng.poisson(1140, size=(runs, 200))
    xc = rng.binomial(nc, 0.02).cumsum(1)
    xs = rng.binomial(ns, 0.01).cumsum(1)
    ncc = nc.cumsum(1)
    d = bernoulli_decisions(xc, xc + xs, two_sample_boundary(ncc, ns.cumsum(1), 0.0), 0.01)
    first = _first_hit(d, 1)
    served = np.where(first > 0, ncc[np.arange(runs), first - 1], np.inf)
    assert (served <= 12_000).mean() >= 0.95


@pytest.mark.parametrize(
    ("rate", "limit", "within"),
    [
        pytest.param(0.03, 0.01, 1_500, id="3x-limit-within-1500"),
        pytest.param(0.077, 0.01, 200, id="latency+30pct-share-within-200"),
    ],
)
def test_one_sample_breach_power(rate: float, limit: float, within: int) -> None:
    rng = np.random.default_rng(17)
    n = np.full((500, within // 10), 10)
    x = rng.binomial(n, rate).cumsum(1)
    assert (_first_hit(bernoulli_decisions(x, n.cumsum(1), limit, 0.01), 1) > 0).mean() >= 0.95


def test_a_good_candidate_passes_early() -> None:
    # 0.17 % of requests over 200 ms (stable-like) against a 1 % limit: decided good quickly.
    rng = np.random.default_rng(19)
    n = np.full((500, 300), 10)
    x = rng.binomial(n, 0.0017).cumsum(1)
    d = bernoulli_decisions(x, n.cumsum(1), 0.01, 0.01)
    first = _first_hit(d, -1)
    assert ((first > 0) & (first * 10 <= 2_000)).mean() >= 0.95
    assert (_first_hit(d, 1) > 0).sum() == 0


# --------------------------------------------------------------------------------------------
# The scalar API


@pytest.mark.parametrize(
    ("call", "decision"),
    [
        pytest.param(lambda: judge_rate(0, 0, 0.01, 0.01), "continue", id="rate-no-requests"),
        pytest.param(lambda: judge_rate(30, 1000, 0.01, 0.01), "breach", id="rate-3pct"),
        pytest.param(lambda: judge_rate(0, 2000, 0.01, 0.01), "pass", id="rate-clean"),
        pytest.param(lambda: judge_rate(10, 1000, 0.01, 0.01), "continue", id="rate-at-limit"),
        pytest.param(lambda: judge_counts(0, 0, 0, 0, 0.0, 0.01), "continue", id="counts-zero"),
        pytest.param(
            lambda: judge_counts(0, 1000, 0, 19000, 0.0, 0.01), "continue", id="counts-no-errors"
        ),
        pytest.param(
            lambda: judge_counts(5, 100, 0, 0, 0.0, 0.01), "continue", id="counts-no-stable"
        ),
        pytest.param(
            lambda: judge_counts(40, 1000, 100, 19000, 0.0, 0.01), "breach", id="counts-7x"
        ),
        pytest.param(
            lambda: judge_counts(40, 1000, 100, 19000, 19.0, 0.01), "pass", id="counts-under-20x"
        ),
        pytest.param(
            lambda: judge_counts(1, 10000, 200, 190000, 0.0, 0.01), "pass", id="counts-better"
        ),
    ],
)
def test_decisions(call: object, decision: str) -> None:
    result = call()  # type: ignore[operator]
    assert result.decision == decision
    if decision == "breach":
        assert result.e_value >= 100
    if decision == "pass":
        assert result.e_pass >= 100
    if decision == "continue":
        assert result.e_value < 100
        assert result.e_pass < 100


@pytest.mark.parametrize(
    ("x", "n", "limit"),
    [
        pytest.param(3, 1000, 0.01, id="below"),
        pytest.param(30, 1000, 0.01, id="above"),
        pytest.param(12, 1000, 0.01, id="near"),
        pytest.param(0, 50, 0.2, id="zero-events"),
        pytest.param(50, 50, 0.2, id="all-events"),
    ],
)
def test_confidence_sequence_brackets_the_estimate_and_matches_the_decision(
    x: float, n: float, limit: float
) -> None:
    r = judge_rate(x, n, limit, 0.01)
    assert r.ci_low <= r.estimate <= r.ci_high
    # The decision and the confidence sequence tell the same story (up to bisection tolerance).
    if r.decision == "breach":
        assert r.ci_low > limit * 0.999
    if r.decision == "pass":
        assert r.ci_high < limit * 1.001
    if r.decision == "continue":
        assert r.ci_low <= limit * 1.001 <= r.ci_high * 1.002


def test_ratio_confidence_sequence_is_on_the_ratio_scale() -> None:
    r = judge_counts(40, 1000, 100, 19000, 0.0, 0.01)
    assert r.estimate == pytest.approx(7.6)
    assert 1.0 < r.ci_low < 7.6 < r.ci_high


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(-1.0, id="negative"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param("many", id="string"),
    ],
)
def test_broken_counts_are_no_data(bad: object) -> None:
    with pytest.raises(NoData):
        judge_rate(bad, 100, 0.01, 0.01)  # type: ignore[arg-type]
    with pytest.raises(NoData):
        judge_counts(1, 100, bad, 1000, 0.0, 0.01)  # type: ignore[arg-type]


def test_events_over_total() -> None:
    # increase() extrapolation jitter is clamped; a real excess is broken data.
    assert judge_rate(100.4, 100, 0.5, 0.01).events == 100
    with pytest.raises(NoData, match="exceed"):
        judge_rate(150, 100, 0.5, 0.01)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: judge_rate(1, 10, 0.01, 0.0), id="alpha-zero"),
        pytest.param(lambda: judge_rate(1, 10, 0.01, 0.7), id="alpha-big"),
        pytest.param(lambda: judge_rate(1, 10, 0.0, 0.01), id="limit-zero"),
        pytest.param(lambda: judge_rate(1, 10, 1.5, 0.01), id="limit-over-one"),
        pytest.param(lambda: judge_counts(1, 10, 1, 10, -1.0, 0.01), id="tolerance-minus-100"),
        pytest.param(lambda: judge_counts(1, 10, 1, 10, math.nan, 0.01), id="tolerance-nan"),
        pytest.param(lambda: judge_latency({math.inf: 1}, None, 0.99, 0.01), id="latency-no-bound"),
        pytest.param(
            lambda: judge_latency({math.inf: 1}, None, 1.5, 0.01, bound_s=0.2), id="quantile"
        ),
    ],
)
def test_bad_parameters_are_spec_errors(call: object) -> None:
    with pytest.raises(SpecError):
        call()  # type: ignore[operator]


# --------------------------------------------------------------------------------------------
# Latency


def _hist(values: np.ndarray, les: tuple[float, ...]) -> dict[float, float]:
    return {le: float((values <= le).sum()) for le in les}


LES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1.0, math.inf)


@pytest.mark.parametrize(
    ("factor", "decision"),
    [
        pytest.param(1.0, "pass", id="stable-like"),
        pytest.param(1.5, "breach", id="plus-50pct"),
    ],
)
def test_latency_absolute_bound(factor: float, decision: str) -> None:
    rng = np.random.default_rng(23)
    sigma = math.log(1.5) / 2.326
    lat = 0.12 * factor * rng.lognormal(0.0, sigma, size=3000)
    r = judge_latency(_hist(lat, LES), None, 0.99, 0.01, bound_s=0.21)
    assert r.decision == decision
    # snapped up to the next boundary: testing at 0.25s never rolls back a candidate whose
    # P99 meets the 0.21s limit more often than alpha (0.2s would be a stricter claim)
    assert "0.25s" in r.message


def test_latency_absolute_bound_beyond_the_last_boundary_is_no_data() -> None:
    with pytest.raises(NoData, match="at or above 2s"):
        judge_latency({0.5: 10.0, 1.0: 20.0, math.inf: 20.0}, None, 0.99, 0.01, bound_s=2.0)


def test_bucket_quantile_matches_prometheus_interpolation() -> None:
    # 100 requests: 50 <= 0.1s, 90 <= 0.2s, all <= 0.4s; P95 interpolates in (0.2, 0.4]
    buckets = {0.1: 50.0, 0.2: 90.0, 0.4: 100.0, math.inf: 100.0}
    assert bucket_quantile(buckets, 0.95) == pytest.approx(0.2 + 0.2 * (95 - 90) / 10)
    assert math.isnan(bucket_quantile({0.1: 0.0, math.inf: 0.0}, 0.5))


@pytest.mark.parametrize(
    ("factor", "decision"),
    [
        pytest.param(1.0, "continue", id="same-as-stable"),
        pytest.param(1.5, "breach", id="plus-50pct"),
    ],
)
def test_latency_compared_with_baseline(factor: float, decision: str) -> None:
    rng = np.random.default_rng(29)
    sigma = math.log(1.5) / 2.326
    stable = 0.12 * rng.lognormal(0.0, sigma, size=40_000)
    cand = 0.12 * factor * rng.lognormal(0.0, sigma, size=2_000)
    r = judge_latency(_hist(cand, LES), _hist(stable, LES), 0.95, 0.01, tolerance=0.0)
    assert r.decision == decision


@pytest.mark.parametrize(
    ("buckets", "match"),
    [
        pytest.param({}, "no candidate", id="empty"),
        pytest.param({0.1: 1.0, 0.2: 2.0}, "Inf", id="no-inf-bucket"),
        pytest.param({0.1: 1.0, math.inf: math.nan}, "nan", id="nan-count"),
    ],
)
def test_broken_histograms_are_no_data(buckets: dict[float, float], match: str) -> None:
    with pytest.raises(NoData, match=match):
        judge_latency(buckets, None, 0.99, 0.01, bound_s=0.2)


def test_latency_with_no_requests_continues() -> None:
    assert judge_latency({0.2: 0, math.inf: 0}, None, 0.99, 0.01, bound_s=0.2).decision == (
        "continue"
    )


@pytest.mark.parametrize(
    ("bound", "snapped"),
    [
        pytest.param(0.21, 0.2, id="down"),
        pytest.param(0.24, 0.25, id="up"),
        pytest.param(5.0, 1.0, id="beyond-last-finite"),
        pytest.param(0.001, 0.05, id="below-first"),
    ],
)
def test_snap_bound(bound: float, snapped: float) -> None:
    assert snap_bound(LES, bound) == snapped


# --------------------------------------------------------------------------------------------
# Internal consistency


def _counts(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20,000 (events, trials, boundary) triples on both sides of their boundaries."""
    rng = np.random.default_rng(seed)
    size = 20_000
    n = rng.integers(0, 5000, size).astype(float)
    m = rng.uniform(0.001, 0.6, size)
    x = rng.binomial(n.astype(int), np.clip(m * rng.uniform(0.3, 3.0, size), 0, 1)).astype(float)
    return x, n, m


def test_fast_decisions_equal_the_exact_e_values() -> None:
    x, n, m = _counts(31)
    lb, lp = bernoulli_log_e(x, n, m)
    thr = math.log(100)
    expected = np.where(lb >= thr, 1, np.where(lp >= thr, -1, 0))
    got = bernoulli_decisions(x, n, m, 0.01)
    assert (got == expected).all()
    assert set(np.unique(got)) == {-1, 0, 1}  # the sample exercises every branch


def test_screened_e_values_are_exact_wherever_they_can_reach_the_floor() -> None:
    x, n, m = _counts(32)
    floor = math.log(2.0)
    exact = bernoulli_log_e(x, n, m)
    screened = bernoulli_log_e_above(x, n, m, floor)
    for e, got in zip(exact, screened, strict=True):
        kept = np.isfinite(got)
        np.testing.assert_allclose(got[kept], e[kept])
        assert (e[~kept] < floor).all()  # only what decides nothing at any level >= floor
        assert (got[kept] >= floor).any()
        assert (~kept).any()


def test_no_trials_is_no_evidence() -> None:
    lb, lp = bernoulli_log_e(0.0, 0.0, 0.3)
    assert float(lb) == pytest.approx(0.0)
    assert float(lp) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("events", "trials", "theta0"),
    [
        pytest.param(5, 40, 0.01, id="small-boundary-clear-excess"),
        pytest.param(3, 300, 0.01, id="at-the-boundary"),
        pytest.param(30, 60, 0.3, id="large-boundary"),
        pytest.param(0, 500, 0.05, id="no-events"),
    ],
)
def test_e_value_is_the_two_component_mixture_integral(
    events: int, trials: int, theta0: float
) -> None:
    """The closed form equals the average, over the two truncated Beta priors (means theta0 and
    min(4 theta0, 1/2), sd = min(mean, 1 - mean)), of the likelihood ratio integrated numerically:
    each side of the test is exactly the mixture the docs describe."""
    from scipy import integrate, stats

    def beta(mean: float) -> tuple[float, float]:
        sd = min(mean, 1.0 - mean)
        size = max(mean * (1.0 - mean) / sd**2 - 1.0, 2.0)
        return mean * size, (1.0 - mean) * size

    def ratio(q: float) -> float:
        log = events * math.log(q / theta0)
        log += (trials - events) * math.log((1.0 - q) / (1.0 - theta0))
        return math.exp(log)

    def side(lo: float, hi: float) -> float:
        total = 0.0
        for mean in (theta0, min(4.0 * theta0, 0.5)):
            prior = stats.beta(*beta(mean))
            mass = prior.cdf(hi) - prior.cdf(lo)
            value, _ = integrate.quad(lambda q, p=prior: ratio(q) * p.pdf(q), lo, hi, limit=200)
            total += 0.5 * value / mass
        return total

    breach, passed = bernoulli_log_e(events, trials, theta0)
    assert float(np.exp(breach)) == pytest.approx(side(theta0, 1.0), rel=1e-5)
    assert float(np.exp(passed)) == pytest.approx(side(0.0, theta0), rel=1e-5)


@pytest.mark.parametrize(
    ("x", "n", "alpha"),
    [
        (30.0, 930.0, 0.01),
        (2.0, 42.0, 0.005),
        (0.0, 3.0, 0.01),
        (5.0, 5.0, 0.2),
        (400.0, 1e5, 0.05),
    ],
)
def test_confidence_sequence_is_the_inversion_of_both_tests_on_a_dense_grid(
    x: float, n: float, alpha: float
) -> None:
    # The bounds are where each side's rejection flips, found by a vectorised root search;
    # here they are checked against the e-values on 20,001 points.
    thr = math.log(1 / alpha)
    grid = 1 / (1 + np.exp(-np.linspace(-20.7, 20.7, 20001)))
    up, down = bernoulli_log_e(x, n, grid)
    rejected_below = grid[up >= thr]
    rejected_above = grid[down >= thr]
    low, high = cs_theta(x, n, alpha)
    step = 41.4 / 20000
    if rejected_below.size:
        assert math.log(low / (1 - low)) == pytest.approx(
            math.log(rejected_below.max() / (1 - rejected_below.max())), abs=2 * step
        )
    else:
        assert low == 0.0
    if rejected_above.size:
        assert math.log(high / (1 - high)) == pytest.approx(
            math.log(rejected_above.min() / (1 - rejected_above.min())), abs=2 * step
        )
    else:
        assert high == 1.0


def test_one_side_e_values_equal_both_sides_ones() -> None:
    for x, n, m in [(3.0, 100.0, 0.01), (0.0, 50.0, 0.2), (40.0, 40.0, 0.5), (7.5, 1e4, 1e-4)]:
        up, down = bernoulli_log_e(x, n, m)
        assert float(log_e(x, n, m, up=True)) == pytest.approx(float(up), rel=1e-9, abs=1e-9)
        assert float(log_e(x, n, m, up=False)) == pytest.approx(float(down), rel=1e-9, abs=1e-9)


def test_confidence_sequences_of_many_looks_equal_each_look_alone() -> None:
    rng = np.random.default_rng(7)
    n = np.round(np.exp(rng.uniform(0.0, 9.0, 200)), 2)
    x = np.round(n * rng.uniform(0.0, 1.0, 200) ** 3, 2)
    alpha = rng.choice([0.001, 0.01, 0.05], 200)
    low, high = cs_bounds(x, n, alpha)
    for i in range(0, 200, 9):
        alone = cs_theta(float(x[i]), float(n[i]), float(alpha[i]))
        assert alone == (pytest.approx(low[i], rel=1e-12), pytest.approx(high[i], rel=1e-12))
