"""The ownership rule (routing/ownership.py) and the writers that check it before they write:
the routers (apply_all, llmisvc's patch) and the controller's children (deploy, release,
delete_all). An object that is not the canary's is never applied, patched or deleted."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support.canaries import model_canary

from controlplane.controller import children
from controlplane.desired import desired_objects, make_router
from controlplane.kube.client import Obj, Ref
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import istio, llmisvc
from controlplane.routing.ownership import Claimant, ForeignObject, foreign_reason
from controlplane.serving.render import llm_inference_service
from controlplane.spec.models import ModelCanary
from harness.kube.fake import FakeKube

CATALOG = load_catalog()
NOW = 1_790_000_000.0
UID = "0f0e0d0c-aaaa-bbbb-cccc-000000000001"
LABELS = {
    "canary.controlplane.dev/canary": "support-triage",
    "app.kubernetes.io/managed-by": "controlplane",
}


def owner_obj(c: ModelCanary) -> Obj:
    """The ModelCanary as the controller read it (its uid)."""
    return {
        "apiVersion": c.api_version,
        "kind": c.kind,
        "metadata": {"name": c.metadata.name, "namespace": c.metadata.namespace, "uid": UID},
    }


def live(labels: dict[str, str] | None = None, owners: list[Obj] | None = None) -> Obj:
    meta: dict[str, Any] = {"name": "x", "namespace": "ml-serving"}
    if labels is not None:
        meta["labels"] = labels
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta}


def ref(
    kind: str = "ModelCanary", name: str = "support-triage", uid: str = UID, **more: Any
) -> Obj:
    return {"apiVersion": "x/v1", "kind": kind, "name": name, "uid": uid, **more}


ME = Claimant("ml-serving", "support-triage", UID)


@pytest.mark.parametrize(
    ("obj", "claimant", "why"),
    [
        (live(owners=[ref(controller=True)]), ME, None),
        (live(LABELS), ME, None),  # applied, owner not yet added (a crash between the two)
        (live(LABELS, [ref(kind="Deployment", name="d", uid="u")]), ME, None),  # not controller
        (live(owners=[ref(controller=True)]), Claimant("ml-serving", "support-triage"), None),
        (live(), ME, "no ownerReference to this canary and not its labels"),
        (live({**LABELS, "canary.controlplane.dev/canary": "other"}), ME, "not its labels"),
        (live({"canary.controlplane.dev/canary": "support-triage"}), ME, "not its labels"),
        (
            live(LABELS, [ref(uid="another", controller=True)]),
            ME,
            "controlled by ModelCanary support-triage (an earlier ModelCanary of this name)",
        ),
        (
            live(LABELS, [ref(kind="InferenceService", name="p", uid="i", controller=True)]),
            ME,
            "controlled by InferenceService p",
        ),
        (
            live(owners=[ref(name="other", controller=True)]),
            Claimant("ml-serving", "support-triage"),
            "controlled by ModelCanary other",
        ),
    ],
)
def test_the_ownership_rule(obj: Obj, claimant: Claimant, why: str | None) -> None:
    got = foreign_reason(obj, claimant)
    if why is None:
        assert got is None
    else:
        assert got is not None
        assert why in got


def foreign_service(kube: FakeKube, c: ModelCanary) -> Obj:
    return kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": c.spec.model.name, "namespace": c.metadata.namespace},
            "spec": {"ports": [{"port": 8080}]},
        }
    )


def test_deploy_applies_nothing_when_one_object_is_foreign() -> None:
    kube = FakeKube(now=lambda: NOW)
    c = model_canary(router="istio", shadow=None, metadata={"uid": UID})
    theirs = foreign_service(kube, c)
    objects = desired_objects(c, CATALOG)
    assert [o["kind"] for o in objects] == [
        "InferenceService",
        "InferenceService",
        "Service",
        "VirtualService",
    ]
    with pytest.raises(ForeignObject, match=r"Service ml-serving/support-triage-llm exists"):
        children.deploy(kube, owner_obj(c), c.metadata.namespace, objects)
    assert kube.list("serving.kserve.io/v1beta1", "InferenceService", "ml-serving") == []
    assert kube.list("networking.istio.io/v1", "VirtualService", "ml-serving") == []
    after = kube.get(Ref.of(theirs))
    assert after["metadata"]["resourceVersion"] == theirs["metadata"]["resourceVersion"]
    # the refusal is told on the canary
    events = kube.list("v1", "Event", "ml-serving")
    assert [(e["reason"], e["type"]) for e in events] == [("ForeignObject", "Warning")]


def test_release_and_delete_all_leave_foreign_objects() -> None:
    kube = FakeKube(now=lambda: NOW)
    c = model_canary(router="gateway-api", shadow=None, metadata={"uid": UID})
    objects = desired_objects(c, CATALOG)
    children.deploy(kube, owner_obj(c), c.metadata.namespace, objects)
    # someone replaced the candidate's InferenceService with their own
    name = objects[1]["metadata"]["name"]
    assert name.endswith("-nf4")
    isvc = Ref("serving.kserve.io/v1beta1", "InferenceService", "ml-serving", name)
    kube.delete(isvc)
    theirs = copy.deepcopy(objects[1])
    theirs["metadata"]["labels"] = {"team": "a"}
    kube.create(theirs)

    assert children.release(kube, c, objects, "candidate") == []
    assert kube.get(isvc)["metadata"]["labels"] == {"team": "a"}
    left = children.delete_all(kube, owner_obj(c), objects)
    assert len(left) == 1
    assert f"InferenceService ml-serving/{name} exists" in left[0]
    assert [
        o["metadata"]["name"]
        for o in kube.list("serving.kserve.io/v1beta1", "InferenceService", "ml-serving")
    ] == [name]
    assert kube.list("gateway.networking.k8s.io/v1", "HTTPRoute", "ml-serving") == []


def test_a_router_does_not_write_over_a_foreign_route() -> None:
    kube = FakeKube(now=lambda: NOW)
    c = model_canary(router="istio", shadow=None, metadata={"uid": UID})
    theirs = istio.build_virtualservice(c, 0, False)
    theirs["metadata"]["labels"] = {"team": "a"}
    stored = kube.create(theirs)
    router = make_router("istio", kube, CATALOG)
    with pytest.raises(ForeignObject, match="VirtualService ml-serving/support-triage exists"):
        router.set_weights(c, 25, False)
    with pytest.raises(ForeignObject):
        router.finalize(c, "promoted")
    again = kube.get(Ref.of(theirs))
    assert again["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    # the canary's own route (its labels, as the router writes it) is written
    kube.delete(Ref.of(theirs))
    router.set_weights(c, 25, False)
    router.verify(c, router.get_weights(c))


def test_llmisvc_patches_neither_member_when_one_is_foreign() -> None:
    kube = FakeKube(now=lambda: NOW)
    c = model_canary(router="llmisvc", shadow=None, metadata={"uid": UID})
    stable = kube.create(llm_inference_service(c, "stable", CATALOG))
    theirs = llm_inference_service(c, "candidate", CATALOG)
    theirs["metadata"]["labels"] = {"team": "a"}
    kube.create(theirs)
    router = llmisvc.LLMISvcRouter(kube)
    with pytest.raises(ForeignObject, match=r"LLMInferenceService ml-serving/.*-nf4 exists"):
        router.set_weights(c, 5, False)
    again = kube.get(Ref.of(stable))
    assert again["metadata"]["resourceVersion"] == stable["metadata"]["resourceVersion"]
