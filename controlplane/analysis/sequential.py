"""The sequential judge: anytime-valid tests for ``judge: sequential`` checks.

Owns the statistics behind a check that may be looked at every ``analysis.interval`` without
inflating false alarms. Called by :mod:`controlplane.analysis.evaluator` (one call per due
sequential check per evaluation) and by ``bench/blast_radius.py`` (vectorised, many runs at
once). Pure: functions of cumulative counts since the step started, no I/O, no clock, no state
— so the judge is crash-safe (the evaluator re-queries ``increase(...[since step start])``).

The mathematics is in ``docs/judges.md``. In short, every test here is about a Bernoulli
sequence with success probability ``theta`` and a boundary ``theta0``:

* *breach side*: H0 ``theta <= theta0``. The e-process is a likelihood-ratio martingale mixed
  over alternatives ``q >= theta0`` with a two-component Beta mixture prior truncated to
  ``[theta0, 1]`` (a mixture SPRT as in Lindon et al. 2022). Under H0 it is a nonnegative
  supermartingale, so by Ville's inequality ``P(ever >= 1/alpha) <= alpha``: peeking every
  interval is allowed.
* *pass side*: the mirror test of H0 ``theta >= theta0`` (prior truncated to ``[0, theta0]``).
  Reaching ``1/alpha`` there means the anytime-valid confidence sequence lies entirely on the
  good side of the boundary: the check has *passed* and the step may finish early.

Three shapes of check map onto it:

* :func:`judge_rate` — absolute limit on one variant's event rate (``errors above: 0.1%``):
  each candidate request is a trial, ``theta`` its error probability, ``theta0`` the limit.
* :func:`judge_counts` — relative comparison with the stable variant (``compare: baseline``):
  each *event* (error) is a trial, success = "it came from the candidate". With request
  exposures ``n_c, n_s`` and rates ``r_c, r_s``, ``theta = n_c r_c / (n_c r_c + n_s r_s)``;
  ``r_c <= (1 + tolerance) r_s`` is ``theta <= theta0`` with
  ``theta0 = pi (1 + tolerance) / (pi (1 + tolerance) + 1 - pi)``, ``pi = n_c / (n_c + n_s)``.
  This is the two-arm case of Lindon et al.'s multinomial counting-process test.
* :func:`judge_latency` — latency from cumulative histogram buckets: "slow" (over a bucket
  boundary) is the event. Absolute ``latency-pQ above: B``: ``P(latency > B) <= 1 - Q`` (this is
  exactly "the Q-quantile is at most B"), tested with :func:`judge_rate`. ``compare: baseline``:
  the boundary is the stable's Q-quantile and the candidate's share over it is compared with the
  stable's, relative tolerance, with :func:`judge_counts`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from controlplane.errors import NoData, Problem, SpecError

Decision = Literal["breach", "pass", "continue"]
FloatArray = npt.NDArray[np.float64]
ArrayLike = float | npt.ArrayLike

__all__ = [
    "SequentialResult",
    "bernoulli_decisions",
    "bernoulli_log_e",
    "bernoulli_log_e_above",
    "binomial_p",
    "bucket_quantile",
    "judge_counts",
    "judge_latency",
    "judge_rate",
    "judge_shift",
    "midrank_scores",
    "rank_sum_p",
    "shift_log_e",
    "shift_null_tilt",
    "snap_bound",
    "two_sample_boundary",
]

_MIN_PRIOR_SIZE = 2.0
_WIDE = 4.0  # the second mixture component's mean, in multiples of the boundary
_EPS = 1e-12
_TILTS = np.geomspace(0.05, 4.0, 16)
"""The shift test's mixture: tilts ``b`` (log odds ratio per unit of mid-rank score), equal
weights. ``b = 0.05`` is a shift of about 1 % of the latency's spread, ``b = 4`` one that puts
nearly every slow request on the candidate."""


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
# Vectorised core


def _beta(mean: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Beta(a, b) with mean ``mean`` and standard deviation ``min(mean, 1 - mean)``.

    For a small mean it is nearly exponential with that mean; the prior size ``a + b`` is at
    least 2.
    """
    m = np.clip(mean, _EPS, 1.0 - _EPS)
    sd = np.minimum(m, 1.0 - m)
    size = np.maximum(m * (1.0 - m) / (sd * sd) - 1.0, _MIN_PRIOR_SIZE)
    return m * size, (1.0 - m) * size


def _priors(theta0: FloatArray) -> list[tuple[FloatArray, FloatArray]]:
    """The mixture's components, equally weighted: Beta priors with means ``theta0`` and
    ``min(4 theta0, 1/2)`` (truncated to the tested side by the callers).

    The first spends its power on effects of the order of "twice the boundary", the second on
    effects several times larger (a latency regression that moves the tail share from 1 % to
    15 %); the average of the two e-processes is an e-process, at a cost of at most ``log 2``
    of evidence against the better component. Measured in ``docs/judges.md`` ("Prior").
    """
    m = np.clip(theta0, _EPS, 1.0 - _EPS)
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
        np.clip(np.asarray(theta0, dtype=np.float64), _EPS, 1.0 - _EPS),
    )
    return _mixture_log_e(x, n, m, up=True), _mixture_log_e(x, n, m, up=False)


def _log_e_side(x: float, n: float, theta0: FloatArray, *, up: bool) -> FloatArray:
    """One side of :func:`bernoulli_log_e` (half the incomplete-Beta evaluations)."""
    m = np.clip(np.asarray(theta0, dtype=np.float64), _EPS, 1.0 - _EPS)
    xs = np.full_like(m, x)
    ns = np.full_like(m, n)
    return _mixture_log_e(xs, ns, m, up=up)


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
        np.clip(np.asarray(theta0, dtype=np.float64), _EPS, 1.0 - _EPS),
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
    thr = math.log(1.0 / alpha)
    up, down = bernoulli_log_e_above(events, trials, theta0, thr)
    out: npt.NDArray[np.int8] = np.where(up >= thr, 1, np.where(down >= thr, -1, 0)).astype(np.int8)
    return out


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


def midrank_scores(reference: ArrayLike) -> FloatArray:
    """Wilcoxon mid-rank scores in ``[-1, 1]`` of each bucket (last axis) of ``reference``.

    ``reference``: non-cumulative bucket counts (the stable's, before the step started). A
    bucket's score is ``F(above) + F(below) - 1`` with ``F`` the reference's distribution
    function at the bucket's two edges: ``-1`` for the fastest requests, ``0`` at the median,
    ``+1`` for the slowest. Half a count per bucket keeps empty buckets defined (and ordered).
    """
    p = np.asarray(reference, dtype=np.float64) + 0.5
    p = p / p.sum(-1, keepdims=True)
    upper = np.cumsum(p, -1)
    out: FloatArray = 2.0 * upper - p - 1.0
    return out


def shift_null_tilt(
    reference: ArrayLike, les: ArrayLike, tolerance: ArrayLike, share: ArrayLike = 0.5
) -> FloatArray:
    """The tilt ``b0`` that stands for "the candidate is ``tolerance`` slower" in the shift test.

    ``reference``: the stable's non-cumulative bucket counts before the step (last axis the
    buckets, as :func:`midrank_scores` takes them); ``les``: the buckets' upper bounds (the
    last one ``+Inf``); ``tolerance``: the relative slowdown the user does not care about
    (``0.1``: every latency 10 % longer). The reference's distribution function is interpolated
    linearly in log-latency between boundaries (linearly from 0 below the first one) and
    stretched by ``1 + tolerance``; ``b0`` is the tilt of the logistic model of
    :func:`shift_log_e` closest (in Kullback-Leibler divergence, fitted by Newton's method) to
    "stable against the stretched stable" mixed as the step mixes them: ``share`` is the
    candidate's share of requests (a misspecified model's projection depends on it: fitted on
    an even mixture, ``b0`` is too small for a 5 % canary and the test rolls back candidates
    exactly at the tolerance). Zero tolerance: exactly 0. Broadcasts over the leading axes of
    ``reference``, ``tolerance`` and ``share``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    tol = np.asarray(tolerance, dtype=np.float64)
    edges = np.asarray(les, dtype=np.float64)
    finite = edges[np.isfinite(edges)]
    if finite.size != edges.size - 1 or finite.size < 1 or ref.shape[-1] != edges.size:
        raise ValueError("les: finite increasing bucket bounds and a last +Inf, one per bucket")
    p = ref + 0.5
    p = p / p.sum(-1, keepdims=True)
    u = midrank_scores(ref)
    cdf = np.cumsum(p, -1)[..., :-1]  # at the finite bounds
    k = (1.0 + tol)[..., None]
    x = finite / k  # the stretched distribution at bound B is the reference's at B / k
    log_x, log_b = np.log(x), np.log(finite)
    z = special.ndtri(np.clip(cdf, 1e-9, 1.0 - 1e-9))  # probit: linear for a lognormal
    flat_x = np.broadcast_to(log_x, np.broadcast_shapes(log_x.shape, z.shape))
    flat_z = np.broadcast_to(z, flat_x.shape)
    stretched = np.empty(flat_x.shape)
    for idx in np.ndindex(flat_x.shape[:-1]):
        zi = flat_z[idx]
        if finite.size > 1:  # below the first bound: the first segment's line, extended
            slope = (zi[1] - zi[0]) / (log_b[1] - log_b[0])
            low = zi[0] + slope * (flat_x[idx] - log_b[0])
        else:
            low = np.full_like(flat_x[idx], zi[0])
        stretched[idx] = np.where(flat_x[idx] < log_b[0], low, np.interp(flat_x[idx], log_b, zi))
    stretched = special.ndtr(stretched)
    ones = np.ones((*stretched.shape[:-1], 1))
    q = np.diff(np.concatenate([0.0 * ones, stretched, ones], -1), axis=-1).clip(min=0.0)
    w_c = np.clip(np.asarray(share, dtype=np.float64), _EPS, 1.0 - _EPS)[..., None]
    pp, q, uu = np.broadcast_arrays((1.0 - w_c) * p, w_c * q, u)
    a = np.zeros(q.shape[:-1])
    b = np.zeros(q.shape[:-1])
    for _ in range(30):  # Newton on the concave log-likelihood of (a, b)
        s = special.expit(a[..., None] + b[..., None] * uu)
        r = q * (1.0 - s) - pp * s  # d/d(eta) per bucket
        w = (q + pp) * s * (1.0 - s)
        ga, gb = r.sum(-1), (r * uu).sum(-1)
        haa, hab, hbb = w.sum(-1), (w * uu).sum(-1), (w * uu * uu).sum(-1)
        det = haa * hbb - hab * hab
        det = np.where(det > 0, det, 1.0)
        a = a + (hbb * ga - hab * gb) / det
        b = b + (haa * gb - hab * ga) / det
    out: FloatArray = np.where(tol == 0.0, 0.0, b)
    return out


def _null_intercept(total: FloatArray, nc: FloatArray, u: FloatArray, b0: FloatArray) -> FloatArray:
    """The maximum-likelihood intercept ``a`` of :func:`shift_log_e`'s model with the tilt fixed
    at ``b0``: ``sum_k total_k * expit(a + b0 u_k) = nc`` (Newton from ``logit(nc / n)``, which
    is exact for ``b0 = 0``). ``total``/``u``: (..., K); ``nc``, ``b0``: (...)."""
    n = total.sum(-1)
    pi = np.clip(np.where(n > 0, nc / np.where(n > 0, n, 1.0), 0.5), _EPS, 1.0 - _EPS)
    a: FloatArray = np.asarray(np.log(pi) - np.log1p(-pi), dtype=np.float64)
    if not np.any(b0 != 0.0):
        return a
    for _ in range(12):
        s = special.expit(a[..., None] + b0[..., None] * u)
        f = (total * s).sum(-1) - nc
        d = (total * s * (1.0 - s)).sum(-1)
        a = np.asarray(a - np.where(d > 0, f / np.where(d > 0, d, 1.0), 0.0), dtype=np.float64)
    return a


def shift_log_e(
    cand: ArrayLike, stable: ArrayLike, scores: ArrayLike, null_tilt: ArrayLike = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Log e-values ``(breach side, pass side)`` of the shift test.

    ``cand`` / ``stable``: non-cumulative bucket counts since the step started (last axis the
    buckets, leading axes broadcast: the benchmark passes thousands of runs); ``scores`` the
    buckets' mid-rank scores (:func:`midrank_scores`). Each request is a trial "it came from the
    candidate" with log odds ``a + b u`` (``u`` its bucket's score). H0 (breach side): ``b <= b0``
    (``b0 = null_tilt``, 0 by default: no tilt towards slow, the same latency distribution or a
    faster one; :func:`shift_null_tilt` for a tolerated slowdown); the e-process is the
    likelihood ratio of ``b0 + t`` against ``b0`` mixed over ``t`` in :data:`_TILTS`. The pass
    side mirrors it (``b >= b0`` against ``b0 - t``). ``a`` is its maximum-likelihood value under
    ``b = b0`` on the cumulative counts (for ``b0 = 0``: the logit of the candidate's share of
    requests, as :func:`judge_counts` estimates it). No requests: ``(0, 0)``.
    """
    c, s, u = np.broadcast_arrays(
        np.asarray(cand, dtype=np.float64),
        np.asarray(stable, dtype=np.float64),
        np.asarray(scores, dtype=np.float64),
    )
    nc = c.sum(-1)
    n = nc + s.sum(-1)
    b0 = np.broadcast_to(np.asarray(null_tilt, dtype=np.float64), nc.shape)
    a0 = _null_intercept(c + s, nc, u, b0)
    base = (a0[..., None] + b0[..., None] * u)[..., None, :]  # (..., 1, buckets)

    def loglik(eta: FloatArray) -> FloatArray:
        per_c = -np.logaddexp(0.0, -eta)  # log expit(eta)
        per_s = -np.logaddexp(0.0, eta)  # log (1 - expit(eta))
        out: FloatArray = (c[..., None, :] * per_c + s[..., None, :] * per_s).sum(-1)
        return out

    null = loglik(base)[..., 0]

    def side(tilts: FloatArray) -> FloatArray:
        ll = loglik(base + tilts[:, None] * u[..., None, :]) - null[..., None]
        out: FloatArray = special.logsumexp(ll, -1) - math.log(tilts.size)
        return np.where(n > 0, out, 0.0)

    return side(_TILTS), side(-_TILTS)


# --------------------------------------------------------------------------------------------
# The closing test: one fixed-horizon test at the step's end (``finalLook``)


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
        np.clip(np.asarray(theta0, dtype=np.float64), _EPS, 1.0 - _EPS),
    )
    x = np.minimum(x, n)
    with np.errstate(invalid="ignore"):
        p = special.betainc(np.maximum(x, _EPS), n - x + 1.0, m)
    out: FloatArray = np.where(x > 0, p, 1.0)
    return out


def rank_sum_p(cand: ArrayLike, stable: ArrayLike) -> FloatArray:
    """One-sided p-value of the Wilcoxon-Mann-Whitney test "the candidate is slower" on bucket
    counts (the closing test of :func:`judge_shift`).

    ``cand`` / ``stable``: non-cumulative counts on common buckets (last axis); requests in one
    bucket are ties (mid-ranks). Normal approximation with the tie correction of the variance
    and a continuity correction of one half; no requests on either side: 1. Broadcasts.
    """
    c = np.asarray(cand, dtype=np.float64)
    s = np.asarray(stable, dtype=np.float64)
    nc, ns = c.sum(-1), s.sum(-1)
    big_n = nc + s.sum(-1)
    faster = np.cumsum(s, -1) - s  # stable requests strictly faster than each bucket
    u = (c * (faster + 0.5 * s)).sum(-1)
    t = c + s
    with np.errstate(divide="ignore", invalid="ignore"):
        ties = (t**3 - t).sum(-1) / (big_n * (big_n - 1.0))
        var = nc * ns / 12.0 * ((big_n + 1.0) - ties)
        z = (u - nc * ns / 2.0 - 0.5) / np.sqrt(var)
    out: FloatArray = np.where((nc > 0) & (ns > 0) & (var > 0), special.ndtr(-z), 1.0)
    return out


# --------------------------------------------------------------------------------------------
# Validation helpers


def _count(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NoData(f"sequential judge: {name} is not a number: {value!r}") from None
    if not math.isfinite(v):
        raise NoData(f"sequential judge: {name} is {v} (missing or broken data)")
    if v < 0:
        raise NoData(f"sequential judge: {name} is negative ({v:g}); counts cannot be negative")
    return v


def _check_alpha(alpha: float) -> float:
    if not (isinstance(alpha, int | float) and 0.0 < float(alpha) < 0.5):
        raise SpecError([Problem(path="alpha", message=f"must be in (0, 0.5), got {alpha!r}")])
    return float(alpha)


def _events_within(events: float, trials: float, what: str) -> float:
    # Prometheus' increase() extrapolates each series separately: an error counter may come out
    # a hair above the total. A small excess is clamped; a real one is broken data.
    if events > trials:
        if events - trials <= max(1.0, 0.01 * trials):
            return trials
        raise NoData(f"sequential judge: {what} ({events:g}) exceed their total ({trials:g})")
    return events


# --------------------------------------------------------------------------------------------
# Confidence sequences (for reporting; decisions use the e-values directly)


_LOGIT_LO, _LOGIT_HI = -20.7, 20.7  # theta in [1e-9, 1 - 1e-9]
_XTOL = 1e-6  # in logit: far below what a report shows
_LOG2 = math.log(2.0)


def _log_e_scalar(x: float, n: float, theta0: float, up: bool) -> float:
    """:func:`_mixture_log_e` at one point, on Python floats (a scalar ``scipy.special`` call
    costs about a microsecond, a numpy one on a small array tens): what the confidence
    sequence's root search evaluates ten or twenty times per look."""
    m = min(max(theta0, _EPS), 1.0 - _EPS)
    tail = special.betaincc if up else special.betainc
    log_null = float(special.xlogy(x, m) + special.xlogy(n - x, 1.0 - m))
    parts = []
    for mean in (m, min(_WIDE * m, 0.5)):
        mc = min(max(mean, _EPS), 1.0 - _EPS)
        sd = min(mc, 1.0 - mc)
        size = max(mc * (1.0 - mc) / (sd * sd) - 1.0, _MIN_PRIOR_SIZE)
        a, b = mc * size, (1.0 - mc) * size
        num, den = float(tail(x + a, n - x + b, m)), float(tail(a, b, m))
        if not (num > 0.0 and den > 0.0) or math.isnan(num) or math.isnan(den):
            parts.append(-math.inf)
            continue
        log_post = float(special.betaln(x + a, n - x + b) - special.betaln(a, b))
        parts.append(log_post + math.log(num) - math.log(den))
    hi, lo = max(parts), min(parts)
    if hi == -math.inf:
        return -math.inf
    out = hi + math.log1p(math.exp(lo - hi)) - _LOG2 - log_null
    return -math.inf if math.isnan(out) else out


def _cs_bound(x: float, n: float, thr: float, up: bool) -> float:
    """The ``theta0`` where one side's rejection (log e-value >= ``thr``) flips, found by
    Brent's method on the logit scale; the side's own edge when it rejects everywhere (in
    ``[1e-9, 1 - 1e-9]``) or nowhere is for the caller."""

    def g(t: float) -> float:
        v = _log_e_scalar(x, n, 1.0 / (1.0 + math.exp(-t)), up) - thr
        return max(v, -1e6)  # -inf (a side that cannot be evaluated) as a large negative

    if up:  # rejects small theta0, not large ones
        if g(_LOGIT_HI) >= 0.0:
            return 1.0 / (1.0 + math.exp(-_LOGIT_HI))
    elif g(_LOGIT_LO) >= 0.0:
        return 1.0 / (1.0 + math.exp(-_LOGIT_LO))
    t = optimize.brentq(g, _LOGIT_LO, _LOGIT_HI, xtol=_XTOL)
    return 1.0 / (1.0 + math.exp(-float(t)))


def _cs_theta(x: float, n: float, alpha: float) -> tuple[float, float]:
    """Anytime-valid ``1 - alpha`` bounds on ``theta`` by inverting the two one-sided tests.

    The lower bound is the largest ``theta0`` the breach side rejects (0 when it rejects none),
    the upper bound the smallest ``theta0`` the pass side rejects (1 when none). For reporting
    only: decisions use the e-values at the check's own boundary. Each bound is the root of a
    monotone function of ``logit(theta0)`` found by Brent's method on scalar evaluations
    (:func:`_log_e_scalar`): about a dozen evaluations of a few microseconds each, where a grid
    search on numpy arrays paid tens of microseconds of call overhead per pass — this search is
    most of a sequential look's cost, and a tick judges thousands.
    """
    thr = math.log(1.0 / alpha)
    low = _cs_bound(x, n, thr, True) if _log_e_scalar(x, n, 1e-9, True) >= thr else 0.0
    high = _cs_bound(x, n, thr, False) if _log_e_scalar(x, n, 1.0 - 1e-9, False) >= thr else 1.0
    return low, high


def _decide(log_breach: float, log_pass: float, alpha: float) -> Decision:
    thr = math.log(1.0 / alpha)
    if log_breach >= thr:
        return "breach"
    if log_pass >= thr:
        return "pass"
    return "continue"


def _e(log_value: float) -> float:
    return math.exp(min(log_value, 700.0)) if log_value > -745.0 else 0.0


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
    alpha = _check_alpha(alpha)
    x = _count("events", events)
    n = _count("total", total)
    x = _events_within(x, n, "events")
    if not (0.0 < float(limit) < 1.0):
        raise SpecError([Problem(path="above", message=f"a rate limit must be in (0, 1): {limit}")])
    if n == 0:
        return SequentialResult(
            "continue", 1.0, 1.0, math.nan, 0.0, 1.0, limit, x, n, "no requests yet"
        )
    est = x / n
    if fixed:
        msg = f"rate {est:.4g} ({x:g}/{n:g}) vs limit {limit:.4g}"
        return _fixed_only(est, limit, x, n, msg, float(binomial_p(x, n, limit)))
    lb, lp = _log_e_scalar(x, n, limit, True), _log_e_scalar(x, n, limit, False)
    decision = _decide(float(lb), float(lp), alpha)
    low, high = _cs_theta(x, n, alpha)
    msg = (
        f"rate {est:.4g} ({x:g}/{n:g}), {100 * (1 - alpha):g}% CS [{low:.4g}, {high:.4g}] "
        f"vs limit {limit:.4g}: {decision}"
    )
    return SequentialResult(
        decision, _e(float(lb)), _e(float(lp)), est, low, high, limit, x, n, msg
    )


def _fixed_only(
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
    alpha = _check_alpha(alpha)
    xc = _count("candidate events", cand_events)
    nc = _count("candidate total", cand_total)
    xs = _count("stable events", stable_events)
    ns = _count("stable total", stable_total)
    xc = _events_within(xc, nc, "candidate events")
    xs = _events_within(xs, ns, "stable events")
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
        return _fixed_only(est, boundary, xc, events, msg, p)
    lb, lp = _log_e_scalar(xc, events, theta0, True), _log_e_scalar(xc, events, theta0, False)
    decision = _decide(float(lb), float(lp), alpha)
    pi_odds = nc / ns

    def ratio(p: float) -> float:
        if p >= 1.0:
            return math.inf
        return p / (1.0 - p) / pi_odds

    if events == 0:
        low, high, est = 0.0, math.inf, math.nan
    else:
        tl, th = _cs_theta(xc, events, alpha)
        low, high = ratio(tl), ratio(th)
        est = (xc / nc) / (xs / ns) if xs > 0 else math.inf
    msg = (
        f"rate ratio candidate/stable {est:.4g} {counts}, "
        f"{100 * (1 - alpha):g}% CS [{low:.4g}, {high:.4g}] vs {boundary:.4g}: {decision}"
    )
    return SequentialResult(
        decision, _e(float(lb)), _e(float(lp)), est, low, high, boundary, xc, events, msg
    )


def _buckets(name: str, buckets: Mapping[float, float]) -> tuple[FloatArray, FloatArray]:
    if not buckets:
        raise NoData(f"sequential judge: no {name} histogram buckets")
    les = np.array(sorted(float(k) for k in buckets), dtype=np.float64)
    if np.isnan(les).any() or les[-1] != math.inf:
        raise NoData(f"sequential judge: {name} histogram has no +Inf bucket")
    counts = np.array([_count(f"{name} bucket le={le:g}", buckets[le]) for le in les])
    # Cumulative buckets are non-decreasing; extrapolated increase() can jitter: take the
    # running maximum, as Prometheus' histogram_quantile does for monotonicity.
    return les, np.maximum.accumulate(counts)


def snap_bound(les: npt.ArrayLike, bound_s: float) -> float:
    """The finite bucket boundary nearest to ``bound_s`` (ties go to the lower one)."""
    finite = np.asarray(les, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise NoData("sequential judge: histogram has no finite bucket boundary")
    return float(finite[int(np.argmin(np.abs(finite - bound_s)))])


def snap_up(les: npt.ArrayLike, bound_s: float) -> float:
    """The smallest finite bucket boundary at or above ``bound_s`` (relative slack 1e-9).

    Used for absolute latency limits: if the Q-quantile is at most ``bound_s`` then the share of
    requests slower than any boundary ``B >= bound_s`` is at most ``1 - Q`` too, so testing at
    ``B`` never rolls back a candidate that meets the user's limit more often than ``alpha``
    (it only loses some power when ``B`` is far above the limit).
    """
    finite = np.sort(np.asarray(les, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    at_or_above = finite[finite >= bound_s * (1.0 - 1e-9)]
    if at_or_above.size == 0:
        raise NoData(
            f"sequential judge: no histogram bucket boundary at or above {bound_s:g}s "
            "(give the histogram a boundary at the limit)"
        )
    return float(at_or_above[0])


def bucket_quantile(buckets: Mapping[float, float], q: float) -> float:
    """Prometheus ``histogram_quantile(q, ...)`` of cumulative ``{le: count}``; NaN if empty."""
    les, cum = _buckets("candidate", buckets)
    return _quantile(les, cum, q)


def _quantile(les: FloatArray, cum: FloatArray, q: float) -> float:
    """Prometheus ``histogram_quantile`` on one cumulative histogram."""
    total = float(cum[-1])
    if total <= 0:
        return math.nan
    rank = q * total
    i = int(np.searchsorted(cum, rank, side="left"))
    if i >= len(les) - 1:
        return float(les[-2]) if len(les) > 1 else math.nan
    lower = 0.0 if i == 0 else float(les[i - 1])
    below = 0.0 if i == 0 else float(cum[i - 1])
    width = float(cum[i]) - below
    if width <= 0:
        return float(les[i])
    return lower + (float(les[i]) - lower) * (rank - below) / width


def judge_latency(
    cand_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float] | None,
    quantile: float,
    alpha: float,
    *,
    bound_s: float | None = None,
    tolerance: float | None = None,
    stable_boundary_s: float | None = None,
    fixed: bool = False,
) -> SequentialResult:
    """Latency check on cumulative histogram buckets (``le`` -> count since step start).

    Absolute (``latency above: 200ms`` on a metric with quantile ``Q``): pass ``bound_s``; the
    bound snaps *up* to the nearest bucket boundary ``B`` (:func:`snap_up`) and the check is
    "share of candidate requests slower than ``B`` is at most ``1 - Q``" (equivalent to
    "Q-quantile <= B"), :func:`judge_rate`. ``stable_buckets`` is not used.

    ``compare: baseline`` (pass ``tolerance``): ``B`` is the boundary nearest to
    ``stable_boundary_s`` when given (the evaluator passes the stable's Q-quantile just before
    the step started, so ``B`` is fixed for the whole step, which the anytime validity needs),
    else to the stable's Q-quantile from ``stable_buckets``; the check is "the candidate's share
    of requests slower than ``B`` exceeds the stable's by more than ``tolerance`` (relative)",
    :func:`judge_counts` with "slow" as the event. That is a test on the tail above the stable's
    Q-quantile, not a ratio of two estimated quantiles (which has no anytime-valid test on
    bucket counts).
    """
    alpha = _check_alpha(alpha)
    if not (0.0 < quantile < 1.0):
        raise SpecError([Problem(path="quantile", message=f"must be in (0, 1): {quantile}")])
    les, cum = _buckets("candidate", cand_buckets)
    if (bound_s is None) == (tolerance is None):
        raise SpecError(
            [Problem(path="above", message="give either bound_s (absolute) or tolerance")]
        )
    if bound_s is not None:
        if not (math.isfinite(bound_s) and bound_s > 0):
            raise SpecError([Problem(path="above", message=f"bad latency bound {bound_s}")])
        b = snap_up(les, bound_s)
        i = int(np.searchsorted(les, b))
        slow, total = float(cum[-1] - cum[i]), float(cum[-1])
        res = judge_rate(slow, total, 1.0 - quantile, alpha, fixed=fixed)
        msg = f"share slower than {b:g}s must be <= {1 - quantile:.4g}: {res.message}"
        return replace(res, message=msg)
    assert tolerance is not None
    if stable_buckets is None:
        raise NoData("sequential judge: compare: baseline needs the stable's histogram")
    sles, scum = _buckets("stable", stable_buckets)
    sq = _quantile(sles, scum, quantile) if stable_boundary_s is None else stable_boundary_s
    if math.isnan(sq) or cum[-1] == 0:
        return SequentialResult(
            "continue",
            1.0,
            1.0,
            math.nan,
            0.0,
            math.inf,
            1.0 + tolerance,
            0.0,
            0.0,
            "no requests yet",
        )
    b = snap_bound(les, sq)
    i = int(np.searchsorted(les, b))
    si = int(np.searchsorted(sles, b))
    if scum[-1] == 0:
        stable_slow = 0.0  # no stable requests yet: judge_counts says "continue"
    elif si >= len(sles) or sles[si] != b:
        raise NoData(f"sequential judge: the stable histogram has no bucket le={b:g}")
    else:
        stable_slow = float(scum[-1] - scum[si])
    res = judge_counts(
        float(cum[-1] - cum[i]),
        float(cum[-1]),
        stable_slow,
        float(scum[-1]),
        tolerance,
        alpha,
        fixed=fixed,
    )
    msg = f"slower than {b:g}s (stable's p{100 * quantile:g} ~ {sq:.4g}s): {res.message}"
    return replace(res, message=msg)


def _common(*histograms: tuple[FloatArray, FloatArray]) -> tuple[FloatArray, list[FloatArray]]:
    """The ``le`` boundaries all ``(les, cumulative)`` histograms share, and each one's
    non-cumulative counts on them (merging buckets into a coarser common partition is exact)."""
    common = histograms[0][0]
    for les, _ in histograms[1:]:
        common = np.intersect1d(common, les)
    counts = []
    for les, cum in histograms:
        at = cum[np.searchsorted(les, common)]
        counts.append(np.diff(np.concatenate([[0.0], at])).clip(min=0.0))
    return common, counts


def judge_shift(
    cand_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float],
    reference_buckets: Mapping[float, float],
    alpha: float,
    *,
    tolerance: float = 0.0,
    fixed: bool = False,
) -> SequentialResult:
    """Is the candidate's whole latency distribution shifted slower than the stable's?

    ``test: shift`` (``compare: baseline, above: 0%``): a sequential, anytime-valid
    Mann-Whitney-type test on all the buckets (:func:`shift_log_e`). ``cand_buckets`` /
    ``stable_buckets``: cumulative ``{le: count}`` since the step started; ``reference_buckets``:
    the stable's over the check's window just before the step (it fixes the scores for the
    whole step, as anytime validity needs; the scores only move power, never validity). Only the
    ``le`` boundaries all three share are used. Breach when the evidence says the candidate is
    slower; pass when it says it is faster. The estimate is the probabilistic index ``P(a
    candidate request is slower than a stable one)`` (ties count half; 0.5 = no shift), with the
    boundary 0.5; there is no confidence sequence (``ci_low``/``ci_high`` are NaN).

    ``tolerance`` (``test: shift`` with ``above: 10%``): the slowdown the user does not care
    about, as a factor on every latency (``0.1``: 10 % longer). The anytime test's null becomes
    "no more tilted than the stable stretched by ``1 + tolerance``" (:func:`shift_null_tilt`,
    the tilt fixed by the reference for the whole step) and the reported boundary is the
    probabilistic index of that stretched stable against the stable. The closing test
    (``fixed``) stays the rank test against no shift, at the tolerance's index as its boundary
    only in the message: it is used with ``tolerance`` 0 alone (:mod:`seqcheck` refuses
    ``finalLook`` with a shift tolerance).
    """
    alpha = _check_alpha(alpha)
    if not (math.isfinite(tolerance) and 0.0 <= tolerance <= 10.0):
        raise SpecError(
            [
                Problem(
                    path="above", message=f"a shift tolerance must be in [0%, 1000%]: {tolerance}"
                )
            ]
        )
    common, (c, s, ref) = _common(
        _buckets("candidate", cand_buckets),
        _buckets("stable", stable_buckets),
        _buckets("reference", reference_buckets),
    )
    nc, ns = float(c.sum()), float(s.sum())
    if ref.sum() <= 0:
        raise NoData(
            "the stable variant had no latency data just before the step started "
            "(the shift test's scores come from it)"
        )
    if nc == 0 or ns == 0:
        missing = "the candidate" if nc == 0 else "the stable variant"
        return SequentialResult(
            "continue",
            1.0,
            1.0,
            math.nan,
            math.nan,
            math.nan,
            0.5,
            nc,
            nc + ns,
            f"no requests on {missing} yet",
        )
    if len(common) < 2:  # only +Inf: one bucket, every score equal, no evidence ever
        raise NoData(
            "the candidate's and the stable's histograms share no finite bucket boundary: "
            "the shift test cannot rank their requests"
        )
    faster_stable = np.concatenate([[0.0], np.cumsum(s)[:-1]])
    index = float((c * (faster_stable + 0.5 * s)).sum() / (nc * ns))
    shifted = (
        f"candidate slower than stable in {100 * index:.1f}% of request pairs (50% = no shift; "
        f"{nc:g} candidate and {ns:g} stable requests over {len(common)} buckets)"
    )
    boundary = 0.5
    b0 = 0.0
    if tolerance > 0:
        b0 = float(shift_null_tilt(ref, common, tolerance, nc / (nc + ns)))
        boundary = _tilted_index(ref, midrank_scores(ref), b0)
        shifted += f"; tolerated: {100 * tolerance:g}% slower ({100 * boundary:.1f}%)"
    if fixed:
        return _fixed_only(index, boundary, nc, nc + ns, shifted, float(rank_sum_p(c, s)))
    lb, lp = shift_log_e(c, s, midrank_scores(ref), b0)
    decision = _decide(float(lb), float(lp), alpha)
    msg = (
        f"{shifted}, e-value {_e(float(lb)):.3g} (breach at {1 / alpha:g}, pass side "
        f"{_e(float(lp)):.3g}): {decision}"
    )
    return SequentialResult(
        decision,
        _e(float(lb)),
        _e(float(lp)),
        index,
        math.nan,
        math.nan,
        boundary,
        nc,
        nc + ns,
        msg,
    )


def _tilted_index(ref: FloatArray, u: FloatArray, b0: float) -> float:
    """The probabilistic index ``P(candidate slower than stable)`` of the reference tilted by
    ``b0`` (the candidate's bucket shares ``p_k e^(b0 u_k)``, normalised) against the reference:
    what the shift test's boundary is in the reported scale."""
    p = (ref + 0.5) / float((ref + 0.5).sum())
    q = p * np.exp(b0 * u)
    q = q / q.sum()
    faster = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    return float((q * (faster + 0.5 * p)).sum())
