"""Cumulative histogram buckets: parsing, checking, quantiles and boundaries.

Owns what the latency judges do with one ``{le: count}`` histogram: parsing ``le``, the checks,
Prometheus' ``histogram_quantile`` and snapping a bound to a boundary. Pure; called by the
latency judges, the check glue and the evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from controlplane.analysis.sequential.count_judges import checked_count
from controlplane.analysis.sequential.eprocess import FloatArray
from controlplane.errors import NoData
from controlplane.promql.samples import parse_le


def buckets_from(samples: Iterable[tuple[Mapping[str, str], float]]) -> dict[float, float]:
    """``{le: count}`` from the series of a ``sum by (le)`` query (empty result: empty dict)."""
    out: dict[float, float] = {}
    for labels, value in samples:
        le = labels.get("le")
        if le is None:
            raise NoData("histogram series without an le label")
        out[parse_le(le)] = out.get(parse_le(le), 0.0) + value
    return out


def checked(name: str, buckets: Mapping[float, float]) -> tuple[FloatArray, FloatArray]:
    if not buckets:
        raise NoData(f"sequential judge: no {name} histogram buckets")
    les = np.array(sorted(float(k) for k in buckets), dtype=np.float64)
    if np.isnan(les).any() or les[-1] != math.inf:
        raise NoData(f"sequential judge: {name} histogram has no +Inf bucket")
    try:
        counts = np.array([buckets[le] for le in les], dtype=np.float64)
    except (TypeError, ValueError):
        counts = np.array([math.nan])
    if (
        not np.isfinite(counts).all() or (counts < 0).any()
    ):  # which bucket, in checked_count's words
        for le in les:
            checked_count(f"{name} bucket le={le:g}", buckets[le])
        raise NoData(f"sequential judge: {name} histogram buckets are not counts")
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
    les, cum = checked("candidate", buckets)
    return cumulative_quantile(les, cum, q)


def cumulative_quantile(les: FloatArray, cum: FloatArray, q: float) -> float:
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


def common_buckets(
    *histograms: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, list[FloatArray]]:
    """The ``le`` boundaries all ``(les, cumulative)`` histograms share, and each one's
    non-cumulative counts on them (merging buckets into a coarser common partition is exact)."""
    common = histograms[0][0]
    for les, _ in histograms[1:]:
        if les.shape != common.shape or not np.array_equal(les, common):  # the usual: equal
            common = np.intersect1d(common, les)
    counts = []
    for les, cum in histograms:
        at = cum[np.searchsorted(les, common)]
        counts.append(np.diff(np.concatenate([[0.0], at])).clip(min=0.0))
    return common, counts
