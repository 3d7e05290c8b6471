"""The shift test: an anytime-valid rank test that one latency histogram is slower than another.

Owns the statistics of ``test: shift``: mid-rank scores, the logistic-tilt e-process, the null
tilt and the closing Wilcoxon-Mann-Whitney p-value. Pure, vectorised; called by the latency
judges and ``bench/``. Derivation: docs/judges-derivation.md, "Whole distribution".
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from controlplane.analysis.sequential.eprocess import EPS, ArrayLike, FloatArray

TILTS = np.geomspace(0.05, 4.0, 16)
"""The shift test's mixture: tilts ``b`` (log odds ratio per unit of mid-rank score), equal
weights. ``b = 0.05`` is a shift of about 1 % of the latency's spread, ``b = 4`` one that puts
nearly every slow request on the candidate."""


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

    ``reference``: the stable's non-cumulative counts before the step; ``les``: the bounds (last
    ``+Inf``); ``share``: the candidate's share of requests. The reference's distribution,
    interpolated in log-latency and stretched by ``1 + tolerance``, is projected (Kullback-Leibler,
    Newton's method) onto the logistic model of :func:`shift_log_e` at that share: fitted on an even
    mixture, ``b0`` is too small for a 5 % canary. Zero tolerance: exactly 0. Broadcasts.
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
    w_c = np.clip(np.asarray(share, dtype=np.float64), EPS, 1.0 - EPS)[..., None]
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
    pi = np.clip(np.where(n > 0, nc / np.where(n > 0, n, 1.0), 0.5), EPS, 1.0 - EPS)
    a: FloatArray = np.asarray(np.log(pi) - np.log1p(-pi), dtype=np.float64)
    if not np.any(b0 != 0.0):
        return a
    for _ in range(12):
        s = special.expit(a[..., None] + b0[..., None] * u)
        f = (total * s).sum(-1) - nc
        d = (total * s * (1.0 - s)).sum(-1)
        a = np.asarray(a - np.where(d > 0, f / np.where(d > 0, d, 1.0), 0.0), dtype=np.float64)
    return a


def _tilt_intercepts(
    total: FloatArray, nc: FloatArray, u: FloatArray, eta0: FloatArray, tilts: FloatArray
) -> FloatArray:
    """The maximum-likelihood intercepts of :func:`shift_log_e`'s model at the tilts ``b0 + t``
    (``t`` in ``tilts``), as offsets from the null's linear predictor ``eta0 = a0 + b0 u``:
    ``d_t`` with ``sum_k total_k expit(eta0_k + d_t + t u_k) = nc``. ``total``/``u``/``eta0``:
    (..., K); ``nc``: (...); the result (..., T). Newton's method from the exponential-tilt
    value ``-log(sum_k w_k e^(t u_k))`` (``w`` the null's expected candidate share per bucket,
    normalised), which is exact as the candidate's share of requests goes to 0; three steps
    leave an error of about ``1e-9`` (the log-likelihood, at its maximum in ``d``, moves by its
    square)."""
    s0 = special.expit(eta0)
    w = total * s0
    wsum = w.sum(-1, keepdims=True)
    w = w / np.where(wsum > 0, wsum, 1.0)
    tu = tilts[:, None] * u[..., None, :]  # (..., T, K)
    d: FloatArray = -special.logsumexp(tu, -1, b=np.broadcast_to(w[..., None, :], tu.shape))
    d = np.where(np.isfinite(d), d, 0.0)
    lin = eta0[..., None, :] + tu
    tot = total[..., None, :]
    for _ in range(3):
        s = special.expit(lin + d[..., None])
        f = (tot * s).sum(-1) - nc[..., None]
        g = (tot * s * (1.0 - s)).sum(-1)
        d = d - np.where(g > 0, f / np.where(g > 0, g, 1.0), 0.0)
    return d


def shift_log_e(
    cand: ArrayLike, stable: ArrayLike, scores: ArrayLike, null_tilt: ArrayLike = 0.0
) -> tuple[FloatArray, FloatArray]:
    """Log e-values ``(breach side, pass side)`` of the shift test.

    ``cand`` / ``stable``: non-cumulative bucket counts since the step started (last axis the
    buckets, leading axes broadcast); ``scores``: :func:`midrank_scores`. Each request is a trial
    "it came from the candidate" with log odds ``a + b u``; the breach side tests ``b <= b0``
    (``null_tilt``) against ``b0 + t`` mixed over :data:`TILTS`, the pass side mirrors it. ``a`` is
    fitted per tilt by maximum likelihood, so every tilt accounts for the candidate requests there
    are (with one shared intercept, a quarter to a third of the evidence was lost at a 5 % weight:
    docs/judges-derivation.md). No requests: ``(0, 0)``.
    """
    c, s, u = np.broadcast_arrays(
        np.asarray(cand, dtype=np.float64),
        np.asarray(stable, dtype=np.float64),
        np.asarray(scores, dtype=np.float64),
    )
    nc = c.sum(-1)
    n = nc + s.sum(-1)
    total = c + s
    b0 = np.broadcast_to(np.asarray(null_tilt, dtype=np.float64), nc.shape)
    a0 = _null_intercept(total, nc, u, b0)
    eta0 = a0[..., None] + b0[..., None] * u  # (..., buckets)

    def loglik(eta: FloatArray) -> FloatArray:
        # c log expit(eta) + s log(1 - expit(eta)) = c eta - (c + s) log(1 + e^eta)
        out: FloatArray = (
            c[..., None, :] * eta - total[..., None, :] * np.logaddexp(0.0, eta)
        ).sum(-1)
        return out

    null = loglik(eta0[..., None, :])[..., 0]

    def side(tilts: FloatArray) -> FloatArray:
        d = _tilt_intercepts(total, nc, u, eta0, tilts)
        eta = eta0[..., None, :] + d[..., None] + tilts[:, None] * u[..., None, :]
        ll = loglik(eta) - null[..., None]
        out: FloatArray = special.logsumexp(ll, -1) - math.log(tilts.size)
        return np.where(n > 0, out, 0.0)

    return side(TILTS), side(-TILTS)


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


def tilted_index(ref: FloatArray, u: FloatArray, b0: float) -> float:
    """The probabilistic index ``P(candidate slower than stable)`` of the reference tilted by
    ``b0`` (the candidate's bucket shares ``p_k e^(b0 u_k)``, normalised) against the reference:
    what the shift test's boundary is in the reported scale."""
    p = (ref + 0.5) / float((ref + 0.5).sum())
    q = p * np.exp(b0 * u)
    q = q / q.sum()
    faster = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    return float((q * (faster + 0.5 * p)).sum())
