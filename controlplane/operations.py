"""What people do to a ModelCanary in a cluster, shared by ``kubectl canary`` and the HTTP API.

Owns reading canaries (and, for ``get``, the objects a canary owns: :func:`read_owned`),
:func:`record_intent` (a compare-and-swap on ``resourceVersion``, retried on conflict, so
concurrent verbs are never lost) and :func:`check_names`, which refuses a namespace or name
Kubernetes would not accept before the adapter is asked. See docs/cli.md and docs/api.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from controlplane.errors import (
    Conflict,
    ControlPlaneError,
    Forbidden,
    KubeError,
    NotFound,
    Unserved,
    UsageError,
)
from controlplane.kube.client import KubeClient, Obj, Ref, canary_ref
from controlplane.rollout import intents
from controlplane.spec.constants import API_VERSION, KIND
from controlplane.spec.name_checks import check_label, check_subdomain

if TYPE_CHECKING:  # imported where used: `list` and the action verbs do not load the routers
    from controlplane.view.owned import Owned, Read

CONFLICT_RETRIES = 8


def check_names(namespace: str, name: str) -> None:
    """:class:`~controlplane.errors.InvalidName` unless ``namespace`` is a DNS-1123 label and
    ``name`` a DNS-1123 subdomain (a ModelCanary's name), checked before anything is asked."""
    check_label(namespace, "namespace")
    check_subdomain(name, "modelcanary name")


def get_canary(kube: KubeClient, namespace: str, name: str) -> Obj:
    """The ModelCanary, or a NotFound that says where it was looked for (InvalidName for a
    namespace or name that no canary can have)."""
    check_names(namespace, name)
    missing = NotFound(
        f"modelcanary {name!r} not found in namespace {namespace!r} "
        f"(list them with: kubectl canary list -n {namespace})"
    )
    try:
        obj = kube.get(canary_ref(namespace, name))
    except NotFound:
        raise missing from None
    meta = obj.get("metadata") or {}
    if (obj.get("kind"), meta.get("namespace"), meta.get("name")) != (KIND, namespace, name):
        raise missing  # never act on another object than the one asked for
    return obj


def list_canaries(kube: KubeClient, namespace: str | None) -> list[Obj]:
    """ModelCanaries of one namespace (all when None), sorted by namespace and name."""
    if namespace is not None:
        check_label(namespace, "namespace")
    items = kube.list(API_VERSION, KIND, namespace)
    return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))


def read_owned(kube: KubeClient, obj: Obj) -> Owned:
    """The objects the canary ``obj`` owns as the cluster holds them, with their health, the
    weights its route holds now and the Kubernetes Events about them
    (:mod:`controlplane.view.owned` decides what to read and builds the tree; this reads).
    Never raises for the cluster: an object not found, of a kind the API server does not serve,
    or refused to the reader (RBAC) is an :class:`~controlplane.view.owned.Absent` in the
    tree, an Event list refused is said in ``events_why``; a spec that does not parse has no
    tree (``note``)."""
    from pydantic import ValidationError

    from controlplane.spec.models import ModelCanary
    from controlplane.view import owned

    namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
    events: list[Obj] = []
    events_why = ""
    try:
        events = kube.list("v1", "Event", namespace)
    except KubeError as exc:
        events_why = str(exc)
    try:
        canary = ModelCanary.model_validate({k: v for k, v in obj.items() if k != "status"})
    except (ValidationError, ValueError, ControlPlaneError) as exc:
        note = "the spec does not parse, so the objects it owns are unknown"
        return owned.Owned(
            events=owned.cluster_events(obj, events),
            events_why=events_why,
            note=f"{note} ({type(exc).__name__})",
        )
    shape = owned.layout(canary)
    reads: dict[Ref, owned.Read] = {ref: _read(kube, ref) for ref in shape.refs()}
    pods: dict[Ref, list[Obj] | owned.Absent] = {}
    for _parent, _role, ref in owned.deployments(canary, shape, reads):
        reads[ref] = deployment = _read(kube, ref)
        selector = owned.pod_selector(deployment) if isinstance(deployment, dict) else None
        if selector is not None:
            try:
                pods[ref] = kube.list("v1", "Pod", namespace, label_selector=selector)
            except KubeError as exc:
                pods[ref] = owned.Absent(str(exc), refused=isinstance(exc, Forbidden))
    phase = str((obj.get("status") or {}).get("phase") or "")
    nodes = owned.build(canary, shape, reads, pods, phase)
    return owned.Owned(
        nodes=nodes,
        actual=owned.actual_weights(canary, shape, reads),
        events=owned.cluster_events(obj, events, nodes),
        events_why=events_why,
    )


def _read(kube: KubeClient, ref: Ref) -> Read:
    """The object, or why there is none: not found (or its kind not served), refused, or the
    API server's error in its words."""
    from controlplane.view.owned import Absent

    try:
        return kube.get(ref)
    except Unserved:
        return Absent(f"{ref.api_version} is not served by this cluster")
    except NotFound:
        return Absent("not found")
    except Forbidden as exc:
        return Absent(str(exc), refused=True)
    except KubeError as exc:
        return Absent(str(exc))


def phase_of(obj: Obj) -> str:
    """``status.phase`` ('' before the controller has seen the canary)."""
    return str((obj.get("status") or {}).get("phase") or "")


def record_intent(
    kube: KubeClient,
    namespace: str,
    name: str,
    verb: str,
    user: str = "",
    *,
    clock: Callable[[], float] = time.time,
) -> intents.RecordedIntent:
    """Append ``verb`` to the canary's intents and return what was recorded.

    Retries on resourceVersion conflicts; raises UsageError when the verb makes no sense now,
    InvalidName for a namespace or name that no canary can have.
    """
    check_names(namespace, name)
    for _ in range(CONFLICT_RETRIES):
        obj = get_canary(kube, namespace, name)
        intents.check_verb(obj, verb)
        meta = obj["metadata"]
        recorded, _problem = intents.read_intents(meta.get("annotations"))
        kept, entry = intents.append(recorded, verb, user, clock(), uuid.uuid4().hex[:12])
        # a merge patch whose resourceVersion is a precondition (409 when it moved): the verbs
        # need only ``patch`` on modelcanaries, as docs/security.md grants a tenant, not update
        change = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "annotations": {intents.INTENT_ANNOTATION: intents.encode(kept)},
            }
        }
        try:
            kube.patch(canary_ref(namespace, name), change)
        except Conflict:
            continue
        return entry
    raise UsageError(
        f"modelcanary {name!r} in {namespace!r} kept changing while recording {verb!r}; try again"
    )
