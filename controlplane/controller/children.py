"""The canary's child objects in the cluster: apply, own, read ready, address, release, delete.

Owns what the controller does with the serving objects a spec renders
(:func:`controlplane.routing.objects.desired_objects`): applying them server-side with an
ownerReference to the ModelCanary (:func:`deploy`), reading whether the served ones are ready
(:func:`all_ready`, :func:`is_ready`: KServe's readiness rules), the in-cluster base URL of each
variant for ``{{candidate.endpoint}}`` (:func:`variant_endpoints`), deleting the losing variant
after an outcome (:func:`release`) and everything on deletion (:func:`delete_all`).

Called by :class:`controlplane.controller.reconcile.Reconciler` (its catch-up, the progress
deadline's readiness observation and the finalizer) and by :mod:`controlplane.controller.traffic`
(release after an outcome).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.controller.argo_gates import variant_endpoint
from controlplane.errors import NotFound
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.routing.base import CAPABILITIES
from controlplane.serving.render import LABEL_ROLE
from controlplane.spec.models import ModelCanary

FIELD_MANAGER = "canary-controller"
OWNER_FIELD_MANAGER = "canary-controller-owner"
SERVED_KINDS = frozenset({"InferenceService", "LLMInferenceService"})


def deploy(kube: KubeClient, owner: Obj, namespace: str, objects: Sequence[Obj]) -> None:
    """Apply ``objects`` (server-side, as :data:`FIELD_MANAGER`); those in the canary's
    ``namespace`` get an ownerReference to ``owner``, applied by a field manager of their own."""
    reference = owner_reference(owner)
    for obj in objects:
        kube.apply(obj, field_manager=FIELD_MANAGER)
        meta = obj["metadata"]
        if meta.get("namespace") == namespace:
            patch: Obj = {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "metadata": {
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "ownerReferences": [reference],
                },
            }
            kube.apply(patch, field_manager=OWNER_FIELD_MANAGER)


def all_ready(kube: KubeClient, objects: Sequence[Obj]) -> bool:
    """True when every InferenceService / LLMInferenceService of ``objects`` exists and reports
    Ready for its latest generation."""
    for obj in objects:
        if obj["kind"] not in SERVED_KINDS:
            continue
        try:
            live = kube.get(Ref.of(obj))
        except NotFound:
            return False
        if not is_ready(live):
            return False
    return True


def variant_endpoints(
    kube: KubeClient, canary: ModelCanary, objects: Sequence[Obj]
) -> dict[str, str]:
    """In-cluster base URLs of the two variants (``{{candidate.endpoint}}``)."""
    served = [o for o in objects if o["kind"] in SERVED_KINDS]
    single = CAPABILITIES[canary.spec.traffic.router].single_service
    out: dict[str, str] = {}
    for role in ("candidate", "stable"):
        obj = next(
            (
                o
                for o in served
                if single or (o["metadata"].get("labels") or {}).get(LABEL_ROLE) == role
            ),
            None,
        )
        live = None
        if obj is not None:
            try:
                live = kube.get(Ref.of(obj))
            except NotFound:
                live = None
        out[role] = variant_endpoint(canary, role, live)
    return out


def release(kube: KubeClient, canary: ModelCanary, objects: Sequence[Obj], role: str) -> list[str]:
    """Delete the serving objects of the losing ``role`` (single-service routers drop it
    themselves on finalize). Returns what was deleted."""
    if CAPABILITIES[canary.spec.traffic.router].single_service:
        return []
    deleted = []
    for obj in reversed(objects):
        if (obj["metadata"].get("labels") or {}).get(LABEL_ROLE) != role:
            continue
        try:
            kube.delete(Ref.of(obj))
        except NotFound:
            continue
        deleted.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return deleted


def delete_all(kube: KubeClient, objects: Sequence[Obj]) -> None:
    """Delete every object (in reverse order: routes first); those already gone are skipped."""
    for item in reversed(objects):
        try:
            kube.delete(Ref.of(item))
        except NotFound:
            continue


def is_ready(obj: Mapping[str, Any]) -> bool:
    """KServe readiness: condition Ready True for the object's current spec.

    An InferenceService's ``status.observedGeneration`` is not its own: KServe copies the one of
    its child, the predictor Deployment's in Standard mode (``PropagateRawStatus``) or the
    Knative Service's in Serverless mode (``PropagateStatus``, both in
    ``pkg/apis/serving/v1beta1/inference_service_status.go``, v0.20.0). A change that leaves the
    Deployment alone (a canary's ``trafficPercent``) therefore never brings it up to the
    InferenceService's generation, and comparing the two would wait forever. Readiness of an
    InferenceService is its Ready condition and, for each ``spec.canary`` entry, a
    ``status.canaryStatuses`` entry that is ready at the same ``trafficPercent`` (which KServe
    writes only once it has reconciled that spec). Other kinds (LLMInferenceService) must also
    have observed their current generation.
    """
    status = obj.get("status") or {}
    if obj.get("kind") != "InferenceService":
        generation = obj.get("metadata", {}).get("generation")
        observed = status.get("observedGeneration")
        if generation is not None and observed is not None and int(observed) < int(generation):
            return False
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )
    canaries = (obj.get("spec") or {}).get("canary") or []
    if ready and canaries:
        seen = {
            c.get("name"): c for c in status.get("canaryStatuses") or [] if isinstance(c, Mapping)
        }
        for entry in canaries:
            name = (entry.get("predictor") or {}).get("name")
            got = seen.get(name)
            if (
                got is None
                or got.get("ready") is not True
                or int(got.get("trafficPercent", -1)) != int(entry.get("trafficPercent", 0))
            ):
                return False
    return ready


def owner_reference(obj: Mapping[str, Any]) -> Obj:
    """The controller ownerReference to ``obj`` (the ModelCanary)."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
