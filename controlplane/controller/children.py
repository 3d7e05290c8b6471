"""The canary's child objects in the cluster: apply, own, read ready, address, release, delete.

Owns what the controller does with the objects a spec renders: server-side apply with an
ownerReference, KServe's readiness rules, each variant's in-cluster URL, releasing the losing
variant and deleting on deletion. Nothing the canary did not create is written: a foreign object
stalls the canary (``ForeignObject``) and the runner retries; so does a variant autoscaled on
vLLM's queue where KEDA is not installed (``KEDANotInstalled``). Called by the reconciler and the
traffic effects. See docs/controller.md, "Per resource", and docs/routing.md, "Whose objects".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controlplane.controller.argo_gates import variant_endpoint
from controlplane.controller.context import event
from controlplane.errors import MissingPrerequisite, NotFound, Unserved
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.rollout.observations import Readiness
from controlplane.routing.base import CAPABILITIES
from controlplane.routing.ownership import (
    Claimant,
    ForeignObject,
    foreign_line,
    foreign_objects,
    foreign_reason,
    refusal,
)
from controlplane.serving import pairer
from controlplane.serving.adopt import PODMONITOR_KIND
from controlplane.serving.render import (
    AUTOSCALER_CLASS_ANNOTATION,
    KEDA,
    LABEL_ROLE,
    deployment_name,
)
from controlplane.serving.startup import cannot_start, load_failure, serving
from controlplane.spec.models import ModelCanary
from controlplane.status import conditions
from controlplane.status import document as st

FIELD_MANAGER = "canary-controller"
OWNER_FIELD_MANAGER = "canary-controller-owner"
SERVED_KINDS = frozenset({"InferenceService", "LLMInferenceService"})
POD_KIND = "Pod"
FOREIGN_REASON = "ForeignObject"
KEDA_REASON = "KEDANotInstalled"
SCALED_OBJECT_KIND = ("keda.sh/v1alpha1", "ScaledObject")
"""(apiVersion, kind) of what KServe v0.20.0 turns a ``keda``-class predictor into
(``reconcilers/keda``)."""


def deploy(
    kube: KubeClient,
    owner: Obj,
    namespace: str,
    objects: Sequence[Obj],
    now: float | None = None,
) -> dict[str, str]:
    """Apply ``objects`` (server-side, as :data:`FIELD_MANAGER`); those in the canary's
    ``namespace`` get an ownerReference to ``owner``, applied by a field manager of their own.
    Returns the warnings of the deploy by Event reason (``NoPodMonitor``: a PodMonitor not
    applied because no Prometheus Operator serves its kind), each also told as an Event.

    Every object is read first: when any exists and is not ``owner``'s, none is applied, the
    refusal is told (:func:`refuse`; its condition when ``now`` is given) and
    :class:`~controlplane.routing.ownership.ForeignObject` raised."""
    claimant = Claimant.of_object(owner)
    foreign = foreign_objects(kube, claimant, objects)
    if foreign:
        message = refusal(claimant, foreign)
        refuse(kube, owner, message, now)
        raise ForeignObject(message)
    missing = keda_missing(kube, objects)
    if missing:
        refuse(kube, owner, missing, now, reason=KEDA_REASON)
        raise MissingPrerequisite(missing)
    reference = owner_reference(owner)
    warnings: dict[str, str] = {}
    for obj in objects:
        try:
            kube.apply(obj, field_manager=FIELD_MANAGER)
        except Unserved:
            if obj["kind"] != PODMONITOR_KIND:
                raise
            message = (
                f"no PodMonitor applied ({obj['apiVersion']} is not served: no Prometheus "
                "Operator): scrape the adopted stable's pods with the labels canary and variant "
                'yourself (docs/adopt.md, "Metrics")'
            )
            event(kube, owner, "NoPodMonitor", message, "Warning")
            warnings["NoPodMonitor"] = message
            continue
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
    return warnings


def keda_missing(kube: KubeClient, objects: Sequence[Obj]) -> str | None:
    """Why ``objects`` cannot serve on this cluster, or None: an InferenceService of KServe's
    ``keda`` autoscaler class (``autoscaling.queue``) where KEDA's ScaledObject is not served.
    KServe v0.20.0 then never reconciles its predictor (``PredictorReady`` False, "failed to get
    existing KEDA autoscaler: no matches for kind ScaledObject", docs/capacity.md), so the
    canary would wait for its progress deadline and roll back on "not ready".

    Asked of the API server's discovery (:meth:`~controlplane.kube.client.KubeClient.serves`):
    no object is read, so the chart needs no rule for KEDA's kinds."""
    scaled = [
        obj
        for obj in objects
        if obj["kind"] == "InferenceService"
        and (obj["metadata"].get("annotations") or {}).get(AUTOSCALER_CLASS_ANNOTATION) == KEDA
    ]
    if not scaled or kube.serves(*SCALED_OBJECT_KIND):
        return None
    names = ", ".join(f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in scaled)
    kind = "/".join(SCALED_OBJECT_KIND)
    return (
        f"autoscaling.queue needs KEDA: this cluster does not serve {kind} (KEDA's CRDs "
        "are not installed), so KServe would never ready InferenceService "
        f"{names}; nothing was applied. Install KEDA (then restart KServe's manager, which "
        "looks for the CRD at start) or remove autoscaling.queue (docs/capacity.md, "
        '"Autoscaling kept")'
    )


def readiness(kube: KubeClient, objects: Sequence[Obj], owner: Obj | None = None) -> Readiness:
    """Ready when every InferenceService / LLMInferenceService of ``objects`` exists and reports
    Ready for its latest generation, and the pairer, if any, is rolled out (:func:`_readiness`)."""
    return _readiness(kube, objects, owner)[0]


def _readiness(
    kube: KubeClient, objects: Sequence[Obj], owner: Obj | None
) -> tuple[Readiness, bool]:
    """Ready when every InferenceService / LLMInferenceService of ``objects`` exists and reports
    Ready for its latest generation; with ``owner`` (the ModelCanary), only objects that are
    ``owner``'s count: another's Ready object of the same name is not this canary's candidate
    being ready (:mod:`~controlplane.routing.ownership`). When one is not ready, ``why`` is the
    first load failure KServe reports on one of them (a crash loop on start). The quality
    judge's pairer (``spec.quality``) counts too, ready once rolled out
    (:func:`rollout_waiting`): step 1's route sends a sample through it. Also whether that
    pairer is rolled out."""
    claimant = Claimant.of_object(owner) if owner is not None else None
    ready, why, pairer_ready = True, None, True
    for obj in objects:
        if obj["kind"] not in SERVED_KINDS and not pairer.is_pairer(obj):
            continue
        try:
            live = kube.get(Ref.of(obj))
        except NotFound:
            ready = False
            continue
        if claimant is not None and foreign_reason(live, claimant) is not None:
            ready = False
            continue
        if pairer.is_pairer(obj):
            waiting = rollout_waiting(live)
            pairer_ready = waiting is None
            ready, why = ready and pairer_ready, why or waiting
            continue
        if not is_ready(live):
            ready = False
            why = why or load_failure(live)
    return Readiness(ready, None if ready else why, serving=ready), pairer_ready


def candidate_deployment(canary: ModelCanary) -> Ref | None:
    """The Deployment KServe v0.20.0 runs the candidate's pods in (Standard mode): the
    predictor's ``<isvc>-predictor``, or ``<name>-kserve`` of an LLMInferenceService; None on a
    router that serves both variants from one object (``kserve``, ``kserve-knative``), where
    the candidate's pods are a Knative revision's or a ``spec.canary`` slot's."""
    if CAPABILITIES[canary.spec.traffic.router].single_service:
        return None
    name = deployment_name(canary, "candidate")
    return Ref("apps/v1", "Deployment", canary.metadata.namespace, name)


def candidate_pods(kube: KubeClient, canary: ModelCanary) -> list[Obj]:
    """The candidate's pods: those its Deployment's ``spec.selector.matchLabels`` select; none
    when it has no Deployment (yet) or its router has none of its own."""
    ref = candidate_deployment(canary)
    if ref is None:
        return []
    try:
        deployment = kube.get(ref)
    except NotFound:
        return []
    labels = (deployment.get("spec") or {}).get("selector", {}).get("matchLabels")
    if not isinstance(labels, Mapping) or not labels:
        return []
    selector = {str(k): str(v) for k, v in labels.items()}
    return kube.list("v1", POD_KIND, canary.metadata.namespace, label_selector=selector)


def candidate_readiness(
    kube: KubeClient,
    canary: ModelCanary,
    objects: Sequence[Obj],
    owner: Obj | None,
    restarts: int,
) -> Readiness:
    """:func:`readiness` of ``objects``; when they are not ready, the candidate's pods are read
    too (:func:`candidate_pods`): when they say it cannot start
    (:func:`~controlplane.serving.startup.cannot_start`, ``restarts`` restarts making a crash
    loop), the readiness says so in their words (KServe's, when it says anything, repeat the
    same container's termination message); otherwise it is ``serving`` while one of them is
    (:func:`~controlplane.serving.startup.serving`) and the pairer, if any, is rolled out."""
    ready, pairer_ready = _readiness(kube, objects, owner)
    if ready.ready:
        return ready
    pods = candidate_pods(kube, canary)
    why = cannot_start(pods, restarts)
    if why is not None:
        return Readiness(False, why, cannot_start=True)
    return replace(ready, serving=pairer_ready and serving(pods))


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
    themselves on finalize) and the quality judge's pairer, which the outcome's route no longer
    names; for an adopted stable, every object of the canary's (the route, the candidate, the
    PodMonitor): the live service alone serves on, under its own route. Returns what was
    deleted."""
    if CAPABILITIES[canary.spec.traffic.router].single_service:
        return []
    if canary.spec.adopted:  # the live service stays: everything made for the canary goes
        mine = list(objects)
    else:
        mine = [
            o
            for o in objects
            if (o["metadata"].get("labels") or {}).get(LABEL_ROLE) == role or pairer.of_pairer(o)
        ]
    deleted, _left = _delete_owned(kube, Claimant.of_canary(canary), mine)
    return deleted


def delete_all(kube: KubeClient, owner: Obj, objects: Sequence[Obj]) -> list[str]:
    """Delete every object that is ``owner``'s (in reverse order: routes first); those already
    gone are skipped, and so are those that are not ``owner``'s (returned, one line each)."""
    _deleted, left = _delete_owned(kube, Claimant.of_object(owner), objects)
    return left


def _delete_owned(
    kube: KubeClient, claimant: Claimant, objects: Sequence[Obj]
) -> tuple[list[str], list[str]]:
    """Delete, in reverse order, each of ``objects`` that exists and is ``claimant``'s. Returns
    what was deleted (``Kind/name``) and a line for each object left because it is not."""
    deleted: list[str] = []
    left: list[str] = []
    for obj in reversed(objects):
        ref = Ref.of(obj)
        try:
            live = kube.get(ref)
        except NotFound:
            continue
        line = foreign_line(live, claimant)
        if line is not None:
            left.append(line)
            continue
        try:
            kube.delete(ref)
        except NotFound:
            continue
        deleted.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return deleted, left


def refuse(
    kube: KubeClient,
    owner: Obj,
    message: str,
    now: float | None,
    *,
    reason: str = FOREIGN_REASON,
) -> None:
    """Tell that ``owner``'s objects were not applied because some are not its own (or, with
    another ``reason``, why else): a Warning Event and, when ``now`` is given, the kstatus
    conditions (``Stalled=True``, ``Ready`` and ``Reconciling`` False, the same reason and
    ``message``) on the status, the rest of which is kept. The next status the rollout writes
    replaces them."""
    event(kube, owner, reason, message, "Warning")
    if now is None:
        return
    previous = owner.get("status") or {}
    generation = owner.get("metadata", {}).get("generation")
    wanted = [
        conditions.Condition("Ready", "False", reason, message),
        conditions.Condition("Reconciling", "False", reason, message),
        conditions.Condition("Stalled", "True", reason, message),
    ]
    status = dict(previous)
    status["conditions"] = conditions.render(wanted, previous.get("conditions"), generation, now)
    if st.same_status(previous, status):
        return
    body = copy.deepcopy(owner)
    body["status"] = status
    kube.replace_status(body)


def rollout_waiting(deployment: Mapping[str, Any]) -> str | None:
    """What a Deployment's rollout waits for, None once it is done: ``kubectl rollout status``'s
    rule (kubectl v0.34.10, ``pkg/polymorphichelpers/rollout_status.go``,
    ``DeploymentStatusViewer``): its generation observed, every replica of the spec updated, no
    old one left, every updated one available; a rollout past its progress deadline says so."""
    name = (deployment.get("metadata") or {}).get("name")
    status = deployment.get("status") or {}
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if generation > int(status.get("observedGeneration") or 0):
        return f"Deployment {name}: its spec is not observed yet"
    progressing = [c for c in status.get("conditions") or [] if c.get("type") == "Progressing"]
    if any(c.get("reason") == "ProgressDeadlineExceeded" for c in progressing):
        return f"Deployment {name}: exceeded its progress deadline"
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return f"Deployment {name}: {updated} of {wanted} replicas updated"
    if int(status.get("replicas") or 0) > updated:
        return f"Deployment {name}: old replicas still terminating"
    if available < updated:
        return f"Deployment {name}: {available} of {updated} updated replicas available"
    return None


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
