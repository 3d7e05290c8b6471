"""Helpers shared by the router modules (pure, except :func:`apply_all`).

Owns the mapping from a rollout point (candidate weight, mirror, outcome) to the weights a router
must express, and the one way routers write objects (server-side apply through the
:class:`~controlplane.kube.client.KubeClient`, each object's ownership checked first:
:mod:`controlplane.routing.ownership`). Called only by the modules of this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controlplane.errors import NotFound, RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.routing.base import Outcome, Weights, verify_weights
from controlplane.routing.ownership import Claimant, check_owned
from controlplane.serving import object_names
from controlplane.serving.render import canary_labels
from controlplane.spec.models import ModelCanary

FIELD_MANAGER = "canary-controller"


def route_object(api_version: str, kind: str, canary: ModelCanary, spec: Obj) -> Obj:
    """The canary's one route object (an HTTPRoute, a VirtualService) around its ``spec``:
    named after the canary, in its namespace, with the canary-wide labels."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": object_names.route_name(canary.metadata.name),
            "namespace": canary.metadata.namespace,
            "labels": canary_labels(canary),
        },
        "spec": spec,
    }


def route_object_ref(api_version: str, kind: str, canary: ModelCanary) -> Ref:
    """Where :func:`route_object` of ``canary`` lives."""
    return Ref(
        api_version, kind, canary.metadata.namespace, object_names.route_name(canary.metadata.name)
    )


def target_weights(weight: int, mirror: bool, outcome: Outcome | None) -> Weights:
    """The weights of a rollout point: an outcome overrides the step's weight and the mirror."""
    if outcome == "promoted":
        return Weights(100)
    if outcome == "rolled_back":
        return Weights(0)
    return Weights(weight, mirror)


def apply_all(kube: KubeClient, canary: ModelCanary, objs: list[Obj]) -> list[Obj]:
    """Apply every object in order; the stored objects are returned. Raises
    :class:`~controlplane.routing.ownership.ForeignObject`, applying nothing, when one of them
    exists and is not ``canary``'s."""
    check_owned(kube, Claimant.of_canary(canary), objs)
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


Build = Callable[[ModelCanary, int, bool, "Outcome | None"], Obj]
"""A pure builder of a router's whole object at a rollout point (weight, mirror, outcome)."""
TakenUp = Callable[[ModelCanary, Obj], None]
"""A pure check that the data plane has taken up the stored object (what its controller reports
in the object's status): raises :class:`~controlplane.errors.RouterPending` while it has not yet,
:class:`~controlplane.errors.RouterError` when it refused the object."""


class ObjectRouter:
    """A router whose state is one object: it applies ``build``'s object and reads it back.

    gateway-api (HTTPRoute), istio (VirtualService), kserve and kserve-knative (one
    InferenceService) are all this, with their own pure ``build`` / ``weights_of`` functions.
    ``taken_up`` (gateway-api): :meth:`verify` also asks the object's status whether the data
    plane has taken up what was read back.
    """

    def __init__(
        self,
        name: str,
        kube: KubeClient,
        ref: Callable[[ModelCanary], Ref],
        build: Build,
        weights_of: Callable[[ModelCanary, Obj], Weights],
        taken_up: TakenUp | None = None,
    ) -> None:
        self.name = name
        self.kube = kube
        self._ref = ref
        self._build = build
        self._weights_of = weights_of
        self._taken_up = taken_up

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        apply_all(self.kube, canary, [self._build(canary, candidate_weight, mirror, None)])

    def get_weights(self, canary: ModelCanary) -> Weights:
        return self._weights_of(canary, read(self.kube, self._ref(canary), self.name))

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        """The stored object expresses ``expected`` (else :class:`RouterError`) and, with
        ``taken_up``, the data plane has taken it up (else :class:`RouterPending`)."""
        obj = read(self.kube, self._ref(canary), self.name)
        verify_weights(self.name, self._weights_of(canary, obj), expected)
        if self._taken_up is not None:
            self._taken_up(canary, obj)

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        apply_all(self.kube, canary, [self._build(canary, 0, False, outcome)])
