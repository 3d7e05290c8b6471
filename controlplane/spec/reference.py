"""The field reference of a ModelCanary, as Markdown generated from the pydantic models.

Owns each field's one-line meaning (``MEANINGS``) and the tables of docs/spec.md's field
reference, with types and defaults read from the models (``canaryctl schema --fields``; a test
fails on a missing meaning or a stale doc). Pure.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from controlplane.spec.models import API_VERSION, KIND, ModelCanary
from controlplane.spec.pydantic_errors import strip_optional
from controlplane.spec.units import Duration, Quantity

BEGIN = "<!-- BEGIN GENERATED FIELDS: canaryctl schema --fields -->"
END = "<!-- END GENERATED FIELDS -->"

MEANINGS: dict[tuple[str, str], str] = {
    ("ModelCanary", "apiVersion"): f"always `{API_VERSION}`",
    ("ModelCanary", "kind"): f"always `{KIND}`",
    ("ModelCanary", "metadata"): "Kubernetes object metadata (other fields are kept as they are)",
    ("ModelCanary", "spec"): "what to roll out and how",
    ("ModelCanary", "status"): "written by the controller; never validated",
    ("ObjectMeta", "name"): "the canary's name: the `canary` label of its pods and metrics",
    ("ObjectMeta", "namespace"): "namespace of the canary and of the variants it deploys",
    ("ObjectMeta", "labels"): "Kubernetes labels",
    ("ObjectMeta", "annotations"): "Kubernetes annotations",
    ("ModelCanarySpec", "model"): "the served model, shared by both variants",
    ("ModelCanarySpec", "stable"): "the variant serving today",
    ("ModelCanarySpec", "candidate"): "the variant to roll out",
    ("ModelCanarySpec", "traffic"): "how user traffic reaches the variants",
    ("ModelCanarySpec", "analysis"): "metrics and how often checks are evaluated",
    ("ModelCanarySpec", "steps"): "the traffic schedule; weights increase, the last is 100",
    ("ModelCanarySpec", "shadow"): "optional mirrored-traffic phase before the steps",
    ("ModelCanarySpec", "budget"): "optional daily spend limit on the candidate",
    ("ModelCanarySpec", "quality"): "optional quality judge: a sample of requests answered by "
    "both variants and compared ([judges](judges.md))",
    ("ModelCanarySpec", "capacity"): "how replicas are sized: absent, each variant follows its "
    "share at every step (but on `kserve`, `kserve-knative` and with an adopted stable); a GPU "
    "budget; or `mode: fixed` ([capacity](capacity.md))",
    ("ModelCanarySpec", "alerts"): "where outcomes are announced",
    ("ModelCanarySpec", "gitWriteBack"): "revert the candidate in git after an automatic rollback",
    ("ModelCanarySpec", "gates"): "Argo Workflows that must succeed before steps or promotion "
    "(docs/gates.md)",
    ("GateSpec", "name"): "the gate's name (unique; part of the Workflow's name)",
    ("GateSpec", "before"): "`first-step`, `each-step`, `step` (the `steps` listed) or `promotion`",
    ("GateSpec", "steps"): "1-based step numbers the gate runs before (only with `before: step`)",
    ("GateSpec", "workflowTemplate"): "the Argo template the Workflow is submitted from",
    ("GateSpec", "parameters"): "Workflow arguments; values may use `{{candidate.endpoint}}`, "
    "`{{model}}`, `{{step}}`, `{{weight}}`, `{{canary}}`, `{{namespace}}`... (docs/gates.md)",
    ("GateSpec", "timeout"): "the gate fails when the Workflow has not succeeded this long after "
    "its submission",
    ("GateSpec", "namespace"): "the canary's namespace, if set: the Workflow runs there only",
    ("GateSpec", "argoServer"): "Argo Server URL (default: the controller's `--argo-server`); "
    "another must be allowed (`--allow-argo-server`)",
    ("WorkflowTemplateRef", "name"): "name of the WorkflowTemplate / ClusterWorkflowTemplate",
    ("WorkflowTemplateRef", "clusterScope"): "true: a ClusterWorkflowTemplate",
    ("ModelSpec", "name"): "the model name clients send; base of InferenceService names",
    ("ModelSpec", "runtime"): "serving runtime (KServe Hugging Face runtime, vLLM backend)",
    ("ModelSpec", "maxModelLen"): "context length (`--max-model-len`); sizes the KV cache",
    ("ModelSpec", "parameters"): "parameter count (`8.0e9`); unset skips the memory-fit check",
    ("ModelSpec", "architecture"): "transformer shape for an exact KV-cache size (else estimated)",
    ("ModelSpec", "fitConcurrency"): "full-length sequences whose KV cache must fit at once",
    ("ModelSpec", "vllmVersion"): "vLLM release the runtime runs (`0.24.0`); unset: the pinned "
    "KServe's vLLM. Decides the quantization flags ([serving](serving.md#vllm-versions))",
    ("ModelArchitecture", "layers"): "number of transformer layers",
    ("ModelArchitecture", "kvHeads"): "key/value heads per layer (GQA)",
    ("ModelArchitecture", "headDim"): "dimension of one attention head",
    ("GitWriteBackSpec", "repo"): (
        "git URL of the canary.yml (else from the source annotation): https://, ssh:// or "
        "user@host:path only"
    ),
    ("GitWriteBackSpec", "path"): "path of the canary.yml in the repository (else annotation)",
    ("GitWriteBackSpec", "branch"): "branch the revert is committed to, or proposed against",
    ("GitWriteBackSpec", "mode"): "`commit` pushes a commit; `pull-request` opens a PR/MR",
    ("GitWriteBackSpec", "provider"): "`github` or `gitlab` (pull-request mode)",
    ("GitWriteBackSpec", "credentialsSecretRef"): "Secret key holding the token for pushes and PRs",
    ("VariantSpec", "name"): "variant name: the `variant` label of its pods and metrics",
    ("VariantSpec", "targetRef"): "stable only: the InferenceService serving users today, "
    "adopted as the stable; every other field is read from it (docs/adopt.md)",
    ("TargetRef", "apiVersion"): "the live service's API version",
    ("TargetRef", "kind"): "`InferenceService` (an `LLMInferenceService` is refused: not built)",
    ("TargetRef", "name"): "its name, in the canary's namespace",
    (
        "VariantSpec",
        "storageUri",
    ): "where the weights are (`hf://org/model`, `s3://...`, `pvc://...`); required "
    "unless `targetRef`",
    ("VariantSpec", "quantization"): "quantization method vLLM applies or expects",
    ("VariantSpec", "gpu"): "a GPU name from the profile catalogue (`profiles/gpus.yaml`); "
    "required unless `targetRef`",
    ("VariantSpec", "gpuCount"): "GPUs per replica (tensor parallel)",
    ("VariantSpec", "replicas"): "serving replicas",
    ("VariantSpec", "autoscaling"): "autoscale between `replicas` and `maxReplicas`; under "
    "the capacity plan, both bounds follow the variant's share ([capacity](capacity.md))",
    ("VariantAutoscaling", "maxReplicas"): "the most replicas, at all the traffic",
    ("VariantAutoscaling", "queue"): "scale on vLLM's waiting requests with KEDA (KServe's `keda` "
    "autoscaler class) instead of KServe's default autoscaler",
    ("QueueScaling", "serverAddress"): "Prometheus URL KEDA reads `vllm:num_requests_waiting` from",
    ("QueueScaling", "waitingPerReplica"): "waiting requests per replica KEDA keeps the variant at",
    ("VariantSpec", "gpuMemoryUtilization"): "vLLM `--gpu-memory-utilization`",
    ("VariantSpec", "systemPrompt"): "system prompt prepended to requests (a prompt variant)",
    ("VariantSpec", "args"): "extra `vllm serve` arguments",
    ("TrafficSpec", "router"): "what splits the traffic (see Router capabilities)",
    ("TrafficSpec", "cohort"): "only matching requests may reach the candidate",
    ("TrafficSpec", "session"): "keep each session on one variant, by its key (gateway-api, istio; "
    "[routing](routing.md#sessions-that-stay-on-one-variant))",
    ("SessionSpec", "header"): "request header holding the session key (exactly one of "
    "header/cookie)",
    ("SessionSpec", "cookie"): "cookie holding the session key",
    ("SessionSpec", "turns"): "mean turns of a conversation, at least 1: `judge: sequential` "
    "weighs the evidence by session with it ([judges](judges.md#sessions))",
    ("TrafficSpec", "gateway"): (
        "the Gateway the HTTPRoute attaches to (gateway-api); for kserve, KServe's ingress "
        "Gateway when not its default (where error-rate's HTTP source is read from)"
    ),
    ("TrafficSpec", "hosts"): (
        "host names the route serves: no wildcard, cluster-local hosts of the canary's "
        "namespace only (rule 14)"
    ),
    ("CohortSpec", "header"): "HTTP request header to match",
    ("CohortSpec", "values"): "header values that may reach the candidate",
    ("GatewayRef", "name"): "Gateway name",
    ("GatewayRef", "namespace"): "Gateway namespace (default: the canary's)",
    ("GatewayRef", "sectionName"): "listener of the Gateway",
    ("GatewayRef", "implementation"): (
        "`envoy-gateway`, `istio` or `traefik`: where `error-rate` reads the gateway's HTTP "
        "answers (unset: from the Gateway's GatewayClass `controllerName`); not in the spec hash"
    ),
    ("AnalysisSpec", "interval"): "how often checks are evaluated",
    ("AnalysisSpec", "window"): "default range of each query",
    ("AnalysisSpec", "prometheus"): "Prometheus URL (default: the controller's setting); "
    "another must be allowed (`--allow-prometheus`)",
    ("AnalysisSpec", "errorLimit"): "consecutive provider errors before the canary pauses",
    ("AnalysisSpec", "preset"): "built-in metric preset",
    ("AnalysisSpec", "selector"): "label matchers selecting one variant; must use `{{variant}}`",
    ("AnalysisSpec", "metrics"): "named metrics the checks refer to",
    ("MetricSpec", "name"): "the name checks use",
    ("MetricSpec", "builtin"): "a built-in metric of the preset (exactly one of builtin/query)",
    ("MetricSpec", "quantile"): "quantile of a latency histogram (analysis uses 0.95 when unset)",
    ("MetricSpec", "query"): "custom PromQL with `{{namespace}}`, `{{canary}}`, `{{variant}}`, "
    "`{{window}}`",
    ("MetricSpec", "unit"): "unit of a query's value; thresholds must fit it (any when unset)",
    ("CheckSpec", "metric"): "name of a metric in `analysis.metrics`",
    ("CheckSpec", "above"): "breached when the value is above this",
    ("CheckSpec", "below"): "breached when the value is below this",
    ("CheckSpec", "window"): "query range (default `analysis.window`)",
    ("CheckSpec", "for"): "act only when breached at every evaluation for this long (0: at once)",
    ("CheckSpec", "compare"): "`baseline`: compare `candidate / stable - 1` instead of the value",
    ("CheckSpec", "minSamples"): "built-in metrics: fewer candidate requests is inconclusive "
    "(analysis uses 100 when unset)",
    ("CheckSpec", "judge"): "`threshold`, or `sequential` (anytime-valid test against stable)",
    ("CheckSpec", "alpha"): "false-alarm rate of the sequential judge",
    ("CheckSpec", "test"): "sequential latency vs baseline: `tail` (share over the stable's "
    "quantile) or `shift` (whole distribution, `above: 0%`)",
    ("CheckSpec", "finalLook"): "sequential: share of `alpha` kept for one fixed-horizon test "
    "on the whole step at its end (0: none)",
    ("StepSpec", "weight"): "candidate's share of traffic, percent",
    ("StepSpec", "duration"): "how long the step lasts (required on all but the last step)",
    ("StepSpec", "rollbackOn"): "checks whose breach rolls back",
    ("StepSpec", "approval"): "`manual`: when done, the step waits for `kubectl canary promote`",
    ("ShadowSpec", "duration"): "the shadow phase fails when it lasts longer than this",
    ("ShadowSpec", "promoteOn"): "the phase passes when this holds for its `for`",
    ("ShadowSpec", "rollbackOn"): "checks whose breach fails the shadow phase",
    ("CapacitySpec", "mode"): "`plan` (default): replicas follow each variant's share; "
    "`fixed`: each runs its `replicas`, refused where a variant is overloaded at some step",
    ("CapacitySpec", "acceptOverload"): "with `mode: fixed`, run even where a variant's "
    "replicas are overloaded at some step",
    ("CapacitySpec", "maxGPUs"): "GPUs both variants may hold at once, at every moment",
    ("CapacitySpec", "maxSurgeGPUs"): "GPUs beyond the stable's full size the rollout may hold",
    ("CapacitySpec", "headroom"): "share of each replica's capacity kept spare (0.2: run at 80 %)",
    ("CapacitySpec", "maxLoadRatio"): "requests in flight per replica one variant may carry over "
    "the other's before a comparing check says it is not fair (default 1.5)",
    ("CapacitySpec", "typicalRequest"): "the request a replica's capacity is estimated for",
    ("CapacitySpec", "requestsPerReplica"): "measured req/s of one replica, per variant "
    "(replaces the estimate)",
    ("TypicalRequest", "inputTokens"): "prompt tokens of a typical request",
    ("TypicalRequest", "outputTokens"): "generated tokens of a typical request",
    ("ReplicaRates", "stable"): "req/s one stable replica serves at full batch",
    ("ReplicaRates", "candidate"): "req/s one candidate replica serves at full batch",
    (
        "QualitySpec",
        "sample",
    ): "share of each variant's requests sent through the pairer, up to 50%",
    ("QualitySpec", "perMinute"): "the most requests paired in any minute",
    ("QualitySpec", "metric"): "`agreement` (greedy tokens repeated up to the first difference) "
    "or `kl` (mean per-token KL divergence, nats)",
    ("QualitySpec", "tolerance"): "the candidate's mean disagreement (below 1) or mean KL "
    "(nats, below 10) tolerated",
    ("QualitySpec", "alpha"): "the test's level: the chance an identical candidate is rolled "
    "back, or a worse one passed",
    ("QualitySpec", "undecided"): "before the last step without a pass: `hold` the step before it "
    "for the evidence, or go on (`promote`)",
    ("QualitySpec", "keepPrompts"): "keep each paired request and both answers' text with its "
    "scores on the pairer's pages (user data: off by default)",
    ("BudgetSpec", "dailyLimit"): "USD per day spent on the candidate",
    ("BudgetSpec", "throttleWeight"): "weight while over the limit; below the first step's",
    ("BudgetSpec", "costQuery"): "PromQL for the candidate's spend over the last day",
    ("AlertSpec", "slack"): "post to Slack",
    ("AlertSpec", "webhook"): "POST JSON to a URL",
    ("AlertSpec", "alertmanager"): "send to an Alertmanager",
    ("AlertSpec", "events"): "events announced on this channel",
    ("SlackAlert", "webhookSecretRef"): "Secret key holding the Slack webhook URL",
    ("SlackAlert", "channel"): "channel override",
    ("WebhookAlert", "url"): "where to POST; must be allowed (`--allow-alert-url`)",
    ("WebhookAlert", "hmacSecretRef"): "Secret key to sign the body with (HMAC-SHA256)",
    ("AlertmanagerAlert", "url"): "Alertmanager base URL; must be allowed (`--allow-alert-url`)",
    ("SecretKeyRef", "name"): "Secret name (in the canary's namespace)",
    ("SecretKeyRef", "key"): "key in the Secret",
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    annotation = strip_optional(annotation)
    if typing.get_origin(annotation) in (list, dict):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _type(annotation: Any) -> str:
    annotation = strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(annotation))
    if origin is list:
        return f"list of {_type(typing.get_args(annotation)[0])}"
    if origin is dict:
        return f"map of {_type(typing.get_args(annotation)[1])}"
    if annotation is Duration:
        return "duration"
    if annotation is Quantity:
        return "threshold"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is Any:
        return "any"
    return names.get(annotation, str(annotation))


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, Duration | Quantity):
        return f"`{value}`"
    if isinstance(value, list | dict) and not value:
        return "empty"
    if isinstance(value, list):
        return "`[" + ", ".join(str(v) for v in value) + "]`"
    return f"`{value}`"


def sections() -> list[tuple[type[BaseModel], list[str]]]:
    """Every model of the spec, in the order first met, with the paths where it appears."""
    seen: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], path: str) -> None:
        first = model not in seen
        seen.setdefault(model, []).append(path)
        if not first:
            return
        for name, info in model.model_fields.items():
            alias = info.alias or name
            suffix = "[]" if typing.get_origin(strip_optional(info.annotation)) is list else ""
            for sub in _models(info.annotation):
                visit(sub, f"{path}.{alias}{suffix}" if path else f"{alias}{suffix}")

    visit(ModelCanary, "")
    return list(seen.items())


def missing_meanings() -> list[str]:
    """``Model.field`` for every model field without an entry in ``MEANINGS``."""
    return [
        f"{model.__name__}.{info.alias or name}"
        for model, _paths in sections()
        for name, info in model.model_fields.items()
        if (model.__name__, info.alias or name) not in MEANINGS
    ]


def field_table() -> str:
    """The Markdown field reference (between the markers docs/spec.md keeps it in)."""
    out = [BEGIN, ""]
    for model, paths in sections():
        out.append(f"### {model.__name__}")
        out.append("")
        where = ", ".join(f"`{p}`" for p in paths if p) or "the whole resource"
        out.append(f"At {where}.")
        out.append("")
        out.append("| field | type | default | meaning |")
        out.append("| --- | --- | --- | --- |")
        for name, info in model.model_fields.items():
            alias = info.alias or name
            meaning = MEANINGS.get((model.__name__, alias), "")
            out.append(f"| `{alias}` | {_type(info.annotation)} | {_default(info)} | {meaning} |")
        out.append("")
    out.append(END)
    return "\n".join(out) + "\n"
