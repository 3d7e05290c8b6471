"""The latency judges' looks of many checks at once, built on arrays.

Owns :class:`Prepared` and the array form of the latency look builders (absolute limits and the
shift test) for a tick's checks, grouped by bucket layout. A check they do not take is left out,
and the caller builds it alone with the one-check builders; the tests hold both to the same
results. Pure; called by :mod:`controlplane.analysis.sequential.check`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from controlplane.analysis.sequential.buckets import snap_up
from controlplane.analysis.sequential.count_judges import CountLook, SequentialResult, rate_look
from controlplane.analysis.sequential.histogram_rows import (
    Layout,
    by_layout,
    layout_of,
    non_cumulative,
    row_quantiles,
    row_sums,
    rows_of,
)
from controlplane.analysis.sequential.latency_judges import ShiftLook
from controlplane.analysis.sequential.rank_shift import (
    midrank_scores,
    shift_null_tilt,
    tilted_index,
)

Pending = CountLook | ShiftLook | SequentialResult
"""A judge's look before the anytime test (or its result already)."""


@dataclass(frozen=True)
class Prepared:
    """A sequential check's look (or its result already), the candidate requests it counts,
    and the candidate's (and the stable's) value in the metric's unit for the verdict."""

    look: Pending
    served: float
    quantity: float | None
    stable_quantity: float | None


Built = dict[int, Prepared | None]
"""Looks by the index of their check; None: the candidate served nothing (no look). An index
missing is a check to build alone."""


def absolute_looks(
    cands: Sequence[Mapping[float, float] | None],
    bounds: Sequence[float],
    quantiles: Sequence[float],
    alphas: Sequence[float],
) -> Built:
    """The looks of absolute latency checks (``latency-pQ above: B``): the candidate's
    cumulative buckets, ``B`` in seconds, ``Q`` and the level, per check."""
    out: Built = {}
    for layout, idx in by_layout([layout_of(c) for c in cands]).items():
        rows = rows_of(layout, [_given(cands[i]) for i in idx])
        if rows is None:
            continue
        quantity = row_quantiles(rows.les, rows.cum, np.array([quantiles[i] for i in idx]))
        snapped: dict[float, tuple[float, int] | None] = {}
        for r, i in enumerate(idx):
            if not rows.ok[r]:
                continue
            served = float(rows.cum[r, -1])
            if served <= 0:
                out[i] = None
                continue
            q = quantiles[i]
            if bounds[i] not in snapped:
                snapped[bounds[i]] = _snap(rows.les, bounds[i])
            found = snapped[bounds[i]]
            if found is None or not _absolute_ok(bounds[i], q):
                continue
            b, at = found
            try:
                look = rate_look(
                    float(rows.cum[r, -1] - rows.cum[r, at]),
                    float(rows.cum[r, -1]),
                    1.0 - q,
                    alphas[i],
                )
            except Exception:  # refused: the one-check builder says why
                continue
            said = f"share slower than {b:g}s must be <= {1 - q:.4g}: "
            out[i] = Prepared(_prefixed(look, said), served, float(quantity[r]), None)
    return out


def shift_looks(
    cands: Sequence[Mapping[float, float] | None],
    stables: Sequence[Mapping[float, float] | None],
    references: Sequence[Mapping[float, float] | None],
    tolerances: Sequence[float],
    quantiles: Sequence[float],
    alphas: Sequence[float],
) -> Built:
    """The looks of ``test: shift`` checks: the candidate's and the stable's cumulative buckets
    since the step started, the stable's before it (the reference), the tolerated slowdown,
    the metric's ``Q`` (the values reported) and the level, per check. Only checks whose three
    histograms share one layout are built here (the usual case: one histogram family)."""
    out: Built = {}
    keys: list[Layout | None] = []
    for cand, stable, reference in zip(cands, stables, references, strict=True):
        lc, ls, lr = layout_of(cand), layout_of(stable), layout_of(reference)
        keys.append(lc if lc is not None and lc == ls == lr else None)
    for layout, idx in by_layout(keys).items():
        if len(layout) < 2:
            continue
        crows, srows, rrows = (
            rows_of(layout, [_given(h[i]) for i in idx]) for h in (cands, stables, references)
        )
        if crows is None or srows is None or rrows is None:
            continue
        ok = crows.ok & srows.ok & rrows.ok
        q = np.array([quantiles[i] for i in idx])
        quantity = row_quantiles(crows.les, crows.cum, q)
        stable_quantity = row_quantiles(srows.les, srows.cum, q)
        c, s, ref = (non_cumulative(r.cum) for r in (crows, srows, rrows))
        nc, ns, nref = row_sums(c), row_sums(s), row_sums(ref)
        faster = np.concatenate([np.zeros((len(idx), 1)), np.cumsum(s, -1)[:, :-1]], axis=1)
        pairs = row_sums(c * (faster + 0.5 * s))
        # midrank_scores normalises by a sum: by row alone where numpy would sum otherwise
        scores = (
            midrank_scores(ref)
            if len(layout) < 8
            else np.stack([midrank_scores(row) for row in ref])
        )
        for r, i in enumerate(idx):
            served = float(crows.cum[r, -1])
            if not ok[r] or not _shift_ok(alphas[i], tolerances[i]):
                continue
            if served <= 0:
                out[i] = None
                continue
            n_c, n_s = float(nc[r]), float(ns[r])
            if nref[r] <= 0 or n_c == 0 or n_s == 0:
                continue  # no reference, or a variant without requests: said alone
            index = float(pairs[r] / (n_c * n_s))
            shifted = (
                f"candidate slower than stable in {100 * index:.1f}% of request pairs (50% = no "
                f"shift; {n_c:g} candidate and {n_s:g} stable requests over {len(layout)} "
                "buckets)"
            )
            boundary, b0, tol = 0.5, 0.0, tolerances[i]
            if tol > 0:
                b0 = float(shift_null_tilt(ref[r], crows.les, tol, n_c / (n_c + n_s)))
                boundary = tilted_index(ref[r], midrank_scores(ref[r]), b0)
                shifted += f"; tolerated: {100 * tol:g}% slower ({100 * boundary:.1f}%)"
            alpha = float(alphas[i])
            look = ShiftLook(c[r], s[r], scores[r], b0, alpha, index, boundary, shifted)
            out[i] = Prepared(look, served, float(quantity[r]), float(stable_quantity[r]))
    return out


def _given(h: Mapping[float, float] | None) -> Mapping[float, float]:
    assert h is not None
    return h


def _snap(les: np.ndarray, bound: float) -> tuple[float, int] | None:
    """:func:`~controlplane.analysis.sequential.buckets.snap_up` of ``bound`` and its column; None
    when the one-check builder refuses it."""
    if not (math.isfinite(bound) and bound > 0):
        return None
    try:
        b = snap_up(les, bound)
    except Exception:
        return None
    return b, int(np.searchsorted(les, b))


def _absolute_ok(bound: float, q: float) -> bool:
    return 0.0 < q < 1.0 and math.isfinite(bound) and bound > 0


def _shift_ok(alpha: float, tolerance: float) -> bool:
    """The configuration :func:`~controlplane.analysis.sequential.latency_judges.shift_look`
    accepts."""
    good_alpha = isinstance(alpha, int | float) and 0.0 < float(alpha) < 0.5
    return good_alpha and math.isfinite(tolerance) and 0.0 <= tolerance <= 10.0


def _prefixed(look: CountLook | SequentialResult, prefix: str) -> CountLook | SequentialResult:
    if isinstance(look, SequentialResult):
        return replace(look, message=prefix + look.message)
    return replace(look, prefix=prefix + look.prefix)
