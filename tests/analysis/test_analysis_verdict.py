"""Unit tests of controlplane.analysis.verdict: table-driven threshold semantics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from controlplane.analysis.verdict import judge, min_samples_for
from controlplane.spec.models import CheckSpec, MetricSpec


def check(**fields: Any) -> CheckSpec:
    return CheckSpec.model_validate({"metric": "latency", **fields})


# (id, check fields, candidate, stable, samples, minSamples, verdict, value, message fragment)
CASES: list[tuple[str, dict[str, Any], Any, Any, Any, Any, str, Any, str]] = [
    ("above-breach", {"above": "200ms"}, 0.2314, None, 500, 100, "breach", 0.2314,
     "latency 231.4ms > 200ms"),
    ("above-pass", {"above": "200ms"}, 0.15, None, 500, 100, "pass", 0.15, "150.0ms <= 200ms"),
    ("above-equal-is-pass", {"above": "200ms"}, 0.2, None, 500, 100, "pass", 0.2, "<= 200ms"),
    ("below-breach", {"below": "3%"}, 0.01, None, None, None, "breach", 0.01, "1% < 3%"),
    ("below-pass", {"below": "3%"}, 0.05, None, None, None, "pass", 0.05, ">= 3%"),
    ("both-inside", {"above": 10, "below": 2}, 5.0, None, None, None, "pass", 5.0,
     "within [2, 10]"),
    ("both-over", {"above": 10, "below": 2}, 11.0, None, None, None, "breach", 11.0, "> 10"),
    ("both-under", {"above": 10, "below": 2}, 1.0, None, None, None, "breach", 1.0, "< 2"),
    ("baseline-up", {"compare": "baseline", "above": "5%", "below": "-5%"}, 0.74, 0.70, None,
     None, "breach", 0.74 / 0.70 - 1, "drift 5.71% > 5%"),
    ("baseline-down", {"compare": "baseline", "above": "5%", "below": "-5%"}, 0.63, 0.70, None,
     None, "breach", 0.63 / 0.70 - 1, "drift -10% < -5%"),
    ("baseline-inside", {"compare": "baseline", "above": "5%", "below": "-5%"}, 0.71, 0.70, None,
     None, "pass", 0.71 / 0.70 - 1, "within [-5%, 5%]"),
    ("baseline-stable-zero", {"compare": "baseline", "above": "5%"}, 0.7, 0.0, None, None,
     "inconclusive", None, "stable value is 0"),
    ("baseline-stable-missing", {"compare": "baseline", "above": "5%"}, 0.7, None, None, None,
     "inconclusive", None, "no data for the stable"),
    ("baseline-stable-nan", {"compare": "baseline", "above": "5%"}, 0.7, math.nan, None, None,
     "inconclusive", None, "stable value is nan"),
    ("too-few-samples", {"above": "200ms"}, 0.9, None, 42, 100, "inconclusive", None,
     "too few samples: 42 of minSamples 100 requests"),
    ("samples-exactly-min", {"above": "200ms"}, 0.9, None, 100, 100, "breach", 0.9, "> 200ms"),
    ("samples-unknown", {"above": "200ms"}, 0.9, None, None, 100, "inconclusive", None,
     "request count unknown"),
    ("min-samples-zero", {"above": "200ms"}, 0.9, None, 0, 0, "breach", 0.9, "> 200ms"),
    ("no-data", {"above": "200ms"}, None, None, 500, 100, "inconclusive", None, "no data"),
    ("nan", {"above": "200ms"}, math.nan, None, 500, 100, "inconclusive", None, "nan"),
    ("inf", {"above": "200ms"}, math.inf, None, 500, 100, "inconclusive", None, "inf"),
    ("negative-inf", {"below": 0}, -math.inf, None, None, None, "inconclusive", None, "-inf"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "candidate", "stable", "samples", "min_samples", "verdict", "value", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_judge(
    fields: dict[str, Any],
    candidate: float | None,
    stable: float | None,
    samples: float | None,
    min_samples: int | None,
    verdict: str,
    value: float | None,
    fragment: str,
) -> None:
    result = judge(
        "steps[0].rollbackOn[0]",
        check(**fields),
        candidate=candidate,
        stable=stable,
        samples=samples,
        min_samples=min_samples,
    )
    assert result.verdict == verdict
    assert result.key == "steps[0].rollbackOn[0]"
    assert result.metric == "latency"
    assert fragment in result.message
    assert not result.provider_error
    if value is None:
        assert result.value is None
    else:
        assert result.value == pytest.approx(value)
    assert result.candidate is candidate or result.candidate == candidate


@pytest.mark.parametrize(
    ("metric", "fields", "expected"),
    [
        pytest.param({"builtin": "error-rate"}, {}, 100, id="builtin-default"),
        pytest.param({"builtin": "error-rate"}, {"minSamples": 20}, 20, id="builtin-explicit"),
        pytest.param({"builtin": "error-rate"}, {"minSamples": 0}, 0, id="builtin-zero"),
        pytest.param({"query": "up"}, {}, None, id="custom-none"),
        pytest.param({"query": "up"}, {"minSamples": 20}, None, id="custom-ignores"),
    ],
)
def test_min_samples_for(
    metric: dict[str, Any], fields: dict[str, Any], expected: int | None
) -> None:
    spec = MetricSpec.model_validate({"name": "latency", **metric})
    assert min_samples_for(spec, check(above=1, **fields)) == expected
