"""The count judges: one check's anytime-valid verdict on event counts.

Owns :class:`SequentialResult` (one look of the sequential judge), the checks of the counts a
judge is given, and the two count judges on top of :mod:`controlplane.analysis.eprocess`:

* :func:`judge_rate` — absolute limit on one variant's event rate (``errors above: 0.1%``):
  each candidate request is a trial, ``theta`` its error probability, ``theta0`` the limit.
* :func:`judge_counts` — relative comparison with the stable variant (``compare: baseline``):
  each *event* (error) is a trial, success = "it came from the candidate". With request
  exposures ``n_c, n_s`` and rates ``r_c, r_s``, ``theta = n_c r_c / (n_c r_c + n_s r_s)``;
  ``r_c <= (1 + tolerance) r_s`` is ``theta <= theta0`` with
  ``theta0 = pi (1 + tolerance) / (pi (1 + tolerance) + 1 - pi)``, ``pi = n_c / (n_c + n_s)``.
  This is the two-arm case of Lindon et al.'s multinomial counting-process test.

Pure: functions of cumulative counts since the step started, no I/O, no clock, no state — so
the judge is crash-safe (the evaluator re-queries ``increase(...[since step start])``). Called
by :mod:`controlplane.analysis.sequential_check` (one check),
:mod:`controlplane.analysis.latency_judges` (latency as "slow" events) and the benches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controlplane.analysis.eprocess import (
    Decision,
    binomial_p,
    cs_theta,
    decide,
    e_of,
    log_e_scalar,
    two_sample_boundary,
)
from controlplane.errors import NoData, Problem, SpecError


@dataclass(frozen=True)
class SequentialResult:
    """One look of the sequential judge.

    ``decision``: ``"breach"`` (roll back), ``"pass"`` (the check is decided good; the step may
    finish early) or ``"continue"`` (not enough evidence either way: keep watching).
    ``e_value`` is the breach-side e-value (breach when ``>= 1/alpha``), ``e_pass`` the
    pass-side one. ``estimate``, ``ci_low``, ``ci_high`` are the point estimate and the
    anytime-valid ``1 - alpha`` confidence sequence of the tested quantity (a rate for
    :func:`judge_rate`, the rate ratio candidate/stable for :func:`judge_counts`), ``boundary``
    the value it is compared with. ``events`` / ``trials`` are the counts the test used.
    ``p_fixed`` is the one-sided p-value of the fixed-horizon test of the same hypothesis on the
    same counts (:func:`binomial_p`, :func:`rank_sum_p`), valid only at one look fixed in
    advance, the step's end, where ``finalLook`` uses it (the closing test). A judge called with
    ``fixed=True`` computes only that p-value and the estimate: no anytime test (e-values 1, no
    confidence sequence, decision ``"continue"``); else ``p_fixed`` is 1.
    """

    decision: Decision
    e_value: float
    e_pass: float
    estimate: float
    ci_low: float
    ci_high: float
    boundary: float
    events: float
    trials: float
    message: str
    p_fixed: float = 1.0


# --------------------------------------------------------------------------------------------
# Validation helpers


def checked_count(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NoData(f"sequential judge: {name} is not a number: {value!r}") from None
    if not math.isfinite(v):
        raise NoData(f"sequential judge: {name} is {v} (missing or broken data)")
    if v < 0:
        raise NoData(f"sequential judge: {name} is negative ({v:g}); counts cannot be negative")
    return v


def check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 0.5):
        raise SpecError([Problem(path="alpha", message=f"must be in (0, 0.5), got {alpha!r}")])
    return float(alpha)


def events_within(events: float, trials: float, what: str) -> float:
    # Prometheus' increase() extrapolates each series separately: an error counter may come out
    # a hair above the total. A small excess is clamped; a real one is broken data.
    if events > trials:
        if events - trials <= max(1.0, 0.01 * trials):
            return trials
        raise NoData(f"sequential judge: {what} ({events:g}) exceed their total ({trials:g})")
    return events


# --------------------------------------------------------------------------------------------
# Public judges


def judge_rate(
    events: float,
    total: float,
    limit: float,
    alpha: float,
    *,
    fixed: bool = False,
) -> SequentialResult:
    """Is one variant's event rate above ``limit``? (absolute check, e.g. ``errors above 0.1%``)

    ``events`` / ``total``: cumulative counts since the step started (candidate errors and
    candidate requests; or candidate requests slower than a bound and all candidate requests).
    Breach when the evidence says the rate exceeds ``limit``; pass when it says the rate is
    below it; both at level ``alpha``, valid under continuous monitoring.
    """
    alpha = check_alpha(alpha)
    x = checked_count("events", events)
    n = checked_count("total", total)
    x = events_within(x, n, "events")
    if not (0.0 < float(limit) < 1.0):
        raise SpecError([Problem(path="above", message=f"a rate limit must be in (0, 1): {limit}")])
    if n == 0:
        return SequentialResult(
            "continue", 1.0, 1.0, math.nan, 0.0, 1.0, limit, x, n, "no requests yet"
        )
    est = x / n
    if fixed:
        msg = f"rate {est:.4g} ({x:g}/{n:g}) vs limit {limit:.4g}"
        return fixed_only(est, limit, x, n, msg, float(binomial_p(x, n, limit)))
    lb, lp = log_e_scalar(x, n, limit, True), log_e_scalar(x, n, limit, False)
    decision = decide(float(lb), float(lp), alpha)
    low, high = cs_theta(x, n, alpha)
    msg = (
        f"rate {est:.4g} ({x:g}/{n:g}), {100 * (1 - alpha):g}% CS [{low:.4g}, {high:.4g}] "
        f"vs limit {limit:.4g}: {decision}"
    )
    return SequentialResult(
        decision, e_of(float(lb)), e_of(float(lp)), est, low, high, limit, x, n, msg
    )


def fixed_only(
    est: float, boundary: float, events: float, trials: float, msg: str, p: float
) -> SequentialResult:
    """A judge's result with ``fixed=True``: the fixed-horizon p-value and the estimate,
    no anytime test (decision "continue", e-values 1, no confidence sequence)."""
    nan = math.nan
    return SequentialResult("continue", 1.0, 1.0, est, nan, nan, boundary, events, trials, msg, p)


def judge_counts(
    cand_events: float,
    cand_total: float,
    stable_events: float,
    stable_total: float,
    tolerance: float,
    alpha: float,
    *,
    fixed: bool = False,
) -> SequentialResult:
    """Does the candidate's event rate exceed the stable's by more than ``tolerance`` (relative)?

    This is ``compare: baseline, above: <tolerance>``: breach when the evidence says
    ``r_c / r_s - 1 > tolerance``; pass when it says ``r_c / r_s - 1 < tolerance``. Counts are
    cumulative since the step started: events (errors) and totals (requests) of each variant.
    The reported estimate and confidence sequence are for the rate ratio ``r_c / r_s``.
    """
    alpha = check_alpha(alpha)
    xc = checked_count("candidate events", cand_events)
    nc = checked_count("candidate total", cand_total)
    xs = checked_count("stable events", stable_events)
    ns = checked_count("stable total", stable_total)
    xc = events_within(xc, nc, "candidate events")
    xs = events_within(xs, ns, "stable events")
    if not (math.isfinite(tolerance) and tolerance > -1.0):
        raise SpecError(
            [Problem(path="above", message=f"a relative tolerance must be > -100%: {tolerance}")]
        )
    boundary = 1.0 + tolerance
    if nc == 0 or ns == 0:
        return SequentialResult(
            "continue",
            1.0,
            1.0,
            math.nan,
            0.0,
            math.inf,
            boundary,
            xc,
            xc + xs,
            "no requests on " + ("the candidate" if nc == 0 else "the stable variant") + " yet",
        )
    events = xc + xs
    theta0 = float(two_sample_boundary(nc, ns, tolerance))
    counts = f"(candidate {xc:g}/{nc:g}, stable {xs:g}/{ns:g})"
    if fixed:
        est = (xc / nc) / (xs / ns) if xs > 0 else (math.inf if xc > 0 else math.nan)
        msg = f"rate ratio candidate/stable {est:.4g} {counts} vs {boundary:.4g}"
        p = float(binomial_p(xc, events, theta0))
        return fixed_only(est, boundary, xc, events, msg, p)
    lb, lp = log_e_scalar(xc, events, theta0, True), log_e_scalar(xc, events, theta0, False)
    decision = decide(float(lb), float(lp), alpha)
    pi_odds = nc / ns

    def ratio(p: float) -> float:
        if p >= 1.0:
            return math.inf
        return p / (1.0 - p) / pi_odds

    if events == 0:
        low, high, est = 0.0, math.inf, math.nan
    else:
        tl, th = cs_theta(xc, events, alpha)
        low, high = ratio(tl), ratio(th)
        est = (xc / nc) / (xs / ns) if xs > 0 else math.inf
    msg = (
        f"rate ratio candidate/stable {est:.4g} {counts}, "
        f"{100 * (1 - alpha):g}% CS [{low:.4g}, {high:.4g}] vs {boundary:.4g}: {decision}"
    )
    return SequentialResult(
        decision, e_of(float(lb)), e_of(float(lp)), est, low, high, boundary, xc, events, msg
    )
