"""The betting e-process for a bounded mean (controlplane/analysis/sequential/mean_eprocess.py):
each side's false decisions stay within alpha at the worst null, read after every sample, and
a clear difference is decided in a few hundred pairs; the test folded batch by batch, as the
judge reads it across restarts, is the test on the whole sequence.

The rates are simulated with fixed seeds; each bound is the one-sided 3-sigma binomial limit
over the runs, so a valid test exceeds it with probability about 0.1 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.analysis.sequential.mean_eprocess import (
    CAP,
    MeanTest,
    advance,
    decide,
    log_capital,
)

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


def reference(scores: list[float], m: float, bound: float, up: bool) -> list[float]:
    """Each side's log capital written out one score at a time from the paper's formulas
    (aGRAPA from a running mean and variance that start at the tolerance and a quarter of the
    range), not from the module's arrays."""
    total, spread, log_k, out = 0.0, 0.0, 0.0, []
    for i, x in enumerate(scores):
        mean = (m + total) / (i + 1)
        var = max(((bound / 4) ** 2 + spread) / (i + 1) - (mean - m) ** 2, 1e-12)
        edge = (mean - m) if up else (m - mean)
        bet = min(max(edge / (var + edge**2), 0.0), CAP / m if up else CAP / (bound - m))
        log_k += math.log(1 + bet * ((x - m) if up else (m - x)))
        out.append(log_k)
        total, spread = total + x, spread + (x - m) ** 2
    return out


@pytest.mark.parametrize("times", [0.3, 1.0, 1.6])
@pytest.mark.parametrize("seed", range(4))
def test_the_test_folded_in_batches_is_the_test_on_the_whole_sequence(
    seed: int, times: float
) -> None:
    """Scores whose mean is ``times`` the tolerance (passed, undecided, breached late), cut
    into eight batches at random."""
    rng = np.random.default_rng(100 + seed)
    m, bound = (0.1, 1.0) if seed % 2 else (0.5, 10.0)
    scores = list(bound * rng.beta(0.5, 0.5 / (times * m / bound) - 0.5, 300))
    cuts = sorted(rng.choice(np.arange(1, 300), size=7, replace=False))
    test = MeanTest()
    for lo, hi in zip([0, *cuts], [*cuts, 300], strict=True):
        test = advance(test, scores[lo:hi], m, bound, ALPHA)
    whole = decide(scores, m, bound, ALPHA)
    assert (test.decided, test.n) == whole
    # the capital each side held when it stopped, against the written-out formulas
    for up, held in ((True, test.log_breach), (False, test.log_pass)):
        expected = reference(scores[: test.n], m, bound, up)[-1]
        assert held == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert log_capital(scores, m, bound, up=up)[: test.n] == pytest.approx(
            reference(scores[: test.n], m, bound, up), rel=1e-9, abs=1e-9
        )


def test_a_decided_test_stays_decided_and_an_open_one_keeps_its_sums() -> None:
    m = 0.1
    bad = advance(MeanTest(), [1.0] * 40, m, 1.0, ALPHA)
    assert bad.decided == "breach"
    assert bad.n < 40  # the scores after the decision were not folded in
    assert advance(bad, [0.0] * 400, m, 1.0, ALPHA) == bad
    open_ = advance(MeanTest(), [0.1, 0.2, 0.0], m, 1.0, ALPHA)
    assert open_.decided is None
    assert (open_.n, open_.total) == (3, pytest.approx(0.3))
    assert open_.spread == pytest.approx(0.0 + 0.01 + 0.01)
    assert advance(open_, [], m, 1.0, ALPHA) == open_
