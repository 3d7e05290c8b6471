"""Helpers shared by the router modules (pure, except :func:`apply_all`).

Owns the mapping from a rollout point (candidate weight, mirror, outcome) to the weights a router
must express, and the one way routers write objects (server-side apply through the
:class:`~controlplane.kube.client.KubeClient`). Called only by the modules of this package.
"""

from __future__ import annotations

from typing import Any

from controlplane.errors import NotFound, RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.routing.base import Outcome, Weights

FIELD_MANAGER = "canary-controller"


def target_weights(weight: int, mirror: bool, outcome: Outcome | None) -> Weights:
    """The weights of a rollout point: an outcome overrides the step's weight and the mirror."""
    if outcome == "promoted":
        return Weights(100)
    if outcome == "rolled_back":
        return Weights(0)
    return Weights(weight, mirror)


def apply_all(kube: KubeClient, objs: list[Obj]) -> list[Obj]:
    """Apply every object in order; the stored objects are returned."""
    return [kube.apply(obj, field_manager=FIELD_MANAGER) for obj in objs]


def dig(obj: Any, *path: str | int) -> Any:
    """``obj[path[0]][path[1]]...`` or None when any step is missing."""
    for key in path:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
        elif not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def read(kube: KubeClient, ref: Ref, router: str) -> Obj:
    """Get ``ref``; a missing object is a RouterError naming the router."""

    try:
        return kube.get(ref)
    except NotFound as exc:
        raise RouterError(
            f"{router}: {ref.kind} {ref.namespace}/{ref.name} does not exist (not applied yet?)"
        ) from exc


def percent(part: int, total: int) -> int:
    """``part`` of ``total`` as a whole percent (proportional weights, e.g. 1:19 -> 5)."""
    if total <= 0:
        raise RouterError("the weights of the variants sum to 0: no traffic can be served")
    return round(100 * part / total)
