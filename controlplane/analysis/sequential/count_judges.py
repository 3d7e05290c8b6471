"""The count judges: one check's anytime-valid verdict on event counts.

Owns :class:`SequentialResult` and the two count judges on top of
:mod:`~controlplane.analysis.sequential.eprocess`: :func:`judge_rate` (an absolute limit on an
event rate) and :func:`judge_counts` (against the stable variant, Lindon et al.'s two-arm
counting-process test). Each is a look builder plus :func:`judge_looks`, the test of many looks
at once, so a tick's checks share their numpy calls. Pure functions of cumulative counts since the
step started, hence crash-safe. The model: docs/judges-derivation.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from controlplane.analysis.sequential import decision_rule
from controlplane.analysis.sequential.decision_rule import Decision
from controlplane.analysis.sequential.eprocess import (
    bernoulli_log_e_above,
    binomial_p,
    cs_bounds,
    e_of,
    log_e,
    two_sample_boundary,
)
from controlplane.errors import NoData, Problem, SpecError


@dataclass(frozen=True)
class SequentialResult:
    """One look of the sequential judge.

    ``decision``: ``"breach"``, ``"pass"`` (the step may finish early) or ``"continue"``.
    ``e_value`` / ``e_pass``: the breach- and pass-side e-values; ``estimate``, ``ci_low``,
    ``ci_high``: the tested quantity and its anytime-valid confidence sequence, against
    ``boundary``; ``events`` / ``trials``: the counts used. ``p_fixed``: the fixed-horizon p-value
    of the closing test; a judge called with ``fixed=True`` computes only it and the estimate (no
    anytime test), else it is 1.
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


@dataclass(frozen=True)
class CountLook:
    """A count judge's look, checked and ready for the anytime test.

    ``events`` successes in ``trials`` Bernoulli trials against ``theta0`` at level ``alpha``
    (:mod:`~controlplane.analysis.sequential.eprocess`); the rest is how the result reports it:
    ``estimate`` and ``boundary`` (a rate, or a rate ratio when ``odds`` is the exposure odds
    ``n_c / n_s`` that turns the confidence sequence on ``theta`` into one on the ratio),
    and the message ``{prefix}{head}, <CS> {tail}: <decision>``.
    """

    events: float
    trials: float
    theta0: float
    alpha: float
    boundary: float
    estimate: float
    head: str
    tail: str
    odds: float | None = None
    prefix: str = ""


Look = CountLook | SequentialResult
"""A prepared look, or its result already (no data, the fixed-horizon test)."""


def rate_look(
    events: float,
    total: float,
    limit: float,
    alpha: float,
    *,
    fixed: bool = False,
) -> Look:
    """:func:`judge_rate`'s checks and early answers; the anytime test is left to
    :func:`judge_looks`."""
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
    head = f"rate {est:.4g} ({x:g}/{n:g})"
    return CountLook(x, n, float(limit), alpha, float(limit), est, head, f"vs limit {limit:.4g}")


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
    below it; both at level ``alpha``, valid under continuous monitoring. One look of
    :func:`judge_looks`.
    """
    return judge_one(rate_look(events, total, limit, alpha, fixed=fixed))


def fixed_only(
    est: float, boundary: float, events: float, trials: float, msg: str, p: float
) -> SequentialResult:
    """A judge's result with ``fixed=True``: the fixed-horizon p-value and the estimate,
    no anytime test (decision "continue", e-values 1, no confidence sequence)."""
    nan = math.nan
    return SequentialResult("continue", 1.0, 1.0, est, nan, nan, boundary, events, trials, msg, p)


def counts_look(
    cand_events: float,
    cand_total: float,
    stable_events: float,
    stable_total: float,
    tolerance: float,
    alpha: float,
    *,
    fixed: bool = False,
) -> Look:
    """:func:`judge_counts`' checks and early answers; the anytime test is left to
    :func:`judge_looks`."""
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
    est = (xc / nc) / (xs / ns) if xs > 0 else (math.inf if events > 0 else math.nan)
    head = f"rate ratio candidate/stable {est:.4g} {counts}"
    return CountLook(
        xc, events, theta0, alpha, boundary, est, head, f"vs {boundary:.4g}", odds=nc / ns
    )


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
    The reported estimate and confidence sequence are for the rate ratio ``r_c / r_s``. One
    look of :func:`judge_looks`.
    """
    return judge_one(
        counts_look(
            cand_events, cand_total, stable_events, stable_total, tolerance, alpha, fixed=fixed
        )
    )


def judge_one(look: Look) -> SequentialResult:
    """The result of one prepared look (:func:`judge_looks` of one)."""
    return look if isinstance(look, SequentialResult) else judge_looks([look])[0]


def judge_looks(looks: Sequence[CountLook], *, e_values: bool = True) -> list[SequentialResult]:
    """The anytime test of many count looks at once (a tick's checks), elementwise with numpy: the
    same answers as one look at a time. ``e_values=False`` computes an e-value only where it can
    reach the level and reports it only where it does (``NaN`` elsewhere); the decisions,
    confidence sequences and messages are the same."""
    if not looks:
        return []
    x = np.array([look.events for look in looks])
    n = np.array([look.trials for look in looks])
    m = np.array([look.theta0 for look in looks])
    alpha = np.array([look.alpha for look in looks])
    if e_values:
        lb = log_e(x, n, m, up=True)
        lp = log_e(x, n, m, up=False)
    else:  # the smallest threshold: every look's decision is the same as with both e-values
        lb, lp = bernoulli_log_e_above(x, n, m, float(np.log(1.0 / alpha.max())))
    low = np.zeros(len(looks))
    high = np.ones(len(looks))
    some = np.flatnonzero(n > 0)
    if some.size:
        low[some], high[some] = cs_bounds(x[some], n[some], alpha[some])
    codes = decision_rule.decisions(lb, lp, alpha)
    thr = np.log(1.0 / alpha)
    shown_b = (lb >= thr) | e_values
    shown_p = (lp >= thr) | e_values
    out = []
    for i, look in enumerate(looks):
        decision = decision_rule.decision_of(int(codes[i]))
        lo, hi = float(low[i]), float(high[i])
        if look.odds is not None:
            lo, hi = (_ratio(lo, look.odds), _ratio(hi, look.odds)) if n[i] > 0 else (0.0, math.inf)
        msg = (
            f"{look.prefix}{look.head}, {100 * (1 - look.alpha):g}% CS [{lo:.4g}, {hi:.4g}] "
            f"{look.tail}: {decision}"
        )
        e_breach = e_of(float(lb[i])) if shown_b[i] else math.nan
        e_pass = e_of(float(lp[i])) if shown_p[i] else math.nan
        out.append(
            SequentialResult(
                decision,
                e_breach,
                e_pass,
                look.estimate,
                lo,
                hi,
                look.boundary,
                look.events,
                look.trials,
                msg,
            )
        )
    return out


def _ratio(p: float, odds: float) -> float:
    """The rate ratio candidate/stable of the candidate's share ``p`` of events."""
    if p >= 1.0:
        return math.inf
    return p / (1.0 - p) / odds
