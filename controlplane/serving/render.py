"""Render a variant of a ModelCanary as KServe objects (pure).

Owns what serves one variant: an InferenceService on the Hugging Face runtime with the vLLM
backend, or an LLMInferenceService for ``llmisvc``, plus a system-prompt variant's ConfigMap.
Plain camelCase dicts, not the KServe SDK (its create/patch break with kubernetes 37). Routers add
the traffic fields. See docs/serving.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from controlplane.profiles.catalog import Catalog, GpuProfile
from controlplane.serving import object_names
from controlplane.serving.chat_template import chat_template
from controlplane.serving.vllm_args import SHUTDOWN_S, kserve_args, resolve_gpu, vllm_flags
from controlplane.spec.constants import API_GROUP, LABEL_CANARY, LABEL_VARIANT

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary, VariantSpec

Obj = dict[str, Any]
Role = Literal["stable", "candidate"]
ROLES: tuple[Role, Role] = ("stable", "candidate")
DeploymentMode = Literal["Standard", "Serverless"]

ISVC_API_VERSION = "serving.kserve.io/v1beta1"
LLMISVC_API_VERSION = "serving.kserve.io/v1alpha2"
RUNTIME = "kserve-huggingfaceserver"
MODEL_FORMAT = "huggingface"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
METRICS_PORT = 8080
LLMISVC_METRICS_PORT = 8000
"""``vllm serve``'s port in KServe v0.20.0's LLMInferenceService template
(``config/llmisvcconfig/config-llm-template.yaml``; HTTPS when its TLS is on)."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "controlplane"}
LABEL_ROLE = f"{API_GROUP}/role"
CHAT_TEMPLATE_DIR = "/etc/controlplane/chat-template"
CHAT_TEMPLATE_FILE = "chat-template.jinja"
CHAT_TEMPLATE_VOLUME = "chat-template"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS_ANNOTATION = "serving.kserve.io/autoscalerClass"
KEDA = "keda"
"""KServe v0.20.0's ``AutoscalerClassKeda`` (``pkg/constants/constants.go``): a KEDA
ScaledObject in place of the HPA, its triggers from ``autoScaling.metrics``
(``reconcilers/keda/keda_reconciler.go``: an ``External`` metric becomes a ``prometheus``
trigger with ``serverAddress``, ``query`` and ``threshold`` = the target's ``value``)."""
TERMINATION_MESSAGE_POLICY = "FallbackToLogsOnError"
"""The engine container's: an engine that dies writes no termination message file, so the
kubelet takes the end of its log (2,048 bytes or 80 lines), and KServe copies that into the
InferenceService's ``status.modelStatus.lastFailureInfo.message``: a crash loop on start (the GPU
out-of-memory case) is rolled back with vLLM's own last words
(:func:`controlplane.serving.startup.load_failure`)."""
DRAIN_S = 10
"""The engine container's ``preStop`` sleep: a pod being deleted keeps serving this long after
its endpoint turned not ready, while the gateway drops its address, before its engine gets
SIGTERM. Without it, KServe rolling a stable's pods under traffic (a two-phase promotion of the
``kserve`` router) failed requests on real Traefik: 502 from the stopped engine, and 504 after
Traefik's 30 s dial timeout to the address of the pod already gone (docs/serving.md, "Pods that
stop under traffic"). The kubelet's own ``sleep`` action (``PodLifecycleSleepAction``: on by
default since Kubernetes 1.30, GA in 1.34), so the image needs no ``sleep`` binary; KServe
v0.20.0's InferenceService CRD allows ``lifecycle.preStop.sleep`` on the model container."""
GRACE_S = DRAIN_S + SHUTDOWN_S + 10
"""The engine pod's ``terminationGracePeriodSeconds``: the ``preStop`` drain, then vLLM's own on
SIGTERM (:data:`~controlplane.serving.vllm_args.SHUTDOWN_S`), then 10 s to exit. Kubernetes'
default, 30 s, would kill a long generation that vLLM is still finishing."""


LLMISVC_GRACE_S = 15 + SHUTDOWN_S + 5
"""The LLMInferenceService pod's grace. KServe v0.20.0's template gives ``main`` its own
``preStop`` (``/bin/sleep 15``; a second handler makes the merge fail) and derives vLLM's
``--shutdown-timeout`` as grace - 15 - 5 (``config_merge.go``, ``shutdownTimeout``): this grace
makes that :data:`~controlplane.serving.vllm_args.SHUTDOWN_S`."""


def _pre_stop() -> Obj:
    return {"preStop": {"sleep": {"seconds": DRAIN_S}}}


def isvc_name(canary: ModelCanary, role: Role) -> str:
    """Name of the InferenceService / LLMInferenceService serving ``role`` alone: for an adopted
    stable (``targetRef``), the live service's own name."""
    ref = canary.spec.stable.target_ref
    if role == "stable" and ref is not None:
        return ref.name
    return object_names.variant_service_name(canary.spec.model.name, canary.spec.variant(role).name)


def deployment_name(canary: ModelCanary, role: Role) -> str:
    """The Deployment KServe v0.20.0 runs ``role``'s pods in (Standard mode): the predictor's
    ``<isvc>-predictor``, or ``<name>-kserve`` of an LLMInferenceService."""
    name = isvc_name(canary, role)
    if canary.spec.traffic.router == "llmisvc":
        return object_names.llmisvc_deployment(name)
    return object_names.predictor_service(name)


def canary_labels(canary: ModelCanary) -> dict[str, str]:
    """Labels on objects that belong to the canary as a whole (routes)."""
    return {LABEL_CANARY: canary.metadata.name, **MANAGED_BY}


def object_labels(canary: ModelCanary, role: Role) -> dict[str, str]:
    """Labels on the objects (and pods) of a variant: the contract's two, plus role and owner."""
    return {
        LABEL_CANARY: canary.metadata.name,
        LABEL_VARIANT: canary.spec.variant(role).name,
        LABEL_ROLE: role,
        **MANAGED_BY,
    }


def scrape_annotations(port: int = METRICS_PORT) -> dict[str, str]:
    """Prometheus scrape annotations: vLLM metrics are served by the runtime on its HTTP port
    (the KServe runtime's 8080; ``vllm serve`` in an LLMInferenceService listens on
    :data:`LLMISVC_METRICS_PORT`)."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }


def _meta(canary: ModelCanary, name: str, labels: dict[str, str]) -> Obj:
    return {"name": name, "namespace": canary.metadata.namespace, "labels": labels}


def _gpu_resources(variant: VariantSpec) -> Obj:
    count = str(variant.gpu_count)
    return {"requests": {GPU_RESOURCE: count}, "limits": {GPU_RESOURCE: count}}


def _scheduling(variant: VariantSpec, profile: GpuProfile) -> Obj:
    return {
        "nodeSelector": {GPU_PRODUCT_LABEL: profile.product_label},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }


def chat_template_configmap(canary: ModelCanary, role: Role) -> Obj | None:
    """The ConfigMap with the variant's chat template, or None without a ``systemPrompt``.

    Named after the variant (``<model>-<variant>-chat-template``) whichever object mounts it, so
    both variants of one InferenceService (the ``kserve`` routers) keep their own template.
    """
    variant = canary.spec.variant(role)
    if variant.system_prompt is None:
        return None
    template = chat_template(
        variant.system_prompt, variant.storage_uri, path=f"spec.{role}.systemPrompt"
    )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(
            canary,
            object_names.chat_template_configmap(isvc_name(canary, role)),
            object_labels(canary, role),
        ),
        "data": {CHAT_TEMPLATE_FILE: template},
    }


def _template_path(variant: VariantSpec) -> str | None:
    if variant.system_prompt is None:
        return None
    return f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}"


def _template_volume(canary: ModelCanary, role: Role) -> Obj:
    return {
        "name": CHAT_TEMPLATE_VOLUME,
        "configMap": {"name": object_names.chat_template_configmap(isvc_name(canary, role))},
    }


def _template_mount() -> Obj:
    return {"name": CHAT_TEMPLATE_VOLUME, "mountPath": CHAT_TEMPLATE_DIR, "readOnly": True}


def predictor_spec(
    canary: ModelCanary,
    role: Role,
    catalog: Catalog,
    *,
    autoscaling: bool = True,
    drain: bool = True,
    replicas: int | None = None,
    max_replicas: int | None = None,
    autoscale: Obj | None = None,
) -> Obj:
    """``spec.predictor`` serving ``role``.

    ``autoscaling=False`` leaves out min/maxReplicas (KServe forbids them on ``spec.canary[]``);
    ``drain=False`` leaves out the ``preStop`` sleep and the grace (``kserve-knative``: Knative's
    queue-proxy drains). ``replicas``: the capacity plan's count; ``max_replicas``: the most an
    autoscaling variant may reach (default: pinned); ``autoscale``: KEDA on the queue.
    """
    variant = canary.spec.variant(role)
    profile = resolve_gpu(variant, catalog, f"spec.{role}")
    template = _template_path(variant)
    model: Obj = {
        "modelFormat": {"name": MODEL_FORMAT},
        "runtime": RUNTIME,
        "storageUri": variant.storage_uri,
        "args": kserve_args(
            canary.spec.model, variant, catalog, chat_template=template, path=f"spec.{role}"
        ),
        "resources": _gpu_resources(variant),
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    if drain:
        model["lifecycle"] = _pre_stop()
    predictor: Obj = {}
    count = variant.replicas if replicas is None else replicas
    if autoscaling:
        predictor["minReplicas"] = count
        predictor["maxReplicas"] = max(count, 1, max_replicas or 0)
        if autoscale is not None:
            predictor["autoScaling"] = autoscale
    predictor["labels"] = object_labels(canary, role)
    predictor["annotations"] = scrape_annotations()
    predictor.update(_scheduling(variant, profile))
    if drain:
        predictor["terminationGracePeriodSeconds"] = GRACE_S
    if template is not None:
        model["volumeMounts"] = [_template_mount()]
        predictor["volumes"] = [_template_volume(canary, role)]
    predictor["model"] = model
    return predictor


def inference_service(
    canary: ModelCanary,
    role: Role,
    catalog: Catalog,
    *,
    mode: DeploymentMode = "Standard",
    replicas: int | None = None,
    max_replicas: int | None = None,
    autoscale: Obj | None = None,
) -> Obj:
    """The InferenceService serving ``role`` alone, named ``<model.name>-<variant.name>``;
    ``replicas``, ``max_replicas`` and ``autoscale`` as :func:`predictor_spec` takes them (with
    ``autoscale``, KServe's ``keda`` autoscaler class)."""
    name = isvc_name(canary, role)
    annotations = {DEPLOYMENT_MODE_ANNOTATION: mode, **scrape_annotations()}
    if autoscale is not None:
        annotations[AUTOSCALER_CLASS_ANNOTATION] = KEDA
    predictor = predictor_spec(
        canary, role, catalog, replicas=replicas, max_replicas=max_replicas, autoscale=autoscale
    )
    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            **_meta(canary, name, object_labels(canary, role)),
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def llm_inference_service(
    canary: ModelCanary, role: Role, catalog: Catalog, replicas: int | None = None
) -> Obj:
    """The LLMInferenceService serving ``role`` (the ``llmisvc`` router adds ``spec.router``);
    ``replicas``: the capacity plan's count in place of the variant's.

    vLLM flags go in the ``main`` container's args; the model name clients send is
    ``spec.model.name``; tensor parallelism is ``spec.parallelism.tensor``.
    """
    variant = canary.spec.variant(role)
    profile = resolve_gpu(variant, catalog, f"spec.{role}")
    name = isvc_name(canary, role)
    template = _template_path(variant)
    model, path = canary.spec.model, f"spec.{role}"
    main: Obj = {
        "name": "main",
        "args": vllm_flags(
            model, variant, catalog, chat_template=template, path=path, shutdown=False
        ),
        "resources": _gpu_resources(variant),
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    pod: Obj = {**_scheduling(variant, profile), "containers": [main]}
    pod["terminationGracePeriodSeconds"] = LLMISVC_GRACE_S
    if template is not None:
        main["volumeMounts"] = [_template_mount()]
        pod["volumes"] = [_template_volume(canary, role)]
    spec: Obj = {
        "model": {"uri": variant.storage_uri, "name": canary.spec.model.name},
        "replicas": variant.replicas if replicas is None else replicas,
    }
    if variant.gpu_count > 1:
        spec["parallelism"] = {"tensor": variant.gpu_count}
    spec["labels"] = object_labels(canary, role)
    spec["annotations"] = scrape_annotations(LLMISVC_METRICS_PORT)
    spec["template"] = pod
    return {
        "apiVersion": LLMISVC_API_VERSION,
        "kind": "LLMInferenceService",
        "metadata": {**_meta(canary, name, object_labels(canary, role))},
        "spec": spec,
    }


def variant_objects(
    canary: ModelCanary,
    role: Role,
    catalog: Catalog,
    *,
    kind: Literal["InferenceService", "LLMInferenceService"] = "InferenceService",
) -> list[Obj]:
    """Everything that serves ``role`` on its own: its ConfigMap (if any), then the service."""
    objs: list[Obj] = []
    configmap = chat_template_configmap(canary, role)
    if configmap is not None:
        objs.append(configmap)
    if kind == "InferenceService":
        objs.append(inference_service(canary, role, catalog))
    else:
        objs.append(llm_inference_service(canary, role, catalog))
    return objs
