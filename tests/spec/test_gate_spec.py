"""Validation of ``spec.gates`` and ``steps[].approval``, and of no-op specs, reported as
``FILE:LINE: path: message`` like every spec problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.validation import check_file, check_text

ROOT = Path(__file__).resolve().parents[2]
GATED = (ROOT / "canary" / "gated.yml").read_text()


def problems(text: str) -> list[str]:
    return [p.format() for p in check_text(text, "gated.yml")]


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return lines[occurrence]


def test_the_example_is_valid() -> None:
    assert check_file(ROOT / "canary" / "gated.yml") == []


def test_unknown_placeholder_names_file_line_and_path() -> None:
    text = GATED.replace('min-score: "0.95"', 'min-score: "{{candidate.endpiont}}"')
    (found,) = problems(text)
    line = line_of(text, "endpiont")
    assert found.startswith(
        f"gated.yml:{line}: spec.gates[2].parameters.min-score: unknown placeholder "
        "'{{candidate.endpiont}}' (allowed: {{canary}}, {{namespace}}, {{model}}, {{step}}, "
    )
    assert found.endswith("did you mean '{{candidate.endpoint}}'?")


def test_unclosed_placeholder() -> None:
    text = GATED.replace('model: "{{model}}"\n        min-score: "0.95"', 'model: "{{model"')
    line = line_of(text, '"{{model"')
    assert problems(text) == [
        f"gated.yml:{line}: spec.gates[2].parameters.model: unclosed placeholder: '{{{{' "
        "without '}}'"
    ]


@pytest.mark.parametrize(
    ("old", "new", "anchor", "path", "message"),
    [
        (
            "steps: [2, 3]",
            "steps: [2, 4]",
            "steps: [2, 4]",
            "spec.gates[1].steps[1]",
            "there is no step 4: the spec has 3 steps",
        ),
        (
            "steps: [2, 3]",
            "steps: [2, 2]",
            "steps: [2, 2]",
            "spec.gates[1].steps[1]",
            "step 2 is listed twice",
        ),
        (
            "      before: step\n      steps: [2, 3]\n",
            "      before: step\n",
            "- name: regression",
            "spec.gates[1].steps",
            "'before: step' needs 'steps': the 1-based numbers of the steps the gate runs "
            "before, e.g. [2, 3]",
        ),
        (
            "      before: first-step\n",
            "      before: first-step\n      steps: [1]\n",
            "steps: [1]",
            "spec.gates[0].steps",
            "'steps' applies only to 'before: step' (this gate runs before first-step)",
        ),
        (
            "- name: final-eval",
            "- name: regression",
            ("- name: regression", 1),
            "spec.gates[2].name",
            "duplicate gate name 'regression' (also spec.gates[1])",
        ),
        (
            "      timeout: 1h\n",
            "      timeout: 500ms\n",
            "timeout: 500ms",
            "spec.gates[0].timeout",
            "must be at least 1s, got 500ms",
        ),
        (
            "      timeout: 1h\n",
            "      timeout: 1h\n      namespace: kube-system\n",
            "namespace: kube-system",
            "spec.gates[0].namespace",
            "must be the canary's namespace 'ml-serving', got 'kube-system': a gate's Workflow "
            "runs in the canary's namespace only (leave namespace out)",
        ),
        (
            "{name: llm-regression-eval}\n      parameters:\n        endpoint",
            "{name: llm-regression-eval, clusterScope: true}\n      namespace: argo-jobs\n"
            "      parameters:\n        endpoint",
            "namespace: argo-jobs",
            "spec.gates[1].namespace",
            "must be the canary's namespace 'ml-serving', got 'argo-jobs': a gate's Workflow "
            "runs in the canary's namespace only (leave namespace out)",
        ),
    ],
    ids=[
        "step-out-of-range",
        "step-twice",
        "step-without-steps",
        "steps-without-step",
        "duplicate-name",
        "timeout-too-short",
        "namespace-kube-system",
        "namespace-other-with-cluster-template",
    ],
)
def test_gate_rules(
    old: str, new: str, anchor: str | tuple[str, int], path: str, message: str
) -> None:
    assert old in GATED
    text = GATED.replace(old, new, 1)
    needle, occurrence = anchor if isinstance(anchor, tuple) else (anchor, 0)
    line = line_of(text, needle, occurrence)
    assert problems(text) == [f"gated.yml:{line}: {path}: {message}"]


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("before: promotion", "before: rollout", "spec.gates[2].before: "),
        ("approval: manual", "approval: yes-please", "spec.steps[1].approval: "),
        (
            "{name: llm-regression-eval}\n      parameters:\n        endpoint",
            "{name: Bad_Name}\n      parameters:\n        endpoint",
            "spec.gates[1].workflowTemplate.name",
        ),
        ('min-score: "0.95"', "min-score: 0.95", "spec.gates[2].parameters.min-score: "),
        (
            "timeout: 30m\n  steps",
            "timeout: 30m\n      argoServer: argo:2746\n  steps",
            "spec.gates[2].argoServer: ",
        ),
    ],
    ids=["before", "approval", "template-name", "parameter-not-a-string", "argo-server-url"],
)
def test_shape_errors_point_at_the_field(old: str, new: str, fragment: str) -> None:
    assert old in GATED
    found = problems(GATED.replace(old, new, 1))
    assert len(found) == 1, found
    assert fragment in found[0], found
    assert found[0].startswith("gated.yml:")


def test_a_gate_in_the_canary_namespace_and_a_cluster_template_are_valid() -> None:
    text = GATED.replace(
        "      workflowTemplate: {name: quantized-model-profile}\n",
        "      workflowTemplate: {name: quantized-model-profile, clusterScope: true}\n"
        "      namespace: ml-serving\n",
        1,
    )
    assert "clusterScope: true" in text
    assert problems(text) == []


def test_candidate_equal_to_stable_is_a_valid_no_op_even_with_the_same_name() -> None:
    head, _, _ = GATED.partition("  candidate:\n")
    _, _, tail = GATED.partition("    replicas: 1\n  traffic:")
    stable = "  candidate:\n    name: bf16\n    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct\n"
    stable += "    quantization: none\n    gpu: nvidia-l40s\n    replicas: 2\n  traffic:"
    assert problems(head + stable + tail) == []


def test_only_replicas_differing_is_still_an_error() -> None:
    head, _, _ = GATED.partition("  candidate:\n")
    _, _, tail = GATED.partition("    replicas: 1\n  traffic:")
    same = (
        "  candidate:\n    name: bf16-more\n    storageUri: hf://meta-llama/Llama-3.1-8B-Instruct\n"
    )
    same += "    quantization: none\n    gpu: nvidia-l40s\n    replicas: 4\n  traffic:"
    (found,) = problems(head + same + tail)
    assert "spec.candidate: candidate serves the same as stable" in found
    assert "only its replicas differ" in found
