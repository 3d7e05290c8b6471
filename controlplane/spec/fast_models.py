"""GENERATED from :mod:`controlplane.spec.models` by :mod:`controlplane.spec.fastgen`:
do not edit. ``make fast-models`` rewrites it; tests/spec/test_fast_models.py checks it is current.

The spec's fast copy: light ``__slots__`` objects with the models' attribute names and defaults,
and ``build_<Model>(data)`` functions that accept what the models accept and raise
:class:`~controlplane.spec.fast.Invalid` for anything else. Called by
:func:`controlplane.validation.fast_text` (``canaryctl validate``'s path for a valid file, issue
41). Imports no pydantic.
"""

from __future__ import annotations

import re as _re
from typing import Any, Literal

from controlplane.spec.constants import DEFAULT_QUANTILE
from controlplane.spec.fast import FastObject, Invalid, new, put
from controlplane.spec.git_url import checked_git_url
from controlplane.spec.units import Duration, Quantity, parse_duration, parse_quantity, quantity_out
from controlplane.spec.vllm_version import checked_vllm_version


def _call(func: Any, v: Any) -> Any:
    """A model's own validator function; its ValueError means "not accepted"."""
    try:
        return func(v)
    except (ValueError, TypeError, AssertionError):
        raise Invalid from None


class ObjectMeta(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ObjectMeta`."""

    __slots__ = ('name', 'namespace', 'labels', 'annotations')
    _FIELDS = (
        ('name', 'name', None),
        ('namespace', 'namespace', None),
        ('labels', 'labels', None),
        ('annotations', 'annotations', None),
    )

    def __new__(cls, **data: Any) -> ObjectMeta:
        """As ``ObjectMeta(**fields)`` makes the model: checked, defaults in."""
        return build_ObjectMeta(data)
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


_KEYS_ObjectMeta = frozenset(['annotations', 'labels', 'name', 'namespace'])


def build_ObjectMeta(data: Any) -> ObjectMeta:
    if type(data) is not dict:
        raise Invalid
    extra = {k: x for k, x in data.items() if k not in _KEYS_ObjectMeta}
    given: set[str] = set()
    obj: ObjectMeta = new(ObjectMeta, given, extra)
    if 'name' in data:
        put(obj, 'name', _v1(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'namespace' in data:
        put(obj, 'namespace', _v2(data['namespace']))
        given.add('namespace')
    else:
        put(obj, 'namespace', 'default')
    if 'labels' in data:
        put(obj, 'labels', _v4(data['labels']))
        given.add('labels')
    else:
        put(obj, 'labels', {})
    if 'annotations' in data:
        put(obj, 'annotations', _v4(data['annotations']))
        given.add('annotations')
    else:
        put(obj, 'annotations', {})
    return obj


class ModelArchitecture(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ModelArchitecture`."""

    __slots__ = ('layers', 'kv_heads', 'head_dim')
    _FIELDS = (
        ('layers', 'layers', None),
        ('kv_heads', 'kvHeads', None),
        ('head_dim', 'headDim', None),
    )

    def __new__(cls, **data: Any) -> ModelArchitecture:
        """As ``ModelArchitecture(**fields)`` makes the model: checked, defaults in."""
        return build_ModelArchitecture(data)
    layers: int
    kv_heads: int
    head_dim: int


_KEYS_ModelArchitecture = frozenset(['headDim', 'head_dim', 'kvHeads', 'kv_heads', 'layers'])


def build_ModelArchitecture(data: Any) -> ModelArchitecture:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ModelArchitecture.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ModelArchitecture = new(ModelArchitecture, given, extra)
    if 'layers' in data:
        put(obj, 'layers', _v5(data['layers']))
        given.add('layers')
    else:
        raise Invalid
    if 'kvHeads' in data:
        if 'kv_heads' in data:
            raise Invalid
        put(obj, 'kv_heads', _v6(data['kvHeads']))
        given.add('kv_heads')
    elif 'kv_heads' in data:
        put(obj, 'kv_heads', _v6(data['kv_heads']))
        given.add('kv_heads')
    else:
        raise Invalid
    if 'headDim' in data:
        if 'head_dim' in data:
            raise Invalid
        put(obj, 'head_dim', _v7(data['headDim']))
        given.add('head_dim')
    elif 'head_dim' in data:
        put(obj, 'head_dim', _v7(data['head_dim']))
        given.add('head_dim')
    else:
        raise Invalid
    return obj


class ModelSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ModelSpec`."""

    __slots__ = ('name', 'runtime', 'max_model_len', 'parameters', 'architecture', 'fit_concurrency', 'vllm_version')
    _FIELDS = (
        ('name', 'name', None),
        ('runtime', 'runtime', None),
        ('max_model_len', 'maxModelLen', None),
        ('parameters', 'parameters', None),
        ('architecture', 'architecture', None),
        ('fit_concurrency', 'fitConcurrency', None),
        ('vllm_version', 'vllmVersion', None),
    )

    def __new__(cls, **data: Any) -> ModelSpec:
        """As ``ModelSpec(**fields)`` makes the model: checked, defaults in."""
        return build_ModelSpec(data)
    name: str
    runtime: Literal['vllm']
    max_model_len: int
    parameters: float | None
    architecture: ModelArchitecture | None
    fit_concurrency: int
    vllm_version: str | None


_KEYS_ModelSpec = frozenset(['architecture', 'fitConcurrency', 'fit_concurrency', 'maxModelLen', 'max_model_len', 'name', 'parameters', 'runtime', 'vllmVersion', 'vllm_version'])


def build_ModelSpec(data: Any) -> ModelSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ModelSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ModelSpec = new(ModelSpec, given, extra)
    if 'name' in data:
        put(obj, 'name', _v2(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'runtime' in data:
        put(obj, 'runtime', _v8(data['runtime']))
        given.add('runtime')
    else:
        put(obj, 'runtime', 'vllm')
    if 'maxModelLen' in data:
        if 'max_model_len' in data:
            raise Invalid
        put(obj, 'max_model_len', _v9(data['maxModelLen']))
        given.add('max_model_len')
    elif 'max_model_len' in data:
        put(obj, 'max_model_len', _v9(data['max_model_len']))
        given.add('max_model_len')
    else:
        put(obj, 'max_model_len', 4096)
    if 'parameters' in data:
        put(obj, 'parameters', _v11(data['parameters']))
        given.add('parameters')
    else:
        put(obj, 'parameters', None)
    if 'architecture' in data:
        put(obj, 'architecture', _v13(data['architecture']))
        given.add('architecture')
    else:
        put(obj, 'architecture', None)
    if 'fitConcurrency' in data:
        if 'fit_concurrency' in data:
            raise Invalid
        put(obj, 'fit_concurrency', _v14(data['fitConcurrency']))
        given.add('fit_concurrency')
    elif 'fit_concurrency' in data:
        put(obj, 'fit_concurrency', _v14(data['fit_concurrency']))
        given.add('fit_concurrency')
    else:
        put(obj, 'fit_concurrency', 1)
    if 'vllmVersion' in data:
        if 'vllm_version' in data:
            raise Invalid
        put(obj, 'vllm_version', _v16(data['vllmVersion']))
        given.add('vllm_version')
    elif 'vllm_version' in data:
        put(obj, 'vllm_version', _v16(data['vllm_version']))
        given.add('vllm_version')
    else:
        put(obj, 'vllm_version', None)
    return obj


class QueueScaling(FastObject):
    """Fast copy of :class:`controlplane.spec.models.QueueScaling`."""

    __slots__ = ('server_address', 'waiting_per_replica')
    _FIELDS = (
        ('server_address', 'serverAddress', None),
        ('waiting_per_replica', 'waitingPerReplica', None),
    )

    def __new__(cls, **data: Any) -> QueueScaling:
        """As ``QueueScaling(**fields)`` makes the model: checked, defaults in."""
        return build_QueueScaling(data)
    server_address: str
    waiting_per_replica: float


_KEYS_QueueScaling = frozenset(['serverAddress', 'server_address', 'waitingPerReplica', 'waiting_per_replica'])


def build_QueueScaling(data: Any) -> QueueScaling:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_QueueScaling.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: QueueScaling = new(QueueScaling, given, extra)
    if 'serverAddress' in data:
        if 'server_address' in data:
            raise Invalid
        put(obj, 'server_address', _v17(data['serverAddress']))
        given.add('server_address')
    elif 'server_address' in data:
        put(obj, 'server_address', _v17(data['server_address']))
        given.add('server_address')
    else:
        raise Invalid
    if 'waitingPerReplica' in data:
        if 'waiting_per_replica' in data:
            raise Invalid
        put(obj, 'waiting_per_replica', _v18(data['waitingPerReplica']))
        given.add('waiting_per_replica')
    elif 'waiting_per_replica' in data:
        put(obj, 'waiting_per_replica', _v18(data['waiting_per_replica']))
        given.add('waiting_per_replica')
    else:
        raise Invalid
    return obj


class VariantAutoscaling(FastObject):
    """Fast copy of :class:`controlplane.spec.models.VariantAutoscaling`."""

    __slots__ = ('max_replicas', 'queue')
    _FIELDS = (
        ('max_replicas', 'maxReplicas', None),
        ('queue', 'queue', None),
    )

    def __new__(cls, **data: Any) -> VariantAutoscaling:
        """As ``VariantAutoscaling(**fields)`` makes the model: checked, defaults in."""
        return build_VariantAutoscaling(data)
    max_replicas: int
    queue: QueueScaling | None


_KEYS_VariantAutoscaling = frozenset(['maxReplicas', 'max_replicas', 'queue'])


def build_VariantAutoscaling(data: Any) -> VariantAutoscaling:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_VariantAutoscaling.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: VariantAutoscaling = new(VariantAutoscaling, given, extra)
    if 'maxReplicas' in data:
        if 'max_replicas' in data:
            raise Invalid
        put(obj, 'max_replicas', _v19(data['maxReplicas']))
        given.add('max_replicas')
    elif 'max_replicas' in data:
        put(obj, 'max_replicas', _v19(data['max_replicas']))
        given.add('max_replicas')
    else:
        raise Invalid
    if 'queue' in data:
        put(obj, 'queue', _v21(data['queue']))
        given.add('queue')
    else:
        put(obj, 'queue', None)
    return obj


class TargetRef(FastObject):
    """Fast copy of :class:`controlplane.spec.models.TargetRef`."""

    __slots__ = ('api_version', 'kind', 'name')
    _FIELDS = (
        ('api_version', 'apiVersion', None),
        ('kind', 'kind', None),
        ('name', 'name', None),
    )

    def __new__(cls, **data: Any) -> TargetRef:
        """As ``TargetRef(**fields)`` makes the model: checked, defaults in."""
        return build_TargetRef(data)
    api_version: Literal['serving.kserve.io/v1beta1', 'serving.kserve.io/v1alpha2']
    kind: Literal['InferenceService', 'LLMInferenceService']
    name: str


_KEYS_TargetRef = frozenset(['apiVersion', 'api_version', 'kind', 'name'])


def build_TargetRef(data: Any) -> TargetRef:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_TargetRef.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: TargetRef = new(TargetRef, given, extra)
    if 'apiVersion' in data:
        if 'api_version' in data:
            raise Invalid
        put(obj, 'api_version', _v22(data['apiVersion']))
        given.add('api_version')
    elif 'api_version' in data:
        put(obj, 'api_version', _v22(data['api_version']))
        given.add('api_version')
    else:
        put(obj, 'api_version', 'serving.kserve.io/v1beta1')
    if 'kind' in data:
        put(obj, 'kind', _v23(data['kind']))
        given.add('kind')
    else:
        put(obj, 'kind', 'InferenceService')
    if 'name' in data:
        put(obj, 'name', _v2(data['name']))
        given.add('name')
    else:
        raise Invalid
    return obj


class VariantSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.VariantSpec`."""

    __slots__ = ('name', 'target_ref', 'storage_uri', 'quantization', 'gpu', 'gpu_count', 'replicas', 'autoscaling', 'gpu_memory_utilization', 'system_prompt', 'args')
    _FIELDS = (
        ('name', 'name', None),
        ('target_ref', 'targetRef', None),
        ('storage_uri', 'storageUri', None),
        ('quantization', 'quantization', None),
        ('gpu', 'gpu', None),
        ('gpu_count', 'gpuCount', None),
        ('replicas', 'replicas', None),
        ('autoscaling', 'autoscaling', None),
        ('gpu_memory_utilization', 'gpuMemoryUtilization', None),
        ('system_prompt', 'systemPrompt', None),
        ('args', 'args', None),
    )

    def __new__(cls, **data: Any) -> VariantSpec:
        """As ``VariantSpec(**fields)`` makes the model: checked, defaults in."""
        return build_VariantSpec(data)
    name: str
    target_ref: TargetRef | None
    storage_uri: str
    quantization: Literal['none', 'fp8', 'awq', 'gptq', 'bitsandbytes-nf4', 'bitsandbytes-int8']
    gpu: str
    gpu_count: int
    replicas: int
    autoscaling: VariantAutoscaling | None
    gpu_memory_utilization: float
    system_prompt: str | None
    args: list[str]


_KEYS_VariantSpec = frozenset(['args', 'autoscaling', 'gpu', 'gpuCount', 'gpuMemoryUtilization', 'gpu_count', 'gpu_memory_utilization', 'name', 'quantization', 'replicas', 'storageUri', 'storage_uri', 'systemPrompt', 'system_prompt', 'targetRef', 'target_ref'])


def build_VariantSpec(data: Any) -> VariantSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_VariantSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: VariantSpec = new(VariantSpec, given, extra)
    if 'name' in data:
        put(obj, 'name', _v2(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'targetRef' in data:
        if 'target_ref' in data:
            raise Invalid
        put(obj, 'target_ref', _v25(data['targetRef']))
        given.add('target_ref')
    elif 'target_ref' in data:
        put(obj, 'target_ref', _v25(data['target_ref']))
        given.add('target_ref')
    else:
        put(obj, 'target_ref', None)
    if 'storageUri' in data:
        if 'storage_uri' in data:
            raise Invalid
        put(obj, 'storage_uri', _v26(data['storageUri']))
        given.add('storage_uri')
    elif 'storage_uri' in data:
        put(obj, 'storage_uri', _v26(data['storage_uri']))
        given.add('storage_uri')
    else:
        put(obj, 'storage_uri', '')
    if 'quantization' in data:
        put(obj, 'quantization', _v27(data['quantization']))
        given.add('quantization')
    else:
        put(obj, 'quantization', 'none')
    if 'gpu' in data:
        put(obj, 'gpu', _v28(data['gpu']))
        given.add('gpu')
    else:
        put(obj, 'gpu', '')
    if 'gpuCount' in data:
        if 'gpu_count' in data:
            raise Invalid
        put(obj, 'gpu_count', _v29(data['gpuCount']))
        given.add('gpu_count')
    elif 'gpu_count' in data:
        put(obj, 'gpu_count', _v29(data['gpu_count']))
        given.add('gpu_count')
    else:
        put(obj, 'gpu_count', 1)
    if 'replicas' in data:
        put(obj, 'replicas', _v30(data['replicas']))
        given.add('replicas')
    else:
        put(obj, 'replicas', 1)
    if 'autoscaling' in data:
        put(obj, 'autoscaling', _v32(data['autoscaling']))
        given.add('autoscaling')
    else:
        put(obj, 'autoscaling', None)
    if 'gpuMemoryUtilization' in data:
        if 'gpu_memory_utilization' in data:
            raise Invalid
        put(obj, 'gpu_memory_utilization', _v33(data['gpuMemoryUtilization']))
        given.add('gpu_memory_utilization')
    elif 'gpu_memory_utilization' in data:
        put(obj, 'gpu_memory_utilization', _v33(data['gpu_memory_utilization']))
        given.add('gpu_memory_utilization')
    else:
        put(obj, 'gpu_memory_utilization', 0.9)
    if 'systemPrompt' in data:
        if 'system_prompt' in data:
            raise Invalid
        put(obj, 'system_prompt', _v35(data['systemPrompt']))
        given.add('system_prompt')
    elif 'system_prompt' in data:
        put(obj, 'system_prompt', _v35(data['system_prompt']))
        given.add('system_prompt')
    else:
        put(obj, 'system_prompt', None)
    if 'args' in data:
        put(obj, 'args', _v36(data['args']))
        given.add('args')
    else:
        put(obj, 'args', [])
    return obj


class GatewayRef(FastObject):
    """Fast copy of :class:`controlplane.spec.models.GatewayRef`."""

    __slots__ = ('name', 'namespace', 'section_name', 'implementation')
    _FIELDS = (
        ('name', 'name', None),
        ('namespace', 'namespace', None),
        ('section_name', 'sectionName', None),
        ('implementation', 'implementation', None),
    )

    def __new__(cls, **data: Any) -> GatewayRef:
        """As ``GatewayRef(**fields)`` makes the model: checked, defaults in."""
        return build_GatewayRef(data)
    name: str
    namespace: str | None
    section_name: str | None
    implementation: Literal['envoy-gateway', 'istio', 'traefik'] | None


_KEYS_GatewayRef = frozenset(['implementation', 'name', 'namespace', 'sectionName', 'section_name'])


def build_GatewayRef(data: Any) -> GatewayRef:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_GatewayRef.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: GatewayRef = new(GatewayRef, given, extra)
    if 'name' in data:
        put(obj, 'name', _v1(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'namespace' in data:
        put(obj, 'namespace', _v37(data['namespace']))
        given.add('namespace')
    else:
        put(obj, 'namespace', None)
    if 'sectionName' in data:
        if 'section_name' in data:
            raise Invalid
        put(obj, 'section_name', _v38(data['sectionName']))
        given.add('section_name')
    elif 'section_name' in data:
        put(obj, 'section_name', _v38(data['section_name']))
        given.add('section_name')
    else:
        put(obj, 'section_name', None)
    if 'implementation' in data:
        put(obj, 'implementation', _v40(data['implementation']))
        given.add('implementation')
    else:
        put(obj, 'implementation', None)
    return obj


class CohortSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.CohortSpec`."""

    __slots__ = ('header', 'values')
    _FIELDS = (
        ('header', 'header', None),
        ('values', 'values', None),
    )

    def __new__(cls, **data: Any) -> CohortSpec:
        """As ``CohortSpec(**fields)`` makes the model: checked, defaults in."""
        return build_CohortSpec(data)
    header: str
    values: list[str]


_KEYS_CohortSpec = frozenset(['header', 'values'])


def build_CohortSpec(data: Any) -> CohortSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_CohortSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: CohortSpec = new(CohortSpec, given, extra)
    if 'header' in data:
        put(obj, 'header', _v41(data['header']))
        given.add('header')
    else:
        raise Invalid
    if 'values' in data:
        put(obj, 'values', _v42(data['values']))
        given.add('values')
    else:
        raise Invalid
    return obj


class TrafficSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.TrafficSpec`."""

    __slots__ = ('router', 'cohort', 'gateway', 'hosts')
    _FIELDS = (
        ('router', 'router', None),
        ('cohort', 'cohort', None),
        ('gateway', 'gateway', None),
        ('hosts', 'hosts', None),
    )

    def __new__(cls, **data: Any) -> TrafficSpec:
        """As ``TrafficSpec(**fields)`` makes the model: checked, defaults in."""
        return build_TrafficSpec(data)
    router: Literal['gateway-api', 'istio', 'kserve', 'kserve-knative', 'llmisvc']
    cohort: CohortSpec | None
    gateway: GatewayRef | None
    hosts: list[str]


_KEYS_TrafficSpec = frozenset(['cohort', 'gateway', 'hosts', 'router'])


def build_TrafficSpec(data: Any) -> TrafficSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_TrafficSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: TrafficSpec = new(TrafficSpec, given, extra)
    if 'router' in data:
        put(obj, 'router', _v43(data['router']))
        given.add('router')
    else:
        put(obj, 'router', 'gateway-api')
    if 'cohort' in data:
        put(obj, 'cohort', _v45(data['cohort']))
        given.add('cohort')
    else:
        put(obj, 'cohort', None)
    if 'gateway' in data:
        put(obj, 'gateway', _v47(data['gateway']))
        given.add('gateway')
    else:
        put(obj, 'gateway', None)
    if 'hosts' in data:
        put(obj, 'hosts', _v48(data['hosts']))
        given.add('hosts')
    else:
        put(obj, 'hosts', [])
    return obj


class MetricSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.MetricSpec`."""

    __slots__ = ('name', 'builtin', 'quantile', 'query', 'unit')
    _FIELDS = (
        ('name', 'name', None),
        ('builtin', 'builtin', None),
        ('quantile', 'quantile', None),
        ('query', 'query', None),
        ('unit', 'unit', None),
    )

    def __new__(cls, **data: Any) -> MetricSpec:
        """As ``MetricSpec(**fields)`` makes the model: checked, defaults in."""
        return build_MetricSpec(data)
    name: str
    builtin: Literal['e2e-latency', 'ttft', 'inter-token-latency', 'error-rate', 'request-rate', 'tokens-per-second', 'kv-cache-usage'] | None
    quantile: float | None
    query: str | None
    unit: Literal['seconds', 'ratio', 'number'] | None

    @property
    def quantile_or_default(self) -> float:
        """The quantile a latency built-in reads: ``quantile``, else :data:`DEFAULT_QUANTILE`."""
        return DEFAULT_QUANTILE if self.quantile is None else self.quantile


_KEYS_MetricSpec = frozenset(['builtin', 'name', 'quantile', 'query', 'unit'])


def build_MetricSpec(data: Any) -> MetricSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_MetricSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: MetricSpec = new(MetricSpec, given, extra)
    if 'name' in data:
        put(obj, 'name', _v2(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'builtin' in data:
        put(obj, 'builtin', _v50(data['builtin']))
        given.add('builtin')
    else:
        put(obj, 'builtin', None)
    if 'quantile' in data:
        put(obj, 'quantile', _v52(data['quantile']))
        given.add('quantile')
    else:
        put(obj, 'quantile', None)
    if 'query' in data:
        put(obj, 'query', _v54(data['query']))
        given.add('query')
    else:
        put(obj, 'query', None)
    if 'unit' in data:
        put(obj, 'unit', _v56(data['unit']))
        given.add('unit')
    else:
        put(obj, 'unit', None)
    return obj


class AnalysisSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.AnalysisSpec`."""

    __slots__ = ('interval', 'window', 'prometheus', 'error_limit', 'preset', 'selector', 'metrics')
    _FIELDS = (
        ('interval', 'interval', str),
        ('window', 'window', str),
        ('prometheus', 'prometheus', None),
        ('error_limit', 'errorLimit', None),
        ('preset', 'preset', None),
        ('selector', 'selector', None),
        ('metrics', 'metrics', None),
    )

    def __new__(cls, **data: Any) -> AnalysisSpec:
        """As ``AnalysisSpec(**fields)`` makes the model: checked, defaults in."""
        return build_AnalysisSpec(data)
    interval: Duration
    window: Duration
    prometheus: str | None
    error_limit: int
    preset: Literal['vllm']
    selector: str | None
    metrics: list[MetricSpec]


_KEYS_AnalysisSpec = frozenset(['errorLimit', 'error_limit', 'interval', 'metrics', 'preset', 'prometheus', 'selector', 'window'])


def build_AnalysisSpec(data: Any) -> AnalysisSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_AnalysisSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: AnalysisSpec = new(AnalysisSpec, given, extra)
    if 'interval' in data:
        put(obj, 'interval', _v57(data['interval']))
        given.add('interval')
    else:
        put(obj, 'interval', Duration(seconds=60.0, text='1m'))
    if 'window' in data:
        put(obj, 'window', _v57(data['window']))
        given.add('window')
    else:
        put(obj, 'window', Duration(seconds=300.0, text='5m'))
    if 'prometheus' in data:
        put(obj, 'prometheus', _v58(data['prometheus']))
        given.add('prometheus')
    else:
        put(obj, 'prometheus', None)
    if 'errorLimit' in data:
        if 'error_limit' in data:
            raise Invalid
        put(obj, 'error_limit', _v19(data['errorLimit']))
        given.add('error_limit')
    elif 'error_limit' in data:
        put(obj, 'error_limit', _v19(data['error_limit']))
        given.add('error_limit')
    else:
        put(obj, 'error_limit', 5)
    if 'preset' in data:
        put(obj, 'preset', _v8(data['preset']))
        given.add('preset')
    else:
        put(obj, 'preset', 'vllm')
    if 'selector' in data:
        put(obj, 'selector', _v60(data['selector']))
        given.add('selector')
    else:
        put(obj, 'selector', None)
    if 'metrics' in data:
        put(obj, 'metrics', _v62(data['metrics']))
        given.add('metrics')
    else:
        put(obj, 'metrics', [])
    return obj


class CheckSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.CheckSpec`."""

    __slots__ = ('metric', 'above', 'below', 'window', 'for_', 'compare', 'min_samples', 'judge', 'alpha', 'test', 'final_look')
    _FIELDS = (
        ('metric', 'metric', None),
        ('above', 'above', quantity_out),
        ('below', 'below', quantity_out),
        ('window', 'window', str),
        ('for_', 'for', str),
        ('compare', 'compare', None),
        ('min_samples', 'minSamples', None),
        ('judge', 'judge', None),
        ('alpha', 'alpha', None),
        ('test', 'test', None),
        ('final_look', 'finalLook', None),
    )

    def __new__(cls, **data: Any) -> CheckSpec:
        """As ``CheckSpec(**fields)`` makes the model: checked, defaults in."""
        return build_CheckSpec(data)
    metric: str
    above: Quantity | None
    below: Quantity | None
    window: Duration | None
    for_: Duration
    compare: Literal['baseline'] | None
    min_samples: int | None
    judge: Literal['threshold', 'sequential']
    alpha: float
    test: Literal['tail', 'shift']
    final_look: float


_KEYS_CheckSpec = frozenset(['above', 'alpha', 'below', 'compare', 'finalLook', 'final_look', 'for', 'for_', 'judge', 'metric', 'minSamples', 'min_samples', 'test', 'window'])


def build_CheckSpec(data: Any) -> CheckSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_CheckSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: CheckSpec = new(CheckSpec, given, extra)
    if 'metric' in data:
        put(obj, 'metric', _v2(data['metric']))
        given.add('metric')
    else:
        raise Invalid
    if 'above' in data:
        put(obj, 'above', _v64(data['above']))
        given.add('above')
    else:
        put(obj, 'above', None)
    if 'below' in data:
        put(obj, 'below', _v64(data['below']))
        given.add('below')
    else:
        put(obj, 'below', None)
    if 'window' in data:
        put(obj, 'window', _v65(data['window']))
        given.add('window')
    else:
        put(obj, 'window', None)
    if 'for' in data:
        if 'for_' in data:
            raise Invalid
        put(obj, 'for_', _v57(data['for']))
        given.add('for_')
    elif 'for_' in data:
        put(obj, 'for_', _v57(data['for_']))
        given.add('for_')
    else:
        put(obj, 'for_', Duration(seconds=0.0, text='0'))
    if 'compare' in data:
        put(obj, 'compare', _v67(data['compare']))
        given.add('compare')
    else:
        put(obj, 'compare', None)
    if 'minSamples' in data:
        if 'min_samples' in data:
            raise Invalid
        put(obj, 'min_samples', _v69(data['minSamples']))
        given.add('min_samples')
    elif 'min_samples' in data:
        put(obj, 'min_samples', _v69(data['min_samples']))
        given.add('min_samples')
    else:
        put(obj, 'min_samples', None)
    if 'judge' in data:
        put(obj, 'judge', _v70(data['judge']))
        given.add('judge')
    else:
        put(obj, 'judge', 'threshold')
    if 'alpha' in data:
        put(obj, 'alpha', _v71(data['alpha']))
        given.add('alpha')
    else:
        put(obj, 'alpha', 0.01)
    if 'test' in data:
        put(obj, 'test', _v72(data['test']))
        given.add('test')
    else:
        put(obj, 'test', 'tail')
    if 'finalLook' in data:
        if 'final_look' in data:
            raise Invalid
        put(obj, 'final_look', _v73(data['finalLook']))
        given.add('final_look')
    elif 'final_look' in data:
        put(obj, 'final_look', _v73(data['final_look']))
        given.add('final_look')
    else:
        put(obj, 'final_look', 0.0)
    return obj


class StepSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.StepSpec`."""

    __slots__ = ('weight', 'duration', 'rollback_on', 'approval')
    _FIELDS = (
        ('weight', 'weight', None),
        ('duration', 'duration', str),
        ('rollback_on', 'rollbackOn', None),
        ('approval', 'approval', None),
    )

    def __new__(cls, **data: Any) -> StepSpec:
        """As ``StepSpec(**fields)`` makes the model: checked, defaults in."""
        return build_StepSpec(data)
    weight: int
    duration: Duration | None
    rollback_on: list[CheckSpec]
    approval: Literal['auto', 'manual']


_KEYS_StepSpec = frozenset(['approval', 'duration', 'rollbackOn', 'rollback_on', 'weight'])


def build_StepSpec(data: Any) -> StepSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_StepSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: StepSpec = new(StepSpec, given, extra)
    if 'weight' in data:
        put(obj, 'weight', _v74(data['weight']))
        given.add('weight')
    else:
        raise Invalid
    if 'duration' in data:
        put(obj, 'duration', _v65(data['duration']))
        given.add('duration')
    else:
        put(obj, 'duration', None)
    if 'rollbackOn' in data:
        if 'rollback_on' in data:
            raise Invalid
        put(obj, 'rollback_on', _v76(data['rollbackOn']))
        given.add('rollback_on')
    elif 'rollback_on' in data:
        put(obj, 'rollback_on', _v76(data['rollback_on']))
        given.add('rollback_on')
    else:
        put(obj, 'rollback_on', [])
    if 'approval' in data:
        put(obj, 'approval', _v77(data['approval']))
        given.add('approval')
    else:
        put(obj, 'approval', 'auto')
    return obj


class WorkflowTemplateRef(FastObject):
    """Fast copy of :class:`controlplane.spec.models.WorkflowTemplateRef`."""

    __slots__ = ('name', 'cluster_scope')
    _FIELDS = (
        ('name', 'name', None),
        ('cluster_scope', 'clusterScope', None),
    )

    def __new__(cls, **data: Any) -> WorkflowTemplateRef:
        """As ``WorkflowTemplateRef(**fields)`` makes the model: checked, defaults in."""
        return build_WorkflowTemplateRef(data)
    name: str
    cluster_scope: bool


_KEYS_WorkflowTemplateRef = frozenset(['clusterScope', 'cluster_scope', 'name'])


def build_WorkflowTemplateRef(data: Any) -> WorkflowTemplateRef:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_WorkflowTemplateRef.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: WorkflowTemplateRef = new(WorkflowTemplateRef, given, extra)
    if 'name' in data:
        put(obj, 'name', _v1(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'clusterScope' in data:
        if 'cluster_scope' in data:
            raise Invalid
        put(obj, 'cluster_scope', _v78(data['clusterScope']))
        given.add('cluster_scope')
    elif 'cluster_scope' in data:
        put(obj, 'cluster_scope', _v78(data['cluster_scope']))
        given.add('cluster_scope')
    else:
        put(obj, 'cluster_scope', False)
    return obj


class GateSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.GateSpec`."""

    __slots__ = ('name', 'before', 'steps', 'workflow_template', 'parameters', 'timeout', 'namespace', 'argo_server')
    _FIELDS = (
        ('name', 'name', None),
        ('before', 'before', None),
        ('steps', 'steps', None),
        ('workflow_template', 'workflowTemplate', None),
        ('parameters', 'parameters', None),
        ('timeout', 'timeout', str),
        ('namespace', 'namespace', None),
        ('argo_server', 'argoServer', None),
    )

    def __new__(cls, **data: Any) -> GateSpec:
        """As ``GateSpec(**fields)`` makes the model: checked, defaults in."""
        return build_GateSpec(data)
    name: str
    before: Literal['first-step', 'each-step', 'step', 'promotion']
    steps: list[int]
    workflow_template: WorkflowTemplateRef
    parameters: dict[str, str]
    timeout: Duration
    namespace: str | None
    argo_server: str | None


_KEYS_GateSpec = frozenset(['argoServer', 'argo_server', 'before', 'name', 'namespace', 'parameters', 'steps', 'timeout', 'workflowTemplate', 'workflow_template'])


def build_GateSpec(data: Any) -> GateSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_GateSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: GateSpec = new(GateSpec, given, extra)
    if 'name' in data:
        put(obj, 'name', _v2(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'before' in data:
        put(obj, 'before', _v79(data['before']))
        given.add('before')
    else:
        raise Invalid
    if 'steps' in data:
        put(obj, 'steps', _v81(data['steps']))
        given.add('steps')
    else:
        put(obj, 'steps', [])
    if 'workflowTemplate' in data:
        if 'workflow_template' in data:
            raise Invalid
        put(obj, 'workflow_template', _v82(data['workflowTemplate']))
        given.add('workflow_template')
    elif 'workflow_template' in data:
        put(obj, 'workflow_template', _v82(data['workflow_template']))
        given.add('workflow_template')
    else:
        raise Invalid
    if 'parameters' in data:
        put(obj, 'parameters', _v85(data['parameters']))
        given.add('parameters')
    else:
        put(obj, 'parameters', {})
    if 'timeout' in data:
        put(obj, 'timeout', _v57(data['timeout']))
        given.add('timeout')
    else:
        put(obj, 'timeout', Duration(seconds=3600.0, text='1h'))
    if 'namespace' in data:
        put(obj, 'namespace', _v37(data['namespace']))
        given.add('namespace')
    else:
        put(obj, 'namespace', None)
    if 'argoServer' in data:
        if 'argo_server' in data:
            raise Invalid
        put(obj, 'argo_server', _v58(data['argoServer']))
        given.add('argo_server')
    elif 'argo_server' in data:
        put(obj, 'argo_server', _v58(data['argo_server']))
        given.add('argo_server')
    else:
        put(obj, 'argo_server', None)
    return obj


class ShadowSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ShadowSpec`."""

    __slots__ = ('duration', 'promote_on', 'rollback_on')
    _FIELDS = (
        ('duration', 'duration', str),
        ('promote_on', 'promoteOn', None),
        ('rollback_on', 'rollbackOn', None),
    )

    def __new__(cls, **data: Any) -> ShadowSpec:
        """As ``ShadowSpec(**fields)`` makes the model: checked, defaults in."""
        return build_ShadowSpec(data)
    duration: Duration
    promote_on: CheckSpec
    rollback_on: list[CheckSpec]


_KEYS_ShadowSpec = frozenset(['duration', 'promoteOn', 'promote_on', 'rollbackOn', 'rollback_on'])


def build_ShadowSpec(data: Any) -> ShadowSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ShadowSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ShadowSpec = new(ShadowSpec, given, extra)
    if 'duration' in data:
        put(obj, 'duration', _v57(data['duration']))
        given.add('duration')
    else:
        raise Invalid
    if 'promoteOn' in data:
        if 'promote_on' in data:
            raise Invalid
        put(obj, 'promote_on', _v75(data['promoteOn']))
        given.add('promote_on')
    elif 'promote_on' in data:
        put(obj, 'promote_on', _v75(data['promote_on']))
        given.add('promote_on')
    else:
        raise Invalid
    if 'rollbackOn' in data:
        if 'rollback_on' in data:
            raise Invalid
        put(obj, 'rollback_on', _v76(data['rollbackOn']))
        given.add('rollback_on')
    elif 'rollback_on' in data:
        put(obj, 'rollback_on', _v76(data['rollback_on']))
        given.add('rollback_on')
    else:
        put(obj, 'rollback_on', [])
    return obj


class BudgetSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.BudgetSpec`."""

    __slots__ = ('daily_limit', 'throttle_weight', 'cost_query')
    _FIELDS = (
        ('daily_limit', 'dailyLimit', None),
        ('throttle_weight', 'throttleWeight', None),
        ('cost_query', 'costQuery', None),
    )

    def __new__(cls, **data: Any) -> BudgetSpec:
        """As ``BudgetSpec(**fields)`` makes the model: checked, defaults in."""
        return build_BudgetSpec(data)
    daily_limit: float
    throttle_weight: int
    cost_query: str | None


_KEYS_BudgetSpec = frozenset(['costQuery', 'cost_query', 'dailyLimit', 'daily_limit', 'throttleWeight', 'throttle_weight'])


def build_BudgetSpec(data: Any) -> BudgetSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_BudgetSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: BudgetSpec = new(BudgetSpec, given, extra)
    if 'dailyLimit' in data:
        if 'daily_limit' in data:
            raise Invalid
        put(obj, 'daily_limit', _v86(data['dailyLimit']))
        given.add('daily_limit')
    elif 'daily_limit' in data:
        put(obj, 'daily_limit', _v86(data['daily_limit']))
        given.add('daily_limit')
    else:
        raise Invalid
    if 'throttleWeight' in data:
        if 'throttle_weight' in data:
            raise Invalid
        put(obj, 'throttle_weight', _v74(data['throttleWeight']))
        given.add('throttle_weight')
    elif 'throttle_weight' in data:
        put(obj, 'throttle_weight', _v74(data['throttle_weight']))
        given.add('throttle_weight')
    else:
        put(obj, 'throttle_weight', 1)
    if 'costQuery' in data:
        if 'cost_query' in data:
            raise Invalid
        put(obj, 'cost_query', _v54(data['costQuery']))
        given.add('cost_query')
    elif 'cost_query' in data:
        put(obj, 'cost_query', _v54(data['cost_query']))
        given.add('cost_query')
    else:
        put(obj, 'cost_query', None)
    return obj


class TypicalRequest(FastObject):
    """Fast copy of :class:`controlplane.spec.models.TypicalRequest`."""

    __slots__ = ('input_tokens', 'output_tokens')
    _FIELDS = (
        ('input_tokens', 'inputTokens', None),
        ('output_tokens', 'outputTokens', None),
    )

    def __new__(cls, **data: Any) -> TypicalRequest:
        """As ``TypicalRequest(**fields)`` makes the model: checked, defaults in."""
        return build_TypicalRequest(data)
    input_tokens: int
    output_tokens: int


_KEYS_TypicalRequest = frozenset(['inputTokens', 'input_tokens', 'outputTokens', 'output_tokens'])


def build_TypicalRequest(data: Any) -> TypicalRequest:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_TypicalRequest.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: TypicalRequest = new(TypicalRequest, given, extra)
    if 'inputTokens' in data:
        if 'input_tokens' in data:
            raise Invalid
        put(obj, 'input_tokens', _v87(data['inputTokens']))
        given.add('input_tokens')
    elif 'input_tokens' in data:
        put(obj, 'input_tokens', _v87(data['input_tokens']))
        given.add('input_tokens')
    else:
        put(obj, 'input_tokens', 512)
    if 'outputTokens' in data:
        if 'output_tokens' in data:
            raise Invalid
        put(obj, 'output_tokens', _v87(data['outputTokens']))
        given.add('output_tokens')
    elif 'output_tokens' in data:
        put(obj, 'output_tokens', _v87(data['output_tokens']))
        given.add('output_tokens')
    else:
        put(obj, 'output_tokens', 256)
    return obj


class ReplicaRates(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ReplicaRates`."""

    __slots__ = ('stable', 'candidate')
    _FIELDS = (
        ('stable', 'stable', None),
        ('candidate', 'candidate', None),
    )

    def __new__(cls, **data: Any) -> ReplicaRates:
        """As ``ReplicaRates(**fields)`` makes the model: checked, defaults in."""
        return build_ReplicaRates(data)
    stable: float | None
    candidate: float | None


_KEYS_ReplicaRates = frozenset(['candidate', 'stable'])


def build_ReplicaRates(data: Any) -> ReplicaRates:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ReplicaRates.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ReplicaRates = new(ReplicaRates, given, extra)
    if 'stable' in data:
        put(obj, 'stable', _v88(data['stable']))
        given.add('stable')
    else:
        put(obj, 'stable', None)
    if 'candidate' in data:
        put(obj, 'candidate', _v88(data['candidate']))
        given.add('candidate')
    else:
        put(obj, 'candidate', None)
    return obj


class CapacitySpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.CapacitySpec`."""

    __slots__ = ('max_gpus', 'max_surge_gpus', 'headroom', 'max_load_ratio', 'typical_request', 'requests_per_replica')
    _FIELDS = (
        ('max_gpus', 'maxGPUs', None),
        ('max_surge_gpus', 'maxSurgeGPUs', None),
        ('headroom', 'headroom', None),
        ('max_load_ratio', 'maxLoadRatio', None),
        ('typical_request', 'typicalRequest', None),
        ('requests_per_replica', 'requestsPerReplica', None),
    )

    def __new__(cls, **data: Any) -> CapacitySpec:
        """As ``CapacitySpec(**fields)`` makes the model: checked, defaults in."""
        return build_CapacitySpec(data)
    max_gpus: int | None
    max_surge_gpus: int | None
    headroom: float
    max_load_ratio: float
    typical_request: TypicalRequest
    requests_per_replica: ReplicaRates


_KEYS_CapacitySpec = frozenset(['headroom', 'maxGPUs', 'maxLoadRatio', 'maxSurgeGPUs', 'max_gpus', 'max_load_ratio', 'max_surge_gpus', 'requestsPerReplica', 'requests_per_replica', 'typicalRequest', 'typical_request'])


def build_CapacitySpec(data: Any) -> CapacitySpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_CapacitySpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: CapacitySpec = new(CapacitySpec, given, extra)
    if 'maxGPUs' in data:
        if 'max_gpus' in data:
            raise Invalid
        put(obj, 'max_gpus', _v89(data['maxGPUs']))
        given.add('max_gpus')
    elif 'max_gpus' in data:
        put(obj, 'max_gpus', _v89(data['max_gpus']))
        given.add('max_gpus')
    else:
        put(obj, 'max_gpus', None)
    if 'maxSurgeGPUs' in data:
        if 'max_surge_gpus' in data:
            raise Invalid
        put(obj, 'max_surge_gpus', _v91(data['maxSurgeGPUs']))
        given.add('max_surge_gpus')
    elif 'max_surge_gpus' in data:
        put(obj, 'max_surge_gpus', _v91(data['max_surge_gpus']))
        given.add('max_surge_gpus')
    else:
        put(obj, 'max_surge_gpus', None)
    if 'headroom' in data:
        put(obj, 'headroom', _v73(data['headroom']))
        given.add('headroom')
    else:
        put(obj, 'headroom', 0.2)
    if 'maxLoadRatio' in data:
        if 'max_load_ratio' in data:
            raise Invalid
        put(obj, 'max_load_ratio', _v92(data['maxLoadRatio']))
        given.add('max_load_ratio')
    elif 'max_load_ratio' in data:
        put(obj, 'max_load_ratio', _v92(data['max_load_ratio']))
        given.add('max_load_ratio')
    else:
        put(obj, 'max_load_ratio', 1.5)
    if 'typicalRequest' in data:
        if 'typical_request' in data:
            raise Invalid
        put(obj, 'typical_request', _v93(data['typicalRequest']))
        given.add('typical_request')
    elif 'typical_request' in data:
        put(obj, 'typical_request', _v93(data['typical_request']))
        given.add('typical_request')
    else:
        put(obj, 'typical_request', build_TypicalRequest({}))
    if 'requestsPerReplica' in data:
        if 'requests_per_replica' in data:
            raise Invalid
        put(obj, 'requests_per_replica', _v94(data['requestsPerReplica']))
        given.add('requests_per_replica')
    elif 'requests_per_replica' in data:
        put(obj, 'requests_per_replica', _v94(data['requests_per_replica']))
        given.add('requests_per_replica')
    else:
        put(obj, 'requests_per_replica', build_ReplicaRates({}))
    return obj


class SecretKeyRef(FastObject):
    """Fast copy of :class:`controlplane.spec.models.SecretKeyRef`."""

    __slots__ = ('name', 'key')
    _FIELDS = (
        ('name', 'name', None),
        ('key', 'key', None),
    )

    def __new__(cls, **data: Any) -> SecretKeyRef:
        """As ``SecretKeyRef(**fields)`` makes the model: checked, defaults in."""
        return build_SecretKeyRef(data)
    name: str
    key: str


_KEYS_SecretKeyRef = frozenset(['key', 'name'])


def build_SecretKeyRef(data: Any) -> SecretKeyRef:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_SecretKeyRef.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: SecretKeyRef = new(SecretKeyRef, given, extra)
    if 'name' in data:
        put(obj, 'name', _v1(data['name']))
        given.add('name')
    else:
        raise Invalid
    if 'key' in data:
        put(obj, 'key', _v95(data['key']))
        given.add('key')
    else:
        raise Invalid
    return obj


class SlackAlert(FastObject):
    """Fast copy of :class:`controlplane.spec.models.SlackAlert`."""

    __slots__ = ('webhook_secret_ref', 'channel')
    _FIELDS = (
        ('webhook_secret_ref', 'webhookSecretRef', None),
        ('channel', 'channel', None),
    )

    def __new__(cls, **data: Any) -> SlackAlert:
        """As ``SlackAlert(**fields)`` makes the model: checked, defaults in."""
        return build_SlackAlert(data)
    webhook_secret_ref: SecretKeyRef
    channel: str | None


_KEYS_SlackAlert = frozenset(['channel', 'webhookSecretRef', 'webhook_secret_ref'])


def build_SlackAlert(data: Any) -> SlackAlert:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_SlackAlert.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: SlackAlert = new(SlackAlert, given, extra)
    if 'webhookSecretRef' in data:
        if 'webhook_secret_ref' in data:
            raise Invalid
        put(obj, 'webhook_secret_ref', _v96(data['webhookSecretRef']))
        given.add('webhook_secret_ref')
    elif 'webhook_secret_ref' in data:
        put(obj, 'webhook_secret_ref', _v96(data['webhook_secret_ref']))
        given.add('webhook_secret_ref')
    else:
        raise Invalid
    if 'channel' in data:
        put(obj, 'channel', _v38(data['channel']))
        given.add('channel')
    else:
        put(obj, 'channel', None)
    return obj


class WebhookAlert(FastObject):
    """Fast copy of :class:`controlplane.spec.models.WebhookAlert`."""

    __slots__ = ('url', 'hmac_secret_ref')
    _FIELDS = (
        ('url', 'url', None),
        ('hmac_secret_ref', 'hmacSecretRef', None),
    )

    def __new__(cls, **data: Any) -> WebhookAlert:
        """As ``WebhookAlert(**fields)`` makes the model: checked, defaults in."""
        return build_WebhookAlert(data)
    url: str
    hmac_secret_ref: SecretKeyRef | None


_KEYS_WebhookAlert = frozenset(['hmacSecretRef', 'hmac_secret_ref', 'url'])


def build_WebhookAlert(data: Any) -> WebhookAlert:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_WebhookAlert.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: WebhookAlert = new(WebhookAlert, given, extra)
    if 'url' in data:
        put(obj, 'url', _v17(data['url']))
        given.add('url')
    else:
        raise Invalid
    if 'hmacSecretRef' in data:
        if 'hmac_secret_ref' in data:
            raise Invalid
        put(obj, 'hmac_secret_ref', _v97(data['hmacSecretRef']))
        given.add('hmac_secret_ref')
    elif 'hmac_secret_ref' in data:
        put(obj, 'hmac_secret_ref', _v97(data['hmac_secret_ref']))
        given.add('hmac_secret_ref')
    else:
        put(obj, 'hmac_secret_ref', None)
    return obj


class AlertmanagerAlert(FastObject):
    """Fast copy of :class:`controlplane.spec.models.AlertmanagerAlert`."""

    __slots__ = ('url',)
    _FIELDS = (
        ('url', 'url', None),
    )

    def __new__(cls, **data: Any) -> AlertmanagerAlert:
        """As ``AlertmanagerAlert(**fields)`` makes the model: checked, defaults in."""
        return build_AlertmanagerAlert(data)
    url: str


_KEYS_AlertmanagerAlert = frozenset(['url'])


def build_AlertmanagerAlert(data: Any) -> AlertmanagerAlert:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_AlertmanagerAlert.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: AlertmanagerAlert = new(AlertmanagerAlert, given, extra)
    if 'url' in data:
        put(obj, 'url', _v17(data['url']))
        given.add('url')
    else:
        raise Invalid
    return obj


class AlertSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.AlertSpec`."""

    __slots__ = ('slack', 'webhook', 'alertmanager', 'events')
    _FIELDS = (
        ('slack', 'slack', None),
        ('webhook', 'webhook', None),
        ('alertmanager', 'alertmanager', None),
        ('events', 'events', None),
    )

    def __new__(cls, **data: Any) -> AlertSpec:
        """As ``AlertSpec(**fields)`` makes the model: checked, defaults in."""
        return build_AlertSpec(data)
    slack: SlackAlert | None
    webhook: WebhookAlert | None
    alertmanager: AlertmanagerAlert | None
    events: list[Literal['rollback', 'promotion', 'pause', 'throttle', 'step']]


_KEYS_AlertSpec = frozenset(['alertmanager', 'events', 'slack', 'webhook'])


def build_AlertSpec(data: Any) -> AlertSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_AlertSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: AlertSpec = new(AlertSpec, given, extra)
    if 'slack' in data:
        put(obj, 'slack', _v99(data['slack']))
        given.add('slack')
    else:
        put(obj, 'slack', None)
    if 'webhook' in data:
        put(obj, 'webhook', _v101(data['webhook']))
        given.add('webhook')
    else:
        put(obj, 'webhook', None)
    if 'alertmanager' in data:
        put(obj, 'alertmanager', _v103(data['alertmanager']))
        given.add('alertmanager')
    else:
        put(obj, 'alertmanager', None)
    if 'events' in data:
        put(obj, 'events', _v105(data['events']))
        given.add('events')
    else:
        put(obj, 'events', ['rollback'])
    return obj


class GitWriteBackSpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.GitWriteBackSpec`."""

    __slots__ = ('repo', 'path', 'branch', 'mode', 'provider', 'credentials_secret_ref')
    _FIELDS = (
        ('repo', 'repo', None),
        ('path', 'path', None),
        ('branch', 'branch', None),
        ('mode', 'mode', None),
        ('provider', 'provider', None),
        ('credentials_secret_ref', 'credentialsSecretRef', None),
    )

    def __new__(cls, **data: Any) -> GitWriteBackSpec:
        """As ``GitWriteBackSpec(**fields)`` makes the model: checked, defaults in."""
        return build_GitWriteBackSpec(data)
    repo: str | None
    path: str | None
    branch: str
    mode: Literal['commit', 'pull-request']
    provider: Literal['github', 'gitlab'] | None
    credentials_secret_ref: SecretKeyRef | None


_KEYS_GitWriteBackSpec = frozenset(['branch', 'credentialsSecretRef', 'credentials_secret_ref', 'mode', 'path', 'provider', 'repo'])


def build_GitWriteBackSpec(data: Any) -> GitWriteBackSpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_GitWriteBackSpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: GitWriteBackSpec = new(GitWriteBackSpec, given, extra)
    if 'repo' in data:
        put(obj, 'repo', _v107(data['repo']))
        given.add('repo')
    else:
        put(obj, 'repo', None)
    if 'path' in data:
        put(obj, 'path', _v109(data['path']))
        given.add('path')
    else:
        put(obj, 'path', None)
    if 'branch' in data:
        put(obj, 'branch', _v110(data['branch']))
        given.add('branch')
    else:
        put(obj, 'branch', 'main')
    if 'mode' in data:
        put(obj, 'mode', _v111(data['mode']))
        given.add('mode')
    else:
        put(obj, 'mode', 'commit')
    if 'provider' in data:
        put(obj, 'provider', _v113(data['provider']))
        given.add('provider')
    else:
        put(obj, 'provider', None)
    if 'credentialsSecretRef' in data:
        if 'credentials_secret_ref' in data:
            raise Invalid
        put(obj, 'credentials_secret_ref', _v97(data['credentialsSecretRef']))
        given.add('credentials_secret_ref')
    elif 'credentials_secret_ref' in data:
        put(obj, 'credentials_secret_ref', _v97(data['credentials_secret_ref']))
        given.add('credentials_secret_ref')
    else:
        put(obj, 'credentials_secret_ref', None)
    return obj


class ModelCanarySpec(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ModelCanarySpec`."""

    __slots__ = ('model', 'stable', 'candidate', 'traffic', 'analysis', 'steps', 'shadow', 'budget', 'capacity', 'alerts', 'git_write_back', 'gates')
    _FIELDS = (
        ('model', 'model', None),
        ('stable', 'stable', None),
        ('candidate', 'candidate', None),
        ('traffic', 'traffic', None),
        ('analysis', 'analysis', None),
        ('steps', 'steps', None),
        ('shadow', 'shadow', None),
        ('budget', 'budget', None),
        ('capacity', 'capacity', None),
        ('alerts', 'alerts', None),
        ('git_write_back', 'gitWriteBack', None),
        ('gates', 'gates', None),
    )

    def __new__(cls, **data: Any) -> ModelCanarySpec:
        """As ``ModelCanarySpec(**fields)`` makes the model: checked, defaults in."""
        return build_ModelCanarySpec(data)
    model: ModelSpec
    stable: VariantSpec
    candidate: VariantSpec
    traffic: TrafficSpec
    analysis: AnalysisSpec
    steps: list[StepSpec]
    shadow: ShadowSpec | None
    budget: BudgetSpec | None
    capacity: CapacitySpec | None
    alerts: list[AlertSpec]
    git_write_back: GitWriteBackSpec | None
    gates: list[GateSpec]

    def variant(self, role: str) -> VariantSpec:
        """The variant of ``role``, ``"stable"`` or ``"candidate"`` (ValueError for another)."""
        if role == "stable":
            return self.stable
        if role == "candidate":
            return self.candidate
        raise ValueError(f"no variant role {role!r}: stable or candidate")

    def candidate_is_stable(self) -> bool:
        """True when the candidate equals the stable variant in every field but ``name``: there
        is nothing to roll out (a no-op rollout, e.g. after a git revert of a failed candidate).
        An adopted stable not yet resolved (:attr:`adopted`, no ``storageUri``) is never equal."""
        if self.adopted and not self.stable.storage_uri:
            return False
        exclude = {"name", "target_ref"}
        return self.candidate.model_dump(exclude=exclude) == self.stable.model_dump(exclude=exclude)

    def capacity_or_default(self) -> CapacitySpec:
        """``capacity``, or the defaults of one (what a plan without it is reckoned with)."""
        return self.capacity if self.capacity is not None else CapacitySpec()

    @property
    def adopted(self) -> bool:
        """The stable is a live InferenceService the canary adopted (``stable.targetRef``)."""
        return self.stable.target_ref is not None


_KEYS_ModelCanarySpec = frozenset(['alerts', 'analysis', 'budget', 'candidate', 'capacity', 'gates', 'gitWriteBack', 'git_write_back', 'model', 'shadow', 'stable', 'steps', 'traffic'])


def build_ModelCanarySpec(data: Any) -> ModelCanarySpec:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ModelCanarySpec.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ModelCanarySpec = new(ModelCanarySpec, given, extra)
    if 'model' in data:
        put(obj, 'model', _v114(data['model']))
        given.add('model')
    else:
        raise Invalid
    if 'stable' in data:
        put(obj, 'stable', _v115(data['stable']))
        given.add('stable')
    else:
        raise Invalid
    if 'candidate' in data:
        put(obj, 'candidate', _v115(data['candidate']))
        given.add('candidate')
    else:
        raise Invalid
    if 'traffic' in data:
        put(obj, 'traffic', _v116(data['traffic']))
        given.add('traffic')
    else:
        put(obj, 'traffic', build_TrafficSpec({}))
    if 'analysis' in data:
        put(obj, 'analysis', _v117(data['analysis']))
        given.add('analysis')
    else:
        put(obj, 'analysis', build_AnalysisSpec({}))
    if 'steps' in data:
        put(obj, 'steps', _v119(data['steps']))
        given.add('steps')
    else:
        raise Invalid
    if 'shadow' in data:
        put(obj, 'shadow', _v121(data['shadow']))
        given.add('shadow')
    else:
        put(obj, 'shadow', None)
    if 'budget' in data:
        put(obj, 'budget', _v123(data['budget']))
        given.add('budget')
    else:
        put(obj, 'budget', None)
    if 'capacity' in data:
        put(obj, 'capacity', _v125(data['capacity']))
        given.add('capacity')
    else:
        put(obj, 'capacity', None)
    if 'alerts' in data:
        put(obj, 'alerts', _v127(data['alerts']))
        given.add('alerts')
    else:
        put(obj, 'alerts', [])
    if 'gitWriteBack' in data:
        if 'git_write_back' in data:
            raise Invalid
        put(obj, 'git_write_back', _v129(data['gitWriteBack']))
        given.add('git_write_back')
    elif 'git_write_back' in data:
        put(obj, 'git_write_back', _v129(data['git_write_back']))
        given.add('git_write_back')
    else:
        put(obj, 'git_write_back', None)
    if 'gates' in data:
        put(obj, 'gates', _v131(data['gates']))
        given.add('gates')
    else:
        put(obj, 'gates', [])
    return obj


class ModelCanary(FastObject):
    """Fast copy of :class:`controlplane.spec.models.ModelCanary`."""

    __slots__ = ('api_version', 'kind', 'metadata', 'spec', 'status', '_resolved')
    _FIELDS = (
        ('api_version', 'apiVersion', None),
        ('kind', 'kind', None),
        ('metadata', 'metadata', None),
        ('spec', 'spec', None),
        ('status', 'status', None),
    )

    def __new__(cls, **data: Any) -> ModelCanary:
        """As ``ModelCanary(**fields)`` makes the model: checked, defaults in."""
        return build_ModelCanary(data)
    api_version: Literal['canary.controlplane.dev/v1alpha1']
    kind: Literal['ModelCanary']
    metadata: ObjectMeta
    spec: ModelCanarySpec
    status: dict[str, Any] | None
    _resolved: Any

    def resolved_from(self) -> Any:
        """What :func:`controlplane.serving.adopt.resolve` made this copy with, or None."""
        return self._resolved

    def metric(self, name: str) -> MetricSpec | None:
        """The metric called ``name``, or None."""
        return next((m for m in self.spec.analysis.metrics if m.name == name), None)


_KEYS_ModelCanary = frozenset(['apiVersion', 'api_version', 'kind', 'metadata', 'spec', 'status'])


def build_ModelCanary(data: Any) -> ModelCanary:
    if type(data) is not dict:
        raise Invalid
    if not _KEYS_ModelCanary.issuperset(data):
        raise Invalid
    extra = None
    given: set[str] = set()
    obj: ModelCanary = new(ModelCanary, given, extra)
    if 'apiVersion' in data:
        if 'api_version' in data:
            raise Invalid
        put(obj, 'api_version', _v132(data['apiVersion']))
        given.add('api_version')
    elif 'api_version' in data:
        put(obj, 'api_version', _v132(data['api_version']))
        given.add('api_version')
    else:
        raise Invalid
    if 'kind' in data:
        put(obj, 'kind', _v133(data['kind']))
        given.add('kind')
    else:
        raise Invalid
    if 'metadata' in data:
        put(obj, 'metadata', _v134(data['metadata']))
        given.add('metadata')
    else:
        raise Invalid
    if 'spec' in data:
        put(obj, 'spec', _v135(data['spec']))
        given.add('spec')
    else:
        raise Invalid
    if 'status' in data:
        put(obj, 'status', _v138(data['status']))
        given.add('status')
    else:
        put(obj, 'status', None)
    put(obj, '_resolved', None)
    return obj


def _v1(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 253:
        raise Invalid
    if '\n' in v or _re.search('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', v) is None:
        raise Invalid
    return v


def _v2(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 63:
        raise Invalid
    if '\n' in v or _re.search('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', v) is None:
        raise Invalid
    return v


def _v3(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    return v


def _v4(v: Any) -> Any:
    if type(v) is not dict:
        raise Invalid
    v = {_v3(k): _v3(x) for k, x in v.items()}
    return v


def _v5(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 1000):
        raise Invalid
    return v


def _v6(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 1024):
        raise Invalid
    return v


def _v7(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 4096):
        raise Invalid
    return v


def _v8(v: Any) -> Any:
    if type(v) is not str or v not in ('vllm',):
        raise Invalid
    return v


def _v9(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 10000000):
        raise Invalid
    return v


def _v10(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 100000000000000.0):
        raise Invalid
    return v


def _v11(v: Any) -> Any:
    if v is None:
        return None
    return _v10(v)


def _v12(v: Any) -> Any:
    return build_ModelArchitecture(v)
    return v


def _v13(v: Any) -> Any:
    if v is None:
        return None
    return _v12(v)


def _v14(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 100000):
        raise Invalid
    return v


def _v15(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 64:
        raise Invalid
    v = _call(checked_vllm_version, v)
    return v


def _v16(v: Any) -> Any:
    if v is None:
        return None
    return _v15(v)


def _v17(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 2048:
        raise Invalid
    if '\n' in v or _re.search('^https?://\\S+$', v) is None:
        raise Invalid
    return v


def _v18(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 1000000.0):
        raise Invalid
    return v


def _v19(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 1000):
        raise Invalid
    return v


def _v20(v: Any) -> Any:
    return build_QueueScaling(v)
    return v


def _v21(v: Any) -> Any:
    if v is None:
        return None
    return _v20(v)


def _v22(v: Any) -> Any:
    if type(v) is not str or v not in ('serving.kserve.io/v1beta1', 'serving.kserve.io/v1alpha2'):
        raise Invalid
    return v


def _v23(v: Any) -> Any:
    if type(v) is not str or v not in ('InferenceService', 'LLMInferenceService'):
        raise Invalid
    return v


def _v24(v: Any) -> Any:
    return build_TargetRef(v)
    return v


def _v25(v: Any) -> Any:
    if v is None:
        return None
    return _v24(v)


def _v26(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 2048:
        raise Invalid
    return v


def _v27(v: Any) -> Any:
    if type(v) is not str or v not in ('none', 'fp8', 'awq', 'gptq', 'bitsandbytes-nf4', 'bitsandbytes-int8'):
        raise Invalid
    return v


def _v28(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 128:
        raise Invalid
    return v


def _v29(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 64):
        raise Invalid
    return v


def _v30(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 0):
        raise Invalid
    if not (v <= 1000):
        raise Invalid
    return v


def _v31(v: Any) -> Any:
    return build_VariantAutoscaling(v)
    return v


def _v32(v: Any) -> Any:
    if v is None:
        return None
    return _v31(v)


def _v33(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 1):
        raise Invalid
    return v


def _v34(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 100000:
        raise Invalid
    return v


def _v35(v: Any) -> Any:
    if v is None:
        return None
    return _v34(v)


def _v36(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 200:
        raise Invalid
    v = [_v3(x) for x in v]
    return v


def _v37(v: Any) -> Any:
    if v is None:
        return None
    return _v2(v)


def _v38(v: Any) -> Any:
    if v is None:
        return None
    return _v3(v)


def _v39(v: Any) -> Any:
    if type(v) is not str or v not in ('envoy-gateway', 'istio', 'traefik'):
        raise Invalid
    return v


def _v40(v: Any) -> Any:
    if v is None:
        return None
    return _v39(v)


def _v41(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 256:
        raise Invalid
    if '\n' in v or _re.search("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", v) is None:
        raise Invalid
    return v


def _v42(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 1000:
        raise Invalid
    v = [_v3(x) for x in v]
    return v


def _v43(v: Any) -> Any:
    if type(v) is not str or v not in ('gateway-api', 'istio', 'kserve', 'kserve-knative', 'llmisvc'):
        raise Invalid
    return v


def _v44(v: Any) -> Any:
    return build_CohortSpec(v)
    return v


def _v45(v: Any) -> Any:
    if v is None:
        return None
    return _v44(v)


def _v46(v: Any) -> Any:
    return build_GatewayRef(v)
    return v


def _v47(v: Any) -> Any:
    if v is None:
        return None
    return _v46(v)


def _v48(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 100:
        raise Invalid
    v = [_v3(x) for x in v]
    return v


def _v49(v: Any) -> Any:
    if type(v) is not str or v not in ('e2e-latency', 'ttft', 'inter-token-latency', 'error-rate', 'request-rate', 'tokens-per-second', 'kv-cache-usage'):
        raise Invalid
    return v


def _v50(v: Any) -> Any:
    if v is None:
        return None
    return _v49(v)


def _v51(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v < 1):
        raise Invalid
    return v


def _v52(v: Any) -> Any:
    if v is None:
        return None
    return _v51(v)


def _v53(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 20000:
        raise Invalid
    return v


def _v54(v: Any) -> Any:
    if v is None:
        return None
    return _v53(v)


def _v55(v: Any) -> Any:
    if type(v) is not str or v not in ('seconds', 'ratio', 'number'):
        raise Invalid
    return v


def _v56(v: Any) -> Any:
    if v is None:
        return None
    return _v55(v)


def _v57(v: Any) -> Any:
    v = _call(parse_duration, v)
    if not isinstance(v, Duration):
        raise Invalid
    return v


def _v58(v: Any) -> Any:
    if v is None:
        return None
    return _v17(v)


def _v59(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 2000:
        raise Invalid
    return v


def _v60(v: Any) -> Any:
    if v is None:
        return None
    return _v59(v)


def _v61(v: Any) -> Any:
    return build_MetricSpec(v)
    return v


def _v62(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 200:
        raise Invalid
    v = [_v61(x) for x in v]
    return v


def _v63(v: Any) -> Any:
    v = _call(parse_quantity, v)
    if not isinstance(v, Quantity):
        raise Invalid
    return v


def _v64(v: Any) -> Any:
    if v is None:
        return None
    return _v63(v)


def _v65(v: Any) -> Any:
    if v is None:
        return None
    return _v57(v)


def _v66(v: Any) -> Any:
    if type(v) is not str or v not in ('baseline',):
        raise Invalid
    return v


def _v67(v: Any) -> Any:
    if v is None:
        return None
    return _v66(v)


def _v68(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 0):
        raise Invalid
    if not (v <= 1000000000000):
        raise Invalid
    return v


def _v69(v: Any) -> Any:
    if v is None:
        return None
    return _v68(v)


def _v70(v: Any) -> Any:
    if type(v) is not str or v not in ('threshold', 'sequential'):
        raise Invalid
    return v


def _v71(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v < 0.5):
        raise Invalid
    return v


def _v72(v: Any) -> Any:
    if type(v) is not str or v not in ('tail', 'shift'):
        raise Invalid
    return v


def _v73(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v >= 0):
        raise Invalid
    if not (v < 1):
        raise Invalid
    return v


def _v74(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 0):
        raise Invalid
    if not (v <= 100):
        raise Invalid
    return v


def _v75(v: Any) -> Any:
    return build_CheckSpec(v)
    return v


def _v76(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 100:
        raise Invalid
    v = [_v75(x) for x in v]
    return v


def _v77(v: Any) -> Any:
    if type(v) is not str or v not in ('auto', 'manual'):
        raise Invalid
    return v


def _v78(v: Any) -> Any:
    if type(v) is not bool:
        raise Invalid
    return v


def _v79(v: Any) -> Any:
    if type(v) is not str or v not in ('first-step', 'each-step', 'step', 'promotion'):
        raise Invalid
    return v


def _v80(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 100):
        raise Invalid
    return v


def _v81(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 100:
        raise Invalid
    v = [_v80(x) for x in v]
    return v


def _v82(v: Any) -> Any:
    return build_WorkflowTemplateRef(v)
    return v


def _v83(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 253:
        raise Invalid
    if '\n' in v or _re.search('^[A-Za-z0-9_.-]+$', v) is None:
        raise Invalid
    return v


def _v84(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 10000:
        raise Invalid
    return v


def _v85(v: Any) -> Any:
    if type(v) is not dict:
        raise Invalid
    if len(v) > 100:
        raise Invalid
    v = {_v83(k): _v84(x) for k, x in v.items()}
    return v


def _v86(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v > 0):
        raise Invalid
    if not (v <= 1000000000.0):
        raise Invalid
    return v


def _v87(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 10000000):
        raise Invalid
    return v


def _v88(v: Any) -> Any:
    if v is None:
        return None
    return _v18(v)


def _v89(v: Any) -> Any:
    if v is None:
        return None
    return _v14(v)


def _v90(v: Any) -> Any:
    if type(v) is not int:
        raise Invalid
    if not (v >= 0):
        raise Invalid
    if not (v <= 100000):
        raise Invalid
    return v


def _v91(v: Any) -> Any:
    if v is None:
        return None
    return _v90(v)


def _v92(v: Any) -> Any:
    if type(v) is int:
        v = float(v)
    elif type(v) is not float:
        raise Invalid
    if not (v >= 1):
        raise Invalid
    if not (v <= 1000):
        raise Invalid
    return v


def _v93(v: Any) -> Any:
    return build_TypicalRequest(v)
    return v


def _v94(v: Any) -> Any:
    return build_ReplicaRates(v)
    return v


def _v95(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 253:
        raise Invalid
    return v


def _v96(v: Any) -> Any:
    return build_SecretKeyRef(v)
    return v


def _v97(v: Any) -> Any:
    if v is None:
        return None
    return _v96(v)


def _v98(v: Any) -> Any:
    return build_SlackAlert(v)
    return v


def _v99(v: Any) -> Any:
    if v is None:
        return None
    return _v98(v)


def _v100(v: Any) -> Any:
    return build_WebhookAlert(v)
    return v


def _v101(v: Any) -> Any:
    if v is None:
        return None
    return _v100(v)


def _v102(v: Any) -> Any:
    return build_AlertmanagerAlert(v)
    return v


def _v103(v: Any) -> Any:
    if v is None:
        return None
    return _v102(v)


def _v104(v: Any) -> Any:
    if type(v) is not str or v not in ('rollback', 'promotion', 'pause', 'throttle', 'step'):
        raise Invalid
    return v


def _v105(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 5:
        raise Invalid
    v = [_v104(x) for x in v]
    return v


def _v106(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) > 2048:
        raise Invalid
    v = _call(checked_git_url, v)
    return v


def _v107(v: Any) -> Any:
    if v is None:
        return None
    return _v106(v)


def _v108(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 1024:
        raise Invalid
    return v


def _v109(v: Any) -> Any:
    if v is None:
        return None
    return _v108(v)


def _v110(v: Any) -> Any:
    if type(v) is not str:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 255:
        raise Invalid
    return v


def _v111(v: Any) -> Any:
    if type(v) is not str or v not in ('commit', 'pull-request'):
        raise Invalid
    return v


def _v112(v: Any) -> Any:
    if type(v) is not str or v not in ('github', 'gitlab'):
        raise Invalid
    return v


def _v113(v: Any) -> Any:
    if v is None:
        return None
    return _v112(v)


def _v114(v: Any) -> Any:
    return build_ModelSpec(v)
    return v


def _v115(v: Any) -> Any:
    return build_VariantSpec(v)
    return v


def _v116(v: Any) -> Any:
    return build_TrafficSpec(v)
    return v


def _v117(v: Any) -> Any:
    return build_AnalysisSpec(v)
    return v


def _v118(v: Any) -> Any:
    return build_StepSpec(v)
    return v


def _v119(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) < 1:
        raise Invalid
    if len(v) > 100:
        raise Invalid
    v = [_v118(x) for x in v]
    return v


def _v120(v: Any) -> Any:
    return build_ShadowSpec(v)
    return v


def _v121(v: Any) -> Any:
    if v is None:
        return None
    return _v120(v)


def _v122(v: Any) -> Any:
    return build_BudgetSpec(v)
    return v


def _v123(v: Any) -> Any:
    if v is None:
        return None
    return _v122(v)


def _v124(v: Any) -> Any:
    return build_CapacitySpec(v)
    return v


def _v125(v: Any) -> Any:
    if v is None:
        return None
    return _v124(v)


def _v126(v: Any) -> Any:
    return build_AlertSpec(v)
    return v


def _v127(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 20:
        raise Invalid
    v = [_v126(x) for x in v]
    return v


def _v128(v: Any) -> Any:
    return build_GitWriteBackSpec(v)
    return v


def _v129(v: Any) -> Any:
    if v is None:
        return None
    return _v128(v)


def _v130(v: Any) -> Any:
    return build_GateSpec(v)
    return v


def _v131(v: Any) -> Any:
    if type(v) is not list:
        raise Invalid
    if len(v) > 50:
        raise Invalid
    v = [_v130(x) for x in v]
    return v


def _v132(v: Any) -> Any:
    if type(v) is not str or v not in ('canary.controlplane.dev/v1alpha1',):
        raise Invalid
    return v


def _v133(v: Any) -> Any:
    if type(v) is not str or v not in ('ModelCanary',):
        raise Invalid
    return v


def _v134(v: Any) -> Any:
    return build_ObjectMeta(v)
    return v


def _v135(v: Any) -> Any:
    return build_ModelCanarySpec(v)
    return v


def _v136(v: Any) -> Any:
    return v


def _v137(v: Any) -> Any:
    if type(v) is not dict:
        raise Invalid
    v = {_v3(k): _v136(x) for k, x in v.items()}
    return v


def _v138(v: Any) -> Any:
    if v is None:
        return None
    return _v137(v)
