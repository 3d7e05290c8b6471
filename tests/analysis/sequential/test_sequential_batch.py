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
from support.canaries import model_canary

from controlplane.analysis.sequential import check as sequential_check
from controlplane.analysis.sequential.buckets import cumulative_quantile
from controlplane.analysis.sequential.count_judges import (
    CountLook,
    SequentialResult,
    counts_look,
    judge_counts,
    judge_looks,
    judge_rate,
    rate_look,
)
from controlplane.analysis.sequential.histogram_rows import row_quantiles
from controlplane.analysis.sequential.latency_batch import Prepared
from controlplane.analysis.sequential.latency_judges import (
    ShiftLook,
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


CANARY = model_canary()
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
        assert _same_but_evidence(got, want)


# ------------------------------------------------------------------------- latency looks on arrays

LATENCY = CANARY.metric("latency")  # e2e-latency, p95
LATENCY_P99 = CANARY.metric("latency-p99")
LAYOUTS: tuple[tuple[float, ...], ...] = (
    LES,
    (0.1, 0.25, 0.5, 1.0, math.inf),  # another family's bounds
    (*(float(b) for b in np.geomspace(0.01, 10.0, 12).round(4)), math.inf),  # 13 buckets
    (math.inf,),  # +Inf only: no finite bound
)


@st.composite
def cumulative(draw: st.DrawFn, les: tuple[float, ...]) -> dict[float, float] | None:
    """A cumulative ``{le: count}`` on ``les``, as a grouped answer gives it: in a drawn order,
    sometimes empty, all zero, jittered (a bucket below the one before), or broken."""
    shape = draw(st.sampled_from(["counts"] * 30 + ["none", "zero", "jitter", "nan", "negative"]))
    if shape == "none":
        return None
    parts = draw(st.lists(counts, min_size=len(les), max_size=len(les)))
    cum = [0.0] * len(les) if shape == "zero" else np.cumsum(parts).tolist()
    if shape == "jitter" and len(les) > 1:
        cum[0] = cum[1] + 3.5
    if shape in ("nan", "negative"):
        cum[draw(st.integers(0, len(les) - 1))] = math.nan if shape == "nan" else -2.0
    order = draw(st.permutations(range(len(les))))
    return {les[i]: cum[i] for i in order}


@st.composite
def latency_looks(draw: st.DrawFn) -> sequential_check.CheckLook:
    """A latency check (absolute limit, or ``test: shift`` with or without a tolerance and a
    closing test) with histograms on one layout (mostly) or several."""
    layout = draw(st.sampled_from(LAYOUTS[:3]))

    def hist() -> dict[float, float] | None:
        les = layout if draw(st.integers(0, 5)) else draw(st.sampled_from(LAYOUTS))
        return draw(cumulative(les))

    alpha = draw(st.sampled_from([0.01, 0.05, 0.2]))
    metric = draw(st.sampled_from([LATENCY, LATENCY_P99]))
    assert metric is not None
    if draw(st.booleans()):
        above = draw(st.sampled_from(["150ms", "500ms", "1s", "40s"]))  # 40s: no bound above
        fields: dict[str, Any] = {"above": above}
        found = sequential_check.Counts(cand_buckets=hist())
    else:
        fields = {"compare": "baseline", "test": "shift"}
        fields["above"] = draw(st.sampled_from(["0%", "0%", "10%"]))
        if fields["above"] == "0%" and draw(st.booleans()):
            fields["finalLook"] = 0.5
        found = sequential_check.Counts(
            cand_buckets=hist(), stable_buckets=hist(), reference_buckets=hist()
        )
        if "finalLook" in fields and draw(st.booleans()):
            found = replace(
                found,
                closing=sequential_check.Counts(cand_buckets=hist(), stable_buckets=hist()),
            )
    check = _check(metric=metric.name, alpha=alpha, **fields)
    return sequential_check.CheckLook("k", check, metric, found, draw(st.sampled_from([None, 100])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(latency_looks(), check_looks()), min_size=1, max_size=16))
def test_latency_looks_built_on_arrays_equal_each_look_built_alone(items: list[Any]) -> None:
    """``judge_checks`` builds the latency looks on arrays grouped by bucket layout
    (``latency_batch``); ``judge_check`` builds each alone: the same results, messages included,
    over mixed layouts and orders, missing, empty, all-zero, jittered and broken histograms,
    tolerances and closing tests."""
    together = sequential_check.judge_checks(items)
    for item, got in zip(items, together, strict=True):
        want = sequential_check.judge_check(
            item.key, item.check, item.metric, item.counts, min_samples=item.min_samples
        )
        assert _same_but_evidence(got, want)


@pytest.mark.parametrize("size", [7, 13, 22])
def test_the_arrays_build_the_usual_latency_looks(size: int) -> None:
    """The usual checks (one layout, counts on both variants) are built on arrays, not left to
    the one-check builders, to the bit (a look never built on arrays would not show in the
    comparison above), with fewer than 8 buckets and with more (numpy sums those in another
    order along a 2-d array's rows than along one row)."""
    assert LATENCY is not None
    les = (*(float(b) for b in np.geomspace(0.01, 10.0, size - 1).round(5)), math.inf)
    rng = np.random.default_rng(size)
    items = []
    for k in range(5):
        cand = dict(zip(les, np.cumsum(rng.uniform(0, 50, size)).tolist(), strict=True))
        stable = dict(zip(les, np.cumsum(rng.uniform(0, 500, size)).tolist(), strict=True))
        ref = dict(zip(les, np.cumsum(rng.uniform(0, 500, size)).tolist(), strict=True))
        shift = _check(metric="latency", compare="baseline", test="shift", above=f"{5 * k}%")
        absolute = _check(metric="latency", above="500ms")
        items += [
            sequential_check.CheckLook(
                "s",
                shift,
                LATENCY,
                sequential_check.Counts(
                    cand_buckets=cand, stable_buckets=stable, reference_buckets=ref
                ),
                None,
            ),
            sequential_check.CheckLook(
                "a", absolute, LATENCY, sequential_check.Counts(cand_buckets=cand), None
            ),
        ]
    built = sequential_check._prepare_latency(items)
    assert set(built) == set(range(len(items)))
    for i, item in enumerate(items):
        alone = sequential_check._prepare(item.check, item.metric, item.counts, item.check.alpha)
        got = built[i]
        assert isinstance(alone, Prepared)
        assert got is not None
        assert (got.served, got.quantity, got.stable_quantity) == (
            alone.served,
            alone.quantity,
            alone.stable_quantity,
        )
        if isinstance(alone.look, ShiftLook):
            assert isinstance(got.look, ShiftLook)
            for field in ("cand", "stable", "scores"):
                assert np.array_equal(getattr(got.look, field), getattr(alone.look, field))
            assert (got.look.index, got.look.b0, got.look.said) == (
                alone.look.index,
                alone.look.b0,
                alone.look.said,
            )
        else:
            assert got.look == alone.look
        (b,), (a,) = (
            sequential_check.run_looks([got.look]),
            sequential_check.run_looks([alone.look]),
        )
        assert b == a


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(LAYOUTS),
    st.lists(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.5, 7.0, 1000.0]), min_size=13), min_size=1),
    st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_row_quantiles_are_histogram_quantile_of_each_row(
    les: tuple[float, ...], parts: list[list[float]], q: float
) -> None:
    """``histogram_rows.row_quantiles`` is ``buckets.cumulative_quantile`` row by row, to the
    bit: empty rows, flat stretches, ranks on a boundary, the +Inf bucket."""
    cum = np.cumsum(np.array([row[: len(les)] for row in parts]), axis=1)
    bounds = np.array(les)
    got = row_quantiles(bounds, cum, np.full(len(cum), q))
    for r, row in enumerate(cum):
        want = cumulative_quantile(bounds, row, q)
        assert (math.isnan(want) and math.isnan(got[r])) or got[r] == want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(calls(), min_size=1, max_size=12))
def test_count_looks_without_e_values_decide_and_report_the_same(drawn: list[Call]) -> None:
    """``judge_looks(e_values=False)`` (the batched tick's) evaluates an e-value only where it
    can reach the level: the same decisions, confidence sequences and messages as with every
    e-value, and each e-value it reports (those at or above ``1/alpha``) the same."""
    looks = []
    for build, _, args, kw in drawn:
        try:
            look = build(*args, **kw)
        except Exception:
            continue
        if isinstance(look, CountLook):
            looks.append(look)
    full = judge_looks(looks)
    lean = judge_looks(looks, e_values=False)
    for got, want in zip(lean, full, strict=True):
        assert (got.decision, got.message) == (want.decision, want.message)
        assert (got.ci_low, got.ci_high, got.estimate) == (want.ci_low, want.ci_high, want.estimate)
        for e_got, e_want in ((got.e_value, want.e_value), (got.e_pass, want.e_pass)):
            assert math.isnan(e_got) or e_got == e_want
        assert got.decision != "breach" or got.e_value == want.e_value
        assert got.decision != "pass" or got.e_pass == want.e_pass


def _same_but_evidence(together: Any, alone: Any) -> bool:
    """Equal results, but for the e-value a tick's count looks leave out where they cannot
    reach the level (``judge_looks(e_values=False)``): there ``evidence`` is None, elsewhere
    the same to 1e-9 relative, as the e-values (the arrays add in another order)."""
    if together.evidence is None:
        alone = replace(alone, evidence=None)
    elif alone.evidence is None or not math.isclose(
        together.evidence, alone.evidence, rel_tol=1e-9, abs_tol=1e-12
    ):
        return False
    return bool(replace(together, evidence=alone.evidence) == alone)
