"""The ``kserve`` router: KServe's own canary in Standard mode (KServe 0.20+).

Owns the one InferenceService holding both variants (``spec.canary`` with ``trafficPercent``);
weights are read back from KServe's HTTPRoute, and a promotion never sends traffic to restarting
pods (:func:`promotion_phase`). No cohorts, no mirroring. What KServe v0.20.0 does:
docs/routing.md, "KServe as observed".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controlplane.errors import NotFound, RouterError, RouterPending
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import (
    apply_all,
    dig,
    percent,
    read,
    target_weights,
)
from controlplane.routing.base import Outcome, Weights, check_request
from controlplane.serving import object_names
from controlplane.serving.render import (
    AUTOSCALER_CLASS_ANNOTATION,
    DEPLOYMENT_MODE_ANNOTATION,
    ISVC_API_VERSION,
    LABEL_ROLE,
    canary_labels,
    predictor_spec,
    scrape_annotations,
)
from controlplane.spec.models import LABEL_VARIANT, ModelCanary

KIND = "InferenceService"
ROUTER = "kserve"
CONTAINER_NAME = "kserve-container"
"""``spec.canary[].predictor.model.name``: required by KServe v0.20.0's CRD (see above)."""

ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
DEPLOYMENT_API_VERSION = "apps/v1"


def single_isvc(canary: ModelCanary, predictor: Obj, mode: str) -> Obj:
    """An InferenceService named after the model, holding ``predictor`` (pure)."""
    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": object_names.single_service_name(canary.spec.model.name),
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
        object_names.single_service_name(canary.spec.model.name),
    )


@dataclass(frozen=True)
class Live:
    """What the router reads from the cluster before it builds (an observation, not a decision).

    ``predictor_name``: the live ``spec.predictor.name``, kept by every build (KServe names the
    stable's Deployment after it and refuses to change it alone); ``rolled_out``: the stable's
    Deployment finished rolling out its last pod template (``kubectl rollout status``).
    """

    predictor_name: str | None = None
    serving: str | None = None
    has_canary: bool = False
    rolled_out: bool = False


PromotionPhase = Literal["rename", "roll", "drop"]


def renames_on_promotion(canary: ModelCanary) -> bool:
    """Promotion points ``spec.predictor.name`` at the canary, KServe's own promotion: the
    candidate's Deployment becomes the stable one, no pod restarts. KServe's webhook allows it
    only with a model change (``validatePredictorNameChange``: another storage URI)."""
    return canary.spec.candidate.storage_uri != canary.spec.stable.storage_uri


def promotion_phase(canary: ModelCanary, live: Live | None) -> PromotionPhase:
    """Where a promotion stands (pure).

    ``rename``: the candidate's checkpoint differs, so the promotion is one rename. Otherwise
    two phases: ``roll`` gives the stable predictor the candidate's spec while the canary entry
    serves 100% (KServe rolls the stable pods with no traffic on them), and ``drop`` removes the
    canary entry once the stable Deployment runs the candidate and has rolled out.
    """
    if renames_on_promotion(canary):
        return "rename"
    candidate = canary.spec.candidate.name
    if live is not None and live.serving == candidate and (live.rolled_out or not live.has_canary):
        return "drop"
    return "roll"


def _canary_predictor(canary: ModelCanary, catalog: Catalog) -> Obj:
    """The candidate as a ``spec.canary[]`` predictor: named, its replicas fixed."""
    candidate = _without_role(predictor_spec(canary, "candidate", catalog, autoscaling=False))
    candidate["model"] = {"name": CONTAINER_NAME, **candidate["model"]}
    return {
        "name": canary.spec.candidate.name,
        "minReplicas": canary.spec.candidate.replicas,
        **candidate,
    }


def _without_role(predictor: Obj) -> Obj:
    """``predictor`` without the role label on its pods: in one InferenceService the pods of a
    variant keep serving when its role changes (the candidate promoted by a rename is the next
    rollout's stable), and a label change would roll them (the role stays on the object)."""
    labels = {k: v for k, v in (predictor.get("labels") or {}).items() if k != LABEL_ROLE}
    return {**predictor, "labels": labels}


def _slot(predictor: Obj, name: str | None, replicas: int) -> Obj:
    """``predictor`` in the stable slot: the live name kept, ``replicas`` fixed."""
    named: Obj = {"name": name} if name else {}
    rest = {k: v for k, v in predictor.items() if k not in ("name", "minReplicas", "maxReplicas")}
    return {**named, "minReplicas": replicas, "maxReplicas": max(replicas, 1), **rest}


def build_inferenceservice(
    canary: ModelCanary,
    catalog: Catalog,
    weight: int,
    mirror: bool,
    outcome: Outcome | None = None,
    live: Live | None = None,
) -> Obj:
    """The whole InferenceService at a rollout point (pure), given what is live.

    During the rollout ``spec.predictor`` serves stable (its live name kept) and one
    ``spec.canary`` entry the candidate at the step's percent. KServe lowers the stable's
    minimum by the canary's replicas, so the stable asks for both. Rollback drops the entry.
    Promotion is :func:`promotion_phase`'s: a rename, or a roll under a 100% canary and then
    the entry dropped.
    """
    target = target_weights(weight, mirror, outcome)
    check_request(canary, target)
    name = live.predictor_name if live is not None else None
    stable_replicas = canary.spec.stable.replicas
    candidate_replicas = canary.spec.candidate.replicas
    entry = _canary_predictor(canary, catalog)
    if outcome == "promoted":
        phase = promotion_phase(canary, live)
        if phase == "rename":
            # spec.predictor.model may not carry the container name a canary entry needs
            # ("the 'name' field is not allowed in standard predictor", validatePredictor):
            # KServe names the container kserve-container either way, the template is the same
            model = {k: v for k, v in entry["model"].items() if k != "name"}
            predictor = _slot({**entry, "model": model}, entry["name"], candidate_replicas)
        else:
            served = _without_role(predictor_spec(canary, "candidate", catalog))
            both = candidate_replicas * (2 if phase == "roll" else 1)
            predictor = _slot(served, name, both)
        canaries = [{"predictor": entry, "trafficPercent": 100}] if phase == "roll" else []
    elif outcome == "rolled_back":
        predictor = _slot(
            _without_role(predictor_spec(canary, "stable", catalog)), name, stable_replicas
        )
        canaries = []
    else:
        stable = _without_role(predictor_spec(canary, "stable", catalog))
        predictor = _slot(stable, name, stable_replicas + candidate_replicas)
        canaries = [{"predictor": entry, "trafficPercent": target.candidate}]
    obj = single_isvc(canary, predictor, "Standard")
    obj["metadata"]["annotations"][AUTOSCALER_CLASS_ANNOTATION] = "none"
    if canaries:
        obj["spec"]["canary"] = canaries
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


def route_weights(canary: ModelCanary, route: Obj, live: Live | None = None) -> Weights:
    """The split in effect in KServe's HTTPRoute (pure): the candidate's share of the backends'
    weights (a backend without ``weight`` weighs 1). The stable predictor's Service is named
    after the live predictor name and serves ``live.serving`` (the stable variant by default):
    after promotion that is the candidate."""
    isvc = object_names.single_service_name(canary.spec.model.name)
    name = live.predictor_name if live is not None else None
    serving = live.serving if live is not None else None
    candidate = object_names.predictor_service(isvc, canary.spec.candidate.name)
    stable = object_names.predictor_service(isvc, name)
    promoted = serving == canary.spec.candidate.name
    to_candidate = total = 0
    for rule in dig(route, "spec", "rules") or []:
        for backend in rule.get("backendRefs") or []:
            weight = int(backend.get("weight", 1))
            backend_name = backend.get("name")
            if backend_name == candidate or (promoted and backend_name == stable):
                to_candidate += weight
            elif backend_name != stable:
                raise RouterError(
                    f"{ROUTER}: HTTPRoute {route['metadata']['name']} routes to "
                    f"{backend_name!r}, neither {stable!r} nor {candidate!r}"
                )
            total += weight
    return Weights(percent(to_candidate, total))


def live_of(isvc: Obj | None, deployment: Obj | None) -> Live | None:
    """:class:`Live` from the InferenceService and its stable predictor's Deployment (pure).

    ``rolled_out`` holds only for a Deployment whose pod template already serves the variant
    ``spec.predictor`` names: before KServe has reconciled a change, the old template's
    finished rollout is not this one's."""
    if isvc is None:
        return None
    predictor = dig(isvc, "spec", "predictor") or {}
    return Live(
        predictor_name=predictor.get("name") or None,
        serving=dig(predictor, "labels", LABEL_VARIANT),
        has_canary=bool(dig(isvc, "spec", "canary")),
        rolled_out=deployment is not None
        and dig(deployment, "spec", "template", "metadata", "labels", LABEL_VARIANT)
        == dig(predictor, "labels", LABEL_VARIANT)
        and rolled_out(deployment),
    )


def rolled_out(deployment: Obj) -> bool:
    """The Deployment runs its latest pod template on every replica, all available (what
    ``kubectl rollout status`` waits for: ``deploymentutil`` in kubectl's rollout status)."""
    meta, spec, status = (deployment.get(k) or {} for k in ("metadata", "spec", "status"))
    wanted = int(spec.get("replicas", 1))
    return (
        int(status.get("observedGeneration", 0)) >= int(meta.get("generation", 1))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("replicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) == wanted
    )


class KServeRouter:
    """Builds from what is live, applies the InferenceService, reads weights from KServe's
    HTTPRoute; a promotion in two phases says so (:class:`RouterPending`) until its second
    phase is applied."""

    name = ROUTER

    def __init__(self, kube: KubeClient, catalog: Catalog) -> None:
        self.kube = kube
        self.catalog = catalog

    def live(self, canary: ModelCanary) -> Live | None:
        """Read :class:`Live`: the InferenceService and its stable predictor's Deployment."""
        try:
            isvc = self.kube.get(single_ref(canary))
        except NotFound:
            return None
        name = dig(isvc, "spec", "predictor", "name") or None
        ref = Ref(
            DEPLOYMENT_API_VERSION,
            "Deployment",
            canary.metadata.namespace,
            object_names.predictor_service(single_ref(canary).name, name),
        )
        try:
            deployment: Obj | None = self.kube.get(ref)
        except NotFound:
            deployment = None
        return live_of(isvc, deployment)

    def _apply(
        self, canary: ModelCanary, weight: int, mirror: bool, outcome: Outcome | None
    ) -> Live | None:
        live = self.live(canary)
        obj = build_inferenceservice(canary, self.catalog, weight, mirror, outcome, live)
        apply_all(self.kube, canary, [obj])
        return live

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        self._apply(canary, candidate_weight, mirror, None)

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        live = self._apply(canary, 0, False, outcome)
        if outcome == "promoted" and promotion_phase(canary, live) == "roll":
            raise RouterPending(
                f"{ROUTER}: promoting without a rename (the candidate has the stable's storage "
                "URI): the canary serves 100% while KServe rolls the stable predictor's pods to "
                "the candidate; the canary entry goes once that rollout is complete"
            )

    def get_weights(self, canary: ModelCanary) -> Weights:
        ref = route_ref(canary)
        try:
            route = read(self.kube, ref, self.name)
        except RouterError as exc:
            raise RouterError(
                f"{ROUTER}: KServe has not written HTTPRoute {ref.namespace}/{ref.name} (it does "
                "once the stable predictor is Ready, with ingress.enableGatewayApi on)"
            ) from exc
        return route_weights(canary, route, self.live(canary))

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        actual = self.get_weights(canary)
        if actual == expected:
            return
        asked = weights_of(canary, read(self.kube, single_ref(canary), self.name))
        hint = ""
        if asked == expected and actual.candidate == 0 < expected.candidate:
            hint = (
                " (KServe has not routed the canary: it weights only a Ready canary, and "
                "KServe v0.20.0 routes none at all; use router gateway-api there)"
            )
        raise RouterError(
            f"{ROUTER}: KServe's HTTPRoute routes {actual}, expected {expected}{hint}"
        )


def router(kube: KubeClient, catalog: Catalog) -> KServeRouter:
    """Applies :func:`build_inferenceservice` through the Kubernetes adapter and reads it back."""
    return KServeRouter(kube, catalog)
