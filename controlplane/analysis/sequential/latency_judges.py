"""The latency judges: anytime-valid verdicts on cumulative latency histograms.

Owns :func:`judge_latency` ("slow", over a bucket boundary, is the event counted by the count
judges) and :func:`judge_shift` (``test: shift``, the rank test of
:mod:`~controlplane.analysis.sequential.rank_shift`), each a look builder plus a test of many
looks at once. Pure; called by the check glue and ``bench/``. See docs/judges-derivation.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from controlplane.analysis.sequential import decision_rule
from controlplane.analysis.sequential.buckets import (
    checked,
    common_buckets,
    cumulative_quantile,
    snap_bound,
    snap_up,
)
from controlplane.analysis.sequential.count_judges import (
    Look,
    SequentialResult,
    check_alpha,
    counts_look,
    fixed_only,
    judge_one,
    rate_look,
)
from controlplane.analysis.sequential.eprocess import FloatArray, e_of
from controlplane.analysis.sequential.rank_shift import (
    midrank_scores,
    rank_sum_p,
    shift_log_e,
    shift_null_tilt,
    tilted_index,
)
from controlplane.errors import NoData, Problem, SpecError


def _prefixed(look: Look, prefix: str) -> Look:
    """``look`` with its message after ``prefix``."""
    if isinstance(look, SequentialResult):
        return replace(look, message=prefix + look.message)
    return replace(look, prefix=prefix + look.prefix)


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
    """Latency check on cumulative histogram buckets: one look of :func:`latency_look`,
    judged by :func:`~controlplane.analysis.sequential.count_judges.judge_looks`."""
    return judge_one(
        latency_look(
            cand_buckets,
            stable_buckets,
            quantile,
            alpha,
            bound_s=bound_s,
            tolerance=tolerance,
            stable_boundary_s=stable_boundary_s,
            fixed=fixed,
        )
    )


def latency_look(
    cand_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float] | None,
    quantile: float,
    alpha: float,
    *,
    bound_s: float | None = None,
    tolerance: float | None = None,
    stable_boundary_s: float | None = None,
    fixed: bool = False,
) -> Look:
    """Latency check on cumulative histogram buckets (``le`` -> count since step start).

    Absolute (``bound_s``): the bound snaps up to a bucket boundary ``B`` and the check is "the
    share of candidate requests slower than ``B`` is at most ``1 - Q``" (:func:`judge_rate`).
    ``compare: baseline`` (``tolerance``): ``B`` is the boundary nearest the stable's Q-quantile
    before the step (``stable_boundary_s``, fixed for the step as anytime validity needs; else from
    ``stable_buckets``), and "slow" events are compared with :func:`judge_counts`. The anytime test
    is left to :func:`~controlplane.analysis.sequential.count_judges.judge_looks`.
    """
    alpha = check_alpha(alpha)
    if not (0.0 < quantile < 1.0):
        raise SpecError([Problem(path="quantile", message=f"must be in (0, 1): {quantile}")])
    les, cum = checked("candidate", cand_buckets)
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
        look = rate_look(slow, total, 1.0 - quantile, alpha, fixed=fixed)
        return _prefixed(look, f"share slower than {b:g}s must be <= {1 - quantile:.4g}: ")
    assert tolerance is not None
    if stable_buckets is None:
        raise NoData("sequential judge: compare: baseline needs the stable's histogram")
    sles, scum = checked("stable", stable_buckets)
    sq = (
        cumulative_quantile(sles, scum, quantile)
        if stable_boundary_s is None
        else stable_boundary_s
    )
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
    look = counts_look(
        float(cum[-1] - cum[i]),
        float(cum[-1]),
        stable_slow,
        float(scum[-1]),
        tolerance,
        alpha,
        fixed=fixed,
    )
    return _prefixed(look, f"slower than {b:g}s (stable's p{100 * quantile:g} ~ {sq:.4g}s): ")


@dataclass(frozen=True)
class ShiftLook:
    """A shift test's look, checked and ready for the anytime test: the counts on the common
    buckets (``cand``, ``stable``), the reference's scores, the null tilt ``b0``, and what the
    result reports (the probabilistic ``index``, its ``boundary``, the message's start)."""

    cand: FloatArray
    stable: FloatArray
    scores: FloatArray
    b0: float
    alpha: float
    index: float
    boundary: float
    said: str


def judge_shift(
    cand_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float],
    reference_buckets: Mapping[float, float],
    alpha: float,
    *,
    tolerance: float = 0.0,
    fixed: bool = False,
) -> SequentialResult:
    """Is the candidate's whole latency distribution shifted slower than the stable's? One look
    of :func:`shift_look`, judged by :func:`judge_shift_looks`."""
    look = shift_look(
        cand_buckets,
        stable_buckets,
        reference_buckets,
        alpha,
        tolerance=tolerance,
        fixed=fixed,
    )
    return look if isinstance(look, SequentialResult) else judge_shift_looks([look])[0]


def shift_look(
    cand_buckets: Mapping[float, float],
    stable_buckets: Mapping[float, float],
    reference_buckets: Mapping[float, float],
    alpha: float,
    *,
    tolerance: float = 0.0,
    fixed: bool = False,
) -> ShiftLook | SequentialResult:
    """Is the candidate's whole latency distribution shifted slower than the stable's?

    ``test: shift``: an anytime-valid Mann-Whitney-type test on the buckets all three histograms
    share (:func:`shift_log_e`); ``reference_buckets`` (the stable's before the step) fix the scores
    for the whole step, as anytime validity needs. The estimate is the probabilistic index ``P(a
    candidate request is slower)`` against 0.5, with no confidence sequence. ``tolerance`` moves the
    null to the stable stretched by ``1 + tolerance`` (:func:`shift_null_tilt`); the closing test
    (``fixed``) is used with tolerance 0 only. The model: docs/judges-derivation.md, "Whole
    distribution".
    """
    alpha = check_alpha(alpha)
    if not (math.isfinite(tolerance) and 0.0 <= tolerance <= 10.0):
        raise SpecError(
            [
                Problem(
                    path="above", message=f"a shift tolerance must be in [0%, 1000%]: {tolerance}"
                )
            ]
        )
    common, (c, s, ref) = common_buckets(
        checked("candidate", cand_buckets),
        checked("stable", stable_buckets),
        checked("reference", reference_buckets),
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
        boundary = tilted_index(ref, midrank_scores(ref), b0)
        shifted += f"; tolerated: {100 * tolerance:g}% slower ({100 * boundary:.1f}%)"
    if fixed:
        return fixed_only(index, boundary, nc, nc + ns, shifted, float(rank_sum_p(c, s)))
    return ShiftLook(c, s, midrank_scores(ref), b0, alpha, index, boundary, shifted)


def judge_shift_looks(looks: Sequence[ShiftLook]) -> list[SequentialResult]:
    """The anytime shift test of many looks at once (a tick's checks): looks with the same
    number of common buckets are stacked and :func:`shift_log_e` runs once over each stack. The
    same answers, look by look, as one look at a time: the arithmetic is per row."""
    lb = np.zeros(len(looks))
    lp = np.zeros(len(looks))
    by_size: dict[int, list[int]] = {}
    for i, look in enumerate(looks):
        by_size.setdefault(look.cand.size, []).append(i)
    for rows in by_size.values():
        pick = [looks[i] for i in rows]
        lb[rows], lp[rows] = shift_log_e(
            np.stack([look.cand for look in pick]),
            np.stack([look.stable for look in pick]),
            np.stack([look.scores for look in pick]),
            np.array([look.b0 for look in pick]),
        )
    codes = decision_rule.decisions(lb, lp, np.array([look.alpha for look in looks]))
    out = []
    for i, look in enumerate(looks):
        decision = decision_rule.decision_of(int(codes[i]))
        msg = (
            f"{look.said}, e-value {e_of(float(lb[i])):.3g} (breach at {1 / look.alpha:g}, "
            f"pass side {e_of(float(lp[i])):.3g}): {decision}"
        )
        nc, ns = float(look.cand.sum()), float(look.stable.sum())
        out.append(
            SequentialResult(
                decision,
                e_of(float(lb[i])),
                e_of(float(lp[i])),
                look.index,
                math.nan,
                math.nan,
                look.boundary,
                nc,
                nc + ns,
                msg,
            )
        )
    return out
