"""The betting e-process for a bounded mean (controlplane/analysis/sequential/mean_eprocess.py):
each side's false decisions stay within alpha at the worst null, read after every sample, and
a clear difference is decided in a few hundred pairs.

The rates are simulated with fixed seeds; each bound is the one-sided 3-sigma binomial limit
over the runs, so a valid test exceeds it with probability about 0.1 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.analysis.sequential.mean_eprocess import decide, log_capital

ALPHA = 0.05
RUNS = 400
PAIRS = 400


def limit(rate: float, runs: int = RUNS) -> float:
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


def share(decision: str, draw: object, m: float, bound: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(RUNS):
        got, _n = decide(draw(rng), m, bound, ALPHA)  # type: ignore[operator]
        hits += got == decision
    return hits / RUNS


@pytest.mark.parametrize("m", [0.05, 0.2])
def test_a_candidate_exactly_at_the_tolerance_breaches_at_most_alpha(m: float) -> None:
    """Disagreement as a 0/1 score with mean exactly ``m``: the worst case of the breach side's
    null, read after every pair."""
    got = share("breach", lambda rng: rng.random(PAIRS) < m, m, 1.0, seed=1)
    assert got <= limit(ALPHA), got


def test_a_candidate_at_the_tolerance_passes_at_most_alpha_too() -> None:
    """A continuous score (a capped KL over 10 nats, Beta-distributed) with mean exactly the
    tolerance: the pass side's null."""
    m, bound = 0.5, 10.0
    got = share("pass", lambda rng: bound * rng.beta(0.5, 9.5, PAIRS), m, bound, seed=2)
    assert got <= limit(ALPHA), got


def test_a_clear_difference_is_decided_and_the_right_way() -> None:
    m = 0.1
    bad = share("breach", lambda rng: rng.random(PAIRS) < 3 * m, m, 1.0, seed=3)
    good = share("pass", lambda rng: rng.random(PAIRS) < m / 4, m, 1.0, seed=4)
    assert bad >= 0.99, bad
    assert good >= 0.9, good
    # and how soon: the median pairs to a breach at three times the tolerance
    rng = np.random.default_rng(5)
    taken = [decide(rng.random(PAIRS) < 3 * m, m, 1.0, ALPHA)[1] for _ in range(101)]
    assert float(np.median(taken)) < 60


def test_no_evidence_is_no_decision_and_bad_input_is_refused() -> None:
    assert decide([], 0.1, 1.0, ALPHA) == (None, 0)
    assert decide([0.1] * 3, 0.1, 1.0, ALPHA) == (None, 3)
    assert len(log_capital([0.2, 0.3], 0.1, 1.0, up=True)) == 2
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="tolerance"):
            log_capital([0.1], bad, 1.0, up=True)
