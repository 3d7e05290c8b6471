"""The spec's own rules and the product's: which layer decides which problem.

:mod:`controlplane.spec.rules` checks a ModelCanary on its own (no catalogue, no router, no judge,
no vLLM version); :mod:`controlplane.validation` adds the rules that consult those layers, at
their place in the same walk. These tests pin the split: a product problem is absent from the
spec's own rules and present in validation, a spec problem is in both, and validation's problems
come in the spec's field order.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from controlplane.spec import rules
from controlplane.spec.load import parse_text
from controlplane.spec.models import DEFAULT_QUANTILE, MetricSpec, ModelCanary
from controlplane.validation import validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()


def example() -> dict[str, Any]:
    data = parse_text(EXAMPLE, "four-week.yml")[0].data
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def paths(problems: list[Any]) -> list[str]:
    return [p.path for p in problems]


def test_the_example_is_valid_both_ways() -> None:
    canary = ModelCanary.model_validate(example())
    assert rules.problems(canary) == []
    assert validate(canary) == []


def test_an_unknown_gpu_is_a_product_problem_not_the_specs() -> None:
    data = example()
    data["spec"]["candidate"]["gpu"] = "nvidia-l40z"
    canary = ModelCanary.model_validate(data)
    assert rules.problems(canary) == []
    problems = validate(canary)
    assert paths(problems) == ["spec.candidate.gpu"]
    assert "unknown GPU 'nvidia-l40z'" in problems[0].message


def test_a_sequential_check_the_judge_cannot_do_is_a_product_problem() -> None:
    data = example()
    data["spec"]["steps"][0]["rollbackOn"][0]["judge"] = "sequential"
    data["spec"]["steps"][0]["rollbackOn"][0]["below"] = "1ms"
    canary = ModelCanary.model_validate(data)
    assert rules.problems(canary) == []
    assert any(p.startswith("spec.steps[0].rollbackOn[0]") for p in paths(validate(canary)))


def test_spec_problems_are_found_by_both_and_product_ones_keep_field_order() -> None:
    data = example()
    data["spec"]["steps"][1]["weight"] = 5  # not above step 0's: the spec's own rule
    data["spec"]["candidate"]["gpu"] = "nvidia-l40z"  # the catalogue's
    data["spec"]["alerts"] = [{}]  # no channel: the spec's own rule, after the variants
    canary = ModelCanary.model_validate(data)
    own = paths(rules.problems(canary))
    assert own == ["spec.steps[1].weight", "spec.alerts[0]"]
    assert paths(validate(canary)) == [
        "spec.steps[1].weight",
        "spec.candidate.gpu",
        "spec.alerts[0]",
    ]


def test_a_latency_reads_its_quantile_or_the_default() -> None:
    """One rule for every query and judge that reads a latency histogram."""
    assert MetricSpec(name="p", builtin="ttft").quantile_or_default == DEFAULT_QUANTILE == 0.95
    assert MetricSpec(name="p", builtin="ttft", quantile=0.99).quantile_or_default == 0.99
