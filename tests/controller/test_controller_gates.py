"""Gates end to end on the fake cluster: the controller submits Argo Workflows to a real local
HTTP server speaking the Argo Server API, polls them, rolls back on a failed one, survives a crash
between submitting and recording the submission, and finishes no-op specs without deploying."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support.controller_world import (
    CANARY,
    DAY,
    HOUR,
    ISVC,
    NS,
    ROUTE,
    Crash,
    Metrics,
    World,
    finished,
    world_canary,
)

from controlplane.controller.argo_gates import ArgoGates
from controlplane.controller.reconcile import Reconciler
from controlplane.controller.runner import Controller
from controlplane.kube.client import Obj, Ref
from controlplane.rollout.tick import NOOP_MESSAGE
from controlplane.spec.units import time_value
from harness.kube.fake import FakeKube
from harness.servers.argo_fake import ArgoFake, running_argo

pytestmark = pytest.mark.binary


@pytest.fixture
def argo() -> Iterator[ArgoFake]:
    with running_argo() as fake:
        yield fake


class GatedWorld(World):
    """The test world with the controller built as ``canaryctl controller --argo-server``."""

    argo_url: str = ""

    def new_controller(self, kube: Any = None, elector: Any = None) -> Controller:
        controller = super().new_controller(kube, elector)
        reconciler = controller.reconciler
        gated = Reconciler(
            reconciler.kube,
            self.catalog,
            self.settings,
            router_for=self.router_for,
            gates=ArgoGates(self.argo_url, token="s3cret", poll_interval_s=10.0),
        )
        controller.reconciler = gated
        return controller


def world(metrics: Metrics, argo: ArgoFake, **kwargs: Any) -> GatedWorld:
    GatedWorld.argo_url = argo.url
    return GatedWorld(metrics.t0, metrics.url, **kwargs)


def gate(name: str, before: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "before": before,
        "workflowTemplate": {"name": "llm-regression-eval"},
        "parameters": {"endpoint": "{{candidate.endpoint}}", "weight": "{{weight}}"},
        "timeout": "2h",
        **extra,
    }


def status(w: World, name: str) -> dict[str, Any]:
    return dict(w.get(name).get("status") or {})


def test_failed_promotion_gate_rolls_back_with_the_workflow_name(
    metrics: Metrics, argo: ArgoFake
) -> None:
    w = world(metrics, argo)
    w.create(world_canary("good", metrics.url, gates=[gate("final-eval", "promotion")]))
    argo.default = [(None, ""), ("Running", ""), ("Running", ""), ("Failed", "score 0.71 < 0.9")]
    w.run_until(finished("good"), limit=25 * DAY)

    st = status(w, "good")
    assert (st["phase"], st["weight"]) == ("rolled_back", 0)
    reason = st["reason"]
    (workflow,) = [name for _, name in argo.workflows]
    assert reason["kind"] == "gate-failed"
    assert reason["workflow"] == f"{NS}/{workflow}"
    assert workflow in reason["message"]
    assert "score 0.71 < 0.9" in reason["message"]
    assert workflow.startswith("good-final-eval-promotion-")
    # submitted once, at 100 % after the last step, with the candidate's endpoint
    ((namespace, body),) = argo.posts
    assert namespace == NS
    params = {p["name"]: p["value"] for p in body["workflow"]["spec"]["arguments"]["parameters"]}
    assert params == {
        "endpoint": "http://good-llm-nf4-predictor.ml-serving.svc.cluster.local",
        "weight": "100",
    }
    types = [e["type"] for e in st["history"]]
    assert types[-3:] == ["GateStarted", "GateFailed", "RolledBack"]
    assert "Promoted" not in types
    # polled at the runner's interval (tick-rounded), not every analysis interval
    gate_run = st["gates"]["final-eval@promotion"]
    assert gate_run["result"] == "failed"
    assert time_value(gate_run["finishedAt"]) - time_value(gate_run["submittedAt"]) <= 60
    route = w.kube.get(Ref(*ROUTE, NS, "good"))
    weights = {b["name"]: b.get("weight") for b in route["spec"]["rules"][-1]["backendRefs"]}
    assert weights == {"good-llm-bf16-predictor": 100}
    reasons = [r for r, _ in w.events("good")]
    assert "GateSubmitted" in reasons
    assert "GateFailed" in reasons


def test_a_gate_still_running_when_another_fails_is_stopped(
    metrics: Metrics, argo: ArgoFake
) -> None:
    w = world(metrics, argo)
    gates = [gate("final-eval", "promotion"), gate("soak", "promotion")]
    w.create(world_canary("good", metrics.url, gates=gates))
    argo.script("-final-eval-", [(None, ""), ("Running", ""), ("Failed", "score 0.71 < 0.9")])
    argo.script("-soak-", [("Running", "")])  # a long soak test that would run on and on
    w.run_until(finished("good"), limit=25 * DAY)

    st = status(w, "good")
    assert (st["phase"], st["reason"]["kind"]) == ("rolled_back", "gate-failed")
    (soak,) = [name for _, name in argo.workflows if "-soak-" in name]
    ((namespace, stopped, message),) = argo.stops
    assert (namespace, stopped) == (NS, soak)
    assert "rolled back" in message
    assert soak not in (st["controller"].get("gatesSubmitted") or [])
    assert st["gates"]["soak@promotion"]["result"] == "running"  # the record, as it was
    events = dict(w.events("good"))
    assert soak in events["GateStopped"]
    assert "rolled back" in events["GateStopped"]
    # Nothing more to do: settling again stops nothing twice.
    w.settle()
    assert len(argo.stops) == 1


def test_a_gate_that_outlives_its_timeout_is_stopped(metrics: Metrics, argo: ArgoFake) -> None:
    w = world(metrics, argo)
    w.create(
        world_canary("good", metrics.url, gates=[gate("profile", "first-step", timeout="20m")])
    )
    argo.default = [("Running", "")]  # a load test that hangs
    w.run_until(finished("good"), limit=DAY)
    st = status(w, "good")
    assert (st["phase"], st["reason"]["kind"]) == ("rolled_back", "gate-failed")
    assert "did not succeed within its timeout 20m" in st["reason"]["message"]
    ((_, stopped, message),) = argo.stops
    assert stopped == st["gates"]["profile@step-1"]["workflow"]
    assert "rolled back" in message
    assert stopped not in (st["controller"].get("gatesSubmitted") or [])


def test_a_spec_change_during_a_gate_stops_the_old_workflow(
    metrics: Metrics, argo: ArgoFake
) -> None:
    w = world(metrics, argo)
    w.create(world_canary("good", metrics.url, gates=[gate("profile", "first-step")]))
    argo.default = [("Running", "")]
    w.run_until(lambda x: bool(argo.workflows), limit=DAY)
    ((_, old),) = argo.workflows
    obj = w.get("good")
    obj["spec"]["candidate"]["args"] = ["--max-num-seqs=64"]
    w.kube.replace(obj)
    w.run_until(lambda x: len(argo.workflows) == 2, limit=DAY)
    assert [name for _, name, _ in argo.stops] == [old]
    assert "a new rollout of the canary began" in argo.stops[0][2]
    (new,) = [name for _, name in argo.workflows if name != old]
    st = status(w, "good")
    assert st["gates"]["profile@step-1"]["workflow"] == new
    assert st["controller"]["gatesSubmitted"] == [new]
    assert old in dict(w.events("good"))["GateStopped"]


def test_a_stop_the_argo_server_refuses_is_tried_again(metrics: Metrics, argo: ArgoFake) -> None:
    w = world(metrics, argo)
    gates = [gate("final-eval", "promotion"), gate("soak", "promotion")]
    w.create(world_canary("good", metrics.url, gates=gates))
    argo.script("-final-eval-", [(None, ""), ("Running", ""), ("Failed", "score 0.71 < 0.9")])
    argo.script("-soak-", [("Running", "")])
    argo.refuse_stops = True
    w.run_until(finished("good"), limit=25 * DAY)
    st = status(w, "good")
    (soak,) = [name for _, name in argo.workflows if "-soak-" in name]
    assert soak in st["controller"]["gatesSubmitted"]  # not stopped: kept to try again
    assert argo.stops == []
    assert "503" in dict(w.events("good"))["GateStopFailed"]
    w.run_until(lambda x: False, limit=w.clock.t - w.start + 5 * 60)  # 30 more refused tries
    reasons = [r for r, _ in w.events("good")]
    assert reasons.count("GateStopFailed") == 1  # announced once, not at every try
    argo.refuse_stops = False
    w.run_until(lambda x: bool(argo.stops), limit=w.clock.t - w.start + HOUR)
    assert [name for _, name, _ in argo.stops] == [soak]
    assert soak not in (status(w, "good")["controller"].get("gatesSubmitted") or [])


class CrashAfterSubmit:
    """Kills the controller at the status write that records a gate submission: the Workflow
    exists on the Argo Server, the status does not say so."""

    def __init__(self, inner: FakeKube) -> None:
        self.inner = inner
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_status(self, obj: Obj) -> Obj:
        before = (self.inner.peek(Ref.of(obj)) or {}).get("status") or {}
        after = obj.get("status") or {}
        submitted = (after.get("controller") or {}).get("gatesSubmitted")
        first = submitted and not (before.get("controller") or {}).get("gatesSubmitted")
        if first and not self.crashed:
            self.crashed = True
            raise Crash("after submitting a gate workflow")
        return self.inner.replace_status(obj)


def test_crash_after_submit_polls_the_same_workflow(metrics: Metrics, argo: ArgoFake) -> None:
    wraps: list[CrashAfterSubmit] = []

    def wrap(kube: FakeKube) -> CrashAfterSubmit:
        if not wraps:
            wraps.append(CrashAfterSubmit(kube))
        return wraps[0]

    w = world(metrics, argo, wrap=wrap)
    w.create(world_canary("good", metrics.url, gates=[gate("profile", "first-step")]))
    argo.default = [(None, ""), ("Running", ""), ("Succeeded", "")]
    w.run_until(lambda x: x.step("good") >= 1, limit=2 * DAY)

    assert wraps[0].crashed
    assert w.restarts == 1
    (workflow,) = [name for _, name in argo.workflows]
    assert argo.count_posts(workflow) == 2  # re-submitted once: answered AlreadyExists
    assert len(argo.workflows) == 1
    st = status(w, "good")
    assert st["controller"]["gatesSubmitted"] == [workflow]
    run = st["gates"]["profile@step-1"]
    assert (run["workflow"], run["result"], run["phase"]) == (workflow, "passed", "Succeeded")
    assert (st["stage"], st["step"], st["weight"]) == ("steps", 1, 5)
    types = [e["type"] for e in st["history"]]
    assert types.count("GateStarted") == 1
    assert types.count("GatePassed") == 1
    assert {"GatePassed", "StepStarted"} <= set(types)


def test_argo_server_down_pauses_then_resumes(metrics: Metrics, argo: ArgoFake) -> None:
    w = world(metrics, argo)
    w.create(world_canary("good", metrics.url, gates=[gate("profile", "first-step")]))
    argo.down = True
    w.run_until(lambda x: status(x, "good").get("phase") == "paused", limit=DAY)
    st = status(w, "good")
    assert st["reason"]["kind"] == "gate-errors"
    assert "503" in st["reason"]["message"]
    stalled = {c["type"]: c for c in st["conditions"]}["Stalled"]
    assert stalled["status"] == "True"
    assert argo.workflows == {}
    argo.down = False
    w.run_until(lambda x: x.step("good") >= 1, limit=DAY)
    st = status(w, "good")
    assert (st["stage"], st["paused"]) == ("steps", None)
    assert len(argo.workflows) == 1
    types = [e["type"] for e in st["history"]]
    assert types.count("Paused") == 1
    assert "Resumed" in types


def test_candidate_identical_to_stable_is_promoted_and_nothing_is_deployed(
    metrics: Metrics, argo: ArgoFake
) -> None:
    w = world(metrics, argo)
    again = {**CANARY["spec"]["stable"], "name": "bf16-again"}
    w.create(world_canary("good", metrics.url, candidate=again))
    w.run_until(finished("good"), limit=HOUR)
    w.settle()
    st = status(w, "good")
    assert (st["phase"], st["noop"], st["weight"]) == ("promoted", True, 0)
    assert [(e["type"], e["message"]) for e in st["history"]] == [("Promoted", NOOP_MESSAGE)]
    assert w.objects(*ISVC, "good") == []
    assert w.kube.list(*ROUTE, NS) == []
    assert ("Promoted", NOOP_MESSAGE) in w.events("good")
    assert argo.posts == []
    assert json.dumps(st)  # JSON-safe
