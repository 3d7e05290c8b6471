"""Whose objects a canary may write: the rule checked before any apply, patch or delete.

Owns :class:`Claimant`, :class:`ForeignObject` and the checks: an object is the canary's when its
controlling ownerReference is the canary, or it has none and carries the canary's labels; any
other makes the whole write write nothing. Called by the routers and the controller's children.
See docs/routing.md, "Whose objects".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.errors import KubeError, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.serving.render import MANAGED_BY
from controlplane.spec.models import KIND, LABEL_CANARY, ModelCanary


class ForeignObject(KubeError):
    """An object the canary would write exists and is not the canary's (see the module)."""


@dataclass(frozen=True)
class Claimant:
    """A ModelCanary as its objects name it; ``uid`` None when it was not read from a cluster."""

    namespace: str
    name: str
    uid: str | None = None

    @classmethod
    def of_canary(cls, canary: ModelCanary) -> Claimant:
        meta = canary.metadata
        uid = (meta.model_extra or {}).get("uid")
        return cls(meta.namespace, meta.name, uid if isinstance(uid, str) and uid else None)

    @classmethod
    def of_object(cls, obj: Mapping[str, Any]) -> Claimant:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        return cls(
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            uid if isinstance(uid, str) and uid else None,
        )


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def foreign_reason(live: Mapping[str, Any], claimant: Claimant) -> str | None:
    """Why the live object ``live`` is not ``claimant``'s (the module's rule), None when it is."""
    meta = live.get("metadata") or {}
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, Mapping)]
    controller = next((o for o in owners if o.get("controller") is True), None)
    if controller is not None:
        if claimant.uid is not None:
            mine = controller.get("uid") == claimant.uid
        else:
            mine = controller.get("kind") == KIND and controller.get("name") == claimant.name
        if mine:
            return None
        same_name = controller.get("kind") == KIND and controller.get("name") == claimant.name
        earlier = " (an earlier ModelCanary of this name)" if same_name else ""
        return f"it is controlled by {controller.get('kind')} {controller.get('name')}{earlier}"
    labels = meta.get("labels") or {}
    wanted = {LABEL_CANARY: claimant.name, **MANAGED_BY}
    if all(labels.get(k) == v for k, v in wanted.items()):
        return None
    return "it has no ownerReference to this canary and not its labels"


def foreign_line(live: Mapping[str, Any], claimant: Claimant) -> str | None:
    """One line naming the live object ``live`` and why it is not ``claimant``'s; None when
    it is."""
    reason = foreign_reason(live, claimant)
    if reason is None:
        return None
    return f"{_describe(live)} exists and was not created by this canary ({reason})"


def foreign_objects(
    kube: KubeClient, claimant: Claimant, objs: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Read each of ``objs`` (what ``claimant`` would write): one line for each that exists and
    is not ``claimant``'s. An object that does not exist (or whose kind is not served) is not
    foreign: writing it creates it."""
    found = []
    for obj in objs:
        try:
            live = kube.get(Ref.of(obj))
        except NotFound:
            continue
        line = foreign_line(live, claimant)
        if line is not None:
            found.append(line)
    return found


def refusal(claimant: Claimant, foreign: Sequence[str]) -> str:
    """The one message of a refused write: every foreign object and what to do about it."""
    return (
        f"{'; '.join(foreign)}: ModelCanary {claimant.namespace}/{claimant.name} does not adopt, "
        "change or delete objects it did not create, so nothing was applied; rename "
        "spec.model.name (or the canary, or set spec.traffic.hosts for istio's model Service) "
        "or delete the object"
    )


def check_owned(kube: KubeClient, claimant: Claimant, objs: Sequence[Obj]) -> None:
    """Raise :class:`ForeignObject` naming every object of ``objs`` that exists and is not
    ``claimant``'s, before any of them is written."""
    foreign = foreign_objects(kube, claimant, objs)
    if foreign:
        raise ForeignObject(refusal(claimant, foreign))
