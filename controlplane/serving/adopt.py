"""Adopting the InferenceService that serves users today as the stable variant (pure).

Owns what the canary reads from the live service of ``spec.stable.targetRef``: the stable variant
as it serves (:func:`adoption_of`), the names clients reach it by, the resolved spec, the snapshot
kept in the status (:class:`Adoption`) and the predictor a promotion writes
(:func:`promoted_predictor`). The live object is an argument. See docs/adopt.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from controlplane.errors import Problem, ProfileError
from controlplane.profiles.catalog import Catalog
from controlplane.serving import object_names
from controlplane.serving.render import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    METRICS_PORT,
    Obj,
    canary_labels,
    predictor_spec,
)
from controlplane.serving.versions import resolve_vllm_version
from controlplane.spec.vllm_version import parse_vllm_version

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary, Quantization, VariantSpec

WHERE = "spec.stable.targetRef"
QUANTIZATIONS: tuple[Quantization, ...] = (
    "none",
    "fp8",
    "awq",
    "gptq",
    "bitsandbytes-nf4",
    "bitsandbytes-int8",
)
_NAME_FLAGS = ("--served-model-name", "--model_name", "--model-name")
_READ_FLAGS = ("--gpu-memory-utilization", "--tensor-parallel-size", "--quantization")


@dataclass(frozen=True)
class Adoption:
    """The live service as the canary adopted it: its identity (``uid``: a service deleted and
    made again under the same name is another one), the predictor Service its clients' routes
    reach, the hosts of its URLs, the model name it answers to, and the stable as it serves."""

    name: str
    uid: str
    service: str
    hosts: tuple[str, ...]
    served_model: str
    variant: VariantSpec
    max_model_len: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The status form (``status.adopted``, camelCase)."""
        out: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "service": self.service,
            "hosts": list(self.hosts),
            "servedModel": self.served_model,
            "variant": self.variant.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        if self.max_model_len is not None:
            out["maxModelLen"] = self.max_model_len
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Adoption | None:
        """Tolerant: a snapshot that cannot be read is None (it is taken again)."""
        if not isinstance(data, Mapping):
            return None
        from controlplane.spec.models import VariantSpec  # not on validate's offline path

        try:
            variant = VariantSpec.model_validate(data["variant"])
            length = data.get("maxModelLen")
            return cls(
                name=str(data["name"]),
                uid=str(data["uid"]),
                service=str(data["service"]),
                hosts=tuple(str(h) for h in data.get("hosts") or ()),
                served_model=str(data["servedModel"]),
                variant=variant,
                max_model_len=int(length) if isinstance(length, int) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _flag(args: list[str], names_: tuple[str, ...]) -> str | None:
    """The value of the last of ``names_`` in ``args`` (``--x=v`` or ``--x v``), or None."""
    found: str | None = None
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in names_:
            if eq:
                found = value
            elif i + 1 < len(args):
                found = args[i + 1]
    return found


def _without(args: list[str], names_: tuple[str, ...]) -> list[str]:
    """``args`` without the flags ``names_`` (either form) and their values."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if name in names_:
            skip = not eq
            continue
        out.append(arg)
    return out


def hosts_of(isvc: Obj) -> tuple[str, ...]:
    """The hosts KServe serves the service on: its ``status.url`` and its predictor's URL (the
    hostnames of KServe's top-level and predictor HTTPRoutes), in that order, without repeats."""
    status = isvc.get("status") or {}
    urls = [status.get("url"), ((status.get("components") or {}).get("predictor") or {}).get("url")]
    hosts: list[str] = []
    for url in urls:
        if isinstance(url, str) and url:
            host = urlsplit(url).hostname
            if host and host not in hosts:
                hosts.append(host)
    return tuple(hosts)


def _gpu_product(predictor: Obj) -> str | None:
    """The GPU product the predictor is scheduled on: its node selector, else a required node
    affinity term naming exactly one value of the label."""
    selector = predictor.get("nodeSelector") or {}
    if isinstance(selector.get(GPU_PRODUCT_LABEL), str):
        return str(selector[GPU_PRODUCT_LABEL])
    affinity = ((predictor.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            values = expr.get("values") or []
            key, operator = expr.get("key"), expr.get("operator")
            if key == GPU_PRODUCT_LABEL and operator == "In" and len(values) == 1:
                return str(values[0])
    return None


def _quantization(args: list[str], canary: ModelCanary, catalog: Catalog) -> Quantization | None:
    """The catalogue's method whose flags (on the canary's vLLM) are the ``--quantization`` of
    ``args``; None when no method has them."""
    given = _flag(args, ("--quantization",))
    key = parse_vllm_version(resolve_vllm_version(canary.spec.model))
    for method in QUANTIZATIONS:
        try:
            flags = catalog.quant(method).vllm_args_for(key) if key is not None else []
        except ProfileError:  # no flags on this vLLM: not it
            continue
        if _flag(flags, ("--quantization",)) == given:
            return method
    return None


def adoption_of(
    canary: ModelCanary, isvc: Obj, catalog: Catalog
) -> tuple[Adoption | None, list[Problem]]:
    """The stable as the live InferenceService ``isvc`` serves it, or why it cannot be adopted
    (paths at ``spec.stable.targetRef``): a predictor that is not a ``model`` of storage URI and
    GPU limit, a GPU product the catalogue does not know, flags this product cannot read back,
    or a model name other than ``spec.model.name`` (clients send it, so the candidate must
    answer to the same one)."""
    ref = canary.spec.stable.target_ref
    assert ref is not None, "adoption_of needs a stable with targetRef"
    meta = isvc.get("metadata") or {}
    where = f"{ref.kind} {ref.name!r}"
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model")
    problems: list[Problem] = []

    def bad(message: str) -> tuple[Adoption | None, list[Problem]]:
        problems.append(Problem(WHERE, f"{where}: {message}"))
        return None, problems

    if not isinstance(model, Mapping):
        return bad(
            "its predictor has no 'model' (a custom container or a framework key): only a "
            "spec.predictor.model with a storageUri is adopted"
        )
    storage_uri = model.get("storageUri")
    if not isinstance(storage_uri, str) or not storage_uri:
        return bad("its spec.predictor.model has no storageUri")
    limits = ((model.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
    try:
        gpu_count = int(str(limits))
    except ValueError:
        gpu_count = 0
    if gpu_count < 1:
        return bad(f"its spec.predictor.model.resources.limits has no {GPU_RESOURCE}")
    product = _gpu_product(predictor)
    if product is None:
        return bad(
            f"its predictor names no GPU: add nodeSelector {GPU_PRODUCT_LABEL}: <product> (or "
            "a required node affinity on it), the product label its nodes carry"
        )
    gpus = [name for name, gpu in catalog.gpus.items() if gpu.product_label == product]
    if not gpus:
        return bad(
            f"GPU product {product!r} is not in the catalogue ({catalog.gpus_source}): add it "
            "to a profile catalogue"
        )
    args = [str(a) for a in model.get("args") or []]
    served = _flag(args, _NAME_FLAGS) or str(meta.get("name", ""))
    if served != canary.spec.model.name:
        problems.append(
            Problem(
                WHERE,
                f"{where} answers to model {served!r} (its --served-model-name / --model_name, "
                f"else its name), and clients send that name: set spec.model.name to {served!r}",
            )
        )
    quantization = _quantization(args, canary, catalog)
    if quantization is None:
        problems.append(
            Problem(
                WHERE,
                f"{where} runs --quantization={_flag(args, ('--quantization',))}, which no "
                f"method of the catalogue ({catalog.quant_source}) passes on this vLLM",
            )
        )
    memory = _flag(args, ("--gpu-memory-utilization",))
    length = _flag(args, ("--max-model-len", "--max_model_len"))
    try:
        utilization = float(memory) if memory is not None else 0.9
        max_len = int(length) if length is not None else None
    except ValueError:
        problems.append(Problem(WHERE, f"{where}: its args hold a flag value that is no number"))
        return None, problems
    if max_len is not None and max_len != canary.spec.model.max_model_len:
        problems.append(
            Problem(
                WHERE,
                f"{where} serves --max-model-len={max_len} and the candidate would serve "
                f"spec.model.maxModelLen {canary.spec.model.max_model_len}: a prompt one accepts "
                f"the other would refuse; set spec.model.maxModelLen to {max_len}",
            )
        )
    if (
        canary.spec.traffic.router == "gateway-api"
        and not hosts_of(isvc)
        and not canary.spec.traffic.hosts
    ):
        problems.append(
            Problem(
                WHERE,
                f"{where} has no URL (status.url): KServe routes it no host, so its clients call "
                "its Service directly and no Gateway route can split them; use router istio, "
                "or name the hosts in spec.traffic.hosts",
            )
        )
    if problems or quantization is None:
        return None, problems
    rest = _without(args, (*_NAME_FLAGS, *_READ_FLAGS, "--max-model-len", "--max_model_len"))
    replicas = predictor.get("minReplicas")
    from controlplane.spec.models import VariantSpec  # --cluster only: no pydantic offline

    variant = VariantSpec(
        name=canary.spec.stable.name,
        target_ref=ref,
        storage_uri=storage_uri,
        quantization=quantization,
        gpu=sorted(gpus)[0],
        gpu_count=gpu_count,
        replicas=int(replicas) if isinstance(replicas, int) else 1,
        gpu_memory_utilization=utilization,
        args=rest,
    )
    adoption = Adoption(
        name=str(meta.get("name", ref.name)),
        uid=str(meta.get("uid", "")),
        service=object_names.predictor_service(
            str(meta.get("name", ref.name)), predictor.get("name")
        ),
        hosts=hosts_of(isvc),
        served_model=served,
        variant=variant,
        max_model_len=max_len,
    )
    return adoption, []


def resolve(canary: ModelCanary, adoption: Adoption) -> ModelCanary:
    """``canary`` with the stable as ``adoption`` serves it; its spec hash is the same
    (:func:`controlplane.rollout.state.spec_hash` counts an adopted stable by its reference)."""
    spec = canary.spec.model_copy(update={"stable": adoption.variant})
    resolved = canary.model_copy(update={"spec": spec})
    resolved._resolved = adoption
    return resolved


def adoption(canary: ModelCanary) -> Adoption | None:
    """What :func:`resolve` made ``canary`` with, or None (not adopted, or not resolved)."""
    found = canary.resolved_from()
    return found if isinstance(found, Adoption) else None


def stable_service(canary: ModelCanary) -> str:
    """The predictor Service of an adopted stable: the one KServe made for the live service
    (as read when it was adopted; before that, KServe's name for an unnamed predictor)."""
    found = adoption(canary)
    if found is not None:
        return found.service
    ref = canary.spec.stable.target_ref
    assert ref is not None, "stable_service needs a stable with targetRef"
    return object_names.predictor_service(ref.name)


INFERENCE_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/rerank",
    "/v1/models",
    "/openai/v1/chat/completions",
    "/openai/v1/completions",
    "/openai/v1/embeddings",
    "/openai/v1/rerank",
    "/openai/v1/models",
)
"""The paths an adopted service's split takes over on its hosts: vLLM's OpenAI server
(``vllm/entrypoints/openai/api_server.py``, vLLM 0.24.0) and KServe's Hugging Face runtime, which
serves them under ``/openai`` (``KSERVE_OPENAI_ROUTE_PREFIX``,
``python/kserve/kserve/protocol/rest/openai/endpoints.py``, KServe v0.20.0). Exact path matches
take precedence over KServe's own route on the same host (``PathRegularExpression ^/.*$``,
``httproute_reconciler.go``): "Exact" is the first of Gateway API's precedence rules
(``HTTPRouteRule``, ``apis/v1/httproute_types.go``, v1.5.1). Every other path (health, the v1/v2
prediction protocols, metrics) stays on KServe's route, to the live service."""
MAX_ADOPTED_COHORT_VALUES = 64 // len(INFERENCE_PATHS)
"""A cohort rule matches each of its values on each path, and Gateway API allows 64 matches in a
rule (``HTTPRouteRule.Matches``, ``MaxItems=64``)."""


_KEEP_LIVE = ("labels", "annotations")


def promoted_predictor(canary: ModelCanary, catalog: Catalog) -> Obj:
    """What a promotion applies to the live InferenceService: the candidate's predictor as the
    canary renders it (model, arguments, resources, scheduling, replicas), without the canary's
    labels and scrape annotations, so the live service serves the candidate under its own name
    and carries nothing of the canary's (a later canary adopts it the same way)."""
    predictor = predictor_spec(canary, "candidate", catalog)
    return {k: v for k, v in predictor.items() if k not in _KEEP_LIVE}


PODMONITOR_API_VERSION = "monitoring.coreos.com/v1"
PODMONITOR_KIND = "PodMonitor"
ENGINE_CONTAINER = "kserve-container"
SCRAPE_INTERVAL = "15s"
ISVC_POD_LABEL = "serving.kserve.io/inferenceservice"
"""The label KServe puts on an InferenceService's pods (``InferenceServicePodLabelKey``, with
``component: predictor``: ``components/predictor.go``, KServe v0.20.0)."""


def stable_podmonitor(canary: ModelCanary) -> Obj:
    """The PodMonitor that scrapes an adopted stable's predictor pods as the chart's does the
    canary's own (``charts/controlplane/templates/podmonitor.yaml``: the engine container's
    runtime port), but labels their series with the canary and the stable's variant name
    itself: the live pods carry none of the canary's labels, and the canary never adds any
    (that would roll them). Owned by the canary: it goes when the canary is done with the live
    service."""
    ref = canary.spec.stable.target_ref
    assert ref is not None, "stable_podmonitor needs a stable with targetRef"
    port = str(METRICS_PORT)

    def static(target: str, value: str) -> Obj:
        return {"action": "replace", "targetLabel": target, "replacement": value}

    return {
        "apiVersion": PODMONITOR_API_VERSION,
        "kind": PODMONITOR_KIND,
        "metadata": {
            "name": object_names.child_name(canary.metadata.name, "-adopted"),
            "namespace": canary.metadata.namespace,
            "labels": canary_labels(canary),
        },
        "spec": {
            "selector": {
                "matchLabels": {ISVC_POD_LABEL: ref.name, "component": "predictor"},
            },
            "podMetricsEndpoints": [
                {
                    "path": "/metrics",
                    "interval": SCRAPE_INTERVAL,
                    "relabelings": [
                        {
                            "action": "keep",
                            "sourceLabels": [
                                "__meta_kubernetes_pod_container_name",
                                "__meta_kubernetes_pod_container_init",
                            ],
                            "regex": f"{ENGINE_CONTAINER};false",
                        },
                        {
                            "action": "keep",
                            "sourceLabels": ["__meta_kubernetes_pod_container_port_number"],
                            "regex": f"|{port}",
                        },
                        {
                            "action": "replace",
                            "sourceLabels": [
                                "__meta_kubernetes_pod_container_port_number",
                                "__address__",
                            ],
                            "regex": ";(.*:.*)",
                            "targetLabel": "__address__",
                            "replacement": f"[${{1}}]:{port}",
                        },
                        {
                            "action": "replace",
                            "sourceLabels": [
                                "__meta_kubernetes_pod_container_port_number",
                                "__address__",
                            ],
                            "regex": ";([^:]+)",
                            "targetLabel": "__address__",
                            "replacement": f"${{1}}:{port}",
                        },
                        static("canary", canary.metadata.name),
                        static("variant", canary.spec.stable.name),
                        {
                            "action": "replace",
                            "sourceLabels": ["__meta_kubernetes_namespace"],
                            "targetLabel": "namespace",
                        },
                    ],
                }
            ],
        },
    }
