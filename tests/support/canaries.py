"""The one ModelCanary builder of the tests: :func:`canary_dict` and :func:`model_canary`
(``SMALL`` and ``FP8_ONE_CHECK``, the bases several test modules share, built on them).

Owns the contract's four-week example (``EXAMPLE``: the example of ``canary-spec.md``,
support-triage in ml-serving, stable ``bf16``, candidate ``nf4``, metrics latency / latency-p99 /
errors / kpi / win-rate, four steps, shadow, budget with a cost query) and the one way a test makes
a spec: every test that needs one calls the builder, with the sections it changes. A base that
several modules share is data made by the builder here (``SMALL``, ``FP8_ONE_CHECK``); a module
whose canaries share more than that keeps it as data made by the builder at import time (a ``BASE``
passed as ``base=``) and helpers that make one section (``traffic(router)``); the support
modules' presets are built on it too (``canary`` of support.api, ``world_canary`` of
support.controller_world, ``fleet_canary`` of support.kube_fleet, ``canary_obj`` of support.notify,
``canary`` of support.dashboard, ``Rollout`` of support.cli_rollouts). ``tests/test_one_builder.py``
fails when a test file outside ``tests/support/`` defines a canary factory of its own or writes a
ModelCanary out by hand, and when a support module other than this one writes one out as a dict;
its allow-list names the few texts and opaque objects that stay literal. Tests of the shipped specs
(``canary/*.yml``) read those files, and the write-back tests edit the YAML texts of
``support.gitops_world`` (their comments and layout are what is tested).

The rules, the same for both functions:

- the canary starts as a deep copy of ``base`` (the contract example unless told);
- ``name`` and ``namespace`` set ``metadata.name`` and ``metadata.namespace``; ``metadata`` merges
  more keys (``uid``, ``labels``, ``generation``...) into it, ``None`` removing one;
- every other keyword replaces one top-level ``spec`` section, named as in the YAML (camelCase:
  ``gitWriteBack=``); ``None`` removes the section;
- ``router``, ``prometheus`` and ``metrics`` set one field of their section after that
  (``spec.traffic.router``, ``spec.analysis.prometheus``, ``spec.analysis.metrics``);
- ``status`` sets the object's ``status`` (as read from a cluster).

Nothing passed in, and nothing of ``base``, is ever mutated. :func:`canary_dict` does not
validate (tests of invalid specs use it); :func:`model_canary` is
``ModelCanary.model_validate(canary_dict(...))``. ``STABLE``, ``CANDIDATE``, ``MODEL``,
``ANALYSIS``, ``STEPS``, ``SHADOW`` and ``BUDGET`` are the example's sections, to change one field
of (``candidate={**CANDIDATE, "quantization": "fp8"}``); never mutate them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from controlplane.spec.models import ModelCanary

EXAMPLE_FILES = sorted((Path(__file__).resolve().parents[2] / "canary").glob("*.yml"))
"""Every example spec in ``canary/``."""
WRITTEN_OUT = [p for p in EXAMPLE_FILES if "targetRef:" not in p.read_text()]
"""The examples whose stable is written out, not adopted from a cluster: what ``render``,
``up`` and the engine's flags take with no cluster to read the live service from."""

API_VERSION = "canary.controlplane.dev/v1alpha1"
NAME = "support-triage"
NAMESPACE = "ml-serving"

KPI_QUERY = (
    'sum(rate(ticket_resolved_total{namespace="{{namespace}}",canary="{{canary}}",'
    'variant="{{variant}}"}[{{window}}]))\n'
    '/ sum(rate(ticket_total{namespace="{{namespace}}",canary="{{canary}}",'
    'variant="{{variant}}"}[{{window}}]))'
)
WIN_RATE_QUERY = (
    'avg_over_time(shadow_win_rate{namespace="{{namespace}}",canary="{{canary}}"}[{{window}}])'
    " - 0.5"
)
COST_QUERY = 'sum(increase(gpu_cost_dollars_total{canary="{{canary}}",variant="{{variant}}"}[1d]))'

EXAMPLE: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": "ModelCanary",
    "metadata": {"name": NAME, "namespace": NAMESPACE},
    "spec": {
        "model": {"name": "support-triage-llm", "runtime": "vllm", "maxModelLen": 8192},
        "stable": {"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s", "replicas": 2},
        "candidate": {
            "name": "nf4",
            "storageUri": "hf://m/x",
            "quantization": "bitsandbytes-nf4",
            "gpu": "nvidia-l40s",
        },
        "analysis": {
            "interval": "1m",
            "window": "5m",
            "metrics": [
                {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
                {"name": "latency-p99", "builtin": "e2e-latency", "quantile": 0.99},
                {"name": "errors", "builtin": "error-rate"},
                {"name": "kpi", "query": KPI_QUERY},
                {"name": "win-rate", "query": WIN_RATE_QUERY},
            ],
        },
        "steps": [
            {
                "weight": 5,
                "duration": "7d",
                "rollbackOn": [
                    {"metric": "latency", "above": "300ms"},
                    {"metric": "errors", "above": "0.1%"},
                ],
            },
            {
                "weight": 25,
                "duration": "7d",
                "rollbackOn": [
                    {
                        "metric": "kpi",
                        "compare": "baseline",
                        "above": "5%",
                        "below": "-5%",
                        "window": "4h",
                    }
                ],
            },
            {
                "weight": 75,
                "duration": "7d",
                "rollbackOn": [{"metric": "latency-p99", "above": "500ms"}],
            },
            {"weight": 100},
        ],
        "shadow": {
            "duration": "14d",
            "promoteOn": {"metric": "win-rate", "above": "3%", "window": "1d", "for": "2d"},
            "rollbackOn": [{"metric": "errors", "above": "1%"}],
        },
        "budget": {"dailyLimit": 100, "throttleWeight": 1, "costQuery": COST_QUERY},
    },
}

MODEL: dict[str, Any] = EXAMPLE["spec"]["model"]
STABLE: dict[str, Any] = EXAMPLE["spec"]["stable"]
CANDIDATE: dict[str, Any] = EXAMPLE["spec"]["candidate"]
ANALYSIS: dict[str, Any] = EXAMPLE["spec"]["analysis"]
STEPS: list[dict[str, Any]] = EXAMPLE["spec"]["steps"]
SHADOW: dict[str, Any] = EXAMPLE["spec"]["shadow"]
BUDGET: dict[str, Any] = EXAMPLE["spec"]["budget"]


def canary_dict(
    name: str | None = None,
    namespace: str | None = None,
    *,
    base: Mapping[str, Any] = EXAMPLE,
    router: str | None = None,
    prometheus: str | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ModelCanary object (not validated): ``base`` with the changes of the module docstring."""
    data: dict[str, Any] = copy.deepcopy(dict(base))
    meta = data.setdefault("metadata", {})
    if name is not None:
        meta["name"] = name
    if namespace is not None:
        meta["namespace"] = namespace
    _merge(meta, metadata or {})
    _merge(data.setdefault("spec", {}), spec)
    if router is not None:
        data["spec"].setdefault("traffic", {})["router"] = router
    if prometheus is not None:
        data["spec"].setdefault("analysis", {})["prometheus"] = prometheus
    if metrics is not None:
        data["spec"].setdefault("analysis", {})["metrics"] = copy.deepcopy(list(metrics))
    if status is not None:
        data["status"] = copy.deepcopy(dict(status))
    return data


def model_canary(
    name: str | None = None,
    namespace: str | None = None,
    *,
    base: Mapping[str, Any] = EXAMPLE,
    router: str | None = None,
    prometheus: str | None = None,
    metrics: Sequence[Mapping[str, Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **spec: Any,
) -> ModelCanary:
    """:func:`canary_dict`'s canary, validated (no ``status``: a ModelCanary holds none)."""
    data = canary_dict(
        name,
        namespace,
        base=base,
        router=router,
        prometheus=prometheus,
        metrics=metrics,
        metadata=metadata,
        **spec,
    )
    data.pop("status", None)
    return ModelCanary.model_validate(data)


def _merge(into: dict[str, Any], changes: Mapping[str, Any]) -> None:
    """Set each key of ``changes`` in ``into`` (a copy of the value), or remove it for ``None``."""
    for key, value in changes.items():
        if value is None:
            into.pop(key, None)
        else:
            into[key] = copy.deepcopy(value)


SMALL = canary_dict(
    "demo",
    "ml",
    model={"name": "demo-llm"},
    stable={"name": "bf16", "storageUri": "hf://org/m", "gpu": "nvidia-l40s"},
    candidate={
        "name": "nf4",
        "storageUri": "hf://org/m",
        "gpu": "nvidia-l40s",
        "quantization": "bitsandbytes-nf4",
    },
    analysis={"interval": "1m", "metrics": [{"name": "latency", "builtin": "e2e-latency"}]},
    steps=[
        {
            "weight": 10,
            "duration": "10m",
            "rollbackOn": [{"metric": "latency", "above": "200ms"}],
        },
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
)
"""The small rollout of the machine's tests: ``demo`` in ``ml``, one 10-minute step at 10 % with
one latency check, then 100 %, evaluated every minute, no shadow, no budget (a ``base=`` of the
machine's tests, which change its steps and analysis)."""

LLAMA = "hf://meta-llama/Llama-3.1-8B-Instruct"
"""A checkpoint of a known chat-template family (``systemPrompt``)."""

FP8_ONE_CHECK = canary_dict(
    stable={"name": "bf16", "storageUri": LLAMA, "gpu": "nvidia-l40s"},
    candidate={"name": "fp8", "storageUri": LLAMA, "quantization": "fp8", "gpu": "nvidia-l40s"},
    analysis={"metrics": [{"name": "errors", "builtin": "error-rate"}]},
    steps=[
        {"weight": 10, "duration": "1h", "rollbackOn": [{"metric": "errors", "above": "1%"}]},
        {"weight": 100},
    ],
    shadow=None,
    budget=None,
)
"""The example's canary as FP8 of Llama, an hour at 10 % rolling back on errors above 1 %, then
100 %; no shadow, no budget: the ``base=`` of the tests that run a whole canary on a cluster (the
chart's RBAC, the installed controller's, kind's)."""


def one_step_canary() -> ModelCanary:
    """:data:`SMALL`, validated: the canary of the pending and progress-deadline tests of the
    machine."""
    return model_canary(base=SMALL)
