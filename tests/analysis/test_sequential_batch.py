"""The batched sequential judge: a tick's looks judged together give each look's own answer.

``sequential_check.run_looks`` / ``judge_checks`` (what the controller's batched tick calls)
against the one-check path (``judge_rate``, ``judge_counts``, ``judge_latency``,
``judge_shift``, ``judge_check``) on random counts and configurations: the same decisions,
e-values (to 1e-9 relative), confidence sequences and messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.canaries import example_canary

from controlplane.analysis import sequential_check
from controlplane.analysis.count_judges import (
    SequentialResult,
    counts_look,
    judge_counts,
    judge_rate,
    rate_look,
)
from controlplane.analysis.latency_judges import (
    judge_latency,
    judge_shift,
    latency_look,
    shift_look,
)
from controlplane.spec.models import CheckSpec

LES = (0.1, 0.2, 0.3, 0.5, 1.0, 2.5, math.inf)

counts = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False).map(lambda v: round(v, 2))
alphas = st.sampled_from([0.001, 0.005, 0.01, 0.05, 0.2])


@st.composite
def histograms(draw: st.DrawFn, les: tuple[float, ...] = LES) -> dict[float, float]:
    parts = draw(st.lists(counts, min_size=len(les), max_size=len(les)))
    return dict(zip(les, np.cumsum(parts).tolist(), strict=True))


Call = tuple[Callable[..., Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
"""(look builder, one-check judge, positional args, keyword args)."""


@st.composite
def calls(draw: st.DrawFn) -> Call:
    kind = draw(st.sampled_from(["rate", "counts", "latency", "baseline", "shift"]))
    alpha = draw(alphas)
    if kind == "rate":
        total = draw(counts)
        events = draw(st.floats(min_value=0.0, max_value=1.0)) * total
        limit = draw(st.floats(min_value=1e-4, max_value=0.5))
        return rate_look, judge_rate, (events, total, limit, alpha), {}
    if kind == "counts":
        nc, ns = draw(counts), draw(counts)
        xc = draw(st.floats(min_value=0.0, max_value=0.3)) * nc
        xs = draw(st.floats(min_value=0.0, max_value=0.3)) * ns
        tol = draw(st.sampled_from([0.0, 0.1, 0.5, -0.2]))
        return counts_look, judge_counts, (xc, nc, xs, ns, tol, alpha), {}
    if kind == "latency":
        bound = draw(st.sampled_from([0.15, 0.2, 0.5, 1.0]))
        q = draw(st.sampled_from([0.5, 0.95, 0.99]))
        args = (draw(histograms()), None, q, alpha)
        return latency_look, judge_latency, args, {"bound_s": bound}
    if kind == "baseline":
        q = draw(st.sampled_from([0.5, 0.95, 0.99]))
        kw = {"tolerance": draw(st.sampled_from([0.0, 0.2])), "stable_boundary_s": 0.3}
        return latency_look, judge_latency, (draw(histograms()), draw(histograms()), q, alpha), kw
    tol = draw(st.sampled_from([0.0, 0.0, 0.1]))
    args = (draw(histograms()), draw(histograms()), draw(histograms()), alpha)
    return shift_look, judge_shift, args, {"tolerance": tol}


def _same(batched: SequentialResult, alone: SequentialResult) -> None:
    assert batched.decision == alone.decision
    assert batched.message == alone.message
    for field in ("e_value", "e_pass", "estimate", "ci_low", "ci_high", "boundary", "trials"):
        got, want = getattr(batched, field), getattr(alone, field)
        if math.isnan(want):
            assert math.isnan(got), field
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-300), field


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls(), min_size=1, max_size=12))
def test_looks_judged_together_equal_each_look_judged_alone(drawn: list[Call]) -> None:
    looks, alone = [], []
    for build, judge, args, kw in drawn:
        try:
            looks.append(build(*args, **kw))
        except Exception as exc:
            with pytest.raises(type(exc)):
                judge(*args, **kw)
            continue
        alone.append(judge(*args, **kw))
    batched = sequential_check.run_looks(looks)
    assert len(batched) == len(alone)
    for b, a in zip(batched, alone, strict=True):
        _same(b, a)


CANARY = example_canary()
ERRORS = CANARY.metric("errors")


def _check(**fields: Any) -> CheckSpec:
    base = {"metric": "errors", "judge": "sequential", "above": "1%"}
    return CheckSpec.model_validate({**base, **fields})


@st.composite
def check_looks(draw: st.DrawFn) -> sequential_check.CheckLook:
    baseline = draw(st.booleans())
    fields: dict[str, Any] = {"alpha": draw(st.sampled_from([0.01, 0.05]))}
    if baseline:
        fields |= {"compare": "baseline", "above": draw(st.sampled_from(["0%", "20%"]))}
    if draw(st.booleans()):
        fields["finalLook"] = 0.5
    nc, ns = draw(counts), draw(counts)
    found = sequential_check.Counts(
        cand_events=draw(st.floats(min_value=0.0, max_value=0.1)) * nc,
        cand_total=nc,
        stable_events=draw(st.floats(min_value=0.0, max_value=0.1)) * ns,
        stable_total=ns,
    )
    if "finalLook" in fields and draw(st.booleans()):
        found = replace(found, closing=found)
    assert ERRORS is not None
    check = _check(**fields)
    return sequential_check.CheckLook("k", check, ERRORS, found, draw(st.sampled_from([None, 100])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(check_looks(), min_size=1, max_size=10))
def test_checks_judged_together_equal_each_check_judged_alone(items: list[Any]) -> None:
    together = sequential_check.judge_checks(items)
    for item, got in zip(items, together, strict=True):
        want = sequential_check.judge_check(
            item.key, item.check, item.metric, item.counts, min_samples=item.min_samples
        )
        assert got == want
