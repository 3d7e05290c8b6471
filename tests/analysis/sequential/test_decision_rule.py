"""Unit tests of controlplane.analysis.sequential.decision_rule: one check's decision at one
look."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controlplane.analysis.sequential import decision_rule as rule


def test_a_side_decides_when_its_log_e_value_reaches_log_one_over_the_level() -> None:
    thr = math.log(1 / 0.01)
    codes = rule.decisions(
        [thr, np.nextafter(thr, 0), -math.inf, -math.inf, thr + 1],
        [-math.inf, -math.inf, thr, np.nextafter(thr, 0), thr + 1],
        0.01,
    )
    assert codes.tolist() == [rule.BREACH, rule.CONTINUE, rule.PASS, rule.CONTINUE, rule.BREACH]
    assert codes.dtype == np.int8  # breach beats pass (the last)


def test_levels_broadcast_per_check() -> None:
    codes = rule.decisions([3.0, 3.0], [0.0, 0.0], np.array([0.01, 0.1]))
    assert codes.tolist() == [rule.CONTINUE, rule.BREACH]  # log 100 = 4.6 > 3 > log 10


def test_final_look_splits_alpha_and_the_closing_test_overrules_continue_and_pass() -> None:
    assert rule.anytime_alpha(0.01) == 0.01
    assert rule.anytime_alpha(0.01, 0.9) == pytest.approx(0.001)
    assert rule.closing_level(0.01, 0.9) == pytest.approx(0.009)
    codes = np.array([rule.CONTINUE, rule.PASS, rule.BREACH, rule.PASS], dtype=np.int8)
    p = np.array([0.009, 0.005, 0.5, 0.0091])
    assert rule.with_closing(codes, p, 0.01, 0.9).tolist() == [1, 1, 1, -1]
    assert not rule.closing_rejects(0.0, 0.01, 0.0).any()  # no finalLook: no closing test


def test_names() -> None:
    assert [rule.decision_of(c) for c in (1, -1, 0)] == ["breach", "pass", "continue"]
