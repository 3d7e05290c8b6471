"""The ``kserve-knative`` router: ``canaryTrafficPercent`` on one InferenceService (Knative mode).

Owns the one Serverless InferenceService: during a rollout the predictor is the candidate's and
``canaryTrafficPercent`` its weight (the previous revision, stable, takes the rest); before it the
predictor is stable's (:func:`build_baseline`). No cohorts, no mirroring. See docs/routing.md.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import ObjectRouter, dig, target_weights
from controlplane.routing.base import Outcome, Weights, check_request
from controlplane.routing.kserve import single_isvc, single_ref
from controlplane.serving.render import predictor_spec
from controlplane.spec.models import LABEL_VARIANT, ModelCanary

ROUTER = "kserve-knative"
MODE = "Serverless"


def build_baseline(canary: ModelCanary, catalog: Catalog) -> Obj:
    """The InferenceService before a rollout: stable only (pure)."""
    return single_isvc(canary, predictor_spec(canary, "stable", catalog, drain=False), MODE)


def build_inferenceservice(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int,
    mirror: bool,
    outcome: Outcome | None = None,
) -> Obj:
    """The whole InferenceService at a rollout point (pure)."""
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    predictor = predictor_spec(canary, "candidate", catalog, drain=False)
    if outcome != "promoted":
        predictor["canaryTrafficPercent"] = target.candidate
    return single_isvc(canary, predictor, MODE)


def weights_of(canary: ModelCanary, isvc: Obj) -> Weights:
    """The weights an InferenceService expresses (pure)."""
    predictor = dig(isvc, "spec", "predictor") or {}
    serving = dig(predictor, "labels", LABEL_VARIANT)
    if serving == canary.spec.candidate.name:
        percent = predictor.get("canaryTrafficPercent")
        return Weights(100 if percent is None else int(percent))
    if serving == canary.spec.stable.name:
        return Weights(0)
    raise RouterError(f"{ROUTER}: the InferenceService serves neither variant (found {serving!r})")


def router(kube: KubeClient, catalog: Catalog) -> ObjectRouter:
    """Applies :func:`build_inferenceservice` through the Kubernetes adapter and reads it back."""

    def build(canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None) -> Obj:
        return build_inferenceservice(canary, catalog, weight, mirror, outcome)

    return ObjectRouter(ROUTER, kube, single_ref, build, weights_of)
