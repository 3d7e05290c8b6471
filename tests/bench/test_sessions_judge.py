"""``bench/sessions_judge.py``: the sequential judge on conversations that stay on one variant.

Holds the design's expected verdicts (its docstring) on fixed seeds: turns of a conversation
that share a random effect roll an identical candidate back far above alpha when the judge
weighs requests, and within alpha when it weighs sessions (``traffic.session.turns``), while a
bad candidate is still rolled back.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from bench import sessions_judge

pytestmark = pytest.mark.slow
RUNS = 60
LEVEL = 2 * 0.05
"""Two checks at alpha 5 % each: a step rolls an identical candidate back at most 10 %."""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return sessions_judge


def test_sticky_conversations_weighed_by_request_roll_an_identical_candidate_back(
    bench: ModuleType,
) -> None:
    got = bench.rates(bench.Cell(6.0, 0.3, sticky=True, by_session=False), RUNS, seed=11)
    # Binomial(60, 0.10) exceeds 12 with chance under 2 %: this is the judge losing its level.
    assert got["rolled back"] > 12, got


def test_weighed_by_session_the_identical_candidate_keeps_the_level(bench: ModuleType) -> None:
    for turns, icc in ((6.0, 0.3), (12.0, 0.6)):
        got = bench.rates(bench.Cell(turns, icc, sticky=True, by_session=True), RUNS, seed=12)
        # at the level 10 %, more than 12 of 60 has chance under 2 %
        assert got["rolled back"] <= 12, (turns, icc, got)


def test_per_request_routing_needs_no_weighing(bench: ModuleType) -> None:
    got = bench.rates(bench.Cell(6.0, 0.3, sticky=False, by_session=False), RUNS, seed=13)
    assert got["rolled back"] <= 12, got


def test_weighed_by_session_a_bad_candidate_is_still_rolled_back(bench: ModuleType) -> None:
    cell = bench.Cell(6.0, 0.3, sticky=True, by_session=True, error_factor=3.0, slower=1.5)
    got = bench.rates(cell, 20, seed=14)
    assert got["rolled back"] == 20, got


def test_the_judge_says_it_weighs_by_session(bench: ModuleType) -> None:
    spec = bench.canary(6.0)
    assert bench.design_effect(spec) == 11.0
    assert bench.design_effect(bench.canary(None)) == 1.0


def test_the_quality_judge_keeps_its_level_with_one_pair_a_conversation(
    bench: ModuleType,
) -> None:
    import numpy as np

    def breaches(one: bool, seed: int) -> int:
        rng = np.random.default_rng(seed)
        return sum(bench.quality_run(rng, 6.0, 0.6, one_per_session=one) for _ in range(100))

    # alpha 5 %: Binomial(100, 0.05) exceeds 12 with chance under 0.2 %
    assert breaches(False, 21) > 12
    assert breaches(True, 22) <= 12
