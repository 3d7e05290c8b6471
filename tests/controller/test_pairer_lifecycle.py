"""The quality judge's pairer in a canary's life: step 1 waits for its rollout, the outcome's
cleanup deletes it (``controlplane.controller.children``)."""

from __future__ import annotations

import pytest
from support.canaries import model_canary
from support.pairs import rolled_out

from controlplane.controller import children
from controlplane.desired import desired_objects
from controlplane.kube.client import Obj, Ref
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.pairer import is_pairer, of_pairer
from controlplane.serving.render import LABEL_ROLE, deployment_name
from controlplane.spec.models import ModelCanary
from harness.kube.fake import FakeKube

CATALOG = load_catalog()
NOW = 1_790_000_000.0
QUALITY = {"sample": "5%", "tolerance": 0.1}
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


def deployment(status: Obj, generation: int = 1, replicas: int = 1) -> Obj:
    return {
        "kind": "Deployment",
        "metadata": {"name": "chat-pairer", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


@pytest.mark.parametrize(
    ("live", "waits"),
    [
        (deployment(rolled_out()), None),
        (deployment(rolled_out(), generation=2), "not observed"),
        (deployment(rolled_out(updatedReplicas=0, availableReplicas=0)), "0 of 1 replicas"),
        (deployment(rolled_out(replicas=2)), "old replicas"),
        (deployment(rolled_out(availableReplicas=0)), "0 of 1 updated replicas available"),
        (deployment({}), "not observed"),
        (
            deployment(
                rolled_out(
                    availableReplicas=0,
                    conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}],
                )
            ),
            "progress deadline",
        ),
    ],
)
def test_a_deployment_is_ready_once_kubectl_would_call_it_rolled_out(
    live: Obj, waits: str | None
) -> None:
    got = children.rollout_waiting(live)
    assert (got is None) if waits is None else (waits in str(got)), got


def deployed(canary: ModelCanary) -> tuple[FakeKube, list[Obj]]:
    """A quality canary's objects applied on a fake cluster, its InferenceServices Ready."""
    kube = FakeKube(now=lambda: NOW)
    objects = desired_objects(canary, CATALOG, 25, pairer_image="img:1")
    owner = {"apiVersion": canary.api_version, "kind": canary.kind, "metadata": {"uid": "u1"}}
    owner["metadata"] |= {"name": canary.metadata.name, "namespace": canary.metadata.namespace}
    children.deploy(kube, owner, canary.metadata.namespace, objects)
    for obj in objects:
        if obj["kind"] == "InferenceService":
            kube.system_replace_status(Ref.of(obj), READY)
    return kube, objects


def test_step_one_waits_for_the_pairers_rollout() -> None:
    kube, objects = deployed(model_canary("chat", "ml", router="gateway-api", quality=QUALITY))
    (pairer,) = [o for o in objects if is_pairer(o)]
    waiting = children.readiness(kube, objects)
    assert not waiting.ready
    assert "pairer" in str(waiting.why), waiting
    kube.system_replace_status(Ref.of(pairer), rolled_out())
    assert children.readiness(kube, objects).ready


def candidate_short_of_a_pod(kube: FakeKube, canary: ModelCanary, objects: list[Obj]) -> None:
    """The candidate's InferenceService not Ready, one pod of its Deployment Ready."""
    (isvc,) = [
        o for o in objects if o["kind"] == "InferenceService" and "-nf4" in o["metadata"]["name"]
    ]
    kube.system_replace_status(Ref.of(isvc), {"conditions": [{"type": "Ready", "status": "False"}]})
    ns, name = canary.metadata.namespace, deployment_name(canary, "candidate")
    labels = {"app": name}
    meta = {"name": name, "namespace": ns}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c"}]}}
    spec = {"selector": {"matchLabels": labels}, "template": template}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**meta, "name": f"{name}-1", "labels": labels},
    }
    kube.apply(pod)
    kube.system_replace_status(Ref.of(pod), READY)


def test_a_candidate_short_of_a_pod_serves_only_while_the_pairer_is_rolled_out() -> None:
    canary = model_canary("chat", "ml", router="gateway-api", quality=QUALITY)
    kube, objects = deployed(canary)
    candidate_short_of_a_pod(kube, canary, objects)
    (pairer,) = [o for o in objects if is_pairer(o)]
    read = children.candidate_readiness(kube, canary, objects, None, 3)
    assert (read.ready, read.serving) == (False, False)  # the pairer's port has no endpoint
    kube.system_replace_status(Ref.of(pairer), rolled_out())
    read = children.candidate_readiness(kube, canary, objects, None, 3)
    assert (read.ready, read.serving, read.cannot_start) == (False, True, False)


def test_the_outcomes_cleanup_deletes_the_pairer_with_the_loser() -> None:
    canary = model_canary("chat", "ml", router="gateway-api", quality=QUALITY)
    kube, objects = deployed(canary)
    deleted = children.release(kube, canary, objects, "stable")
    pairers = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if of_pairer(o)]
    assert len(pairers) == 2
    assert set(pairers) <= set(deleted), deleted
    for obj in objects:
        role = obj["metadata"].get("labels", {}).get(LABEL_ROLE)
        gone = kube.peek(Ref.of(obj)) is None
        assert gone == (of_pairer(obj) or role == "stable"), obj["metadata"]["name"]
