"""The controller's side of adopting a live InferenceService as the stable (``targetRef``).

Owns :func:`resolved`: the canary of one reconcile with its stable filled in from the snapshot
kept in ``status.adopted`` when the rollout began (a promotion rewrites the live object, so it is
not read again). A service that cannot be adopted stalls the canary and raises
:class:`TargetUnavailable`, which the runner retries. Called by the reconciler. See docs/adopt.md.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controlplane.controller import children
from controlplane.errors import ControlPlaneError, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.rollout.state import spec_hash
from controlplane.serving import adopt
from controlplane.spec.models import ModelCanary
from controlplane.status.document import ADOPTED_KEY
from controlplane.validation import validate

NOT_FOUND = "TargetNotFound"
HELD = "TargetHeld"
NOT_ADOPTABLE = "TargetNotAdoptable"
CANARY_API = ("canary.controlplane.dev/v1alpha1", "ModelCanary")


class TargetUnavailable(ControlPlaneError):
    """The live service a canary names cannot be adopted now (missing, held by another canary,
    or not readable as a stable); ``reason`` is the condition's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def snapshot(obj: Obj, canary: ModelCanary) -> adopt.Adoption | None:
    """The adoption ``status.adopted`` keeps for the canary's current spec, or None."""
    data = (obj.get("status") or {}).get(ADOPTED_KEY)
    if not isinstance(data, Mapping) or data.get("specHash") != spec_hash(canary):
        return None
    return adopt.Adoption.from_dict(data)


def holder(kube: KubeClient, obj: Obj, canary: ModelCanary) -> str | None:
    """Another ModelCanary of the namespace that holds the same live service: one that names it
    and was created first (then by name), or the canary that created it. None when free."""
    ref = canary.spec.stable.target_ref
    assert ref is not None
    me = obj.get("metadata") or {}
    # a canary not created yet (canaryctl validate --cluster) comes after every one that is
    mine = (str(me.get("creationTimestamp") or "~"), str(me.get("name", "")))
    for other in kube.list(*CANARY_API, canary.metadata.namespace):
        meta = other.get("metadata") or {}
        if meta.get("name") == me.get("name") or meta.get("deletionTimestamp"):
            continue
        target = (((other.get("spec") or {}).get("stable") or {}).get("targetRef")) or {}
        if target.get("name") != ref.name or target.get("kind", ref.kind) != ref.kind:
            continue
        theirs = (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))
        if theirs < mine:
            return str(meta.get("name"))
    return None


def _creator(live: Obj) -> str | None:
    """The ModelCanary that created ``live`` (its controlling owner), if one did."""
    for owner in (live.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "ModelCanary" and owner.get("controller"):
            return str(owner.get("name"))
    return None


def adopt_live(kube: KubeClient, obj: Obj, canary: ModelCanary, catalog: Catalog) -> adopt.Adoption:
    """Read and check the live service for a new rollout; :class:`TargetUnavailable` (not
    told) when it cannot be adopted."""
    ref = canary.spec.stable.target_ref
    assert ref is not None
    namespace = canary.metadata.namespace
    where = f"{ref.kind} {namespace}/{ref.name}"
    try:
        live = kube.get(Ref(ref.api_version, ref.kind, namespace, ref.name))
    except NotFound as exc:
        raise TargetUnavailable(
            NOT_FOUND,
            f"{where} does not exist: the canary adopts the service that "
            "serves users today; create it, or fix the name",
        ) from exc
    created_by = _creator(live)
    if created_by is not None:
        raise TargetUnavailable(
            HELD,
            f"{where} was created by ModelCanary {created_by!r}: a "
            "canary's own variant is not a live service to adopt",
        )
    other = holder(kube, obj, canary)
    if other is not None:
        raise TargetUnavailable(
            HELD,
            f"{where} is adopted by ModelCanary {other!r}: one canary "
            "at a time rolls out a live service; delete that canary or wait until it is done",
        )
    adoption, problems = adopt.adoption_of(canary, live, catalog)
    if adoption is None:
        text = "; ".join(p.message for p in problems)
        raise TargetUnavailable(NOT_ADOPTABLE, text)
    # the spec's rules with the stable as it serves: the candidate is checked against it
    found = validate(adopt.resolve(canary, adoption), catalog)
    if found:
        text = "; ".join(f"{p.path}: {p.message}" for p in found)
        raise TargetUnavailable(NOT_ADOPTABLE, f"{where} as the stable: {text}")
    return adoption


def resolved(
    kube: KubeClient, obj: Obj, canary: ModelCanary, catalog: Catalog, now: float
) -> tuple[Obj, ModelCanary]:
    """``canary`` with its stable resolved (and ``obj`` as stored after the snapshot was kept),
    or ``(obj, canary)`` unchanged when the stable is not adopted. Raises
    :class:`TargetUnavailable` after telling why (Event and conditions)."""
    if not canary.spec.adopted:
        return obj, canary
    kept = snapshot(obj, canary)
    if kept is not None:
        return obj, adopt.resolve(canary, kept)
    try:
        adoption = adopt_live(kube, obj, canary, catalog)
    except TargetUnavailable as exc:
        children.refuse(kube, obj, f"{adopt.WHERE}: {exc}", now, reason=exc.reason)
        raise
    body = copy.deepcopy(obj)
    status: dict[str, Any] = dict(body.get("status") or {})
    status[ADOPTED_KEY] = {"specHash": spec_hash(canary), **adoption.to_dict()}
    body["status"] = status
    stored = kube.replace_status(body)
    return stored, adopt.resolve(canary, adoption)


def from_status(obj: Obj, canary: ModelCanary) -> ModelCanary:
    """``canary`` resolved from ``status.adopted`` when it holds the current spec's adoption
    (deleting a canary needs the live Service's name, never the live object), else as is."""
    kept = snapshot(obj, canary) if canary.spec.adopted else None
    return adopt.resolve(canary, kept) if kept is not None else canary
