"""ArgoGates (hera's WorkflowsService) against a real local HTTP server speaking the Argo Server
endpoints, and golden YAML of the Workflows it submits (``UPDATE_GOLDEN=1`` regenerates them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controlplane.controller.argo_gates import (
    ArgoGates,
    observation_of,
    variant_endpoint,
    workflow_body,
    workflow_outputs,
)
from controlplane.rollout.gate_runs import GateRun, pending_runs
from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import initial_state
from controlplane.spec.endpoints import EndpointPolicy
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file
from harness.servers.argo_fake import FINISHED, STARTED, ArgoFake, running_argo

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "gates"
T0 = 1_800_000_000.0
ENDPOINTS = {
    "candidate": "http://support-llm-awq-predictor.ml-serving.svc.cluster.local",
    "stable": "http://support-llm-bf16-predictor.ml-serving.svc.cluster.local",
}


@pytest.fixture
def argo() -> Iterator[ArgoFake]:
    with running_argo() as fake:
        yield fake


def gated() -> ModelCanary:
    (canary,) = validated_file(ROOT / "canary" / "gated.yml")
    return canary


def first_run(canary: ModelCanary) -> GateRun:
    """The gate run the machine starts before step 1 of canary/gated.yml."""
    state, _ = step(canary, initial_state(canary, T0), Observations(candidate_ready=True), T0)
    (run,) = pending_runs(canary, state)
    return run


def run_at(canary: ModelCanary, index: int, point: str, step_no: int, weight: int) -> GateRun:
    gate = canary.spec.gates[index]
    return GateRun(
        key=f"{gate.name}@{point}",
        gate=gate,
        point=point,
        workflow=f"support-awq-{gate.name}-{point}-0123abcd",
        namespace=gate.namespace or canary.metadata.namespace,
        submitted_at=T0,
        step=step_no,
        weight=weight,
    )


# --------------------------------------------------------------------------- polling


def test_pending_pending_running_succeeded(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    argo.script(run.workflow, [(None, ""), ("Pending", ""), ("Running", ""), ("Succeeded", "")])
    gates = ArgoGates(argo.url, token="s3cret")
    assert gates.submit(canary, run, ENDPOINTS, "h") is None
    seen = [gates.poll(canary, run) for _ in range(5)]
    assert [o.phase for o in seen] == ["Pending", "Pending", "Running", "Succeeded", "Succeeded"]
    assert seen[2].started_at == pytest.approx(1793613600.0)  # STARTED
    assert STARTED.startswith("2026-11-02T10:00")
    assert seen[3].finished_at == pytest.approx(1793614800.0)  # FINISHED
    assert FINISHED.startswith("2026-11-02T10:20")
    assert all(o.key == run.key and o.workflow == run.workflow and not o.error for o in seen)
    ((namespace, body),) = argo.posts
    assert namespace == "ml-serving"
    assert body["workflow"]["metadata"]["name"] == run.workflow
    assert argo.gets == [("ml-serving", run.workflow)] * 5


@pytest.mark.parametrize(
    ("phase", "message"), [("Failed", "score 0.62 < min-score 0.9"), ("Error", "pod evicted")]
)
def test_failed_and_error_carry_the_workflow_message(
    argo: ArgoFake, phase: str, message: str
) -> None:
    canary = gated()
    run = first_run(canary)
    argo.script(run.workflow, [("Running", ""), (phase, message)])
    gates = ArgoGates(argo.url, token="s3cret")
    assert gates.submit(canary, run, ENDPOINTS, "h") is None
    assert gates.poll(canary, run).phase == "Running"
    last = gates.poll(canary, run)
    assert (last.phase, last.message) == (phase, message)


def test_resubmission_after_a_crash_is_the_same_workflow(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    gates = ArgoGates(argo.url, token="s3cret")
    assert gates.submit(canary, run, ENDPOINTS, "h") is None
    restarted = ArgoGates(argo.url, token="s3cret")  # a new controller process
    assert restarted.submit(canary, run, ENDPOINTS, "h") is None  # 409 AlreadyExists
    assert argo.count_posts(run.workflow) == 2
    assert len(argo.workflows) == 1
    assert restarted.poll(canary, run).phase == "Pending"


# --------------------------------------------------------------------------- stopping


def submitted_run(
    argo: ArgoFake, script: list[tuple[str | None, str]]
) -> tuple[ModelCanary, GateRun, ArgoGates]:
    """The first gate run of canary/gated.yml, submitted; its Workflow plays ``script``."""
    canary = gated()
    run = first_run(canary)
    argo.script(run.workflow, script)
    gates = ArgoGates(argo.url, token="s3cret")
    assert gates.submit(canary, run, ENDPOINTS, "h") is None
    return canary, run, gates


def test_stop_a_running_workflow(argo: ArgoFake) -> None:
    canary, run, gates = submitted_run(argo, [("Running", "")])
    assert gates.stop(canary, run, "rolled back: errors breached") is None
    assert argo.stops == [("ml-serving", run.workflow, "rolled back: errors breached")]
    assert gates.poll(canary, run).phase == "Failed"  # Argo's stop strategy ends it
    assert gates.stop(canary, run, "again") is None  # finished now: nothing to stop
    assert len(argo.stops) == 1


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Error"])
def test_a_finished_workflow_is_not_stopped(argo: ArgoFake, phase: str) -> None:
    canary, run, gates = submitted_run(argo, [(phase, "")])
    assert gates.stop(canary, run, "rolled back") is None
    assert argo.stops == []


def test_a_deleted_workflow_needs_no_stop(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    gates = ArgoGates(argo.url, token="s3cret")
    assert gates.stop(canary, run, "rolled back") is None  # never created: 404
    assert argo.stops == []


def test_a_stop_the_server_refuses_or_cannot_hear_is_an_error_to_retry(argo: ArgoFake) -> None:
    canary, run, gates = submitted_run(argo, [("Running", "")])
    argo.down = True
    error = gates.stop(canary, run, "rolled back")
    assert error is not None
    assert "503" in error
    argo.down = False
    # It finishes between the stop's read and the stop itself: Argo refuses, and the next try
    # reads it finished.
    argo.script(run.workflow, [("Running", ""), ("Succeeded", "")])
    refused = gates.stop(canary, run, "rolled back")
    assert refused is not None
    assert "cannot shutdown a completed workflow" in refused
    assert gates.stop(canary, run, "rolled back") is None
    assert argo.stops == []


def test_unreachable_server_is_an_error_to_retry_not_a_failure(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    gates = ArgoGates(argo.url, token="s3cret")
    argo.down = True
    submitted = gates.submit(canary, run, ENDPOINTS, "h")
    assert submitted is not None
    assert submitted.phase is None
    assert "unavailable" in submitted.error
    assert "503" in submitted.error
    argo.down = False
    assert gates.submit(canary, run, ENDPOINTS, "h") is None
    argo.stop()
    polled = gates.poll(canary, run)
    assert polled.phase is None
    assert "Connection refused" in polled.error


@pytest.mark.timeout(30)  # without the client's timeout the poll would hang: a failure here
def test_a_hung_server_times_out_quickly() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        port = listener.getsockname()[1]
        gates = ArgoGates(f"http://127.0.0.1:{port}", token="t", request_timeout_s=0.5)
        canary = gated()
        polled = gates.poll(canary, first_run(canary))
        assert polled.phase is None
        assert "timed out" in polled.error.lower()  # cut by the 0.5 s timeout, not answered
    finally:
        listener.close()


def test_refused_workflow_fails_the_gate(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    argo.refuse["quantized-model-profile"] = (
        'workflowtemplates.argoproj.io "quantized-model-profile" not found'
    )
    refused = ArgoGates(argo.url, token="s3cret").submit(canary, run, ENDPOINTS, "h")
    assert refused is not None
    assert refused.phase == "Error"
    assert "not found" in refused.message
    assert run.workflow in refused.message


def test_a_deleted_workflow_fails_the_gate(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    polled = ArgoGates(argo.url, token="s3cret").poll(canary, run)
    assert polled.phase == "Error"
    assert "not found (deleted?)" in polled.message


def test_bad_token_and_missing_server_are_errors(argo: ArgoFake) -> None:
    canary = gated()
    run = first_run(canary)
    polled = ArgoGates(argo.url, token="wrong").poll(canary, run)
    assert polled.phase is None
    assert "not allowed" in polled.error
    assert argo.unauthorized == 1
    nowhere = ArgoGates(None).poll(canary, run)
    assert nowhere.phase is None
    assert "--argo-server" in nowhere.error


def test_a_gate_may_name_its_own_argo_server_when_allowed(argo: ArgoFake) -> None:
    canary = gated()
    gate = canary.spec.gates[0].model_copy(update={"argo_server": argo.url})
    run = first_run(canary)
    run = GateRun(run.key, gate, run.point, run.workflow, run.namespace, T0, 1, 0)
    token = iter(["s3cret", "s3cret"])
    allowed = EndpointPolicy(argo=(argo.url,))
    gates = ArgoGates("http://127.0.0.1:9", token=lambda: next(token), endpoints=allowed)
    assert gates.submit(canary, run, ENDPOINTS, "h") is None  # port 9 (discard) not asked
    assert gates.poll(canary, run).phase == "Pending"
    assert [(m, auth) for m, _, auth in argo.requests] == [
        ("POST", "Bearer s3cret"),
        ("GET", "Bearer s3cret"),
    ]


def test_the_token_goes_to_no_argo_server_outside_the_allowed_ones(argo: ArgoFake) -> None:
    """Issue 33: a gate's ``argoServer`` received the controller's ServiceAccount token. Now a
    server neither ``--argo-server`` nor allowed gets no request at all, and the token is not
    even read; the run sees an Argo Server error (the canary pauses after errorLimit)."""
    canary = gated()
    gate = canary.spec.gates[0].model_copy(update={"argo_server": argo.url})
    run = first_run(canary)
    run = GateRun(run.key, gate, run.point, run.workflow, run.namespace, T0, 1, 0)
    read: list[str] = []

    def token() -> str:
        read.append("read")
        return "s3cret"

    others = EndpointPolicy(argo=(argo.url + "/elsewhere", "http://127.0.0.2:2746"))
    for gates in (
        ArgoGates("http://127.0.0.1:9", token=token),  # only --argo-server
        ArgoGates("http://127.0.0.1:9", token=token, endpoints=others),
        ArgoGates(None, token=token),
    ):
        submitted = gates.submit(canary, run, ENDPOINTS, "h")
        assert submitted is not None
        assert submitted.phase is None
        assert submitted.error.startswith("the controller's token is not sent there: ")
        assert f"{argo.url} is not among the Argo Servers" in submitted.error
        polled = gates.poll(canary, run)
        assert (polled.phase, polled.error) == (None, submitted.error)
        assert gates.stop(canary, run, "stop") == submitted.error
    assert argo.requests == []
    assert read == []


def test_a_workflow_outside_the_canarys_namespace_is_never_sent(argo: ArgoFake) -> None:
    """A run that names another namespace (a status written before the rule, or a forged one)
    is neither submitted nor read nor stopped, even on the controller's own Argo Server."""
    canary = gated()
    run = first_run(canary)
    elsewhere = GateRun(run.key, run.gate, run.point, run.workflow, "kube-system", T0, 1, 0)
    gates = ArgoGates(argo.url, token="s3cret")
    submitted = gates.submit(canary, elsewhere, ENDPOINTS, "h")
    assert submitted is not None
    assert submitted.error == (
        f"workflow kube-system/{run.workflow} is not in the canary's namespace ml-serving: "
        "gates run there only, nothing was sent"
    )
    assert gates.poll(canary, elsewhere).error == submitted.error
    assert gates.stop(canary, elsewhere, "stop") == submitted.error
    assert argo.requests == []
    assert gates.submit(canary, run, ENDPOINTS, "h") is None  # its own namespace: sent
    assert argo.posts[0][0] == "ml-serving"


# --------------------------------------------------------------------------- bodies (golden)


def check_golden(name: str, body: object) -> None:
    text = yaml.safe_dump(body, sort_keys=True)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{path} drifted (UPDATE_GOLDEN=1)"


@pytest.mark.parametrize(
    ("index", "point", "step_no", "weight"),
    [(0, "step-1", 1, 0), (1, "step-2", 2, 5), (2, "promotion", 3, 100)],
    ids=["profile-step-1", "regression-step-2", "final-eval-promotion"],
)
def test_workflow_bodies(index: int, point: str, step_no: int, weight: int) -> None:
    canary = gated()
    run = run_at(canary, index, point, step_no, weight)
    body = workflow_body(canary, run, ENDPOINTS, "5b1d0e7f3a2c9d84")
    check_golden(f"{run.key.replace('@', '-')}.yaml", body)
    params = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
    assert params["endpoint"] == ENDPOINTS["candidate"]
    assert "{{" not in yaml.safe_dump(body)


def test_cluster_workflow_template_reference() -> None:
    canary = gated()
    gate = canary.spec.gates[1]
    gate = gate.model_copy(
        update={
            "workflow_template": gate.workflow_template.model_copy(update={"cluster_scope": True})
        }
    )
    run = run_at(canary, 1, "step-3", 3, 25)
    run = GateRun(run.key, gate, run.point, run.workflow, run.namespace, T0, 3, 25)
    body = workflow_body(canary, run, ENDPOINTS)
    assert body["spec"]["workflowTemplateRef"] == {
        "name": "llm-regression-eval",
        "clusterScope": True,
    }
    params = {p["name"]: p["value"] for p in body["spec"]["arguments"]["parameters"]}
    assert params["run-label"] == "support-awq-step-3-weight-25"


# --------------------------------------------------------------------------- endpoints


def test_candidate_endpoint_prefers_the_live_address() -> None:
    canary = gated()
    assert variant_endpoint(canary, "candidate", None) == ENDPOINTS["candidate"]
    live = {"status": {"url": "http://support-llm-awq.ml-serving.example.com"}}
    assert variant_endpoint(canary, "candidate", live) == live["status"]["url"]
    live["status"]["address"] = {"url": "http://support-llm-awq.ml-serving.svc.cluster.local"}
    assert variant_endpoint(canary, "candidate", live).endswith(".svc.cluster.local")


def test_endpoints_of_single_service_routers() -> None:
    canary = gated()
    kserve = canary.model_copy(
        update={
            "spec": canary.spec.model_copy(
                update={"traffic": canary.spec.traffic.model_copy(update={"router": "kserve"})}
            )
        }
    )
    assert variant_endpoint(kserve, "candidate", None) == (
        "http://support-llm-awq-predictor.ml-serving.svc.cluster.local"
    )
    assert variant_endpoint(kserve, "stable", None) == (
        "http://support-llm-predictor.ml-serving.svc.cluster.local"
    )


def test_importing_hera_leaves_the_products_yaml_alone() -> None:
    """hera re-registers PyYAML's str representer on import; the gates module puts it back, so
    the CRD and every rendered manifest are the same whether or not the controller loaded it."""
    import hera.workflows  # noqa: F401  (already imported through controlplane.controller.argo_gates)

    assert yaml.safe_dump({"a": "x\ny"}) == "a: 'x\n\n  y'\n"
    assert yaml.dump({"a": "x\ny"}) == "a: 'x\n\n  y'\n"


def test_the_workflows_outputs_and_reason_come_back_with_the_observation() -> None:
    """Argo v3.7.3 keeps a step's output parameters on its node (``status.nodes[id].outputs``),
    a failed step's too: the observation carries them, and the ``reason`` output follows
    Argo's message, so the rollback says why."""
    run = first_run(gated())
    status = {
        "phase": "Failed",
        "message": "Error (exit code 1)",
        "nodes": {
            "wf-1": {
                "phase": "Failed",
                "outputs": {
                    "parameters": [
                        {"name": "score", "value": ""},
                        {"name": "agreement", "value": "0.1200"},
                        {"name": "reason", "value": "agreement with stable 0.12 < 0.8 (6 prompts)"},
                        {"name": "unset", "valueFrom": {"path": "/tmp/x"}},
                    ],
                    "exitCode": "1",
                },
            },
            "wf-0": {"phase": "Failed", "outputs": "not a mapping"},
        },
    }
    seen = observation_of(run, {"status": status})
    assert seen.phase == "Failed"
    assert seen.message == "Error (exit code 1): agreement with stable 0.12 < 0.8 (6 prompts)"
    assert seen.outputs == {
        "agreement": "0.1200",
        "reason": "agreement with stable 0.12 < 0.8 (6 prompts)",
        "score": "",
    }
    passed = observation_of(run, {"status": {"phase": "Succeeded", "nodes": status["nodes"]}})
    assert passed.message == "agreement with stable 0.12 < 0.8 (6 prompts)"
    assert observation_of(run, {"status": {"phase": "Running"}}).outputs == {}


def test_outputs_are_bounded() -> None:
    many = [{"name": f"p{i:02d}", "value": "x" * 500} for i in range(40)]
    got = workflow_outputs({"outputs": {"parameters": many}})
    assert sorted(got) == [f"p{i:02d}" for i in range(16)]
    assert all(len(v) <= 200 for v in got.values())
