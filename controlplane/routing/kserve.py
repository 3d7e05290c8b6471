"""The ``kserve`` router: KServe's own canary in Standard mode (KServe 0.20+).

Owns the one InferenceService (named after ``spec.model.name``) that holds both variants:
``spec.predictor`` serves stable and ``spec.canary:
[{predictor: {name: <candidate>, minReplicas: N, ...}, trafficPercent: W}]`` the candidate. As
observed against the real KServe v0.20.0 controller (``tests/kserve/test_kserve_real.py``;
source: ``pkg/controller/v1beta1/inferenceservice/components/predictor.go``):

- the stable predictor gets the Deployment and Service ``<isvc>-predictor``, the canary
  ``<isvc>-<candidate>-predictor``;
- a canary entry without ``minReplicas`` runs ``ceil(stable minReplicas x W / 100)`` pods, and
  the stable's minimum is lowered by the canary's replicas (never below 1). The entry therefore
  says the candidate's replicas, the stable predictor asks for its replicas plus the candidate's,
  and the InferenceService is annotated ``serving.kserve.io/autoscalerClass: none``, so both
  Deployments run exactly the replicas the ModelCanary names (no HPA to move them);
- KServe's top-level HTTPRoute ``<isvc>`` is the route in effect. KServe v0.20.0 writes it with
  the stable Service as its only backend whatever ``trafficPercent`` says; the split
  (``applyCanaryWeights`` in ``reconcilers/ingress/httproute_reconciler.go``) arrived after
  v0.20.0 and weights only canaries whose Deployment is Ready. :func:`route_weights` reads the
  weights from that route, so ``verify`` fails, and the step does not start, until the split is
  really in effect (on v0.20.0: never; use ``router: gateway-api`` there);
- promotion replaces ``spec.predictor`` by the candidate and drops the canary entry: KServe
  rolls the stable Deployment's pods over to the candidate's spec and deletes the canary's
  Deployment and Service. KServe's documented no-restart promotion (``predictor.name`` set to
  the canary's) is refused by its validating webhook unless the storage URI changes too
  ("predictor.name change requires a model change", ``validatePredictorNameChange`` in
  ``pkg/apis/serving/v1beta1/inference_service_validation.go``), and a quantized candidate of the
  same checkpoint (FP8 dynamic, bitsandbytes) keeps it; nor could the next rollout rename it
  back. Rollback drops the entry; KServe deletes the candidate's Deployment and Service.

No cohorts, no mirroring (KServe owns the HTTPRoute). KServe v0.20.0's CRD requires
``spec.canary[].predictor.model.name`` (a ``corev1.Container`` name the Makefile's ``yq`` step
leaves required), so the entry names the container :data:`CONTAINER_NAME`, the name KServe gives
the predictor's container anyway (``constants.InferenceServiceContainerName``).
:func:`build_inferenceservice` and :func:`route_weights` are pure; :func:`router` applies the
one and reads the other back.
"""

from __future__ import annotations

from controlplane.errors import RouterError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import ObjectRouter, dig, percent, read, target_weights
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
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"


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
    predictor = predictor_spec(canary, "candidate" if outcome == "promoted" else "stable", catalog)
    obj = single_isvc(canary, predictor, "Standard")
    obj["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] = "none"
    if outcome is None:
        replicas = canary.spec.candidate.replicas
        # KServe lowers the stable's minimum by the canary's replicas: ask for both
        predictor["minReplicas"] = canary.spec.stable.replicas + replicas
        predictor["maxReplicas"] = predictor["minReplicas"]
        candidate = predictor_spec(canary, "candidate", catalog, autoscaling=False)
        candidate["model"] = {"name": CONTAINER_NAME, **candidate["model"]}
        obj["spec"]["canary"] = [
            {
                "predictor": {
                    "name": canary.spec.candidate.name,
                    "minReplicas": replicas,
                    **candidate,
                },
                "trafficPercent": target.candidate,
            }
        ]
    return obj


def weights_of(canary: ModelCanary, isvc: Obj) -> Weights:
    """The weights an InferenceService asks for (pure): what KServe is told, not what routes."""
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


def route_ref(canary: ModelCanary) -> Ref:
    """KServe's top-level HTTPRoute of the InferenceService (named after it)."""
    isvc = single_ref(canary)
    return Ref(ROUTE_API_VERSION, "HTTPRoute", isvc.namespace, isvc.name)


def route_weights(canary: ModelCanary, route: Obj, serving: str | None = None) -> Weights:
    """The split in effect in KServe's HTTPRoute (pure): the candidate's share of the backends'
    weights (a backend without ``weight`` weighs 1). The stable predictor's Service serves
    ``serving`` (the variant ``spec.predictor`` is labelled with; the stable one by default):
    after promotion that is the candidate."""
    isvc = names.single_service_name(canary.spec.model.name)
    candidate = names.predictor_service(isvc, canary.spec.candidate.name)
    stable = names.predictor_service(isvc)
    promoted = serving == canary.spec.candidate.name
    to_candidate = total = 0
    for rule in dig(route, "spec", "rules") or []:
        for backend in rule.get("backendRefs") or []:
            weight = int(backend.get("weight", 1))
            name = backend.get("name")
            if name == candidate or (promoted and name == stable):
                to_candidate += weight
            elif name != stable:
                raise RouterError(
                    f"{ROUTER}: HTTPRoute {route['metadata']['name']} routes to {name!r}, "
                    f"neither {stable!r} nor {candidate!r}"
                )
            total += weight
    return Weights(percent(to_candidate, total))


class KServeRouter(ObjectRouter):
    """Applies the InferenceService; reads the weights back from KServe's HTTPRoute."""

    def get_weights(self, canary: ModelCanary) -> Weights:
        ref = route_ref(canary)
        try:
            route = read(self.kube, ref, self.name)
        except RouterError as exc:
            raise RouterError(
                f"{ROUTER}: KServe has not written HTTPRoute {ref.namespace}/{ref.name} (it does "
                "once the stable predictor is Ready, with ingress.enableGatewayApi on)"
            ) from exc
        isvc = read(self.kube, self._ref(canary), self.name)
        return route_weights(canary, route, dig(isvc, "spec", "predictor", "labels", LABEL_VARIANT))

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        actual = self.get_weights(canary)
        if actual == expected:
            return
        asked = weights_of(canary, read(self.kube, self._ref(canary), self.name))
        hint = ""
        if asked == expected and actual.candidate == 0 < expected.candidate:
            hint = (
                " (KServe has not routed the canary: it weights only a Ready canary, and "
                "KServe v0.20.0 routes none at all; use router gateway-api there)"
            )
        raise RouterError(
            f"{ROUTER}: KServe's HTTPRoute routes {actual}, expected {expected}{hint}"
        )


def router(kube: KubeClient, catalog: Catalog) -> ObjectRouter:
    """Applies :func:`build_inferenceservice` through the Kubernetes adapter and reads it back."""

    def build(canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None) -> Obj:
        return build_inferenceservice(canary, catalog, weight, mirror, outcome)

    return KServeRouter(ROUTER, kube, single_ref, build, weights_of)
