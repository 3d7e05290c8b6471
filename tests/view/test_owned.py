"""The objects a canary owns, read into a tree with health (``controlplane/view/owned.py``):
what is read for each router, how each kind's health is judged from its status, which weights
the route holds, and which Events are the canary's. Pure: objects in, values out."""

from __future__ import annotations

from typing import Any

import pytest
from support.canaries import model_canary

from controlplane.desired import desired_objects
from controlplane.kube.client import Obj, Ref
from controlplane.profiles.catalog import load_catalog
from controlplane.view import owned


def _pod(phase: str = "Running", **status: Any) -> Obj:
    return {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "kserve-container"}]},
        "status": {"phase": phase, **status},
    }


def test_a_pod_waiting_for_a_node_is_progressing_with_the_schedulers_words() -> None:
    pod = _pod(
        "Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            }
        ],
    )
    assert owned.pod_health(pod) == (
        "Progressing",
        "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        0,
        1,
    )


def test_a_crash_looping_pod_is_degraded_with_its_reason_and_restarts() -> None:
    crash = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
    pod = _pod(
        containerStatuses=[
            {"name": "kserve-container", "ready": False, "restartCount": 7, "state": crash}
        ]
    )
    health, why, ready, wanted = owned.pod_health(pod)
    assert (health, ready, wanted) == ("Degraded", 0, 1)
    assert why == "kserve-container: CrashLoopBackOff: back-off 5m0s (7 restarts)"


def test_a_model_that_failed_to_load_is_degraded_with_kserves_reason() -> None:
    isvc = {
        "kind": "InferenceService",
        "metadata": {"name": "m", "generation": 1},
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "x"}],
            "modelStatus": {
                "states": {"targetModelState": "FailedToLoad"},
                "lastFailureInfo": {
                    "reason": "ModelLoadFailed",
                    "message": "...\ntorch.OutOfMemoryError: CUDA out of memory.",
                },
            },
        },
    }
    assert owned.served_health(isvc) == (
        "Degraded",
        "ModelLoadFailed: ...\ntorch.OutOfMemoryError: CUDA out of memory.".splitlines()[-1],
    )
    isvc["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert owned.served_health(isvc) == ("Ready", "")
    del isvc["status"]
    assert owned.served_health(isvc)[0] == "Progressing"


def test_a_deployment_past_its_deadline_is_degraded_and_a_rolling_one_progressing() -> None:
    deployment: Obj = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 1},
    }
    assert owned.deployment_health(deployment) == (
        "Progressing",
        "1 of 2 replicas updated",
        1,
        2,
    )
    deployment["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "x" has timed out progressing.',
        }
    ]
    assert owned.deployment_health(deployment)[0] == "Degraded"


@pytest.mark.parametrize(
    ("conditions", "health"),
    [
        ([{"type": "Accepted", "status": "True", "observedGeneration": 3}], "Ready"),
        ([{"type": "Accepted", "status": "True", "observedGeneration": 2}], "Progressing"),
        ([{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners"}], "Degraded"),
    ],
)
def test_an_httproute_is_judged_by_what_its_gateway_reports(
    conditions: list[Obj], health: str
) -> None:
    route = {
        "kind": "HTTPRoute",
        "metadata": {"generation": 3},
        "status": {"parents": [{"controllerName": "envoy", "conditions": conditions}]},
    }
    assert owned.route_health(route)[0] == health


@pytest.mark.parametrize(
    ("router", "kinds"),
    [
        ("gateway-api", ["InferenceService", "InferenceService", "HTTPRoute"]),
        ("istio", ["InferenceService", "InferenceService", "VirtualService"]),
        ("kserve", ["InferenceService", "HTTPRoute"]),
        ("kserve-knative", ["InferenceService"]),
        ("llmisvc", ["LLMInferenceService", "LLMInferenceService", "HTTPRoute", "HTTPRoute"]),
    ],
)
def test_each_router_reads_its_serving_objects_and_routes(router: str, kinds: list[str]) -> None:
    canary = model_canary(router=router, shadow=None)
    assert [ref.kind for ref in owned.layout(canary).refs()] == kinds


def test_the_weights_in_effect_are_read_from_the_route_the_controller_wrote() -> None:
    canary = model_canary(router="gateway-api")
    objs = desired_objects(canary, load_catalog(None), 25)
    reads: dict[Ref, owned.Read] = {Ref.of(o): o for o in objs}
    shape = owned.layout(canary)
    actual = owned.actual_weights(canary, shape, reads)
    assert actual.weights is not None
    assert actual.weights.candidate == 25
    missing = owned.actual_weights(canary, shape, {})
    assert missing.weights is None
    assert missing.why.endswith("not read")


def test_only_the_canarys_events_and_its_objects_are_kept_oldest_first() -> None:
    canary = {"kind": "ModelCanary", "metadata": {"name": "c", "uid": "u1"}}
    node = owned.Node("Deployment", "c-llm-nf4-predictor", "Ready")

    def event(kind: str, name: str, at: str, uid: str | None = None, **more: Any) -> Obj:
        involved = {"kind": kind, "name": name, **({"uid": uid} if uid else {})}
        return {"involvedObject": involved, "lastTimestamp": at, "reason": name, **more}

    events = [
        event("ModelCanary", "c", "2026-01-01T00:00:02Z", "u1", type="Warning"),
        event("Deployment", "c-llm-nf4-predictor", "2026-01-01T00:00:01Z"),
        event("ModelCanary", "c", "2026-01-01T00:00:03Z", "u0"),  # a deleted namesake
        event("ModelCanary", "other", "2026-01-01T00:00:04Z"),
        event("Pod", "unrelated", "2026-01-01T00:00:05Z"),
    ]
    found = owned.cluster_events(canary, events, [node])
    assert [(e.object, e.type) for e in found] == [
        ("Deployment/c-llm-nf4-predictor", "Normal"),
        ("ModelCanary/c", "Warning"),
    ]


def test_after_an_outcome_the_released_variant_not_found_says_it_was_released() -> None:
    canary = model_canary(router="gateway-api")
    shape = owned.layout(canary)
    gone = {ref: owned.Absent("not found") for ref in shape.refs()}
    nodes = owned.build(canary, shape, gone, phase="rolled_back")
    why = {n.role: n.why for n in nodes if n.role}
    assert why == {"stable": "not found", "candidate": "not found: released after the rollback"}
    nodes = owned.build(canary, shape, gone, phase="promoted")
    assert [n.why for n in nodes if n.role == "stable"] == [
        "not found: released after the promotion"
    ]
