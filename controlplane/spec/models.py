"""The ``ModelCanary`` resource as typed, immutable pydantic models.

Owns the shape of a canary.yml (names, types, defaults); every default lives here. Cross-field
rules are :mod:`controlplane.spec.rules`' and :mod:`controlplane.validation`'s. Pure.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from controlplane.spec import constants, name_checks
from controlplane.spec.git_url import GIT_URL_PATTERN, checked_git_url
from controlplane.spec.units import (
    DURATION_PATTERN,
    Duration,
    Quantity,
    parse_duration,
    parse_quantity,
    quantity_out,
)
from controlplane.spec.vllm_version import VLLM_VERSION_PATTERN, checked_vllm_version

API_GROUP = constants.API_GROUP
API_VERSION = constants.API_VERSION
KIND = constants.KIND
PLURAL = constants.PLURAL
SHORT_NAME = constants.SHORT_NAME
LABEL_CANARY = constants.LABEL_CANARY
LABEL_VARIANT = constants.LABEL_VARIANT


DurationField = Annotated[
    Duration,
    BeforeValidator(parse_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "Duration like 30s, 5m, 4h, 7d or 1h30m",
        }
    ),
]
QuantityField = Annotated[
    Quantity,
    BeforeValidator(parse_quantity),
    PlainSerializer(quantity_out, return_type=Any),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": "Threshold: 200ms / 1.5s (latency, seconds), 0.1% / 5% (fraction), "
            "or a plain number (on a plain-number metric only; 0 anywhere)",
        }
    ),
]


GitUrlField = Annotated[
    str,
    Field(max_length=2048),
    AfterValidator(checked_git_url),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 2048,
            "pattern": GIT_URL_PATTERN,
            "description": "git remote: https://HOST/PATH, ssh://HOST/PATH or USER@HOST:PATH",
        }
    ),
]


VllmVersionField = Annotated[
    str,
    Field(max_length=64),
    AfterValidator(checked_vllm_version),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 64,
            "pattern": VLLM_VERSION_PATTERN,
            "description": "vLLM release the runtime image runs, like 0.24.0",
        }
    ),
]
DNSLabel = Annotated[
    str,
    Field(min_length=1, max_length=name_checks.LABEL_MAX, pattern=name_checks.LABEL_PATTERN),
]
DNSSubdomain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=name_checks.SUBDOMAIN_MAX,
        pattern=name_checks.SUBDOMAIN_PATTERN,
    ),
]

Quantization = Literal["none", "fp8", "awq", "gptq", "bitsandbytes-nf4", "bitsandbytes-int8"]
RouterName = Literal["gateway-api", "istio", "kserve", "kserve-knative", "llmisvc"]
GatewayImplementation = Literal["envoy-gateway", "istio", "traefik"]
Builtin = Literal[
    "e2e-latency",
    "ttft",
    "inter-token-latency",
    "error-rate",
    "request-rate",
    "tokens-per-second",
    "kv-cache-usage",
]
MetricUnit = Literal["seconds", "ratio", "number"]
Judge = Literal["threshold", "sequential"]
LatencyTest = Literal["tail", "shift"]
AlertEvent = Literal["rollback", "promotion", "pause", "throttle", "step"]
GateWhen = Literal["first-step", "each-step", "step", "promotion"]
Approval = Literal["auto", "manual"]

DEFAULT_INTERVAL = constants.DEFAULT_INTERVAL
DEFAULT_WINDOW = constants.DEFAULT_WINDOW
DEFAULT_ERROR_LIMIT = 5
DEFAULT_MIN_SAMPLES = 100
DEFAULT_QUANTILE = constants.DEFAULT_QUANTILE
DEFAULT_ALPHA = 0.01
DEFAULT_GATE_TIMEOUT = "1h"
GATE_PLACEHOLDERS = constants.GATE_PLACEHOLDERS


class _Model(BaseModel):
    """Base: camelCase aliases, unknown fields rejected, no silent type coercion, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
        validate_default=False,
    )


class ObjectMeta(BaseModel):
    """The Kubernetes metadata we read. Server-set fields (uid, resourceVersion...) are kept."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    name: DNSSubdomain
    namespace: DNSLabel = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelArchitecture(_Model):
    """Shape of the transformer, for the KV-cache part of the memory-fit check."""

    layers: int = Field(gt=0, le=1000)
    kv_heads: int = Field(gt=0, le=1024)
    head_dim: int = Field(gt=0, le=4096)


class ModelSpec(_Model):
    """The served model: the name clients send, the runtime, and its size."""

    name: DNSLabel
    runtime: Literal["vllm"] = "vllm"
    max_model_len: int = Field(default=4096, gt=0, le=10_000_000)
    parameters: float | None = Field(default=None, gt=0, le=1e14)
    architecture: ModelArchitecture | None = None
    fit_concurrency: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="Full-length sequences whose KV cache must fit at once (memory-fit check)",
    )
    vllm_version: VllmVersionField | None = Field(
        default=None,
        description="vLLM release the runtime runs (e.g. 0.24.0); unset: the vLLM of the pinned "
        "KServe's runtime image. Decides the quantization flags and which methods exist",
    )


class QueueScaling(_Model):
    """KEDA on vLLM's queue: KServe's ``keda`` autoscaler class scales the variant on its
    waiting requests (``vllm:num_requests_waiting``) read from ``serverAddress``."""

    server_address: str = Field(max_length=2048, pattern=r"^https?://\S+$")
    waiting_per_replica: float = Field(gt=0, le=1e6)


class VariantAutoscaling(_Model):
    """The variant autoscales between its replicas and ``maxReplicas`` (at all the traffic): on
    KServe's default autoscaler (an HPA in Standard mode), or on vLLM's queue with ``queue``."""

    max_replicas: int = Field(ge=1, le=1000)
    queue: QueueScaling | None = None


class TargetRef(_Model):
    """The InferenceService that serves users today, adopted as the stable variant
    (``spec.stable.targetRef``, the shape of Flagger's ``targetRef`` and Argo Rollouts'
    ``workloadRef``): in the canary's namespace, read and never rewritten before a promotion
    (docs/adopt.md)."""

    api_version: Literal["serving.kserve.io/v1beta1", "serving.kserve.io/v1alpha2"] = Field(
        default="serving.kserve.io/v1beta1", alias="apiVersion"
    )
    kind: Literal["InferenceService", "LLMInferenceService"] = "InferenceService"
    name: DNSLabel


class VariantSpec(_Model):
    """One deployable variant of the model (the stable one or the candidate).

    A stable with ``targetRef`` names the live InferenceService instead: its ``storageUri``,
    ``gpu`` and the rest are read from that object (:mod:`controlplane.serving.adopt`), so the
    document leaves them out (they default to empty until resolved)."""

    name: DNSLabel
    target_ref: TargetRef | None = None
    storage_uri: str = Field(default="", max_length=2048)
    quantization: Quantization = "none"
    gpu: str = Field(default="", max_length=128)
    gpu_count: int = Field(default=1, ge=1, le=64)
    replicas: int = Field(default=1, ge=0, le=1000)
    autoscaling: VariantAutoscaling | None = None
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    args: list[str] = Field(default_factory=list, max_length=200)


class GatewayRef(_Model):
    """A Gateway API parentRef (the Gateway the HTTPRoute attaches to) and what implements it."""

    name: DNSSubdomain
    namespace: DNSLabel | None = None
    section_name: str | None = None
    implementation: GatewayImplementation | None = Field(
        default=None,
        description="Gateway API implementation of the Gateway (envoy-gateway, istio, traefik): "
        "the HTTP source of error-rate; unset: from its GatewayClass's controllerName",
    )


DEFAULT_GATEWAY = GatewayRef(name="kserve-ingress-gateway", namespace="kserve")
"""The Gateway without ``spec.traffic.gateway``: KServe's own, ``ingress.kserveIngressGateway``
of its ``inferenceservice-config`` (``config/configmap/inferenceservice.yaml``, v0.20.0), the one
its installation creates and its HTTPRoutes attach to."""


class CohortSpec(_Model):
    """Only requests whose ``header`` has one of ``values`` may reach the candidate."""

    header: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    values: list[str] = Field(min_length=1, max_length=1000)


class SessionSpec(_Model):
    """The key of a session (exactly one of a request ``header`` or a ``cookie``): its requests
    go to one variant, chosen by the key's last two hex digits (docs/routing.md)."""

    header: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
    )
    cookie: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$"
    )
    turns: float | None = Field(default=None, ge=1.0, le=10_000.0)
    """The mean turns of a conversation. A session's turns share its prompt, context and cache,
    so they are not independent samples: ``judge: sequential`` needs it to count the evidence
    by session (:func:`controlplane.analysis.sequential.support.design_effect`)."""


class TrafficSpec(_Model):
    """How user traffic reaches the variants."""

    router: RouterName = "gateway-api"
    cohort: CohortSpec | None = None
    session: SessionSpec | None = None
    gateway: GatewayRef | None = None
    hosts: list[str] = Field(default_factory=list, max_length=100)


class MetricSpec(_Model):
    """A named metric: a built-in of the preset, or a custom PromQL ``query``."""

    name: DNSLabel
    builtin: Builtin | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)
    query: str | None = Field(default=None, min_length=1, max_length=20_000)
    unit: MetricUnit | None = None

    @property
    def quantile_or_default(self) -> float:
        """The quantile a latency built-in reads: ``quantile``, else :data:`DEFAULT_QUANTILE`."""
        return DEFAULT_QUANTILE if self.quantile is None else self.quantile


class AnalysisSpec(_Model):
    """When and against what the checks are evaluated."""

    interval: DurationField = Field(default_factory=lambda: parse_duration(DEFAULT_INTERVAL))
    window: DurationField = Field(default_factory=lambda: parse_duration(DEFAULT_WINDOW))
    prometheus: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    error_limit: int = Field(default=DEFAULT_ERROR_LIMIT, ge=1, le=1000)
    preset: Literal["vllm"] = "vllm"
    selector: str | None = Field(
        default=None,
        max_length=2000,
        description="Label matchers for one variant, with placeholders; default "
        'namespace="{{namespace}}",canary="{{canary}}",variant="{{variant}}"',
    )
    metrics: list[MetricSpec] = Field(default_factory=list, max_length=200)


class CheckSpec(_Model):
    """A condition on a metric (``rollbackOn`` / ``promoteOn``)."""

    metric: DNSLabel
    above: QuantityField | None = None
    below: QuantityField | None = None
    window: DurationField | None = None
    for_: DurationField = Field(default_factory=lambda: parse_duration("0"), alias="for")
    compare: Literal["baseline"] | None = None
    min_samples: int | None = Field(default=None, ge=0, le=10**12)
    judge: Judge = "threshold"
    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, lt=0.5)
    test: LatencyTest = "tail"
    final_look: float = Field(default=0.0, ge=0, lt=1)


class StepSpec(_Model):
    """One traffic step: a weight held for a duration while its checks pass.

    ``approval: manual``: once the duration has passed and the checks pass, the step waits for a
    ``promote`` intent (``kubectl canary promote``) before it is left.
    """

    weight: int = Field(ge=0, le=100)
    duration: DurationField | None = None
    rollback_on: list[CheckSpec] = Field(default_factory=list, max_length=100)
    approval: Approval = "auto"


class WorkflowTemplateRef(_Model):
    """An Argo ``WorkflowTemplate`` (in the gate's namespace) or ``ClusterWorkflowTemplate``."""

    name: DNSSubdomain
    cluster_scope: bool = False


ParameterName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.-]+$")]


class GateSpec(_Model):
    """An Argo Workflow that must succeed before the rollout goes on (``before``).

    ``before``: ``first-step`` (before step 1 begins), ``each-step`` (before every step),
    ``step`` (before the 1-based ``steps`` listed) or ``promotion`` (after the last step, before
    the candidate is promoted). The workflow is submitted from ``workflowTemplate`` with
    ``parameters`` (placeholders filled in) in ``namespace``; it fails the gate, and rolls back,
    when it fails, errors or runs longer than ``timeout``.
    """

    name: DNSLabel
    before: GateWhen
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default_factory=list, max_length=100)
    workflow_template: WorkflowTemplateRef
    parameters: dict[ParameterName, Annotated[str, Field(max_length=10_000)]] = Field(
        default_factory=dict, max_length=100
    )
    timeout: DurationField = Field(default_factory=lambda: parse_duration(DEFAULT_GATE_TIMEOUT))
    namespace: DNSLabel | None = None
    argo_server: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")


class ShadowSpec(_Model):
    """A mirrored-traffic phase before the steps, promoted on ``promoteOn``."""

    duration: DurationField
    promote_on: CheckSpec
    rollback_on: list[CheckSpec] = Field(default_factory=list, max_length=100)


class QualitySpec(_Model):
    """The quality judge: ``sample`` of each variant's requests pass through the pairer, which
    answers them from that variant and sends at most ``perMinute`` of them, as paired requests,
    to both variants; the candidate's mean ``metric`` score is tested against ``tolerance`` at
    level ``alpha``. A breach rolls back; the candidate takes the last step's share only on a
    pass, unless ``undecided: promote``. The pairer stores no request or answer text unless
    ``keepPrompts`` (docs/judges.md, "Quality: paired answers")."""

    sample: QuantityField
    per_minute: int = Field(default=60, ge=1, le=100_000)
    metric: Literal["agreement", "kl"] = "agreement"
    tolerance: float = Field(gt=0, lt=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    undecided: Literal["hold", "promote"] = "hold"
    keep_prompts: bool = False


class BudgetSpec(_Model):
    """Daily spend limit on the candidate; over it the weight drops to ``throttleWeight``."""

    daily_limit: float = Field(gt=0, le=1e9)
    throttle_weight: int = Field(default=1, ge=0, le=100)
    cost_query: str | None = Field(default=None, min_length=1, max_length=20_000)


class TypicalRequest(_Model):
    """The request a replica's capacity is estimated for (the catalogue estimate only)."""

    input_tokens: int = Field(default=512, ge=1, le=10_000_000)
    output_tokens: int = Field(default=256, ge=1, le=10_000_000)


class ReplicaRates(_Model):
    """Requests per second one replica of each variant serves at full batch, as measured; each
    replaces the estimate (a measured profile, else the catalogue) of its variant."""

    stable: float | None = Field(default=None, gt=0, le=1e6)
    candidate: float | None = Field(default=None, gt=0, le=1e6)


class CapacitySpec(_Model):
    """How each variant's replicas are sized at every step (docs/capacity.md).

    ``mode: plan`` (the default, also when ``spec.capacity`` is absent on a router that lets
    the controller size replicas): the controller scales the candidate up (and waits for it to
    be Ready) before its weight rises, and the stable down only once traffic has left it;
    ``stable.replicas`` is the stable's full size and ``candidate.replicas`` the fewest the
    candidate runs. ``mode: fixed``: both run their ``replicas`` throughout, refused where that
    overloads a variant at some step unless ``acceptOverload`` says so.
    """

    mode: Literal["plan", "fixed"] = Field(
        default="plan",
        description="plan: replicas follow each variant's share; fixed: each runs its replicas",
    )
    accept_overload: bool = Field(
        default=False,
        description="With mode fixed: run even where a variant's replicas would serve more "
        "than they can at some step (validation refuses it otherwise)",
    )

    max_gpus: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        alias="maxGPUs",
        description="GPUs both variants may hold at once, at every moment of the rollout",
    )
    max_surge_gpus: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        alias="maxSurgeGPUs",
        description="GPUs the rollout may hold beyond what the stable holds at full size",
    )
    headroom: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of each replica's capacity kept spare (0.2: sized to run at 80 %)",
    )
    max_load_ratio: float = Field(
        default=1.5,
        ge=1,
        le=1000,
        description="Most requests in flight per replica one variant may carry over the other's "
        "before a check that compares them says the comparison is not fair",
    )
    typical_request: TypicalRequest = Field(default_factory=TypicalRequest)
    requests_per_replica: ReplicaRates = Field(default_factory=ReplicaRates)


class SecretKeyRef(_Model):
    """A key of a Kubernetes Secret in the canary's namespace."""

    name: DNSSubdomain
    key: str = Field(min_length=1, max_length=253)


class SlackAlert(_Model):
    webhook_secret_ref: SecretKeyRef
    channel: str | None = None


class WebhookAlert(_Model):
    url: str = Field(max_length=2048, pattern=r"^https?://\S+$")
    hmac_secret_ref: SecretKeyRef | None = None


class AlertmanagerAlert(_Model):
    url: str = Field(max_length=2048, pattern=r"^https?://\S+$")


def _default_alert_events() -> list[AlertEvent]:
    return ["rollback"]


class AlertSpec(_Model):
    """One alert channel (exactly one of slack/webhook/alertmanager) and what it is told."""

    slack: SlackAlert | None = None
    webhook: WebhookAlert | None = None
    alertmanager: AlertmanagerAlert | None = None
    events: list[AlertEvent] = Field(default_factory=_default_alert_events, max_length=5)


class GitWriteBackSpec(_Model):
    """Opt-in: after an automatic rollback, commit (or propose) a revert of the candidate in git.

    ``repo`` and ``path`` name the canary.yml; when omitted they come from the source annotation
    the git source or the GitOps tool sets on the resource.
    """

    repo: GitUrlField | None = None
    path: str | None = Field(default=None, min_length=1, max_length=1024)
    branch: str = Field(default="main", min_length=1, max_length=255)
    mode: Literal["commit", "pull-request"] = "commit"
    provider: Literal["github", "gitlab"] | None = None
    credentials_secret_ref: SecretKeyRef | None = None


_DEFAULT_CAPACITY = CapacitySpec()

SINGLE_SERVICE_ROUTERS = ("kserve", "kserve-knative")
"""The routers that serve both variants from one InferenceService."""


class ModelCanarySpec(_Model):
    """``spec`` of a ModelCanary."""

    model: ModelSpec
    stable: VariantSpec
    candidate: VariantSpec
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    steps: list[StepSpec] = Field(min_length=1, max_length=100)
    shadow: ShadowSpec | None = None
    budget: BudgetSpec | None = None
    quality: QualitySpec | None = None
    capacity: CapacitySpec | None = None
    alerts: list[AlertSpec] = Field(default_factory=list, max_length=20)
    git_write_back: GitWriteBackSpec | None = None
    gates: list[GateSpec] = Field(default_factory=list, max_length=50)

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
        return self.capacity if self.capacity is not None else _DEFAULT_CAPACITY

    @property
    def plan(self) -> CapacitySpec | None:
        """The capacity plan the replicas follow, None where each variant runs its fixed
        ``replicas``: ``capacity`` unless its mode is fixed; without it, the default plan,
        except on the routers that serve both variants from one InferenceService (KServe
        sizes its canary itself) and with an adopted stable (the live service is the user's)."""
        if self.capacity is not None:
            return None if self.capacity.mode == "fixed" else self.capacity
        if self.traffic.router in SINGLE_SERVICE_ROUTERS or self.adopted:
            return None
        return _DEFAULT_CAPACITY

    @property
    def adopted(self) -> bool:
        """The stable is a live InferenceService the canary adopted (``stable.targetRef``)."""
        return self.stable.target_ref is not None


class ModelCanary(_Model):
    """The whole resource as users commit it.

    ``status`` is the controller's and is not validated here.
    """

    api_version: Literal["canary.controlplane.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["ModelCanary"]
    metadata: ObjectMeta
    spec: ModelCanarySpec
    status: dict[str, Any] | None = None
    _resolved: Any = PrivateAttr(default=None)
    """What an adopted stable was resolved from (:func:`controlplane.serving.adopt.resolve`
    sets it; not part of the resource: never dumped, hashed or validated)."""

    def resolved_from(self) -> Any:
        """What :func:`controlplane.serving.adopt.resolve` made this copy with, or None."""
        return self._resolved

    def metric(self, name: str) -> MetricSpec | None:
        """The metric called ``name``, or None."""
        return next((m for m in self.spec.analysis.metrics if m.name == name), None)

    def window_s(self, check: CheckSpec) -> float:
        """The seconds ``check`` reads over: its ``window``, else ``spec.analysis.window``."""
        return (check.window or self.spec.analysis.window).seconds
