"""Many cumulative histograms of one bucket layout as the rows of one array.

Owns the array form of :mod:`~controlplane.analysis.sequential.buckets` for a tick's histograms
(grouping by layout, checked rows, quantiles, sums), equal to the one-histogram functions to the
bit; a histogram they refuse is left to the one-check path. Pure; called by ``latency_batch``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from controlplane.analysis.sequential.eprocess import FloatArray

Layout = tuple[float, ...]
"""A histogram's ``le`` bounds in the order its mapping holds them."""

BoolArray = npt.NDArray[np.bool_]
K = TypeVar("K")


def layout_of(buckets: Mapping[float, float] | None) -> Layout | None:
    """The bounds of ``buckets`` in their order; None when there are none."""
    if not buckets:
        return None
    return tuple(buckets)


def by_layout(layouts: Sequence[K | None]) -> dict[K, list[int]]:
    """The indexes of ``layouts`` grouped by equal layout (None is left out), in order."""
    out: dict[K, list[int]] = {}
    for i, layout in enumerate(layouts):
        if layout is not None:
            out.setdefault(layout, []).append(i)
    return out


@dataclass(frozen=True)
class Rows:
    """Histograms of one layout: ``les`` sorted ascending (last ``+Inf``), ``raw`` the counts
    as given (rows, columns in ``les``' order), ``cum`` their running maximum along the row
    (:func:`~controlplane.analysis.sequential.buckets.checked`), ``ok`` the rows whose counts are
    all finite and non-negative (only those are meant to be used)."""

    les: FloatArray
    raw: FloatArray
    cum: FloatArray
    ok: BoolArray


def rows_of(layout: Layout, histograms: Sequence[Mapping[float, float]]) -> Rows | None:
    """The :class:`Rows` of ``histograms``, all of ``layout``; None when the layout itself is
    one :func:`~controlplane.analysis.sequential.buckets.checked` refuses (a NaN bound, no
    ``+Inf``)."""
    bounds = np.array(layout, dtype=np.float64)
    order = np.argsort(bounds, kind="stable")
    les = bounds[order]
    if les.size == 0 or np.isnan(les).any() or les[-1] != math.inf:
        return None
    if np.unique(les).size != les.size:  # pragma: no cover - mapping keys are distinct
        return None
    try:
        raw = np.array([list(h.values()) for h in histograms], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    raw = raw.reshape(len(histograms), les.size)[:, order]
    ok: BoolArray = np.asarray(np.isfinite(raw).all(axis=1) & (raw >= 0).all(axis=1))
    clean = np.where(ok[:, None], raw, 0.0)
    return Rows(les, raw, np.maximum.accumulate(clean, axis=1), ok)


def row_quantiles(les: FloatArray, cum: FloatArray, q: FloatArray) -> FloatArray:
    """:func:`~controlplane.analysis.sequential.buckets.cumulative_quantile` of every row of ``cum``
    at its own ``q`` (NaN where a row has no requests)."""
    rows = np.arange(cum.shape[0])
    total = cum[:, -1]
    rank = q * total
    i = (cum < rank[:, None]).sum(axis=1)  # searchsorted(side="left") of a sorted row
    top = len(les) - 1
    safe = np.minimum(i, top)
    lower = np.where(i == 0, 0.0, les[np.maximum(safe - 1, 0)])
    below = np.where(i == 0, 0.0, cum[rows, np.maximum(safe - 1, 0)])
    upper = les[safe]
    width = cum[rows, safe] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = lower + (upper - lower) * (rank - below) / width
    out: FloatArray = np.where(width <= 0, upper, inside)
    last = float(les[-2]) if len(les) > 1 else math.nan
    out = np.where(i >= top, last, out)
    return np.where(total <= 0, math.nan, out)


def row_sums(x: FloatArray) -> FloatArray:
    """Each row's sum, to the bit what ``row.sum()`` of that row alone gives. numpy sums a
    contiguous row of 8 or more pairwise (eight partial sums), but a 2-d array along its rows
    in another order; below 8 both add the columns in turn."""
    if x.shape[-1] < 8:
        out: FloatArray = x.sum(-1)
        return out
    return np.array([row.sum() for row in x], dtype=np.float64).reshape(x.shape[:-1])


def non_cumulative(cum: FloatArray) -> FloatArray:
    """Each row's counts per bucket
    (:func:`~controlplane.analysis.sequential.buckets.common_buckets` on histograms of one layout):
    differences of the cumulative counts, negatives clipped."""
    zeros = np.zeros((cum.shape[0], 1))
    out: FloatArray = np.diff(np.concatenate([zeros, cum], axis=1), axis=1).clip(min=0.0)
    return out
