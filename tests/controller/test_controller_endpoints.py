"""A spec's URLs outside the controller's allow-list (issue 33: the controller's token sent to a
spec-chosen URL), on the fake cluster with the controller wired as ``canaryctl controller``.

A spec naming a Prometheus, an Argo Server or an alert URL that no ``--allow-*`` flag (nor the
controller's own ``--prometheus`` / ``--argo-server``) allows is invalid: ``phase: invalid``, the
problem at its path in ``status.problems``, ``Stalled=True`` and an ``InvalidSpec`` Warning
Event, and nothing is applied (no finalizer, no serving object, no route). With the URL allowed,
the same spec rolls out. A gate's Workflow namespace other than the canary's is refused the same
way, whatever the flags."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from support.api import NAME, NS, World, canary

from controlplane.kube.client import Obj

T0 = 1_800_000_000.0
ISVC = ("serving.kserve.io/v1beta1", "InferenceService")
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATE = {"name": "eval", "before": "promotion", "workflowTemplate": {"name": "llm-eval"}}
ANALYSIS = copy.deepcopy(canary()["spec"]["analysis"])

CASES: dict[str, tuple[dict[str, Any], str, str, tuple[str, str]]] = {
    # id: (spec sections, problem path, message start, the flag that allows it)
    "prometheus": (
        {"analysis": {**ANALYSIS, "prometheus": "http://prom.elsewhere:9090"}},
        "spec.analysis.prometheus",
        "http://prom.elsewhere:9090 is not among the Prometheus URLs this controller may query "
        "(an administrator allows it with --allow-prometheus or the chart's "
        "allowedEndpoints.prometheus)",
        ("--allow-prometheus", "http://prom.elsewhere:9090"),
    ),
    "argo-server": (
        {"gates": [{**GATE, "argoServer": "http://127.0.0.1:2746"}]},
        "spec.gates[0].argoServer",
        "http://127.0.0.1:2746 is not among the Argo Servers this controller may send its token to",
        ("--allow-argo-server", "http://127.0.0.1:2746"),
    ),
    "webhook": (
        {"alerts": [{"webhook": {"url": "https://hooks.example.com/canary/x"}}]},
        "spec.alerts[0].webhook.url",
        "https://hooks.example.com/canary/x is not among the alert URLs this controller may "
        "send to",
        ("--allow-alert-url", "https://hooks.example.com/canary"),
    ),
    "alertmanager": (
        {"alerts": [{"alertmanager": {"url": "http://alertmanager.monitoring:9093"}}]},
        "spec.alerts[0].alertmanager.url",
        "http://alertmanager.monitoring:9093 is not among the alert URLs",
        ("--allow-alert-url", "http://alertmanager.monitoring:9093"),
    ),
}


def children(world: World) -> list[Obj]:
    return [o for kind in (ISVC, ROUTE) for o in world.kube.list(*kind, NS)]


def warnings(world: World) -> list[str]:
    return [
        str(e["message"])
        for e in world.kube.list("v1", "Event", NS)
        if e["reason"] == "InvalidSpec" and e["type"] == "Warning"
    ]


def assert_invalid(world: World, path: str, message: str) -> None:
    world.pass_once()
    status = world.status()
    assert status["phase"] == "invalid"
    problems = {(p["path"], p["message"][: len(message)]) for p in status["problems"]}
    assert (path, message) in problems
    stalled = {c["type"]: c for c in status["conditions"]}["Stalled"]
    assert stalled["status"] == "True"
    assert f"{path}: {message}" in stalled["message"]
    (warning,) = warnings(world)
    assert warning.startswith("spec is invalid, nothing applied: ")
    assert f"{path}: {message}" in warning
    assert children(world) == []
    assert not world.get().get("metadata", {}).get("finalizers")


@pytest.mark.parametrize("case", list(CASES))
def test_a_url_outside_the_allow_list_is_invalid_and_nothing_is_applied(
    case: str, tmp_path: Path
) -> None:
    spec, path, message, _ = CASES[case]
    world = World(T0, tmp_path)
    world.create(canary(**spec))
    assert_invalid(world, path, message)


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_url_allowed_by_an_administrator_rolls_out(case: str, tmp_path: Path) -> None:
    spec, _, _, flag = CASES[case]
    world = World(T0, tmp_path, flags=flag)
    world.create(canary(**spec))
    world.pass_once()
    assert world.phase() != "invalid", world.status().get("problems")
    assert [o["metadata"]["name"] for o in world.kube.list(*ISVC, NS)]  # deployed
    assert world.get()["metadata"]["finalizers"]


def test_the_controllers_own_urls_need_no_allow_list(tmp_path: Path) -> None:
    own = ("--prometheus", "http://prom.monitoring:9090", "--argo-server", "https://argo:2746")
    world = World(T0, tmp_path, flags=own)
    world.create(
        canary(
            analysis={**ANALYSIS, "prometheus": "http://prom.monitoring:9090"},
            gates=[{**GATE, "argoServer": "https://argo:2746"}],
        )
    )
    world.pass_once()
    assert world.phase() != "invalid", world.status().get("problems")
    below = World(T0, tmp_path, flags=own)  # the own URL is allowed exactly, not as a prefix
    below.create(canary(analysis={**ANALYSIS, "prometheus": "http://prom.monitoring:9090/x"}))
    assert_invalid(below, "spec.analysis.prometheus", "http://prom.monitoring:9090/x is not")


def test_fixing_the_spec_lets_the_rollout_start(tmp_path: Path) -> None:
    world = World(T0, tmp_path)
    obj = world.create(canary(**CASES["argo-server"][0]))
    assert_invalid(world, *CASES["argo-server"][1:3])
    fixed = copy.deepcopy(world.get())
    fixed["spec"]["gates"] = [GATE]  # the controller's --argo-server (none here: it pauses)
    world.kube.replace(fixed)
    world.pass_once()
    assert world.phase() != "invalid"
    assert obj["metadata"]["name"] == NAME
    assert children(world)


def test_a_gate_namespace_other_than_the_canarys_is_refused_whatever_the_flags(
    tmp_path: Path,
) -> None:
    gate = {
        **GATE,
        "namespace": "kube-system",
        "workflowTemplate": {"name": "llm-eval", "clusterScope": True},
    }
    world = World(T0, tmp_path, flags=("--argo-server", "https://argo:2746"))
    world.create(canary(gates=[gate]))
    assert_invalid(
        world,
        "spec.gates[0].namespace",
        f"must be the canary's namespace '{NS}', got 'kube-system': a gate's Workflow runs in "
        "the canary's namespace only",
    )
    ok = World(T0, tmp_path, flags=("--argo-server", "https://argo:2746"))
    ok.create(canary(gates=[{**gate, "namespace": NS}]))  # a ClusterWorkflowTemplate: fine
    ok.pass_once()
    assert ok.phase() != "invalid", ok.status().get("problems")
