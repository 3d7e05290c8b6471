"""The betting e-process for the mean of a bounded score: anytime-valid, both sides.

Owns the test of the quality judge (:mod:`controlplane.analysis.quality`): scores ``x`` in
``[0, bound]`` (a pair's KL divergence, capped, or its disagreement), one per paired request,
and a tolerance ``m``. Two capital processes, each a nonnegative supermartingale under its null,
so by Ville's inequality each crosses ``1 / alpha`` with probability at most ``alpha`` however
often it is read (Waudby-Smith and Ramdas, "Estimating means of bounded random variables by
betting", JRSS-B 2024, section 4):

- **breach** (null: the mean is at most ``m``): ``K_t = prod (1 + l_i (x_i - m))`` with
  ``0 <= l_i <= c / m``, so every factor stays above ``1 - c > 0`` as ``x >= 0``;
- **pass** (null: the mean is at least ``m``): ``K_t = prod (1 + l_i (m - x_i))`` with
  ``0 <= l_i <= c / (bound - m)``, as ``x <= bound``.

Each bet ``l_i`` is predictable (it uses ``x_1 .. x_{i-1}`` only): the approximate
growth-rate-optimal bet of that paper (aGRAPA), ``(mu - m) / (var + (mu - m)^2)`` for the breach
side (``m - mu`` for the pass side), from a running mean and variance that start at the
tolerance and a quarter of the range, clipped to its bounds. No evidence either way is no
decision. :class:`MeanTest` is all a restart needs, :func:`advance` folds the next scores into
it, and :func:`log_capital` and :func:`decide` are that fold from nothing (docs/judges.md).
Pure (numpy); called by the quality judge and its benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Decision = Literal["breach", "pass"]
CAP = 0.5
"""``c``: the largest bet, as a share of what keeps a factor positive. At 0.5 one sample can at
most halve the capital, and the growth rate lost against the best bet in hindsight is small
(the paper's ``c`` between 0.5 and 0.75)."""


@dataclass(frozen=True)
class MeanTest:
    """The test after ``n`` scores: ``total`` their sum and ``spread`` the sum of their squared
    distances to the tolerance (what the next bet reads), ``log_breach`` and ``log_pass`` each
    side's log capital, and ``decided`` the first decision, reached at the ``n``-th score: once
    decided, later scores are not folded in."""

    n: int = 0
    total: float = 0.0
    spread: float = 0.0
    log_breach: float = 0.0
    log_pass: float = 0.0
    decided: Decision | None = None


def _bets(x: FloatArray, m: float, bound: float, before: MeanTest, *, up: bool) -> FloatArray:
    """The predictable aGRAPA bets of one side on ``x``, the scores after ``before``'s."""
    prior_mean, prior_var = m, (bound / 4) ** 2
    sums = before.total + np.concatenate(([0.0], np.cumsum(x)[:-1]))
    counts = before.n + np.arange(len(x), dtype=float)
    mean = (prior_mean + sums) / (counts + 1)
    sq = before.spread + np.concatenate(([0.0], np.cumsum((x - m) ** 2)[:-1]))
    var = np.maximum((prior_var + sq) / (counts + 1) - (mean - m) ** 2, 1e-12)
    edge = (mean - m) if up else (m - mean)
    best = edge / (var + edge**2)
    limit = CAP / m if up else CAP / (bound - m)
    bets: FloatArray = np.clip(best, 0.0, limit)
    return bets


def _side(x: FloatArray, m: float, bound: float, before: MeanTest, *, up: bool) -> FloatArray:
    """One side's log capital after each score of ``x``, from ``before``'s."""
    bets = _bets(x, m, bound, before, up=up)
    factors = 1.0 + bets * ((x - m) if up else (m - x))
    start = before.log_breach if up else before.log_pass
    capital: FloatArray = start + np.cumsum(np.log(factors))
    return capital


def _checked(scores: Sequence[float] | FloatArray, m: float, bound: float) -> FloatArray:
    if not 0 < m < bound:
        raise ValueError(f"the tolerance must be inside (0, {bound:g}): {m!r}")
    return np.clip(np.asarray(scores, dtype=float), 0.0, bound)


def log_capital(
    scores: Sequence[float] | FloatArray, m: float, bound: float, *, up: bool
) -> FloatArray:
    """``log K_t`` of one side after each score (``up``: the breach side)."""
    x = _checked(scores, m, bound)
    return _side(x, m, bound, MeanTest(), up=up) if len(x) else np.zeros(0)


def advance(
    test: MeanTest, scores: Sequence[float] | FloatArray, m: float, bound: float, alpha: float
) -> MeanTest:
    """``test`` with ``scores`` (the next ones, in the order they came) folded in; the first
    side to reach ``1 / alpha`` decides (the breach side on a tie), and a decided test stays
    as it is."""
    x = _checked(scores, m, bound)
    if test.decided is not None or not len(x):
        return test
    up, down = _side(x, m, bound, test, up=True), _side(x, m, bound, test, up=False)
    level = math.log(1.0 / alpha)
    crossed = np.nonzero((up >= level) | (down >= level))[0]
    last = int(crossed[0]) if len(crossed) else len(x) - 1
    kept = x[: last + 1]
    after = replace(
        test,
        n=test.n + len(kept),
        total=test.total + float(kept.sum()),
        spread=test.spread + float(((kept - m) ** 2).sum()),
        log_breach=float(up[last]),
        log_pass=float(down[last]),
    )
    if not len(crossed):
        return after
    return replace(after, decided="breach" if up[last] >= level else "pass")


def decide(
    scores: Sequence[float] | FloatArray, m: float, bound: float, alpha: float
) -> tuple[Decision | None, int]:
    """The first decision the scores reach and after how many: ``breach`` when the breach
    side's capital reaches ``1 / alpha`` first, ``pass`` when the pass side's does, None (and
    the number of scores) when neither has."""
    test = advance(MeanTest(), scores, m, bound, alpha)
    return test.decided, test.n
