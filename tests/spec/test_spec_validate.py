"""Cross-field validation rules: one row per rule, valid and invalid, exact path and message.

Each case mutates the four-week example (canary/four-week.yml: interval 1m, window 5m, metrics
latency / latency-p99 / errors / kpi, steps 5/25/75/100 of 7d, router gateway-api) and checks
the problems that ``check_object`` reports.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane.profiles.catalog import load_catalog
from controlplane.spec.load import parse_text
from controlplane.spec.models import ModelCanary
from controlplane.validation import check_object, check_text, validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()
PLACEHOLDERS = "{{namespace}}, {{canary}}, {{variant}}, {{window}}"

Mutation = Callable[[dict[str, Any]], None]


def example() -> dict[str, Any]:
    data = parse_text(EXAMPLE, "four-week.yml")[0].data
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def spec_of(d: dict[str, Any]) -> dict[str, Any]:
    spec = d["spec"]
    assert isinstance(spec, dict)
    return spec


def step_check(step: int, index: int, **changes: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        spec_of(d)["steps"][step]["rollbackOn"][index].update(changes)

    return mutate


def chain(*mutations: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return mutate


def set_in(*path: str | int, value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        node: Any = d
        for seg in path[:-1]:
            node = node[seg]
        node[path[-1]] = value

    return mutate


def delete(*path: str | int) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        node: Any = d
        for seg in path[:-1]:
            node = node[seg]
        del node[path[-1]]

    return mutate


def add_metric(metric: dict[str, Any]) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        spec_of(d)["analysis"]["metrics"].append(metric)

    return mutate


def add_check(step: int, check: dict[str, Any]) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        spec_of(d)["steps"][step]["rollbackOn"].append(check)

    return mutate


def known_gpus() -> str:
    return ", ".join(load_catalog().gpu_names())


SHADOW = {"duration": "14d", "promoteOn": {"metric": "kpi", "above": "3%", "for": "2d"}}

INVALID: list[tuple[str, Mutation, list[tuple[str, str]]]] = [
    (
        "weights-not-increasing",
        set_in("spec", "steps", 1, "weight", value=5),
        [
            (
                "spec.steps[1].weight",
                "weights must strictly increase: 5 is not above the previous step's 5",
            )
        ],
    ),
    (
        "last-weight-not-100",
        set_in("spec", "steps", 3, "weight", value=90),
        [
            (
                "spec.steps[3].weight",
                "the last step's weight must be 100 (it promotes the candidate), got 90",
            )
        ],
    ),
    (
        "step-without-duration",
        delete("spec", "steps", 0, "duration"),
        [("spec.steps[0].duration", "every step but the last needs a duration")],
    ),
    (
        "step-shorter-than-interval",
        set_in("spec", "steps", 0, "duration", value="30s"),
        [
            (
                "spec.steps[0].duration",
                "30s is shorter than analysis.interval (1m): the step would end before its "
                "checks are evaluated",
            )
        ],
    ),
    (
        "undefined-metric-with-hint",
        step_check(0, 0, metric="latncy"),
        [
            (
                "spec.steps[0].rollbackOn[0].metric",
                "metric 'latncy' is not defined in spec.analysis.metrics (defined: latency, "
                "latency-p99, errors, kpi); did you mean 'latency'?",
            )
        ],
    ),
    (
        "check-without-above-or-below",
        set_in("spec", "steps", 0, "rollbackOn", 0, value={"metric": "latency"}),
        [("spec.steps[0].rollbackOn[0]", "a check needs 'above' or 'below' (or both)")],
    ),
    (
        "below-not-less-than-above",
        step_check(1, 0, below="6%"),
        [
            (
                "spec.steps[1].rollbackOn[0]",
                "'below' (6%) must be less than 'above' (5%): as written every value is a breach",
            )
        ],
    ),
    (
        "percent-on-latency",
        step_check(0, 0, above="5%"),
        [
            (
                "spec.steps[0].rollbackOn[0].above",
                "'5%' does not fit metric 'latency' (e2e-latency is a latency in seconds): "
                "write e.g. 300ms or 1.5s",
            )
        ],
    ),
    (
        "ms-on-error-rate",
        step_check(0, 1, above="200ms"),
        [
            (
                "spec.steps[0].rollbackOn[1].above",
                "'200ms' does not fit metric 'errors' (error-rate is a ratio): "
                "write e.g. 0.1% or 5%",
            )
        ],
    ),
    (
        "plain-number-above-1-on-error-rate",
        step_check(0, 1, above=5),
        [
            (
                "spec.steps[0].rollbackOn[1].above",
                "5 is a bare number on a ratio (metric 'errors': error-rate, a fraction from 0 "
                "to 1): write a percentage, e.g. 5%",
            )
        ],
    ),
    (
        "percent-on-request-rate",
        chain(
            add_metric({"name": "rps", "builtin": "request-rate"}),
            add_check(0, {"metric": "rps", "below": "10%"}),
        ),
        [
            (
                "spec.steps[0].rollbackOn[2].below",
                "'10%' does not fit metric 'rps' (request-rate is a plain number): "
                "write a number without a unit",
            )
        ],
    ),
    (
        "percent-on-seconds-query",
        chain(
            add_metric({"name": "q", "query": "up", "unit": "seconds"}),
            add_check(0, {"metric": "q", "above": "5%"}),
        ),
        [
            (
                "spec.steps[0].rollbackOn[2].above",
                "'5%' does not fit metric 'q' (a query metric with unit: seconds): "
                "write e.g. 300ms or 1.5s",
            )
        ],
    ),
    (
        "ms-on-compare-baseline",
        step_check(1, 0, above="200ms"),
        [
            (
                "spec.steps[1].rollbackOn[0].above",
                "'200ms' does not fit 'compare: baseline' (a relative drift, candidate / stable "
                "- 1): write e.g. 5% or -2%",
            )
        ],
    ),
    (
        "metric-with-neither-builtin-nor-query",
        set_in("spec", "analysis", "metrics", 2, value={"name": "errors"}),
        [
            (
                "spec.analysis.metrics[2]",
                "a metric needs exactly one of 'builtin' or 'query', got neither",
            )
        ],
    ),
    (
        "metric-with-both",
        set_in("spec", "analysis", "metrics", 2, "query", value="up"),
        [
            (
                "spec.analysis.metrics[2]",
                "a metric needs exactly one of 'builtin' or 'query', got both",
            )
        ],
    ),
    (
        "quantile-on-error-rate",
        set_in("spec", "analysis", "metrics", 2, "quantile", value=0.9),
        [
            (
                "spec.analysis.metrics[2].quantile",
                "'quantile' applies only to the latency histograms (e2e-latency, ttft, "
                "inter-token-latency), not to error-rate",
            )
        ],
    ),
    (
        "quantile-on-query",
        set_in("spec", "analysis", "metrics", 3, "quantile", value=0.5),
        [
            (
                "spec.analysis.metrics[3].quantile",
                "'quantile' applies only to the latency histograms (e2e-latency, ttft, "
                "inter-token-latency), not to query metrics",
            )
        ],
    ),
    (
        "unit-on-builtin",
        set_in("spec", "analysis", "metrics", 2, "unit", value="ratio"),
        [
            (
                "spec.analysis.metrics[2].unit",
                "'unit' applies only to query metrics: error-rate is a ratio already",
            )
        ],
    ),
    (
        "unknown-placeholder-in-query",
        set_in("spec", "analysis", "metrics", 3, "query", value='up{ns="{{namespce}}"}'),
        [
            (
                "spec.analysis.metrics[3].query",
                f"unknown placeholder '{{{{namespce}}}}' (allowed: {PLACEHOLDERS}); "
                "did you mean '{{namespace}}'?",
            )
        ],
    ),
    (
        "unclosed-placeholder",
        set_in("spec", "analysis", "metrics", 3, "query", value='up{v="{{variant"}'),
        [("spec.analysis.metrics[3].query", "unclosed placeholder: '{{' without '}}'")],
    ),
    (
        "unknown-placeholder-in-cost-query",
        set_in("spec", "budget", value={"dailyLimit": 100, "costQuery": 'c{m="{{model}}"}'}),
        [
            (
                "spec.budget.costQuery",
                f"unknown placeholder '{{{{model}}}}' (allowed: {PLACEHOLDERS})",
            )
        ],
    ),
    (
        "window-placeholder-in-selector",
        set_in("spec", "analysis", "selector", value='v="{{variant}}",w="{{window}}"'),
        [
            (
                "spec.analysis.selector",
                "unknown placeholder '{{window}}' (allowed: {{namespace}}, {{canary}}, "
                "{{variant}})",
            )
        ],
    ),
    (
        "selector-without-variant",
        set_in("spec", "analysis", "selector", value='namespace="{{namespace}}"'),
        [
            (
                "spec.analysis.selector",
                "must contain {{variant}}: it is what tells the candidate's series from the "
                "stable's",
            )
        ],
    ),
    (
        "duplicate-metric-name",
        add_metric({"name": "errors", "builtin": "error-rate"}),
        [
            (
                "spec.analysis.metrics[4].name",
                "duplicate metric name 'errors' (also spec.analysis.metrics[2])",
            )
        ],
    ),
    (
        "min-samples-on-query-metric",
        step_check(1, 0, minSamples=50),
        [
            (
                "spec.steps[1].rollbackOn[0].minSamples",
                "'minSamples' applies only to built-in metrics; 'kpi' is a query metric (its "
                "sample count is unknown)",
            )
        ],
    ),
    (
        "interval-below-1s",
        set_in("spec", "analysis", "interval", value="500ms"),
        [("spec.analysis.interval", "must be at least 1s, got 500ms")],
    ),
    (
        "window-shorter-than-interval",
        set_in("spec", "analysis", "window", value="30s"),
        [
            (
                "spec.analysis.window",
                "analysis.window (30s) is shorter than analysis.interval (1m): samples between "
                "evaluations would never be looked at",
            )
        ],
    ),
    (
        "check-window-zero",
        step_check(1, 0, window=0),
        [("spec.steps[1].rollbackOn[0].window", "window must be longer than 0")],
    ),
    (
        "for-shorter-than-interval",
        step_check(0, 0, **{"for": "30s"}),
        [
            (
                "spec.steps[0].rollbackOn[0].for",
                "'for' (30s) is shorter than analysis.interval (1m): use 0 for immediate, or at "
                "least 1m",
            )
        ],
    ),
    (
        "for-longer-than-step",
        step_check(0, 0, **{"for": "8d"}),
        [
            (
                "spec.steps[0].rollbackOn[0].for",
                "'for' (8d) is longer than the step's duration (7d): this check could never "
                "take effect",
            )
        ],
    ),
    (
        "unknown-gpu",
        set_in("spec", "stable", "gpu", value="nvidia-l40"),
        [
            (
                "spec.stable.gpu",
                f"unknown GPU 'nvidia-l40'; did you mean 'nvidia-l40s'? (known: {known_gpus()})",
            )
        ],
    ),
    (
        "quantization-unsupported-on-gpu",
        set_in("spec", "candidate", "quantization", value="bitsandbytes-int8"),
        [("spec.candidate.quantization", "quantization 'bitsandbytes-int8' cannot run on *")],
    ),
    (
        "model-does-not-fit",
        set_in("spec", "model", "parameters", value=70e9),
        [
            ("spec.stable.gpu", "the model does not fit: needs 137.0 GiB * 96.5 GiB short"),
            # AWQ keeps embeddings and lm_head in bf16 (measured: docs/profiles.md)
            ("spec.candidate.gpu", "the model does not fit: needs 42.2 GiB * 1.7 GiB short"),
        ],
    ),
    (
        "candidate-differs-from-stable-only-in-replicas",
        set_in("spec", "candidate", "quantization", value="none"),
        [
            (
                "spec.candidate",
                "candidate serves the same as stable (storageUri, quantization, systemPrompt, "
                "args, gpu, gpuCount and gpuMemoryUtilization all equal) and only its replicas "
                "differ: that is not a canary. Make it equal to stable in every field but name "
                "for a no-op, or change what it serves",
            )
        ],
    ),
    (
        "same-variant-names",
        set_in("spec", "candidate", "name", value="bf16"),
        [
            (
                "spec.candidate.name",
                "candidate and stable are both named 'bf16': variants need distinct names (they "
                "label pods and metrics)",
            )
        ],
    ),
    (
        "cohort-on-kserve-knative",
        set_in(
            "spec",
            "traffic",
            value={"router": "kserve-knative", "cohort": {"header": "x-t", "values": ["a"]}},
        ),
        [
            (
                "spec.traffic.cohort",
                "router 'kserve-knative' cannot route by header (cohort); use gateway-api or istio",
            )
        ],
    ),
    (
        "cohort-on-llmisvc",
        set_in(
            "spec",
            "traffic",
            value={"router": "llmisvc", "cohort": {"header": "x", "values": ["a"]}},
        ),
        [
            (
                "spec.traffic.cohort",
                "router 'llmisvc' cannot route by header (cohort); use gateway-api or istio",
            )
        ],
    ),
    (
        "shadow-on-kserve",
        chain(
            set_in("spec", "traffic", value={"router": "kserve"}),
            set_in("spec", "shadow", value=SHADOW),
        ),
        [
            (
                "spec.shadow",
                "router 'kserve' cannot mirror traffic (shadow); use gateway-api or istio",
            )
        ],
    ),
    (
        "shadow-on-kserve-knative",
        chain(
            set_in("spec", "traffic", value={"router": "kserve-knative"}),
            set_in("spec", "shadow", value=SHADOW),
        ),
        [
            (
                "spec.shadow",
                "router 'kserve-knative' cannot mirror traffic (shadow); use gateway-api or istio",
            )
        ],
    ),
    (
        "shadow-promote-on-undefined-metric",
        set_in(
            "spec",
            "shadow",
            value={"duration": "14d", "promoteOn": {"metric": "win-rate", "above": "3%"}},
        ),
        [
            (
                "spec.shadow.promoteOn.metric",
                "metric 'win-rate' is not defined in spec.analysis.metrics (defined: latency, "
                "latency-p99, errors, kpi)",
            )
        ],
    ),
    (
        "shadow-promote-for-longer-than-shadow",
        set_in("spec", "shadow", value={**SHADOW, "duration": "1d"}),
        [
            (
                "spec.shadow.promoteOn.for",
                "'for' (2d) is longer than the shadow duration (1d): this check could never "
                "take effect",
            )
        ],
    ),
    (
        "shadow-rollback-check-unit",
        set_in(
            "spec", "shadow", value={**SHADOW, "rollbackOn": [{"metric": "errors", "above": "1s"}]}
        ),
        [
            (
                "spec.shadow.rollbackOn[0].above",
                "'1s' does not fit metric 'errors' (error-rate is a ratio): write e.g. 0.1% or 5%",
            )
        ],
    ),
    (
        "throttle-weight-not-below-first-step",
        set_in("spec", "budget", value={"dailyLimit": 100, "throttleWeight": 5}),
        [
            (
                "spec.budget.throttleWeight",
                "must be below the first step's weight (5), got 5: throttling would not lower the "
                "weight",
            )
        ],
    ),
    (
        "alert-without-channel",
        set_in("spec", "alerts", value=[{"events": ["rollback"]}]),
        [
            (
                "spec.alerts[0]",
                "an alert needs exactly one of slack, webhook or alertmanager, got none",
            )
        ],
    ),
    (
        "alert-with-two-channels",
        set_in("spec", "alerts", 0, "webhook", value={"url": "https://hooks.example.com/x"}),
        [
            (
                "spec.alerts[0]",
                "an alert needs exactly one of slack, webhook or alertmanager, got slack and "
                "webhook",
            )
        ],
    ),
]


def _matches(expected: str, actual: str) -> bool:
    if "*" not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("*"))
    return re.fullmatch(pattern, actual, re.S) is not None


@pytest.mark.parametrize(
    ("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in INVALID]
)
def test_rule_reports_path_and_message(mutation: Mutation, expected: list[tuple[str, str]]) -> None:
    data = example()
    mutation(data)
    problems = [(p.path, p.message) for p in check_object(data)]
    assert len(problems) == len(expected), problems
    for (want_path, want_message), (path, message) in zip(expected, problems, strict=True):
        assert path == want_path
        assert _matches(want_message, message), message


VALID: list[tuple[str, Mutation]] = [
    ("the-example", lambda d: None),
    ("zero-on-error-rate", step_check(0, 1, above=0)),
    ("zero-on-compare-baseline", step_check(1, 0, above=0, below="-5%")),
    ("for-not-a-multiple-of-interval", step_check(0, 0, **{"for": "90s"})),
    ("last-step-with-duration", set_in("spec", "steps", 3, "duration", value="1d")),
    ("first-step-at-weight-0", set_in("spec", "steps", 0, "weight", value=0)),
    ("single-step", set_in("spec", "steps", value=[{"weight": 100}])),
    (
        "query-metric-without-unit-takes-any-threshold",
        chain(
            add_metric({"name": "q", "query": "up"}), add_check(0, {"metric": "q", "above": "2s"})
        ),
    ),
    (
        "min-samples-on-builtin",
        step_check(0, 0, minSamples=500),
    ),
    (
        "hardware-only-change",
        chain(
            set_in("spec", "candidate", "quantization", value="none"),
            set_in("spec", "candidate", "gpu", value="nvidia-h100-80gb"),
        ),
    ),
    (
        "no-parameters-skips-fit",
        chain(
            delete("spec", "model", "parameters"),
            set_in("spec", "stable", "gpu", value="nvidia-l4"),
        ),
    ),
    (
        "shadow-and-cohort-on-istio",
        chain(
            set_in(
                "spec",
                "traffic",
                value={
                    "router": "istio",
                    "hosts": ["a.example.com"],
                    "cohort": {"header": "x-t", "values": ["a"]},
                },
            ),
            set_in("spec", "shadow", value=SHADOW),
        ),
    ),
    (
        "throttle-below-first-step",
        set_in("spec", "budget", value={"dailyLimit": 1, "throttleWeight": 4}),
    ),
    ("selector-with-variant", set_in("spec", "analysis", "selector", value='v="{{variant}}"')),
]


@pytest.mark.parametrize("mutation", [pytest.param(m, id=i) for i, m in VALID])
def test_valid_variations_have_no_problems(mutation: Mutation) -> None:
    data = example()
    mutation(data)
    assert check_object(data) == []


def test_every_problem_is_reported_not_only_the_first() -> None:
    data = example()
    for mutation in (m for i, m, _ in INVALID if i in {"last-weight-not-100", "unknown-gpu"}):
        mutation(data)
    step_check(0, 0, above="5%")(data)
    paths = [p.path for p in check_object(data)]
    assert paths == [
        "spec.steps[0].rollbackOn[0].above",
        "spec.steps[3].weight",
        "spec.stable.gpu",
    ]


def test_validate_takes_a_model_and_returns_paths_without_lines() -> None:
    data = example()
    set_in("spec", "steps", 3, "weight", value=90)(data)
    problems = validate(ModelCanary.model_validate(data))
    assert [(p.path, p.line, p.file) for p in problems] == [("spec.steps[3].weight", None, None)]


@pytest.mark.parametrize(
    ("old", "new", "anchor", "path"),
    [
        pytest.param(
            "- weight: 100", "- weight: 90", "- weight: 90", "spec.steps[3].weight", id="weight"
        ),
        pytest.param(
            "{metric: latency, above: 300ms}",
            "{metric: latency, above: 5%}",
            "above: 5%",
            "spec.steps[0].rollbackOn[0].above",
            id="threshold",
        ),
        pytest.param(
            "    gpu: nvidia-l40s\n    replicas: 2",
            "    gpu: nvidia-l40\n    replicas: 2",
            "gpu: nvidia-l40\n",
            "spec.stable.gpu",
            id="gpu",
        ),
        pytest.param(
            "- weight: 5\n      duration: 7d\n",
            "- weight: 5\n",
            "- weight: 5\n",
            "spec.steps[0].duration",
            id="missing-field-at-its-parent",
        ),
    ],
)
def test_problems_carry_the_yaml_line(old: str, new: str, anchor: str, path: str) -> None:
    text = EXAMPLE.replace(old, new, 1)
    assert text != EXAMPLE
    line = text[: text.index(anchor)].count("\n") + 1
    problems = check_text(text, "four-week.yml")
    assert [(p.file, p.line, p.path) for p in problems] == [("four-week.yml", line, path)]


SEQ_HEAD = """\
apiVersion: canary.controlplane.dev/v1alpha1
kind: ModelCanary
metadata: {name: seq, namespace: ml}
spec:
  model: {name: m}
  stable: {name: a, storageUri: "hf://o/m", gpu: nvidia-l40s}
  candidate: {name: b, storageUri: "hf://o/m", gpu: nvidia-l40s, quantization: fp8}
  traffic: {router: kserve}
  analysis:
    metrics:
      - {name: errors, builtin: error-rate}
"""
"""A spec up to its second metric: the sequential validation tests add the rest (line 12 on)."""


def test_sequential_judge_on_an_unsupported_check_is_a_validation_error() -> None:
    text = (
        SEQ_HEAD
        + """\
      - {name: kpi, query: "sum(rate(x{variant=\\"{{variant}}\\"}[{{window}}]))"}
  steps:
    - weight: 5
      duration: 1h
      rollbackOn:
        - {metric: errors, above: 1%, judge: sequential}
        - {metric: kpi, below: 0.5, judge: sequential}
    - weight: 100
"""
    )
    problems = check_text(text, "seq.yml")
    found = {(p.line, p.path) for p in problems}
    assert found == {(18, "spec.steps[0].rollbackOn[1].judge")}, problems


def test_shift_test_needs_a_sequential_latency_comparison_and_a_tolerance_in_range() -> None:
    text = (
        SEQ_HEAD
        + """\
      - {name: latency, builtin: e2e-latency, quantile: 0.99}
  steps:
    - weight: 5
      duration: 1h
      rollbackOn:
        - {metric: latency, compare: baseline, above: 0%, judge: sequential, test: shift}
        - {metric: latency, compare: baseline, above: 0%, test: shift}
        - {metric: latency, compare: baseline, above: -10%, judge: sequential, test: shift}
        - {metric: errors, compare: baseline, above: 0%, judge: sequential, test: shift}
        - {metric: latency, above: 300ms, judge: sequential, test: shift}
    - weight: 100
"""
    )
    problems = check_text(text, "seq.yml")
    found = {(p.line, p.path) for p in problems}
    assert found == {
        (18, "spec.steps[0].rollbackOn[1].test"),
        (19, "spec.steps[0].rollbackOn[2].above"),
        (20, "spec.steps[0].rollbackOn[3].test"),
        (21, "spec.steps[0].rollbackOn[4].test"),
    }, problems
    assert "0% to 1000%" in next(p.message for p in problems if p.line == 19)
    # a tolerance in range is a non-inferiority margin (docs/judges.md)
    tolerant = text.replace("above: -10%, judge", "above: 10%, judge")
    assert 19 not in {p.line for p in check_text(tolerant, "seq.yml")}
    unknown = text.replace("above: 300ms, judge: sequential, test: shift", "test: wide")
    assert {(p.line, p.path) for p in check_text(unknown, "seq.yml")} == {
        (21, "spec.steps[0].rollbackOn[4].test")
    }


def test_final_look_needs_a_sequential_check_in_a_step_with_a_duration() -> None:
    text = (
        SEQ_HEAD
        + """\
  shadow:
    duration: 1h
    promoteOn: {metric: errors, below: 1%}
    rollbackOn:
      - {metric: errors, above: 1%, judge: sequential, finalLook: 0.5}
  steps:
    - weight: 5
      duration: 1h
      rollbackOn:
        - {metric: errors, compare: baseline, above: 0%, judge: sequential, finalLook: 0.5}
        - {metric: errors, above: 1%, finalLook: 0.5}
    - weight: 100
      rollbackOn:
        - {metric: errors, above: 1%, judge: sequential, finalLook: 0.5}
"""
    )
    text = text.replace("router: kserve", "router: istio, hosts: [m.example.com]")  # mirrors
    problems = check_text(text, "seq.yml")
    found = {(p.line, p.path) for p in problems}
    assert found == {
        (16, "spec.shadow.rollbackOn[0].finalLook"),
        (22, "spec.steps[0].rollbackOn[1].finalLook"),
        (25, "spec.steps[1].rollbackOn[0].finalLook"),
    }, problems
    said = {p.line: p.message for p in problems}
    assert "a step's rollbackOn" in said[16]
    assert "needs judge: sequential" in said[22]
    assert "this step has none" in said[25]
    whole = text.replace("above: 0%, judge: sequential, finalLook: 0.5", "above: 0%, finalLook: 1")
    assert (21, "spec.steps[0].rollbackOn[0].finalLook") in {
        (p.line, p.path) for p in check_text(whole, "seq.yml")
    }
