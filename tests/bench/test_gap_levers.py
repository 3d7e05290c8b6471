"""Tests of bench/gap_levers.py: the budget-split lever decides through the verdict's judge.

At the verdict's own alpha it must be ``blast_seeds.judge`` exactly; a larger latency alpha may
only decide a latency regression sooner, and must leave ``blast_seeds`` as it found it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gl(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    for name in ("gap_levers", "blast_seeds", "bench.gap_levers", "bench.blast_seeds"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module("bench.gap_levers")


def _streams(gl: ModuleType, name: str, rps: float, runs: int = 60) -> object:
    bs = gl.bs
    scenario = next(s for s in bs.SCENARIOS if s.name == name)
    return bs.simulate(scenario, runs, rps, np.random.default_rng(7))


def test_at_the_verdicts_alpha_it_is_the_verdicts_judge(gl: ModuleType) -> None:
    bs = gl.bs
    for name in ("+30% P99", "2x error rate", "identical"):
        st = _streams(gl, name, 10.0)
        mine, theirs = gl.judge_at(bs.ALPHA, st), bs.judge(st)
        for field in ("rolled", "look", "served"):
            assert np.array_equal(getattr(mine, field), getattr(theirs, field)), (name, field)


def test_more_alpha_on_latency_decides_a_slowdown_no_later(gl: ModuleType) -> None:
    bs = gl.bs
    st = _streams(gl, "+30% P99", 10.0)
    even, whole = gl.judge_at(bs.ALPHA, st), gl.judge_at(bs.BUDGET, st)
    assert whole.rolled.all()
    assert even.rolled.all()
    assert (whole.look <= even.look).all()
    assert (whole.look < even.look).any()  # the lever moves something


def test_the_errors_check_keeps_the_verdicts_alpha(gl: ModuleType) -> None:
    bs = gl.bs
    st = _streams(gl, "2x error rate", 200.0)
    err, _ = bs.judge_checks(st)
    split_err, _ = gl.split_checks(bs.BUDGET)(st)
    assert np.array_equal(err, split_err)
    gl.judge_at(bs.BUDGET, st)
    assert bs.ALPHA == bs.BUDGET / 2  # both restored
    assert bs.judge_checks.__name__ == "judge_checks"


def test_the_table_names_each_row_at_each_alpha(gl: ModuleType) -> None:
    text = gl.table(runs=20, seeds=gl.bs.TUNING_SEEDS[:1])
    body = text.splitlines()[2:]
    assert len(body) == len(gl.ALPHAS) * len(gl.ROWS)
    assert "| 0.01 | +30% P99, 10 req/s |" in text
