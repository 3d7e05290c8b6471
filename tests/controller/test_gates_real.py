"""Gates end to end: ``canaryctl controller`` runs a canary's evaluation gate on the real Argo
Workflows, against the variants KServe serves on the real node.

The stack is :func:`support.real_traffic.real_stack`'s (the loopback control plane with KServe
v0.20.0 serving the engine image on a real node, Traefik, Prometheus, the chart's RBAC) with the
node's Service routing and cluster DNS (kube-proxy and CoreDNS, :mod:`harness.node.services`)
and Argo Workflows v3.7.3 (:func:`harness.node.argo.start_argo`), ``llm-regression-eval``
installed in each canary's namespace. ``canaryctl controller`` runs out of cluster on the chart's
ServiceAccount token, which is also its ``--argo-token-file``: the Argo Server
(``--auth-mode=client``) acts with it, so the controller may do with Workflows exactly what the
Role docs/gates.md asks an administrator to grant (here: :func:`grant_workflows`).

Each canary holds 50 % for 15 s, then its ``before: promotion`` gate runs the evaluation: the
suite to ``{{candidate.endpoint}}`` and ``{{stable.endpoint}}`` (the InferenceServices'
``status.address.url``, ``http://<isvc>-predictor.<ns>.svc.cluster.local``) from a Workflow pod
through the cluster's DNS and Service routing, answers compared by the template's scorer. What
must hold:

- ``good`` (the FP8 candidate of the same model: the same answers at temperature 0) is promoted;
  its gate's outputs (``agreement`` 1.0000) are in the status;
- ``wrong`` (its engine started with ``--inject=wrong-answers=100%``) is rolled back with the
  evaluation's reason (``agreement with stable ... < 0.8``);
- ``hang`` (its engine answers after 600 s) is rolled back when the gate's 40 s timeout passes,
  and its Workflow is stopped;
- ``restart``: the controller is killed (SIGKILL) while the gate's Workflow runs and started
  again: it polls the same Workflow (one Workflow for the gate, never a second) and the canary
  is promoted with the Workflow's outputs;
- ``down``: with the Argo Server down when the gate is due, the submission is retried at every
  poll and the canary pauses after ``errorLimit`` of them, saying the Argo Server is unavailable;
  when it is back the gate runs and the canary is promoted. Marked ``extended`` (``make
  test-extended``, not ``make test``: 141 s of a CI run): its two halves are held in ``make test``,
  the real Argo Server's refusal read as unavailable, not a failure
  (``test_argo_real.py``, ``test_an_argo_server_that_is_down_is_unavailable_not_a_failure``),
  and the controller pausing on that and resuming once it answers
  (``test_controller_gates.py``, ``test_argo_server_down_pauses_then_resumes``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.chart import service_account_token
from support.real_argo import GATED, TEMPLATES, apply_strict, gated_stack
from support.real_serving import traffic_canary
from support.real_traffic import (
    RELEASE,
    RELEASE_NAMESPACE,
    Controller,
    Stack,
    events,
    prepare,
    status,
    write_report,
)
from support.realnode import MARKS, until
from support.shared_stack import shared

from harness.cluster.kubeapi import applier
from harness.node.argo import Argo, allow_workflows

pytestmark = [*MARKS, pytest.mark.shared_stack(GATED)]

SUITE = "\n".join(
    f'{{"prompt": "{p}"}}'
    for p in (
        "Where is my order?",
        "How do I reset my password?",
        "Can I get a refund for the invoice?",
    )
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Argo]]:
    with shared(GATED, tmp_path_factory, gated_stack) as gated:
        yield gated.stack, gated.argo


def grant_workflows(stack: Stack, namespace: str) -> None:
    """The Role docs/gates.md asks for, bound to the controller's ServiceAccount: ``create``,
    ``get`` and ``patch`` on Workflows, ``get`` on WorkflowTemplates."""
    apply = applier(stack.cluster)
    name = "canary-gates"
    apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflows"],
                    "verbs": ["create", "get", "patch"],
                },
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowtemplates"],
                    "verbs": ["get"],
                },
            ],
        }
    )
    apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": f"{RELEASE}-controlplane",
                    "namespace": RELEASE_NAMESPACE,
                }
            ],
        }
    )


def gated(name: str, python: str, timeout: str = "5m", **candidate: Any) -> dict[str, Any]:
    """:func:`traffic_canary` with one step of 50 % for 15 s (no checks: no load is sent) and an
    evaluation gate before promotion comparing the candidate's answers with the stable's."""
    spec = traffic_canary(name, **candidate)
    spec["spec"]["steps"] = [{"weight": 50, "duration": "15s"}, {"weight": 100}]
    spec["spec"]["analysis"]["errorLimit"] = 2
    spec["spec"]["gates"] = [
        {
            "name": "final-eval",
            "before": "promotion",
            "workflowTemplate": {"name": "llm-regression-eval"},
            "parameters": {
                "endpoint": "{{candidate.endpoint}}",
                "baseline": "{{stable.endpoint}}",
                "model": "{{model}}",
                "api-path": "/v1",
                "suite": SUITE,
                "max-tokens": "16",
                "min-agreement": "0.8",
                "run-label": "{{canary}}-{{point}}",
                "image": python,
            },
            "timeout": timeout,
        }
    ]
    return spec


def setup(stack: Stack, argo: Argo, names: tuple[str, ...]) -> None:
    prepare(stack, names)
    for name in names:
        allow_workflows(stack.cluster, name)
        grant_workflows(stack, name)
        apply_strict(stack.cluster, name, (TEMPLATES / "llm-regression-eval.yaml").read_text())


def controller(stack: Stack, argo: Argo, names: tuple[str, ...], folder: Path) -> Controller:
    token = folder / "argo-token"
    token.write_text(
        service_account_token(stack.cluster, RELEASE_NAMESPACE, f"{RELEASE}-controlplane")
    )
    return Controller(stack, names, (f"--argo-server={argo.url}", f"--argo-token-file={token}"))


def gate_run(stack: Stack, name: str) -> dict[str, Any]:
    run: dict[str, Any] = (status(stack, name).get("gates") or {}).get("final-eval@promotion", {})
    return run


def workflows(stack: Stack, name: str) -> list[dict[str, Any]]:
    """The Workflows of canary ``name`` (by the label the controller puts on them)."""
    path = (
        f"/apis/argoproj.io/v1alpha1/namespaces/{name}/workflows"
        f"?labelSelector=canary.controlplane.dev%2Fcanary%3D{name}"
    )
    items: list[dict[str, Any]] = stack.cluster.request("GET", path)["items"]
    return items


def phase_is(stack: Stack, name: str, *phases: str) -> bool:
    return status(stack, name).get("phase") in phases


def diagnosis(stack: Stack, names: tuple[str, ...]) -> str:
    log = (stack.cluster.workdir / "controller.log").read_text(errors="replace")
    parts = [
        f"{n}: {status(stack, n).get('phase')} {gate_run(stack, n)} "
        f"{[h['message'] for h in status(stack, n).get('history', [])][-4:]}"
        for n in names
    ]
    return "\n".join([*parts, log[-3000:]])


def test_a_gate_runs_the_evaluation_on_argo_and_decides_the_promotion(
    stack: tuple[Stack, Argo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, argo = stack
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.cluster.ca))  # the Argo Server's CA
    names = ("good", "wrong", "hang", "restart")
    setup(running, argo, names)
    specs = {
        "good": gated("good", argo.python),
        "wrong": gated("wrong", argo.python, args=["--inject=wrong-answers=100%"]),
        "hang": gated("hang", argo.python, timeout="40s", args=["--inject=latency=+600s"]),
        # three prompts of 10 s each: the Workflow runs for 30 s at least
        "restart": gated("restart", argo.python, args=["--inject=latency=+10s"]),
    }
    control = controller(running, argo, names, tmp_path)
    control.start()
    try:
        for spec in specs.values():
            running.kube.apply(spec, field_manager="test")
        until(
            lambda: (
                (gate_run(running, "restart").get("phase") == "Running")
                and (status(running, "restart").get("controller") or {}).get("gatesSubmitted")
            ),
            "the restart canary's Workflow running",
            420,
        )
        control.kill()  # SIGKILL while the Workflow runs
        time.sleep(5)
        control.start()
        ends = {"good": "promoted", "wrong": "rolled_back", "hang": "rolled_back"}
        ends["restart"] = "promoted"
        try:
            until(
                lambda: all(phase_is(running, n, p) for n, p in ends.items()),
                "every canary at its end",
                420,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnosis(running, names)}") from None
    finally:
        control.stop()

    good = gate_run(running, "good")
    assert good["result"] == "passed", good
    assert good["outputs"]["agreement"] == "1.0000", good
    assert good["outputs"]["reason"] == "agreement with stable 1.00 >= 0.8 (3 prompts)", good
    (workflow,) = workflows(running, "good")
    arguments = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert arguments["endpoint"] == "http://good-llm-fp8-predictor.good.svc.cluster.local"
    assert arguments["baseline"] == "http://good-llm-bf16-predictor.good.svc.cluster.local"

    wrong = status(running, "wrong")
    assert wrong["reason"]["kind"] == "gate-failed", wrong["reason"]
    message = wrong["reason"]["message"]
    assert "gate final-eval failed before promotion: workflow wrong/" in message
    assert "Failed" in message
    assert "agreement with stable" in message
    assert "< 0.8 (3 prompts)" in message
    assert float(gate_run(running, "wrong")["outputs"]["agreement"]) < 0.8
    assert any("agreement with stable" in m for m in events(running, "wrong", "RolledBack"))

    hang = status(running, "hang")
    assert "did not succeed within its timeout 40s" in hang["reason"]["message"], hang["reason"]
    assert events(running, "hang", "GateStopped"), status(running, "hang")["history"]
    until(
        lambda: workflows(running, "hang")[0]["status"].get("phase") == "Failed",
        "the hanging Workflow stopped",
        120,
    )

    (again,) = workflows(running, "restart")  # one Workflow, polled again after the restart
    assert again["status"]["phase"] == "Succeeded"
    assert gate_run(running, "restart")["outputs"]["agreement"] == "1.0000"

    shown = kubectl_canary(running, "good")
    argo_get = argo.cli("get", "-n", "good", workflow["metadata"]["name"])
    write_report("gates_real", {"canary get": shown, "argo get": argo_get})
    assert "final-eval" in shown


@pytest.mark.extended  # held by test_argo_real.py and test_controller_gates.py (above)
def test_an_argo_server_that_is_down_pauses_the_gate_until_it_is_back(
    stack: tuple[Stack, Argo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, argo = stack
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.cluster.ca))
    names = ("down",)
    setup(running, argo, names)
    control = controller(running, argo, names, tmp_path)
    running.cluster.kill("argo-server")
    control.start()
    try:
        running.kube.apply(gated("down", argo.python), field_manager="test")
        try:
            until(lambda: phase_is(running, "down", "paused"), "paused on gate errors", 420)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{diagnosis(running, names)}") from None
        paused = status(running, "down")
        assert paused["reason"]["kind"] == "gate-errors", paused["reason"]
        assert "consecutive gate polls without an answer" in paused["reason"]["message"]
        assert f"Argo Server at {argo.url}/ unavailable" in paused["reason"]["message"]
        assert not workflows(running, "down")
        running.cluster.revive("argo-server", ready=lambda: _answers(argo))
        until(lambda: phase_is(running, "down", "promoted"), "promoted once it is back", 300)
    finally:
        control.stop()
        if not _answers(argo):
            running.cluster.revive("argo-server", ready=lambda: _answers(argo))
    assert len(workflows(running, "down")) == 1
    assert gate_run(running, "down")["result"] == "passed"


def _answers(argo: Argo) -> bool:
    try:
        argo.server_version()
    except OSError:
        return False
    return True


def kubectl_canary(stack: Stack, name: str) -> str:
    """``kubectl canary get NAME`` as a user runs it (the plugin on PATH, the admin's
    kubeconfig)."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("kubectl-canary")),
            "get",
            name,
            "-n",
            name,
            f"--kubeconfig={stack.cluster.kubeconfig}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "160"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
