"""The contract's four-week example as a ``ModelCanary`` factory, for analysis tests.

``example_canary()`` returns the example of ``canary-spec.md`` (support-triage in ml-serving, stable
``bf16``, candidate ``nf4``, metrics latency / latency-p99 / errors / kpi / win-rate, budget with a
cost query); ``**changes`` replace top-level ``spec`` sections (as camelCase dicts).
"""

from __future__ import annotations

import copy
from typing import Any

from controlplane.spec.models import ModelCanary

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
    "apiVersion": "canary.controlplane.dev/v1alpha1",
    "kind": "ModelCanary",
    "metadata": {"name": "support-triage", "namespace": "ml-serving"},
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


def example_dict(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data["spec"].update(copy.deepcopy(changes))
    return data


def example_canary(**changes: Any) -> ModelCanary:
    """The contract example, with top-level ``spec`` sections replaced by ``changes``."""
    return ModelCanary.model_validate(example_dict(**changes))
