"""The ``kserve`` router: KServe's own canary in Standard mode (KServe 0.20+).

Owns the one InferenceService (named after ``spec.model.name``) that holds both variants:
``spec.predictor`` serves stable and ``spec.canary: [{predictor: {name: <candidate>, ...},
trafficPercent: W}]`` the candidate; KServe gives the canary its own Deployment
``<isvc>-<candidate>-predictor`` and splits with Gateway API HTTPRoute weights. Promotion
retargets ``spec.predictor`` to the candidate and drops the canary entry; rollback drops the
entry. No cohorts, no mirroring (KServe owns the HTTPRoute). Canary predictors may not set
autoscaling fields, so the candidate's replicas are KServe's default while it is a canary.

KServe v0.20.0's CRD (``config/crd/full/serving.kserve.io_inferenceservices.yaml``) requires
``spec.canary[].predictor.model.name`` (and ``modelFormat``): ``ModelSpec`` inlines a
``corev1.Container``, whose ``name`` is required, and the Makefile's ``yq`` step that drops that
``required`` reaches ``spec.<component>.<field>`` only, not ``spec.canary[].predictor.model``. The
API server refuses a canary entry without it, so the entry names the container
:data:`CONTAINER_NAME`, the name KServe gives the predictor's container anyway
(``constants.InferenceServiceContainerName`` in ``pkg/constants/constants.go``; the canary's
predictor is merged over the stable one with ``mergo.WithOverride`` in
``pkg/controller/v1beta1/inferenceservice/components/predictor.go``).
:func:`build_inferenceservice` is pure; :func:`router` applies it and reads it back.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import ObjectRouter, dig, target_weights
from controlplane.routing.base import Outcome, Weights, check_request
from controlplane.serving import names
from controlplane.serving.render import (
    DEPLOYMENT_MODE_ANNOTATION,
    ISVC_API_VERSION,
    canary_labels,
    predictor_spec,
    scrape_annotations,
)
from controlplane.spec.models import LABEL_VARIANT, ModelCanary

KIND = "InferenceService"
ROUTER = "kserve"
CONTAINER_NAME = "kserve-container"
"""``spec.canary[].predictor.model.name``: required by KServe v0.20.0's CRD (see above)."""


def single_isvc(canary: ModelCanary, predictor: Obj, mode: str) -> Obj:
    """An InferenceService named after the model, holding ``predictor`` (pure)."""
    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": names.single_service_name(canary.spec.model.name),
            "namespace": canary.metadata.namespace,
            "labels": canary_labels(canary),
            "annotations": {DEPLOYMENT_MODE_ANNOTATION: mode, **scrape_annotations()},
        },
        "spec": {"predictor": predictor},
    }


def single_ref(canary: ModelCanary) -> Ref:
    return Ref(
        ISVC_API_VERSION,
        KIND,
        canary.metadata.namespace,
        names.single_service_name(canary.spec.model.name),
    )


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
    if outcome == "promoted":
        return single_isvc(canary, predictor_spec(canary, "candidate", catalog), "Standard")
    obj = single_isvc(canary, predictor_spec(canary, "stable", catalog), "Standard")
    if outcome is None:
        candidate = predictor_spec(canary, "candidate", catalog, autoscaling=False)
        candidate["model"] = {"name": CONTAINER_NAME, **candidate["model"]}
        obj["spec"]["canary"] = [
            {
                "predictor": {"name": canary.spec.candidate.name, **candidate},
                "trafficPercent": target.candidate,
            }
        ]
    return obj


def weights_of(canary: ModelCanary, isvc: Obj) -> Weights:
    """The weights an InferenceService expresses (pure)."""
    candidate = canary.spec.candidate.name
    for entry in dig(isvc, "spec", "canary") or []:
        if dig(entry, "predictor", "name") == candidate:
            return Weights(int(entry.get("trafficPercent", 0)))
    serving = dig(isvc, "spec", "predictor", "labels", LABEL_VARIANT)
    if serving == candidate:
        return Weights(100)
    if serving == canary.spec.stable.name:
        return Weights(0)
    raise RouterError(f"{ROUTER}: the InferenceService serves neither variant (found {serving!r})")


def router(kube: KubeClient, catalog: Catalog) -> ObjectRouter:
    """Applies :func:`build_inferenceservice` through the Kubernetes adapter and reads it back."""

    def build(canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None) -> Obj:
        return build_inferenceservice(canary, catalog, weight, mirror, outcome)

    return ObjectRouter(ROUTER, kube, single_ref, build, weights_of)
