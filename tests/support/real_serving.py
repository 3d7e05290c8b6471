"""The canaries the real-node serving tests run: the contract example on the node's tiny models.

Built on :mod:`support.canaries` (the one builder) for ``tests/harness/test_node_serving.py``
(:func:`served_canary`: the example with both variants on a model written to the node) and
``tests/routing/test_real_rollout.py`` (:func:`traffic_canary`: a three-step canary of its own
namespace and host, judged every 10 s on 30 s windows). The model storage is
:mod:`harness.node.serving`'s.
"""

from __future__ import annotations

from typing import Any

from controlplane.spec.models import ModelCanary
from harness.node.serving import write_model
from support.canaries import CANDIDATE, STABLE, canary_dict, model_canary

GPU = "nvidia-l40s"
MODEL = "llama-tiny"


def served_canary(namespace: str, **candidate: Any) -> ModelCanary:
    """The contract example in ``namespace`` on the node's 128k-context tiny model, the
    candidate changed by ``candidate`` (its ``storageUri`` may name another model)."""
    uri = write_model(MODEL)
    return model_canary(
        namespace=namespace,
        stable={**STABLE, "storageUri": uri, "gpu": GPU},
        candidate={**CANDIDATE, "storageUri": uri, "gpu": GPU, **candidate},
    )


def traffic_canary(
    name: str, *, alerts: list[dict[str, Any]] | None = None, **candidate: Any
) -> dict[str, Any]:
    """A three-step canary (25, 75, 100 %, 30 s each) named ``name`` in the namespace ``name``
    with the host ``<name>.example.com``: the stable bf16 and an FP8 candidate (changed by
    ``candidate``) of the tiny model, one replica each, rolled back on a p95 latency above
    2.5 s or errors above 2 % with 20 requests at least; ``alerts`` its ``spec.alerts``."""
    uri = write_model(MODEL)
    checks = [
        {"metric": "latency", "above": "2500ms", "minSamples": 20},
        {"metric": "errors", "above": "2%", "minSamples": 20},
    ]
    return canary_dict(
        name=name,
        namespace=name,
        model={"name": f"{name}-llm", "runtime": "vllm", "maxModelLen": 8192},
        stable={"name": "bf16", "storageUri": uri, "gpu": GPU, "replicas": 1},
        candidate={
            "name": "fp8",
            "storageUri": uri,
            "gpu": GPU,
            "quantization": "fp8",
            "replicas": 1,
            **candidate,
        },
        traffic={"router": "gateway-api", "hosts": [f"{name}.example.com"]},
        analysis={
            "interval": "10s",
            "window": "30s",
            "metrics": [
                {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
                {"name": "errors", "builtin": "error-rate"},
            ],
        },
        steps=[
            {"weight": 25, "duration": "30s", "rollbackOn": checks},
            {"weight": 75, "duration": "30s", "rollbackOn": checks},
            {"weight": 100},
        ],
        shadow=None,
        budget=None,
        alerts=alerts or [],
    )
