"""Gates on the real Argo Workflows v3.7.3: the shipped WorkflowTemplates run on a real node.

The stack (:func:`support.real_argo.shared_argo`, shared with the gates' module): the loopback
control plane, a real node, and Argo Workflows built here (``scripts/build-argo.sh``;
``workflow-controller`` and ``argo server`` as host processes, the executor image built here, the
module's strict CRDs: :mod:`harness.node.argo`). What it shows:

- both WorkflowTemplates of ``manifests/argo/`` are accepted by Argo's full CRDs with
  server-side field validation ``Strict``, and a misspelt field is refused (the schema is real);
- the product's own client (:class:`~controlplane.controller.argo_gates.ArgoGates`, through
  hera) submits a gate's Workflow of ``llm-regression-eval`` to the real Argo Server with a
  Kubernetes token (``--auth-mode=client``) and polls it to ``Succeeded``: the step sent the
  suite's prompts through the node's network to an engine pod (the simulated vLLM) and its
  ``score`` output comes back (1 of 1); against an engine whose every answer fails (the
  engine's fault argument ``--inject errors=100%``) the same Workflow ends ``Failed``, score 0;
- the Argo Server's answers are what the client expects: a second create of the same name is
  AlreadyExists (the crash-safe resubmission), a deleted Workflow reads ``Error`` "not found",
  a token the API server does not know is "not allowed" (an Argo Server error, not a failure).

The templates name ``python:3.12-slim`` for their step, which no registry here serves: the
Workflows pass the template's ``image`` parameter, the Debian Python image built here
(:func:`harness.node.workflow_images.python_image`).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.real_argo import (
    GATED,
    TEMPLATES,
    ArgoStack,
    apply_strict,
    engine,
    outputs,
    shared_argo,
)
from support.real_argo import workflow as read_workflow
from support.real_traffic import write_report
from support.realnode import MARKS, MODEL, until

from controlplane.controller.argo_gates import ArgoGates
from controlplane.rollout.gate_runs import GateRun
from controlplane.rollout.observations import GateObservation
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file
from harness.node import services
from harness.node.controller_image import controller_image
from harness.node.node import NODE_IP
from harness.servers.argo_fake import running_argo

ROOT = Path(__file__).resolve().parents[2]
NS = "ml-serving"


SHARED = [*MARKS, pytest.mark.shared_stack(GATED)]
"""A real-node test's marks, on the stack it shares with the gates' module."""


def real(test: Callable[..., None]) -> Callable[..., None]:
    """The marks of a test that starts the real node (:data:`support.realnode.MARKS`)."""
    for mark in SHARED:
        test = mark(test)
    return test


SUITE = '{"prompt": "Say something.", "expect": "\\\\w"}\n'
"""One prompt; any word passes (the simulated engine answers placeholder words)."""
COMPARED = "\n".join(
    f'{{"prompt": "{p}"}}' for p in ("Where is my order?", "Reset my password.", "A refund?")
)
"""Three prompts with nothing expected: only the agreement with the stable judges them."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgoStack]:
    with shared_argo(tmp_path_factory, (NS,)) as running:
        for path in sorted(TEMPLATES.glob("*.yaml")):
            apply_strict(running.cluster, NS, path.read_text())
        yield running


@pytest.fixture(scope="module")
def engines(stack: ArgoStack) -> dict[str, str]:
    return {
        "stable": engine(stack, NS, "stable"),
        "candidate": engine(stack, NS, "candidate"),
        "broken": engine(stack, NS, "broken", "--inject", "errors=100%"),
        "hanging": engine(stack, NS, "hanging", "--inject", "latency=+600s"),
        "wrong": engine(stack, NS, "wrong", "--inject", "wrong-answers=100%"),
    }


def canary(
    tmp: Path, stack: ArgoStack, template: str = "llm-regression-eval", **parameters: str
) -> ModelCanary:
    """canary/gated.yml with one gate before promotion: ``template`` (llm-regression-eval on
    the candidate unless told) with ``parameters`` besides the endpoint and the model."""
    doc = yaml.safe_load((ROOT / "canary" / "gated.yml").read_text())
    doc["spec"]["gates"] = [
        {
            "name": "final-eval",
            "before": "promotion",
            "workflowTemplate": {"name": template},
            "parameters": {
                "endpoint": "{{candidate.endpoint}}",
                "model": "{{model}}",
                "api-path": "/v1",
                **(parameters or {"min-score": "0.9", "suite": SUITE, "image": stack.argo.python}),
            },
            "timeout": "10m",
        }
    ]
    doc["spec"]["model"]["name"] = MODEL
    path = tmp / "gated.yml"
    path.write_text(yaml.safe_dump(doc))
    (spec,) = validated_file(path)
    return spec


def run_of(spec: ModelCanary, name: str) -> GateRun:
    (gate,) = spec.spec.gates
    return GateRun(
        key=f"{gate.name}@promotion",
        gate=gate,
        point="promotion",
        workflow=name,
        namespace=NS,
        submitted_at=0.0,
        step=len(spec.spec.steps),
        weight=100,
    )


def gates_for(stack: ArgoStack, monkeypatch: pytest.MonkeyPatch) -> ArgoGates:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.cluster.ca))  # the Argo Server's CA
    return ArgoGates(stack.argo.url, token=stack.cluster.token)


def finished(gates: ArgoGates, spec: ModelCanary, run: GateRun) -> GateObservation:
    def final() -> GateObservation | None:
        seen = gates.poll(spec, run)
        assert not seen.error, seen.error
        return seen if seen.phase in ("Succeeded", "Failed", "Error") else None

    got: GateObservation = until(final, f"workflow {run.workflow} finished", 240)
    return got


@real
def test_the_templates_are_accepted_by_the_strict_crds(stack: ArgoStack) -> None:
    for path in sorted(TEMPLATES.glob("*.yaml")):
        said = apply_strict(stack.cluster, NS, path.read_text())
        assert f"workflowtemplate.argoproj.io/{path.stem} serverside-applied" in said
    typo = (TEMPLATES / "llm-regression-eval.yaml").read_text()
    typo = typo.replace("  entrypoint: evaluate", "  entrypont: evaluate", 1)
    with pytest.raises(
        AssertionError, match=re.escape(".spec.entrypont: field not declared in schema")
    ):
        apply_strict(stack.cluster, NS, typo)


@real
def test_the_evaluation_passes_on_a_healthy_candidate_and_its_score_comes_back(
    stack: ArgoStack, engines: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = canary(tmp_path, stack)
    run = run_of(spec, "support-awq-final-eval-promotion-pass0001")
    gates = gates_for(stack, monkeypatch)
    assert gates.submit(spec, run, engines, "h") is None
    seen = finished(gates, spec, run)
    assert seen.phase == "Succeeded", seen.message
    found = read_workflow(stack, NS, run.workflow)
    assert found["spec"]["workflowTemplateRef"] == {"name": "llm-regression-eval"}
    assert found["metadata"]["labels"]["canary.controlplane.dev/gate"] == "final-eval"
    assert outputs(found) == {
        "score": "1.0000",
        "agreement": "",
        "reason": "score 1.00 >= 0.9 (1 prompts)",
    }
    assert seen.outputs == outputs(found)  # what the controller reads back
    shown = stack.argo.cli("get", "-n", NS, run.workflow)  # as a user reads it
    assert re.search(r"^Status:\s+Succeeded$", shown, re.M), shown
    write_report("argo_get_passed", {"argo get": shown})
    arguments = {p["name"]: p["value"] for p in found["spec"]["arguments"]["parameters"]}
    assert arguments["endpoint"] == engines["candidate"]


@real
def test_the_evaluation_fails_a_candidate_whose_answers_fail(
    stack: ArgoStack, engines: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = canary(tmp_path, stack)
    run = run_of(spec, "support-awq-final-eval-promotion-fail0001")
    gates = gates_for(stack, monkeypatch)
    assert gates.submit(spec, run, {**engines, "candidate": engines["broken"]}, "h") is None
    seen = finished(gates, spec, run)
    assert seen.phase == "Failed"
    assert "exit code 1" in seen.message
    assert seen.message.endswith(": score 0.00 < 0.9 (1 prompts)")
    assert outputs(read_workflow(stack, NS, run.workflow))["score"] == "0.0000"


@real
def test_a_service_is_reached_by_its_cluster_dns_name(
    stack: ArgoStack, engines: dict[str, str]
) -> None:
    """CoreDNS answers the Service's name with its ClusterIP, and kube-proxy's rules take a
    connection to that address to the pod (here from the host, as a Workflow pod on the node's
    network connects)."""
    assert engines["candidate"] == f"http://candidate.{NS}.svc.cluster.local"
    service = stack.cluster.request("GET", f"/api/v1/namespaces/{NS}/services/candidate")
    cluster_ip = service["spec"]["clusterIP"]
    assert services.resolve(f"candidate.{NS}.svc.cluster.local", NODE_IP) == [cluster_ip]
    assert services.resolve(f"nothing.{NS}.svc.cluster.local", NODE_IP) == []
    with urllib.request.urlopen(f"http://{cluster_ip}/v1/models", timeout=10) as answer:
        assert [m["id"] for m in json.load(answer)["data"]] == [MODEL]


@real
def test_the_evaluation_compares_the_candidates_answers_with_the_stables(
    stack: ArgoStack, engines: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model answers the same way at temperature 0: agreement 1; an engine whose
    answers differ (``--inject wrong-answers=100%``) fails the gate with the scorer's reason."""
    spec = canary(
        tmp_path,
        stack,
        baseline="{{stable.endpoint}}",
        suite=COMPARED,
        image=stack.argo.python,
        **{"max-tokens": "16"},
    )
    gates = gates_for(stack, monkeypatch)
    same = run_of(spec, "support-awq-final-eval-promotion-same0001")
    wrong = run_of(spec, "support-awq-final-eval-promotion-wrong001")
    assert gates.submit(spec, same, engines, "h") is None
    assert gates.submit(spec, wrong, {**engines, "candidate": engines["wrong"]}, "h") is None
    passed = finished(gates, spec, same)
    assert passed.phase == "Succeeded", passed.message
    assert passed.outputs == {
        "score": "",
        "agreement": "1.0000",
        "reason": "agreement with stable 1.00 >= 0.8 (3 prompts)",
    }
    failed = finished(gates, spec, wrong)
    assert failed.phase == "Failed"
    assert float(failed.outputs["agreement"]) < 0.8
    assert re.search(r"agreement with stable 0\.\d\d < 0\.8 \(3 prompts\)$", failed.message), (
        failed.message
    )
    write_report("argo_get_compared", {"argo get": stack.argo.cli("get", "-n", NS, wrong.workflow)})


@real
def test_the_profile_gate_runs_canaryctl_profile_against_the_candidate(
    stack: ArgoStack, engines: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``quantized-model-profile`` (no quantization) in the controller's image, built from the
    Dockerfile: ``canaryctl profile`` measures the candidate Service; limits it meets pass, a
    P90 end-to-end limit below what it measured fails with the step's reason."""
    image = stack.node.import_image(controller_image())
    common = {
        "api-path": "/v1",
        "image": image,
        "requests": "4",
        "concurrency": "1,2",
        "input-len": "32",
        "output-len": "8",
    }
    gates = gates_for(stack, monkeypatch)
    meets = canary(tmp_path, stack, "quantized-model-profile", **common)
    fails = canary(
        tmp_path, stack, "quantized-model-profile", **common, **{"max-p90-latency-s": "0.01"}
    )
    ok = run_of(meets, "support-awq-final-eval-promotion-prof0001")
    slow = run_of(fails, "support-awq-final-eval-promotion-prof0002")
    assert gates.submit(meets, ok, engines, "h") is None
    assert gates.submit(fails, slow, engines, "h") is None
    passed = finished(gates, meets, ok)
    assert passed.phase == "Succeeded", passed.message
    assert re.fullmatch(
        r"at concurrency 2: p90 e2e \d+\.\d{3}s, p90 ttft \d+ms, \d+\.\d output tokens/s",
        passed.outputs["reason"],
    ), passed.outputs
    points = json.loads(outputs(read_workflow(stack, NS, ok.workflow))["result"])
    assert [p["concurrency"] for p in points] == [1, 2]
    assert all(p["errors"] == 0 for p in points)
    failed = finished(gates, fails, slow)
    assert failed.phase == "Failed"
    assert re.search(r": p90 e2e \d+\.\d{3}s > 0\.01s \(at concurrency 2: ", failed.message), (
        failed.message
    )


# --------------------------------------------------------------------------- the contract
# The same tests against our fake (harness/servers/argo_fake.py, which the controller's gate tests
# use) and the real Argo Server: what the fake answers is what the real one answers.


@dataclass
class Server:
    """An Argo Server for the contract: ``hang`` names an endpoint whose Workflow runs until
    stopped; ``down()`` makes it unreachable, ``up()`` brings it back."""

    url: str
    token: str
    hang: dict[str, str]
    down: Callable[[], None]
    up: Callable[[], None]


@pytest.fixture(params=[pytest.param("fake"), pytest.param("real", marks=SHARED)])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    if request.param == "fake":
        with running_argo(
            token=TOKEN,
            refuse={MISSING: f'workflowtemplates.argoproj.io "{MISSING}" not found'},
        ) as fake:
            fake.script("-hang", [("Running", "")])

            def down() -> None:
                fake.down = True

            def up() -> None:
                fake.down = False

            yield Server(fake.url, TOKEN, {"candidate": "http://unused"}, down, up)
        return
    stack: ArgoStack = request.getfixturevalue("stack")
    endpoints: dict[str, str] = request.getfixturevalue("engines")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stack.cluster.ca))
    cluster = stack.cluster

    def revive() -> None:
        cluster.revive("argo-server", ready=lambda: _answers(stack))

    yield Server(
        stack.argo.url,
        cluster.token,
        {**endpoints, "candidate": endpoints["hanging"]},
        lambda: cluster.kill("argo-server"),
        revive,
    )


def _answers(stack: ArgoStack) -> bool:
    try:
        stack.argo.server_version()
    except OSError:
        return False
    return True


TOKEN = "s3cret"
MISSING = "no-such-template"


def contract_canary(tmp: Path, template: str = "llm-regression-eval") -> ModelCanary:
    doc = yaml.safe_load((ROOT / "canary" / "gated.yml").read_text())
    doc["spec"]["gates"] = [
        {
            "name": "final-eval",
            "before": "promotion",
            "workflowTemplate": {"name": template},
            "parameters": {"endpoint": "{{candidate.endpoint}}", "model": "{{model}}"},
        }
    ]
    path = tmp / "contract.yml"
    path.write_text(yaml.safe_dump(doc))
    (spec,) = validated_file(path)
    return spec


def test_a_second_submission_is_the_same_workflow(server: Server, tmp_path: Path) -> None:
    spec = contract_canary(tmp_path)
    run = run_of(spec, "support-awq-final-eval-promotion-twice001")
    assert ArgoGates(server.url, token=server.token).submit(spec, run, server.hang, "h") is None
    again = ArgoGates(server.url, token=server.token)  # a restarted controller
    assert again.submit(spec, run, server.hang, "h") is None  # HTTP 409: the same Workflow
    assert again.poll(spec, run).phase in ("Pending", "Running")


def test_a_workflow_that_is_not_there_is_an_error(server: Server, tmp_path: Path) -> None:
    spec = contract_canary(tmp_path)
    seen = ArgoGates(server.url, token=server.token).poll(
        spec, run_of(spec, "support-awq-final-eval-promotion-nothere01")
    )
    assert seen.phase == "Error"
    assert not seen.error
    assert seen.message.endswith("not found (deleted?)")


def test_a_missing_template_is_refused_with_argos_message(server: Server, tmp_path: Path) -> None:
    spec = contract_canary(tmp_path, MISSING)
    run = run_of(spec, "support-awq-final-eval-promotion-missing01")
    seen = ArgoGates(server.url, token=server.token).submit(spec, run, server.hang, "h")
    assert seen is not None
    assert seen.phase == "Error"
    assert seen.message.startswith(
        f"the Argo Server refused workflow {NS}/{run.workflow}: HTTP 404 Not Found: "
    )
    assert f'workflowtemplates.argoproj.io "{MISSING}" not found' in seen.message


def test_a_token_it_does_not_know_is_not_allowed(server: Server, tmp_path: Path) -> None:
    spec = contract_canary(tmp_path)
    seen = ArgoGates(server.url, token="not-a-token").poll(
        spec, run_of(spec, "support-awq-final-eval-promotion-token001")
    )
    assert seen.phase is None
    assert seen.error is not None
    assert seen.error.startswith("not allowed: HTTP 401 Unauthorized")


def test_a_running_workflow_is_stopped_and_ends_failed(server: Server, tmp_path: Path) -> None:
    spec = contract_canary(tmp_path)
    run = run_of(spec, "support-awq-final-eval-promotion-hang0001")
    gates = ArgoGates(server.url, token=server.token)
    assert gates.submit(spec, run, server.hang, "h") is None
    until(lambda: gates.poll(spec, run).phase == "Running", "the workflow Running", 120)
    assert gates.stop(spec, run, "the rollout ended") is None
    seen = finished(gates, spec, run)
    assert seen.phase == "Failed"
    assert "Stopped with strategy 'Stop'" in seen.message
    assert gates.stop(spec, run, "again") is None  # finished: nothing to stop


def test_an_argo_server_that_is_down_is_unavailable_not_a_failure(
    server: Server, tmp_path: Path
) -> None:
    spec = contract_canary(tmp_path)
    run = run_of(spec, "support-awq-final-eval-promotion-down0001")
    gates = ArgoGates(server.url, token=server.token)
    server.down()
    try:
        seen = gates.submit(spec, run, server.hang, "h")
        assert seen is not None
        assert seen.phase is None
        assert seen.error is not None
        assert seen.error.startswith(f"Argo Server at {server.url}/ unavailable: ")
    finally:
        server.up()
    # the real Argo Server answers its version before its REST gateway reaches its gRPC side
    # ("Error while dialing ... connection refused", a 503): unavailable until then, as above
    until(lambda: gates.submit(spec, run, server.hang, "h") is None, "the Argo Server back", 60)
