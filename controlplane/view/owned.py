"""The objects a canary owns as a person sees them: what to read for each router
(:func:`layout`, :func:`deployments`, :func:`pod_selector`), and from what was read the tree with
health (:func:`build`: serving objects over Deployments over pods, then the routes), the weights
the route holds (:func:`actual_weights`, with each router's own reader) and the Kubernetes Events
about them (:func:`cluster_events`). An object not read is an :class:`Absent`, never an exception.
Pure: :func:`controlplane.operations.read_owned` reads; ``get`` and the API render.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.errors import KubeError, RouterError
from controlplane.kube.client import Obj, Ref
from controlplane.routing import gateway_api, istio, kserve, kserve_knative, llmisvc
from controlplane.routing._common import dig
from controlplane.routing.base import Weights
from controlplane.serving import object_names
from controlplane.serving.render import (
    DEPLOYMENT_MODE_ANNOTATION,
    ISVC_API_VERSION,
    LLMISVC_API_VERSION,
    Role,
    isvc_name,
)
from controlplane.spec.models import LABEL_VARIANT, ModelCanary
from controlplane.status.times import parse_time

Health = Literal["Ready", "Progressing", "Degraded", "Missing", "Forbidden", "Unknown"]
"""Ready: serves as asked. Progressing: on its way (rolling out, starting, not yet observed).
Degraded: failed (a model that did not load, a crash loop, a rollout past its deadline, a route
the Gateway refuses). Missing: not in the cluster. Forbidden: the reader may not see it.
Unknown: nothing reports on it (a route no Gateway controller writes a status for)."""

DEPLOYMENT_API_VERSION = "apps/v1"
PODS_SHOWN = 10
"""Pods listed under one Deployment; more are counted."""
POD_FAILURES = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "OOMKilled",
        "Error",
    }
)
"""Container states that make a pod Degraded rather than Progressing."""


@dataclass(frozen=True)
class Absent:
    """An object that could not be read: ``why`` is ``not found``, or the API server's words;
    ``refused`` when it was a refusal (RBAC)."""

    why: str
    refused: bool = False


Read = Obj | Absent
"""An object as read: the object, or why there is none."""


@dataclass(frozen=True)
class Node:
    """One object of the tree with its health. ``role``: the variant it serves (``stable``,
    ``candidate``, both for a single InferenceService, empty for a route); ``ready`` / ``wanted``:
    replicas (a Deployment) or containers (a pod), None when it has none."""

    kind: str
    name: str
    health: Health
    why: str = ""
    role: str = ""
    ready: int | None = None
    wanted: int | None = None
    children: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Layout:
    """What to read first: each serving object with the variant(s) it serves, and the routes."""

    served: tuple[tuple[str, Ref], ...]
    routes: tuple[Ref, ...]

    def refs(self) -> list[Ref]:
        return [ref for _role, ref in self.served] + list(self.routes)


@dataclass(frozen=True)
class Actual:
    """The weights a route holds now (``weights``), where they were read (``source``), or why
    they could not be (``why``, ``weights`` None)."""

    weights: Weights | None
    source: str = ""
    why: str = ""


@dataclass(frozen=True)
class ClusterEvent:
    """A Kubernetes Event about the canary or one of its objects."""

    type: str
    reason: str
    object: str
    message: str
    count: int
    last: float | None
    first: float | None = None
    """When it was first seen (``firstTimestamp``; a repeat counts up from there)."""


@dataclass(frozen=True)
class Owned:
    """Everything :func:`build` made: the tree under the canary, the weights in effect, the
    Events; ``note`` says why there is no tree (an invalid spec)."""

    nodes: tuple[Node, ...] = ()
    actual: Actual | None = None
    events: tuple[ClusterEvent, ...] = ()
    events_why: str = ""
    note: str = ""


# --------------------------------------------------------------------------- what to read


def _served_ref(canary: ModelCanary, role: Role) -> Ref:
    if canary.spec.traffic.router == "llmisvc":
        return Ref(
            LLMISVC_API_VERSION, llmisvc.KIND, canary.metadata.namespace, isvc_name(canary, role)
        )
    return Ref(
        ISVC_API_VERSION, "InferenceService", canary.metadata.namespace, isvc_name(canary, role)
    )


def layout(canary: ModelCanary) -> Layout:
    """The serving objects and routes of ``canary``'s router, as the controller names them."""
    router = canary.spec.traffic.router
    roles: tuple[Role, Role] = ("stable", "candidate")
    if router in ("kserve", "kserve-knative"):
        served: tuple[tuple[str, Ref], ...] = (("stable+candidate", kserve.single_ref(canary)),)
    else:
        served = tuple((role, _served_ref(canary, role)) for role in roles)
    if router == "gateway-api":
        routes: tuple[Ref, ...] = (gateway_api.route_ref(canary),)
    elif router == "istio":
        routes = (istio.route_ref(canary),)
    elif router == "kserve":
        routes = (kserve.route_ref(canary),)
    elif router == "llmisvc":
        routes = tuple(
            Ref(
                llmisvc.ROUTE_API_VERSION,
                "HTTPRoute",
                canary.metadata.namespace,
                llmisvc.route_name(isvc_name(canary, role)),
            )
            for role in roles
        )
    else:  # kserve-knative: Knative routes inside KServe's objects
        routes = ()
    return Layout(served, routes)


def _serverless(obj: Obj) -> bool:
    mode = (dig(obj, "metadata", "annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION)
    return mode == "Serverless"


def deployments(
    canary: ModelCanary, shape: Layout, reads: Mapping[Ref, Read]
) -> list[tuple[Ref, str, Ref]]:
    """(serving object, role, Deployment) for each predictor Deployment KServe makes of the
    serving objects read: ``<isvc>-predictor`` (``<isvc>-<predictor name>-predictor`` once
    named), one more per ``spec.canary`` entry (the ``kserve`` router), ``<name>-kserve`` for an
    LLMInferenceService. None for a serving object that could not be read or runs in Knative
    (Serverless) mode, whose pods belong to Knative revisions."""
    found: list[tuple[Ref, str, Ref]] = []
    namespace = canary.metadata.namespace
    for role, ref in shape.served:
        obj = reads.get(ref)
        if (
            not isinstance(obj, dict)
            or _serverless(obj)
            or canary.spec.traffic.router == "kserve-knative"
        ):
            continue
        if ref.kind == llmisvc.KIND:
            name = object_names.llmisvc_deployment(ref.name)
            found.append((ref, role, Ref(DEPLOYMENT_API_VERSION, "Deployment", namespace, name)))
            continue
        predictor = dig(obj, "spec", "predictor") or {}
        serving = dig(predictor, "labels", LABEL_VARIANT)
        main_role = role
        if role == "stable+candidate":
            main_role = "candidate" if serving == canary.spec.candidate.name else "stable"
        stable = object_names.predictor_service(ref.name, predictor.get("name") or None)
        found.append((ref, main_role, Ref(DEPLOYMENT_API_VERSION, "Deployment", namespace, stable)))
        for entry in dig(obj, "spec", "canary") or []:
            slot = dig(entry, "predictor", "name")
            if isinstance(slot, str) and slot:
                deployment = object_names.predictor_service(ref.name, slot)
                found.append(
                    (
                        ref,
                        "candidate",
                        Ref(DEPLOYMENT_API_VERSION, "Deployment", namespace, deployment),
                    )
                )
    return found


def pod_selector(deployment: Obj) -> dict[str, str] | None:
    """The Deployment's ``spec.selector.matchLabels`` (the pods it owns), None without one."""
    labels = dig(deployment, "spec", "selector", "matchLabels")
    if not isinstance(labels, Mapping) or not labels:
        return None
    return {str(k): str(v) for k, v in labels.items()}


# --------------------------------------------------------------------------- health


def _conditions(obj: Obj) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for cond in dig(obj, "status", "conditions") or []:
        if isinstance(cond, Mapping) and isinstance(cond.get("type"), str):
            found[cond["type"]] = cond
    return found


def _said(cond: Mapping[str, Any]) -> str:
    parts = [str(cond.get(k)) for k in ("reason", "message") if cond.get(k)]
    return ": ".join(parts)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def absent_node(kind: str, name: str, absent: Absent, role: str = "") -> Node:
    health: Health = "Forbidden" if absent.refused else "Missing"
    return Node(kind, name, health, absent.why, role)


def served_health(obj: Obj) -> tuple[Health, str]:
    """An InferenceService's (LLMInferenceService's) health: KServe's Ready condition; Degraded
    when KServe reports the model failed to load (``modelStatus``), with its reason."""
    if dig(obj, "metadata", "deletionTimestamp"):
        return "Progressing", "being deleted"
    model = dig(obj, "status", "modelStatus") or {}
    if isinstance(model, Mapping) and (
        dig(model, "states", "targetModelState") == "FailedToLoad"
        or model.get("transitionStatus") == "BlockedByFailedLoad"
    ):
        info = model.get("lastFailureInfo") or {}
        why = ": ".join(
            str(info[k]) for k in ("reason", "message") if isinstance(info, Mapping) and info.get(k)
        )
        return "Degraded", (why or "the model failed to load").splitlines()[-1][:300]
    conditions = _conditions(obj)
    ready = conditions.get("Ready")
    generation = _int(dig(obj, "metadata", "generation"), 0)
    observed = _int(dig(obj, "status", "observedGeneration"), generation)
    if ready is None:
        return "Progressing", "no status yet: KServe has not reconciled it"
    if ready.get("status") == "True":
        if obj.get("kind") != "InferenceService" and observed < generation:
            return "Progressing", f"generation {generation} not yet observed (at {observed})"
        return "Ready", ""
    failing = [
        c for t, c in conditions.items() if t != "Ready" and c.get("status") == "False" and _said(c)
    ]
    why = _said(ready) or (_said(failing[0]) if failing else "not ready")
    return "Progressing", why


def deployment_health(obj: Obj) -> tuple[Health, str, int, int]:
    """A Deployment's health as ``kubectl rollout status`` judges it, with ready / wanted."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = _int(spec.get("replicas"), 1)
    ready = _int(status.get("readyReplicas"), 0)
    updated = _int(status.get("updatedReplicas"), 0)
    available = _int(status.get("availableReplicas"), 0)
    progressing = _conditions(obj).get("Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return "Degraded", _said(progressing), ready, wanted
    generation = _int(dig(obj, "metadata", "generation"), 0)
    if _int(status.get("observedGeneration"), 0) < generation:
        return "Progressing", "the new spec is not observed yet", ready, wanted
    if updated < wanted:
        return "Progressing", f"{updated} of {wanted} replicas updated", ready, wanted
    if _int(status.get("replicas"), 0) > updated:
        return "Progressing", "old replicas are terminating", ready, wanted
    if available < wanted:
        return "Progressing", f"{available} of {wanted} replicas available", ready, wanted
    if wanted == 0:
        return "Ready", "scaled to 0", ready, wanted
    return "Ready", "", ready, wanted


def pod_health(obj: Obj) -> tuple[Health, str, int, int]:
    """A pod's health: Degraded on a failing container (a crash loop, an image it cannot pull,
    an error exit), Progressing while pending or not ready; ready / wanted containers."""
    status = obj.get("status") or {}
    containers = [c for c in status.get("containerStatuses") or [] if isinstance(c, Mapping)]
    wanted = len(dig(obj, "spec", "containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready") is True)
    restarts = sum(_int(c.get("restartCount"), 0) for c in containers)
    again = f" ({restarts} restarts)" if restarts else ""
    for c in containers:
        state = c.get("state") or {}
        for key in ("waiting", "terminated"):
            detail = state.get(key) or {}
            reason = detail.get("reason")
            if reason in POD_FAILURES:
                text = f"{c.get('name', '?')}: {reason}"
                message = str(detail.get("message") or "").strip().splitlines()
                if message:
                    text += f": {message[-1][:200]}"
                return "Degraded", text + again, ready, wanted
    if dig(obj, "metadata", "deletionTimestamp"):
        return "Progressing", "terminating", ready, wanted
    phase = status.get("phase") or "Pending"
    if phase == "Failed":
        return (
            "Degraded",
            str(status.get("reason") or status.get("message") or "failed"),
            ready,
            wanted,
        )
    if phase == "Succeeded":
        return "Degraded", "exited", ready, wanted
    scheduled = _conditions(obj).get("PodScheduled")
    if phase == "Pending" and scheduled is not None and scheduled.get("status") == "False":
        return "Progressing", _said(scheduled) or "not scheduled", ready, wanted
    if phase == "Pending":
        waiting = [
            str(dig(c, "state", "waiting", "reason"))
            for c in containers
            if dig(c, "state", "waiting", "reason")
        ]
        return "Progressing", ", ".join(waiting) or "pending", ready, wanted
    if wanted and ready < wanted:
        return "Progressing", f"{ready} of {wanted} containers ready{again}", ready, wanted
    return "Ready", again.strip(" ()"), ready, wanted


def route_health(obj: Obj) -> tuple[Health, str]:
    """A route's health: an HTTPRoute by what each Gateway controller reports (``Accepted``,
    ``ResolvedRefs``, for the route's generation); a VirtualService by Istio's validation
    messages, Ready when it has none."""
    if obj.get("kind") != "HTTPRoute":
        errors = [
            str(m.get("description") or m.get("type") or "invalid")
            for m in dig(obj, "status", "validationMessages") or []
            if isinstance(m, Mapping) and dig(m, "level") in ("ERROR", 3, "3")
        ]
        return ("Degraded", "; ".join(errors)) if errors else ("Ready", "")
    parents = [p for p in dig(obj, "status", "parents") or [] if isinstance(p, Mapping)]
    if not parents:
        return "Unknown", "no Gateway controller reports on it"
    generation = _int(dig(obj, "metadata", "generation"), 0)
    behind = ""
    for parent in parents:
        who = parent.get("controllerName") or "the Gateway's controller"
        conditions = {
            c.get("type"): c for c in parent.get("conditions") or [] if isinstance(c, Mapping)
        }
        for kind in ("Accepted", "ResolvedRefs"):
            cond = conditions.get(kind)
            if cond is not None and cond.get("status") == "False":
                return "Degraded", f"{who}: {kind} False: {_said(cond)}".rstrip(": ")
        accepted = conditions.get("Accepted")
        seen = _int((accepted or {}).get("observedGeneration"), 0)
        if accepted is None or seen < generation:
            behind = f"{who} has not taken up generation {generation} (it reports {seen or 'none'})"
    return ("Progressing", behind) if behind else ("Ready", "")


# --------------------------------------------------------------------------- the tree


def _pods_nodes(pods: Sequence[Obj] | Absent | None) -> tuple[Node, ...]:
    if pods is None:
        return ()
    if isinstance(pods, Absent):
        return (absent_node("Pod", "(pods)", pods),)
    nodes = []
    ordered = sorted(pods, key=lambda p: str(dig(p, "metadata", "name") or ""))
    for pod in ordered[:PODS_SHOWN]:
        health, why, ready, wanted = pod_health(pod)
        nodes.append(
            Node("Pod", str(dig(pod, "metadata", "name") or "?"), health, why, "", ready, wanted)
        )
    if len(ordered) > PODS_SHOWN:
        nodes.append(Node("Pod", f"(+{len(ordered) - PODS_SHOWN} more)", "Unknown"))
    return tuple(nodes)


def _deployment_node(
    ref: Ref, role: str, read: Read | None, pods: Sequence[Obj] | Absent | None
) -> Node:
    if read is None or isinstance(read, Absent):
        return absent_node("Deployment", ref.name, read or Absent("not read"), role)
    health, why, ready, wanted = deployment_health(read)
    return Node("Deployment", ref.name, health, why, role, ready, wanted, _pods_nodes(pods))


RELEASED = {"rolled_back": ("candidate", "the rollback"), "promoted": ("stable", "the promotion")}
"""The variant an outcome releases (the controller deletes its objects, after
``--rollback-cleanup-delay`` for a rollback), by phase."""


def build(
    canary: ModelCanary,
    shape: Layout,
    reads: Mapping[Ref, Read],
    pods: Mapping[Ref, Sequence[Obj] | Absent] | None = None,
    phase: str = "",
) -> tuple[Node, ...]:
    """The tree under the canary: each serving object over its predictor Deployments over their
    pods (``pods``: by Deployment), then the routes. After an outcome (``phase``), the released
    variant's serving object not found says so: it is gone as it should be."""
    pods = pods or {}
    released, outcome = RELEASED.get(phase, ("", ""))
    children: dict[Ref, list[Node]] = {}
    for parent, role, ref in deployments(canary, shape, reads):
        children.setdefault(parent, []).append(
            _deployment_node(ref, role, reads.get(ref), pods.get(ref))
        )
    nodes: list[Node] = []
    for role, ref in shape.served:
        read = reads.get(ref)
        if read is None or isinstance(read, Absent):
            absent = read or Absent("not read")
            if role == released and not absent.refused and absent.why == "not found":
                absent = Absent(f"not found: released after {outcome}")
            nodes.append(absent_node(ref.kind, ref.name, absent, role))
            continue
        health, why = served_health(read)
        under = tuple(children.get(ref, ()))
        if not under and (_serverless(read) or canary.spec.traffic.router == "kserve-knative"):
            why = why or "Serverless: its pods belong to Knative revisions (not shown)"
        nodes.append(Node(ref.kind, ref.name, health, why, role, children=under))
    for ref in shape.routes:
        read = reads.get(ref)
        if read is None or isinstance(read, Absent):
            nodes.append(absent_node(ref.kind, ref.name, read or Absent("not read")))
            continue
        health, why = route_health(read)
        nodes.append(Node(ref.kind, ref.name, health, why))
    return tuple(nodes)


def walk(nodes: Iterable[Node]) -> Iterable[Node]:
    """Every node of the tree, depth first."""
    for node in nodes:
        yield node
        yield from walk(node.children)


# --------------------------------------------------------------------------- the weights


def actual_weights(canary: ModelCanary, shape: Layout, reads: Mapping[Ref, Read]) -> Actual:
    """The weights in effect, read from the route with the router's own reader; for
    ``kserve-knative`` what the InferenceService asks of KServe (``canaryTrafficPercent``)."""
    router = canary.spec.traffic.router
    try:
        if router == "kserve-knative":
            ref = shape.served[0][1]
            isvc = reads.get(ref)
            if not isinstance(isvc, dict):
                return Actual(None, why=_unread(ref, isvc))
            return Actual(
                kserve_knative.weights_of(canary, isvc),
                f"{ref.kind} {ref.name} (canaryTrafficPercent)",
            )
        if router == "llmisvc":
            routes: dict[Role, Obj] = {}
            for role, ref in zip(llmisvc.ROLES, shape.routes, strict=True):
                read = reads.get(ref)
                if isinstance(read, dict):
                    routes[role] = read
            if not routes:
                return Actual(None, why="KServe has written no HTTPRoute for either member")
            first = llmisvc.routes_in_effect(routes)[0]
            split = llmisvc.route_split(canary, first, routes[first])
            route = routes[first]
            return Actual(
                llmisvc.split_weights(split), f"HTTPRoute {dig(route, 'metadata', 'name')}"
            )
        ref = shape.routes[0]
        read = reads.get(ref)
        if not isinstance(read, dict):
            return Actual(None, why=_unread(ref, read))
        route = read
        source = f"{ref.kind} {ref.name}"
        if router == "gateway-api":
            return Actual(gateway_api.weights_of(canary, route), source)
        if router == "istio":
            return Actual(istio.weights_of(canary, route), source)
        isvc = reads.get(shape.served[0][1])
        live = kserve.live_of(isvc if isinstance(isvc, dict) else None, None)
        return Actual(kserve.route_weights(canary, route, live), source)
    except (RouterError, KeyError, TypeError, ValueError) as exc:
        return Actual(None, why=str(exc))


def _unread(ref: Ref, read: Read | None) -> str:
    why = read.why if isinstance(read, Absent) else "not read"
    return f"{ref.kind} {ref.name}: {why}"


# --------------------------------------------------------------------------- events


_LAST = (("lastTimestamp",), ("eventTime",), ("series", "lastObservedTime"), ("firstTimestamp",))
_FIRST = (("firstTimestamp",), ("eventTime",))


def _event_time(event: Obj, paths: Sequence[tuple[str, ...]]) -> float | None:
    """The first readable time of ``event`` at ``paths``, else its creation time."""
    for path in (*paths, ("metadata", "creationTimestamp")):
        value = dig(event, *path)
        if isinstance(value, str) and value:
            try:
                return parse_time(value)
            except KubeError:
                continue
    return None


def cluster_events(
    canary_obj: Obj, events: Sequence[Obj], nodes: Iterable[Node] = ()
) -> tuple[ClusterEvent, ...]:
    """The core/v1 Events of the canary's namespace that are about the canary (its name, and
    its uid when both carry one: not a deleted namesake's) or an object of the tree, oldest
    first."""
    name = dig(canary_obj, "metadata", "name")
    uid = dig(canary_obj, "metadata", "uid")
    kind = canary_obj.get("kind") or "ModelCanary"
    tree = {(n.kind, n.name) for n in walk(nodes)}
    found: list[tuple[float, int, ClusterEvent]] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            continue
        involved = event.get("involvedObject") or event.get("regarding") or {}
        if not isinstance(involved, Mapping):
            continue
        what = (involved.get("kind"), involved.get("name"))
        if what == (kind, name):
            if uid and involved.get("uid") and involved.get("uid") != uid:
                continue
        elif what not in tree:
            continue
        when = _event_time(event, _LAST)
        count = _int(event.get("count") or dig(event, "series", "count"), 1) or 1
        found.append(
            (
                when if when is not None else float("-inf"),
                index,
                ClusterEvent(
                    type=str(event.get("type") or "Normal"),
                    reason=str(event.get("reason") or "?"),
                    object=f"{what[0]}/{what[1]}",
                    message=str(event.get("message") or event.get("note") or "").strip(),
                    count=count,
                    last=when,
                    first=_event_time(event, _FIRST),
                ),
            )
        )
    return tuple(e for _t, _i, e in sorted(found, key=lambda x: (x[0], x[1])))
