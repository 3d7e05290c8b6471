"""The ``llmisvc`` router: proportional weights between two LLMInferenceServices (llm-d).

Owns ``spec.router.route`` of the two LLMInferenceServices (``serving.kserve.io/v1alpha2``) of a
canary: both name the same route ``group`` (the canary's name) and carry a proportional
``weight`` (stable ``100 - W``, candidate ``W``), so the shared route splits between them. No
cohorts, no mirroring. :func:`build_route_patch` and :func:`build_llminferenceservices` are pure;
:class:`LLMISvcRouter` merge-patches the route of the two objects the controller created
(:func:`controlplane.serving.render.llm_inference_service`) and reads it back.
"""

from __future__ import annotations

from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import dig, percent, read, target_weights
from controlplane.routing.base import Outcome, Weights, check_request, verify_weights
from controlplane.serving import names
from controlplane.serving.render import (
    LLMISVC_API_VERSION,
    Role,
    isvc_name,
    llm_inference_service,
)
from controlplane.spec.models import ModelCanary

KIND = "LLMInferenceService"
ROUTER = "llmisvc"
ROLES: tuple[Role, Role] = ("stable", "candidate")


def route_group(canary: ModelCanary) -> str:
    return names.route_name(canary.metadata.name)


def build_route_patch(canary: ModelCanary, role: Role, weights: Weights) -> Obj:
    """The merge patch putting ``role`` in the canary's route group with its weight (pure)."""
    weight = weights.candidate if role == "candidate" else weights.stable
    return {"spec": {"router": {"route": {"group": route_group(canary), "weight": weight}}}}


def build_llminferenceservices(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int,
    mirror: bool,
    outcome: Outcome | None = None,
) -> list[Obj]:
    """Both LLMInferenceServices, routes included, at a rollout point (pure)."""
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    objs = []
    for role in ROLES:
        obj = llm_inference_service(canary, role, catalog)
        obj["spec"]["router"] = build_route_patch(canary, role, target)["spec"]["router"]
        objs.append(obj)
    return objs


def weights_of(canary: ModelCanary, stable: Obj, candidate: Obj) -> Weights:
    """The weights the two objects' routes express (pure)."""
    group = route_group(canary)
    got = []
    for obj in (stable, candidate):
        route = dig(obj, "spec", "router", "route") or {}
        got.append(int(route.get("weight", 0)) if route.get("group") == group else 0)
    return Weights(percent(got[1], got[0] + got[1]))


class LLMISvcRouter:
    """Merge-patches the route weights of the two LLMInferenceServices and reads them back."""

    name = ROUTER

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def _ref(self, canary: ModelCanary, role: Role) -> Ref:
        return Ref(LLMISVC_API_VERSION, KIND, canary.metadata.namespace, isvc_name(canary, role))

    def _write(self, canary: ModelCanary, weights: Weights) -> None:
        check_request(canary, weights)
        for role in ROLES:
            read(self.kube, self._ref(canary, role), ROUTER)
            self.kube.patch(self._ref(canary, role), build_route_patch(canary, role, weights))

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        self._write(canary, Weights(candidate_weight, mirror))

    def get_weights(self, canary: ModelCanary) -> Weights:
        stable, candidate = (read(self.kube, self._ref(canary, r), ROUTER) for r in ROLES)
        return weights_of(canary, stable, candidate)

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        verify_weights(ROUTER, self.get_weights(canary), expected)

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        self._write(canary, target_weights(0, False, outcome))
