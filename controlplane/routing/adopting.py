"""The router of a canary whose stable is a live InferenceService it adopted (``targetRef``).

Owns what an adopted stable changes about the ``gateway-api`` and ``istio`` routers it wraps: a
promotion ends with the live service serving the candidate under its own name, in three phases,
each once the one before is in effect and resumed after a restart from what the cluster shows. A
rollback is the wrapped router's; the live service was never written. See docs/adopt.md,
"Promotion".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.errors import NotFound, RouterError, RouterPending
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing._common import dig
from controlplane.routing.base import Outcome, Router, Weights
from controlplane.routing.kserve import DEPLOYMENT_API_VERSION, rolled_out
from controlplane.serving import adopt, object_names
from controlplane.serving.render import ISVC_API_VERSION
from controlplane.spec.models import ModelCanary

FIELD_MANAGER = "canary-controller-promotion"
"""The field manager of a promotion's write to the live InferenceService: its own, so that
``kubectl get -o yaml --show-managed-fields`` says which fields the promotion set, and a GitOps
tool applying the same fields sees whose they are (docs/adopt.md, "GitOps")."""
SOURCE_URI_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
"""Where KServe keeps the storage URI on the predictor's pod template
(``StorageInitializerSourceUriInternalAnnotationKey``, ``pkg/constants/constants.go``, v0.20.0)."""


def contains(live: Any, wanted: Any) -> bool:
    """Every field of ``wanted`` is in ``live`` with the same value (maps recursively, lists
    and scalars whole): the fields a server-side apply set are still there, whatever defaults
    the API server and KServe's webhook added beside them (pure)."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and contains(live[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, int | float) and isinstance(live, int | float):
        return float(live) == float(wanted)
    return bool(live == wanted)


def runs_template(deployment: Obj, model: Obj) -> bool:
    """The Deployment's pod template runs ``model`` (a predictor's ``model``): the engine
    container's arguments end with the model's (KServe appends them to the runtime's), and the
    template's storage URI is the model's, where KServe wrote one (pure)."""
    template = dig(deployment, "spec", "template") or {}
    containers = dig(template, "spec", "containers") or []
    engine = next((c for c in containers if c.get("name") == adopt.ENGINE_CONTAINER), None)
    args = [str(a) for a in model.get("args") or []]
    if engine is None:
        return False
    have = [str(a) for a in engine.get("args") or []]
    if args and have[-len(args) :] != args:
        return False
    uri = (dig(template, "metadata", "annotations") or {}).get(SOURCE_URI_ANNOTATION)
    return uri is None or uri == model.get("storageUri")


class AdoptingRouter:
    """``inner`` (gateway-api or istio) for a canary with an adopted stable."""

    def __init__(self, inner: Router, kube: KubeClient, catalog: Catalog) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", "router"))
        self.kube = kube
        self.catalog = catalog

    # --------------------------------------------------------------------------- reading

    def _live_ref(self, canary: ModelCanary) -> Ref:
        ref = canary.spec.stable.target_ref
        assert ref is not None, "AdoptingRouter needs a stable with targetRef"
        return Ref(ISVC_API_VERSION, "InferenceService", canary.metadata.namespace, ref.name)

    def _live(self, canary: ModelCanary) -> Obj:
        try:
            return self.kube.get(self._live_ref(canary))
        except NotFound as exc:
            ref = self._live_ref(canary)
            raise RouterError(
                f"{self.name}: the adopted InferenceService {ref.namespace}/{ref.name} is gone"
            ) from exc

    def _deployment(self, canary: ModelCanary, live: Obj) -> Obj | None:
        name = dig(live, "spec", "predictor", "name") or None
        ref = Ref(
            DEPLOYMENT_API_VERSION,
            "Deployment",
            canary.metadata.namespace,
            object_names.predictor_service(self._live_ref(canary).name, name),
        )
        try:
            return self.kube.get(ref)
        except NotFound:
            return None

    def written(self, canary: ModelCanary, live: Obj) -> bool:
        """The live InferenceService holds the candidate's predictor."""
        wanted = adopt.promoted_predictor(canary, self.catalog)
        return contains(dig(live, "spec", "predictor") or {}, wanted)

    def serves_candidate(self, canary: ModelCanary) -> bool:
        """The live service runs the candidate on every replica (phases 1 and 2 done)."""
        live = self._live(canary)
        if not self.written(canary, live):
            return False
        deployment = self._deployment(canary, live)
        model = adopt.promoted_predictor(canary, self.catalog)["model"]
        return (
            deployment is not None and runs_template(deployment, model) and rolled_out(deployment)
        )

    # --------------------------------------------------------------------------- Router

    def set_weights(self, canary: ModelCanary, candidate_weight: int, mirror: bool) -> None:
        self.inner.set_weights(canary, candidate_weight, mirror)

    def get_weights(self, canary: ModelCanary) -> Weights:
        return self.inner.get_weights(canary)

    def verify(self, canary: ModelCanary, expected: Weights) -> None:
        """The wrapped router's check; a promotion whose third phase is done reads as the route
        sending everything to the live service, which then serves the candidate."""
        if expected == Weights(100) and self._promoting(canary):
            if not self.serves_candidate(canary):
                raise RouterError(f"{self.name}: the live service does not run the candidate yet")
            self.inner.verify(canary, Weights(0))
            return
        self.inner.verify(canary, expected)

    def _promoting(self, canary: ModelCanary) -> bool:
        """The live InferenceService holds the candidate's predictor (a promotion wrote it)."""
        return self.written(canary, self._live(canary))

    def finalize(self, canary: ModelCanary, outcome: Outcome) -> None:
        if outcome == "rolled_back":
            self.inner.finalize(canary, "rolled_back")
            return
        live = self._live(canary)
        ref = self._live_ref(canary)
        if not self.written(canary, live):
            # phase 1: everything on the candidate's own pods before the live ones roll
            self.inner.finalize(canary, "promoted")
            self.inner.verify(canary, Weights(100))
            body: Obj = {
                "apiVersion": ISVC_API_VERSION,
                "kind": "InferenceService",
                "metadata": {"name": ref.name, "namespace": ref.namespace},
                "spec": {"predictor": adopt.promoted_predictor(canary, self.catalog)},
            }
            self.kube.apply(body, field_manager=FIELD_MANAGER)
            raise RouterPending(
                f"{self.name}: promoting into the live InferenceService {ref.name}: it now has "
                f"the candidate's predictor and KServe rolls its pods; traffic stays on "
                f"{canary.spec.candidate.name} until they all run it"
            )
        if not self.serves_candidate(canary):
            raise RouterPending(
                f"{self.name}: waiting for InferenceService {ref.name}'s pods to run the "
                f"candidate ({canary.spec.candidate.name}) before traffic goes back to it"
            )
        # phase 3: the live service, now the candidate, takes everything back
        self.inner.finalize(canary, "rolled_back")
