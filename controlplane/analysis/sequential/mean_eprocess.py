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
tolerance and a quarter of the range, clipped to its bounds. A breach needs evidence that the
mean is above the tolerance; a pass needs evidence that it is below: no evidence either way is
no decision. Pure (numpy); called by the quality judge and its benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Decision = Literal["breach", "pass"]
CAP = 0.5
"""``c``: the largest bet, as a share of what keeps a factor positive. At 0.5 one sample can at
most halve the capital, and the growth rate lost against the best bet in hindsight is small
(the paper's ``c`` between 0.5 and 0.75)."""


def _bets(x: FloatArray, m: float, bound: float, *, up: bool) -> FloatArray:
    """The predictable aGRAPA bets of one side."""
    n = len(x)
    prior_mean, prior_var = m, (bound / 4) ** 2
    sums = np.concatenate(([0.0], np.cumsum(x)[:-1]))
    counts = np.arange(n, dtype=float)
    mean = (prior_mean + sums) / (counts + 1)
    sq = np.concatenate(([0.0], np.cumsum((x - m) ** 2)[:-1]))
    var = np.maximum((prior_var + sq) / (counts + 1) - (mean - m) ** 2, 1e-12)
    edge = (mean - m) if up else (m - mean)
    best = edge / (var + edge**2)
    limit = CAP / m if up else CAP / (bound - m)
    bets: FloatArray = np.clip(best, 0.0, limit)
    return bets


def log_capital(
    scores: Sequence[float] | FloatArray, m: float, bound: float, *, up: bool
) -> FloatArray:
    """``log K_t`` of one side after each score (``up``: the breach side)."""
    if not 0 < m < bound:
        raise ValueError(f"the tolerance must be inside (0, {bound:g}): {m!r}")
    x = np.clip(np.asarray(scores, dtype=float), 0.0, bound)
    if len(x) == 0:
        return np.zeros(0)
    bets = _bets(x, m, bound, up=up)
    factors = 1.0 + bets * ((x - m) if up else (m - x))
    capital: FloatArray = np.cumsum(np.log(factors))
    return capital


def decide(
    scores: Sequence[float] | FloatArray, m: float, bound: float, alpha: float
) -> tuple[Decision | None, int]:
    """The first decision the scores reach and after how many: ``breach`` when the breach
    side's capital reaches ``1 / alpha`` first, ``pass`` when the pass side's does, None (and
    the number of scores) when neither has."""
    level = math.log(1.0 / alpha)
    up = np.nonzero(log_capital(scores, m, bound, up=True) >= level)[0]
    down = np.nonzero(log_capital(scores, m, bound, up=False) >= level)[0]
    first_up = int(up[0]) if len(up) else None
    first_down = int(down[0]) if len(down) else None
    if first_up is not None and (first_down is None or first_up <= first_down):
        return "breach", first_up + 1
    if first_down is not None:
        return "pass", first_down + 1
    return None, len(scores)
