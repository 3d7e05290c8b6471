"""The Bernoulli e-process: anytime-valid mixture tests and confidence sequences.

Owns the mathematics of the count tests: the breach and pass sides (mixture SPRTs with truncated
Beta-mixture priors, valid at every look by Ville's inequality), the two-sample boundary, the
closing test's binomial p-value and the confidence sequence. Pure, vectorised with numpy; called
by the count judges and ``bench/``. Derivation: docs/judges-derivation.md.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from controlplane.analysis.sequential import decision_rule

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | npt.ArrayLike

_MIN_PRIOR_SIZE = 2.0
_WIDE = 4.0  # the second mixture component's mean, in multiples of the boundary
EPS = 1e-12


def _beta(mean: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Beta(a, b) with mean ``mean`` and standard deviation ``min(mean, 1 - mean)``.

    For a small mean it is nearly exponential with that mean; the prior size ``a + b`` is at
    least 2.
    """
    m = np.clip(mean, EPS, 1.0 - EPS)
    sd = np.minimum(m, 1.0 - m)
    size = np.maximum(m * (1.0 - m) / (sd * sd) - 1.0, _MIN_PRIOR_SIZE)
    return m * size, (1.0 - m) * size


def _priors(theta0: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
    """The mixture's components, equally weighted: Beta priors with means ``theta0`` and
    ``min(4 theta0, 1/2)`` (truncated to the tested side by the callers).

    The first spends its power on effects of the order of "twice the boundary", the second on
    effects several times larger (a latency regression that moves the tail share from 1 % to
    15 %); the average of the two e-processes is an e-process, at a cost of at most ``log 2``
    of evidence against the better component. Measured in ``docs/judges-derivation.md`` ("Prior").
    """
    m = np.clip(theta0, EPS, 1.0 - EPS)
    return [_beta(m), _beta(np.minimum(_WIDE * m, 0.5))]


def _mixture_log_e(x: FloatArray, n: FloatArray, m: FloatArray, *, up: bool) -> FloatArray:
    """Log of the mixture e-value, breach side (``up``: prior on ``[m, 1]``) or pass side."""
    tail = special.betaincc if up else special.betainc
    parts = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        log_null = special.xlogy(x, m) + special.xlogy(n - x, 1.0 - m)
        for a, b in _priors(m):
            log_post = special.betaln(x + a, n - x + b) - special.betaln(a, b)
            side = np.log(tail(x + a, n - x + b, m)) - np.log(tail(a, b, m))
            parts.append(np.where(np.isnan(side), -np.inf, log_post + side))
        out: FloatArray = parts[0]
        for part in parts[1:]:  # np.logaddexp: an order of magnitude cheaper than logsumexp
            out = np.logaddexp(out, part)
        out = out - math.log(len(parts)) - log_null
    return np.where(np.isnan(out), -np.inf, out)


def bernoulli_log_e(
    events: ArrayLike, trials: ArrayLike, theta0: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Log e-values ``(breach side, pass side)`` of ``events`` successes in ``trials`` trials.

    Breach side: truncated-Beta mixture SPRT of H0 ``theta <= theta0``; pass side: of H0
    ``theta >= theta0``. Broadcasts over arrays (the benchmark evaluates thousands of runs at
    once). Counts may be non-integer (Prometheus ``increase`` extrapolates); inputs must already
    be valid (``0 <= events <= trials``, ``0 < theta0 < 1``) — the public ``judge_*`` functions
    check that. Zero trials give ``(0, 0)``: e-value 1, no evidence.
    """
    x, n, m = np.broadcast_arrays(
        np.asarray(events, dtype=np.float64),
        np.asarray(trials, dtype=np.float64),
        np.clip(np.asarray(theta0, dtype=np.float64), EPS, 1.0 - EPS),
    )
    return _mixture_log_e(x, n, m, up=True), _mixture_log_e(x, n, m, up=False)


def bernoulli_log_e_above(
    events: ArrayLike, trials: ArrayLike, theta0: ArrayLike, floor: float
) -> tuple[FloatArray, FloatArray]:
    """:func:`bernoulli_log_e` where a side can reach ``floor`` (``> 0``), ``-inf`` elsewhere.

    A mixture never exceeds its best component, so where the generalised likelihood ratio
    ``n * KL(x/n || theta0)`` is below ``floor`` (or the estimate is on the other side of the
    boundary) that side's e-value is below ``exp(floor)`` and the incomplete-Beta functions are
    not evaluated at all. Every comparison with a threshold of at least ``floor`` gives the same
    answer as with :func:`bernoulli_log_e`, at a fraction of the cost.
    """
    x, n, m = np.broadcast_arrays(
        np.asarray(events, dtype=np.float64),
        np.asarray(trials, dtype=np.float64),
        np.clip(np.asarray(theta0, dtype=np.float64), EPS, 1.0 - EPS),
    )
    up_e = np.full(x.shape, -np.inf)
    down_e = np.full(x.shape, -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1.0), m)
        glr = special.xlogy(x, p / m) + special.xlogy(n - x, (1.0 - p) / (1.0 - m))
    maybe = glr >= floor
    up = maybe & (p > m)
    down = maybe & (p < m)
    if up.any():
        up_e[up] = _mixture_log_e(x[up], n[up], m[up], up=True)
    if down.any():
        down_e[down] = _mixture_log_e(x[down], n[down], m[down], up=False)
    return up_e, down_e


def bernoulli_decisions(
    events: ArrayLike, trials: ArrayLike, theta0: ArrayLike, alpha: float
) -> npt.NDArray[np.int8]:
    """Decisions of :func:`bernoulli_log_e` at level ``alpha``: +1 breach, -1 pass, 0 continue.

    Same answers as comparing both e-values with ``1/alpha``, but cheaper: only the cells whose
    generalised likelihood ratio reaches ``log(1/alpha)`` are evaluated
    (:func:`bernoulli_log_e_above`).
    """
    up, down = bernoulli_log_e_above(events, trials, theta0, math.log(1.0 / alpha))
    return decision_rule.decisions(up, down, alpha)


def two_sample_boundary(
    cand_total: ArrayLike, stable_total: ArrayLike, tolerance: ArrayLike
) -> FloatArray:
    """``theta0``: the candidate's share of events when ``r_c = (1 + tolerance) r_s``.

    ``cand_total`` / ``stable_total`` are the exposures (requests) of the two variants.
    """
    nc = np.asarray(cand_total, dtype=np.float64)
    ns = np.asarray(stable_total, dtype=np.float64)
    k = 1.0 + np.asarray(tolerance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = nc * k / (nc * k + ns)
    return out


def binomial_p(events: ArrayLike, trials: ArrayLike, theta0: ArrayLike) -> FloatArray:
    """One-sided p-value ``P(X >= events)``, ``X ~ Binomial(trials, theta0)``: the exact test of
    H0 ``theta <= theta0`` at one look (the closing test of :func:`judge_rate` and
    :func:`judge_counts`, conditional on the total number of events for the latter).

    Counts may be non-integer (Prometheus ``increase`` extrapolates): ``P(X >= x)`` is
    ``I_theta0(x, n - x + 1)``, the regularised incomplete Beta function, which interpolates the
    binomial tail between integers and is increasing in ``x``. No events: 1. Broadcasts.
    """
    x, n, m = np.broadcast_arrays(
        np.asarray(events, dtype=np.float64),
        np.asarray(trials, dtype=np.float64),
        np.clip(np.asarray(theta0, dtype=np.float64), EPS, 1.0 - EPS),
    )
    x = np.minimum(x, n)
    with np.errstate(invalid="ignore"):
        p = special.betainc(np.maximum(x, EPS), n - x + 1.0, m)
    out: FloatArray = np.where(x > 0, p, 1.0)
    return out


# --------------------------------------------------------------------------------------------
# Confidence sequences (for reporting; decisions use the e-values directly)


_LOGIT_LO, _LOGIT_HI = -20.7, 20.7  # theta in [1e-9, 1 - 1e-9]
_XTOL = 1e-6  # in logit: far below what a report shows
_MAX_STEPS = 100


def log_e(events: ArrayLike, trials: ArrayLike, theta0: ArrayLike, *, up: bool) -> FloatArray:
    """One side of :func:`bernoulli_log_e` (``up``: the breach side), half the incomplete-Beta
    evaluations. Same input rules; broadcasts."""
    x, n, m = np.broadcast_arrays(
        np.asarray(events, dtype=np.float64),
        np.asarray(trials, dtype=np.float64),
        np.clip(np.asarray(theta0, dtype=np.float64), EPS, 1.0 - EPS),
    )
    return _mixture_log_e(x, n, m, up=up)


def _expit(t: FloatArray) -> FloatArray:
    out: FloatArray = special.expit(t)
    return out


def _glr(x: FloatArray, n: FloatArray, t: FloatArray) -> FloatArray:
    """The generalised likelihood ratio ``n KL(x/n || theta)`` (log) at ``theta = expit(t)``:
    an upper bound of either side's mixture log e-value (a mixture never exceeds its best
    component), cheap to evaluate."""
    m = _expit(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / np.where(n > 0, n, 1.0), m)
        out: FloatArray = special.xlogy(x, p / m) + special.xlogy(n - x, (1.0 - p) / (1.0 - m))
    return out


def _glr_logit(x: FloatArray, n: FloatArray, level: FloatArray, *, up: bool) -> FloatArray:
    """The ``logit(theta)`` on the rejecting side of ``x/n`` (below it for the breach side,
    ``up``; above it for the pass side) where :func:`_glr` equals ``level``, or the edge of
    ``[_LOGIT_LO, _LOGIT_HI]`` when it stays below ``level`` up to there. Bisection on the cheap
    GLR (monotone on each side of the estimate) to 0.01 in logit, on the side where the GLR is
    below ``level``: a point where the mixture cannot reject."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip(np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.5), 1e-300, 1.0 - 1e-16)
        t_hat = np.clip(np.log(p) - np.log1p(-p), _LOGIT_LO, _LOGIT_HI)
    inner = t_hat.copy()  # GLR 0 at the estimate: below level
    outer = np.full(x.shape, _LOGIT_LO if up else _LOGIT_HI)
    reach = _glr(x, n, outer) >= level
    for _ in range(12):  # to 0.01 in logit: a bracket's end, not a bound
        mid = 0.5 * (inner + outer)
        above = _glr(x, n, mid) >= level
        outer = np.where(above, mid, outer)
        inner = np.where(above, inner, mid)
    out: FloatArray = np.where(reach, inner, outer)
    return out


def _cs_roots(x: FloatArray, n: FloatArray, thr: FloatArray, *, up: bool) -> FloatArray:
    """The ``logit(theta0)`` where one side's rejection (log e-value >= ``thr``) flips, for
    every element at once; each side's log e-value is monotone in ``theta0`` and the caller has
    checked that it rejects at the side's far edge and not everywhere.

    The bracket starts at the GLR's crossing of ``thr`` (the mixture, below the GLR, does not
    reject there) and at its crossing of ``thr + log(n + 1) + 2`` where the mixture rejects
    there (else the far edge). Then the Illinois variant of regula falsi, vectorised: each step
    evaluates the e-value of the elements not yet converged (the incomplete Beta functions are
    most of the cost, not a call per element), halves the weight of an end kept twice in a row,
    and bisects where the interpolation leaves the bracket or an end could not be evaluated
    (``-inf`` stands as a large negative value). Stops at ``_XTOL``.
    """
    sign = -1.0 if up else 1.0  # orient every g increasing in t

    def g(idx: npt.NDArray[np.intp], t: FloatArray) -> FloatArray:
        v = log_e(x[idx], n[idx], _expit(t), up=up) - thr[idx]
        out: FloatArray = sign * np.maximum(v, -1e6)
        return out

    size = x.shape[0]
    everyone = np.arange(size)
    near = _glr_logit(x, n, thr, up=up)  # does not reject
    far_guess = _glr_logit(x, n, thr + np.log1p(n) + 2.0, up=up)
    f_near = g(everyone, near)
    f_guess = g(everyone, far_guess)
    rejects = sign * f_guess >= 0.0  # g is oriented: the far end rejects where it is >= 0 for
    # the pass side and <= 0 for the breach side
    far = np.where(rejects, far_guess, _LOGIT_LO if up else _LOGIT_HI)
    f_far = np.where(rejects, f_guess, 0.0)
    missing = np.flatnonzero(~rejects)
    if missing.size:
        f_far[missing] = g(missing, far[missing])
    lo, hi = (far, near) if up else (near, far)
    f_lo, f_hi = (f_far, f_near) if up else (f_near, f_far)
    lo, hi, f_lo, f_hi = lo.copy(), hi.copy(), f_lo.copy(), f_hi.copy()
    kept = np.zeros(size, dtype=np.int8)  # -1: lo kept last step, +1: hi kept, 0: neither
    root = 0.5 * (lo + hi)
    active = everyone[(hi - lo) > _XTOL]
    for _ in range(_MAX_STEPS):
        if active.size == 0:
            break
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (a * fb - b * fa) / (fb - fa)
        bad = ~np.isfinite(t) | (t <= a) | (t >= b) | (fa <= -1e5) | (fb >= 1e5)
        t = np.where(bad, 0.5 * (a + b), t)
        ft = g(active, t)
        root[active] = t
        up_side = ft >= 0.0  # the root is at or below t: t is the new hi
        new_hi = np.where(up_side, t, b)
        new_lo = np.where(up_side, a, t)
        f_new_hi = np.where(up_side, ft, fb)
        f_new_lo = np.where(up_side, fa, ft)
        k = kept[active]
        # Illinois: an end kept twice in a row has its value halved
        f_new_lo = np.where(up_side & (k == -1), 0.5 * f_new_lo, f_new_lo)
        f_new_hi = np.where(~up_side & (k == 1), 0.5 * f_new_hi, f_new_hi)
        kept[active] = np.where(up_side, -1, 1)
        lo[active], hi[active] = new_lo, new_hi
        f_lo[active], f_hi[active] = f_new_lo, f_new_hi
        done = ((new_hi - new_lo) <= _XTOL) | (ft == 0.0)
        active = active[~done]
    return root


def cs_bounds(
    events: ArrayLike, trials: ArrayLike, alpha: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Anytime-valid ``1 - alpha`` bounds on ``theta`` by inverting the two one-sided tests, for
    every element at once (1-d inputs, broadcast).

    The lower bound is the largest ``theta0`` the breach side rejects (0 when it rejects none),
    the upper bound the smallest ``theta0`` the pass side rejects (1 when none); ``theta0`` in
    ``[1e-9, 1 - 1e-9]``. For reporting only: decisions use the e-values at the check's own
    boundary. Each bound is the root of a monotone function of ``logit(theta0)``
    (:func:`_cs_roots`): the search evaluates the e-values of all the elements in each step, so
    a tick's checks share their numpy calls (this search is most of a sequential look's cost).
    Where the GLR (:func:`_glr`, an upper bound of the e-value) stays below the threshold at a
    side's far edge, that side rejects nowhere and no e-value is evaluated.
    """
    x, n, a = np.broadcast_arrays(
        np.atleast_1d(np.asarray(events, dtype=np.float64)),
        np.atleast_1d(np.asarray(trials, dtype=np.float64)),
        np.atleast_1d(np.asarray(alpha, dtype=np.float64)),
    )
    thr = np.log(1.0 / a)
    low = np.zeros(x.shape)
    high = np.ones(x.shape)
    for up, far, near, out in (
        (True, _LOGIT_LO, _LOGIT_HI, low),
        (False, _LOGIT_HI, _LOGIT_LO, high),
    ):
        maybe = np.flatnonzero(_glr(x, n, np.full(x.shape, far)) >= thr)
        if maybe.size == 0:
            continue
        rejects = maybe[log_e(x[maybe], n[maybe], _expit(np.array(far)), up=up) >= thr[maybe]]
        if rejects.size == 0:
            continue
        near_edge = _expit(np.array(near))
        at_near = _glr(x[rejects], n[rejects], np.full(rejects.shape, near)) >= thr[rejects]
        everywhere = np.zeros(rejects.shape, dtype=bool)
        if at_near.any():
            idx = rejects[at_near]
            everywhere[at_near] = log_e(x[idx], n[idx], near_edge, up=up) >= thr[idx]
        out[rejects[everywhere]] = float(near_edge)
        some = rejects[~everywhere]
        if some.size:
            out[some] = _expit(_cs_roots(x[some], n[some], thr[some], up=up))
    return low, high


def cs_theta(x: float, n: float, alpha: float) -> tuple[float, float]:
    """:func:`cs_bounds` of one look."""
    low, high = cs_bounds(x, n, alpha)
    return float(low[0]), float(high[0])


def e_of(log_value: float) -> float:
    return math.exp(min(log_value, 700.0)) if log_value > -745.0 else 0.0
