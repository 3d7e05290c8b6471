"""``kubectl canary get``: what the cluster holds beside the status (issue 41).

The objects the canary owns as a tree with health (InferenceService -> predictor Deployment ->
pods, the HTTPRoute), the weight the route holds against the one the status sets, the step plan,
each check's recent results and window, and the Kubernetes Events about the canary (Warnings
such as ``AlertDeliveryFailed`` included): all against the in-memory cluster, with the objects
the controller applies (:func:`controlplane.desired.desired_objects`) made Ready by the
fake KServe, and Deployments and pods as the real KServe and kubelet would report them.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import pytest
from support.adoption import adopting_canary, live_isvc
from support.canaries import canary_dict
from support.cli import RunCli, check_golden
from support.cli_rollouts import NAME, NS, Clock, Rollout, at_step_two, scenario

from controlplane.cli import controller
from controlplane.cli.cluster import PIPE_WIDTH, Runtime
from controlplane.desired import desired_objects
from controlplane.errors import Forbidden
from controlplane.kube.client import Obj, Ref, canary_ref
from controlplane.profiles.catalog import load_catalog
from controlplane.serving import object_names
from controlplane.status.times import format_time
from harness.kube.fake import FakeKube
from harness.kube.fake_kserve import FakeKServe

LATER = 120.0
ROUTE = Ref("gateway.networking.k8s.io/v1", "HTTPRoute", NS, NAME)


def _pod(name: str, app: str, state: dict[str, Any], ready: bool, restarts: int = 0) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {"containers": [{"name": "kserve-container"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "kserve-container",
                    "ready": ready,
                    "restartCount": restarts,
                    "state": state,
                }
            ],
        },
    }


def deploy(kube: FakeKube, clock: Clock, rollout: Rollout, weight: int) -> dict[str, str]:
    """What the controller and KServe leave at ``weight``: the InferenceServices (Ready), the
    HTTPRoute, the predictor Deployments (the fake KServe's), the stable's pod ready and the
    candidate's crash-looping.
    Returns the Deployment of each role."""
    kserve = FakeKServe(kube, now=clock)
    for obj in desired_objects(rollout.spec, load_catalog(None), weight):
        kube.apply(obj)
    kserve.tick()
    made = {}
    for role, ready in (("stable", 1), ("candidate", 0)):
        isvc = object_names.variant_service_name(
            rollout.spec.spec.model.name, rollout.spec.spec.variant(role).name
        )
        name = object_names.predictor_service(isvc)
        if not ready:  # KServe made it; its pod does not start
            kube.system_replace_status(
                Ref("apps/v1", "Deployment", NS, name),
                {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1},
            )
        running = {"running": {"startedAt": format_time(clock.now)}}
        crash = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
        pod = _pod(
            f"{name}-6d5f7-x2x9q",
            name,
            running if ready else crash,
            bool(ready),
            0 if ready else 4,
        )
        status = pod.pop("status")
        kube.create(pod)
        kube.system_replace_status(Ref("v1", "Pod", NS, pod["metadata"]["name"]), status)
        made[role] = name
    return made


def test_get_shows_the_owned_objects_with_health_and_the_weights(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """The example of docs/cli.md (``get-tree.txt``)."""
    rollout = at_step_two(kube, clock)
    made = deploy(kube, clock, rollout, 25)
    for verdict, value in (("pass", 0.011), ("inconclusive", None), ("pass", 0.0137)):
        seen = (None, None) if value is None else (0.812, 0.801)
        rollout.tick(600, {"kpi": (verdict, value, *seen)})
    kube.event(
        rollout.obj,
        "AlertDeliveryFailed",
        "slack alert (spec.alerts[0]) for Advanced not delivered: Secret "
        "ml-serving/slack-webhook not found",
        "Warning",
    )
    clock.now += LATER
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    check_golden("get-tree.txt", result.out)
    out = result.out
    assert "set 25%, actual 25% (HTTPRoute support-triage)" in out
    assert "DIFFERS" not in out
    rows = out.splitlines()
    stable = next(x for x in rows if f"{made['stable']} " in x and "Deployment" in x)
    assert "Ready" in stable
    assert "2/2" in stable
    candidate = next(x for x in rows if f"{made['candidate']} " in x and "Deployment" in x)
    assert "Progressing" in candidate
    assert "0/1" in candidate
    at = next(i for i, x in enumerate(rows) if f"{made['candidate']}-6d5f7" in x)
    assert "Degraded" in rows[at]
    assert "CrashLoopBackOff: back-off 5m0s (4 restarts)" in rows[at + 1]  # why, below it
    assert "InferenceService" in out
    assert "HTTPRoute" in out


def test_a_route_that_holds_another_weight_is_flagged(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    deploy(kube, clock, rollout, 5)  # the route still holds step 1's weight
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    assert "set 25%, actual 5% (HTTPRoute support-triage)  DIFFERS" in result.out


def test_missing_and_refused_objects_show_as_such(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    deploy(kube, clock, rollout, 25)
    kube.delete(ROUTE)
    refusal = Forbidden(
        '403 Forbidden: deployments.apps "x" is forbidden: User "viewer" cannot get resource'
    )
    real_get = kube.get

    def get(ref: Ref) -> Obj:
        if ref.kind == "Deployment":
            raise refusal
        return real_get(ref)

    kube.get = get  # type: ignore[method-assign]
    kube.fail_next("list", Forbidden('403 Forbidden: events is forbidden: User "viewer"'))
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    rows = result.out.splitlines()
    at = next(i for i, x in enumerate(rows) if "└─ support-triage " in x)
    assert "Missing" in rows[at]
    assert rows[at + 1].strip() == "not found"
    assert "actual unknown: HTTPRoute support-triage: not found" in result.out
    assert result.out.count("Forbidden") >= 2
    assert "Kubernetes Events: cannot list: 403 Forbidden: events is forbidden" in result.out


def test_warning_events_show_after_a_first_pass_with_no_history(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """After ``controller --once`` the status had no history yet (waiting for the candidate)
    while the controller had written Events: ``get`` said "Events: none yet" because it showed
    only ``status.history``. It shows the Kubernetes Events about the canary too."""
    rollout = Rollout(kube, clock).start(ready=False)
    obj = rollout.obj
    kube.event(obj, "Deployed", "applied support-triage-llm-bf16, support-triage-llm-nf4")
    kube.event(
        obj,
        "AlertDeliveryFailed",
        "slack alert (spec.alerts[0]) for Advanced not delivered: Secret ml-serving/slack "
        "not found",
        "Warning",
    )
    other = copy.deepcopy(obj)
    other["metadata"]["name"] = "someone-else"
    kube.event(other, "Deployed", "not this canary's")
    namesake = copy.deepcopy(obj)
    namesake["metadata"]["uid"] = "an-older-canary-of-the-same-name"
    kube.event(namesake, "RolledBack", "a deleted namesake's")
    clock.now += LATER
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    assert "Events: none yet" not in result.out
    assert "Kubernetes Events (last 2 of 2, 1 warning)" in result.out
    warning = next(x for x in result.out.splitlines() if "AlertDeliveryFailed" in x)
    assert warning.split()[:4] == ["2m", "Warning", "AlertDeliveryFailed", "canary"]
    assert "not delivered: Secret ml-serving/slack not found" in " ".join(result.out.split())
    assert "not this canary's" not in result.out
    assert "namesake" not in result.out


@pytest.mark.parametrize(
    ("case", "states"),
    [
        (
            "progressing",
            ["shadow mirror 14d done 1h", "1/4 5% 7d done 10m1s", "2/4 25% 7d current 3d"],
        ),
        ("rolled_back", ["1/4 5% 7d rolled back 3m", "2/4 25% 7d not run"]),
        ("promoted", ["2/4 25% 7d done 3d1h", "3/4 75% 7d skipped", "4/4 100% - skipped"]),
        ("pending", ["shadow mirror 14d pending", "1/4 5% 7d pending"]),
    ],
)
def test_the_step_plan_says_done_current_and_pending(
    case: str, states: list[str], kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    scenario(case, kube, clock)
    clock.now += LATER
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    rows = [" ".join(line.split()) for line in result.out.splitlines()]
    for state in states:
        assert any(row.startswith(state) for row in rows), (state, rows)


def test_each_check_shows_its_window_and_recent_results(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    for verdict, value in (("pass", 0.02), ("inconclusive", None), ("breach", -0.061)):
        rollout.tick(600, {"kpi": (verdict, value, None, None)})
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    assert "roll back if drift < -5% or > 5% over 4h" in result.out
    line = next(x for x in result.out.splitlines() if x.startswith("kpi") and "✔" in x)
    assert "✔✔?✖" in line
    assert "2 pass, 1 breach, 1 inconclusive" in line


@pytest.mark.parametrize(
    ("router", "kinds", "actual"),
    [
        ("gateway-api", ["InferenceService", "Deployment", "HTTPRoute"], "HTTPRoute"),
        ("istio", ["InferenceService", "Deployment", "VirtualService"], "VirtualService"),
        ("kserve", ["InferenceService", "Deployment", "HTTPRoute"], "HTTPRoute"),
        ("kserve-knative", ["InferenceService"], "(canaryTrafficPercent)"),
        ("llmisvc", ["LLMInferenceService", "Deployment"], "HTTPRoute support-triage-llm-bf16"),
    ],
)
def test_every_router_shows_its_objects_and_the_weights_they_hold(
    router: str, kinds: list[str], actual: str, kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """Each router's serving objects, Deployments and routes, as the fake KServe makes them
    from the objects the controller applies (KServe's own HTTPRoute for ``kserve``, Knative
    mode without Deployments for ``kserve-knative``, the members' routes for ``llmisvc``)."""
    rollout = Rollout(kube, clock, router=router, shadow=None)
    kserve = FakeKServe(kube, now=clock, gateway_routes="ready-canaries")
    for obj in desired_objects(rollout.spec, load_catalog(None), 0):
        kube.apply(obj)
    kserve.tick()
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    tree = result.out[result.out.index("\nObjects\n") : result.out.index("\nEvents")]
    for kind in kinds:
        assert f" {kind} " in tree, kind
    # the fake KServe makes no LLMInferenceService workload; a member at weight 0 has no route
    assert "Missing" not in tree or router == "llmisvc"
    weight = next(x for x in result.out.splitlines() if x.startswith("Weight"))
    assert "set 0%, actual 0% (" in weight
    assert actual in weight


def test_an_adopted_stable_is_the_live_service_in_the_tree(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """``spec.stable.targetRef``: the stable's InferenceService is the live one the canary
    names, with the Deployment KServe made for it; the candidate is the canary's own."""
    kserve = FakeKServe(kube, now=clock)
    kube.create(live_isvc("support"))
    kube.create(adopting_canary("triage", "support"))
    kserve.tick()
    result = run_cli("get", "triage", "-n", "support")
    assert result.code == 0, result.err
    rows = [" ".join(x.split()) for x in result.out.splitlines()]
    assert "├─ chat (stable) InferenceService Ready" in rows
    assert "│ └─ chat-predictor (stable) Deployment Ready 2/2" in rows
    assert any(x.startswith("├─ chat-fp8 (candidate) InferenceService Missing") for x in rows)


def test_events_0_shows_how_many_there_are_and_no_table(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    kube.event(rollout.obj, "AlertDeliveryFailed", "not delivered", "Warning")
    result = run_cli("get", NAME, "-n", NS, "--events", "0")
    assert result.code == 0, result.err
    assert "Events: 4 (--events 0)" in result.out
    assert "Kubernetes Events: 1, 1 warning (--events 0)" in result.out
    assert "ShadowStarted" not in result.out
    assert "not delivered" not in result.out


def test_a_spec_that_does_not_parse_has_no_tree_and_no_traceback(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    rollout = at_step_two(kube, clock)
    obj = rollout.obj
    obj["spec"]["traffic"] = {"router": "carrier-pigeon"}
    kube.replace(obj)
    kube.event(obj, "InvalidSpec", "spec.traffic.router: unknown router", "Warning")
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    assert "the spec does not parse, so the objects it owns are unknown" in result.out
    assert "InvalidSpec" in result.out


def test_after_controller_once_get_shows_the_events_it_wrote(
    kube: FakeKube, run_cli: RunCli, tmp_path: Path
) -> None:
    """The report of issue 41, replayed: one ``canaryctl controller --once`` pass deploys the
    variants and leaves the canary pending (no history yet); ``get`` shows its Events."""
    kube.create(canary_dict(traffic={"router": "gateway-api", "gateway": {"name": "gw"}}))
    parser = argparse.ArgumentParser()
    controller.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["controller", "--once", "--api-port", "0", "--git-cache-dir", str(tmp_path)]
    )
    assert controller.run(args, kube) == 0
    status = kube.get(canary_ref(NS, NAME))["status"]
    assert (status["phase"], status.get("history", [])) == ("pending", [])
    reasons = {e["reason"] for e in kube.list("v1", "Event", NS)}
    assert "Deployed" in reasons
    result = run_cli("get", NAME, "-n", NS)
    assert result.code == 0, result.err
    assert "Events: none in the rollout's history yet" in result.out
    listed = result.out[result.out.index("Kubernetes Events (") :]
    assert " Deployed " in listed


def test_a_view_printed_to_a_pipe_keeps_its_columns_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Piped or redirected, the console is :data:`PIPE_WIDTH` wide, not rich's 80, which cut the
    object tree's READY column onto a line of its own and dropped the Events' MESSAGE column;
    ``COLUMNS`` still wins, as it does for a terminal."""
    monkeypatch.delenv("COLUMNS", raising=False)
    piped = Runtime(environ={}).terminal()
    assert not piped.is_terminal
    assert piped.width == PIPE_WIDTH > 80
    monkeypatch.setenv("COLUMNS", "90")
    assert Runtime(environ={"COLUMNS": "90"}).terminal().width == 90


def test_get_watch_shows_the_tree_and_reads_it_again_at_a_change(
    kube: FakeKube, clock: Clock, run_cli: RunCli
) -> None:
    """``get -w`` showed the status only; it shows what the cluster holds too, read again when
    the canary changes: here the route moves from step 1's weight to step 2's."""
    import threading
    import time

    rollout = at_step_two(kube, clock)
    deploy(kube, clock, rollout, 5)  # the route still holds step 1's weight

    def change() -> None:
        deadline = time.monotonic() + 30
        while kube.open_watches == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        for obj in desired_objects(rollout.spec, load_catalog(None), 25):
            kube.apply(obj)
        rollout.intent("pause")
        clock.step = 1.0  # then the fake clock runs to the timeout

    thread = threading.Thread(target=change, daemon=True)
    thread.start()
    result = run_cli("get", NAME, "-n", NS, "-w", "--timeout", "20s")
    thread.join()
    assert result.code == 0, result.err
    frames = result.out.split(f"ModelCanary  {NS}/{NAME}")[1:]
    assert len(frames) == 2, result.out
    assert "set 25%, actual 5% (HTTPRoute support-triage)  DIFFERS" in frames[0]
    assert "InferenceService" in frames[0]
    assert "set 25%, actual 25% (HTTPRoute support-triage)" in frames[1]
    assert "DIFFERS" not in frames[1]
