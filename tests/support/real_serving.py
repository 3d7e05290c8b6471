"""The canaries the real-node serving tests run: the contract example on the node's tiny models.

Built on :mod:`support.canaries` (the one builder) for ``tests/harness/test_node_serving.py``
(:func:`served_canary`: the example with both variants on a model written to the node) and
``tests/routing/test_real_rollout.py`` (:func:`traffic_canary`: a canary of its own namespace and
host, 25 -> 75 -> 100 % unless told, judged every 10 s). The model storage is
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


STEPS = ((25, "30s"), (75, "30s"))
"""The timed steps of :func:`traffic_canary` (weight %, duration); 100 % follows."""


def traffic_canary(
    name: str,
    *,
    alerts: list[dict[str, Any]] | None = None,
    steps: tuple[tuple[int, str], ...] = STEPS,
    window: str = "30s",
    min_samples: int = 20,
    stable_replicas: int = 1,
    capacity: dict[str, Any] | None = None,
    last_checks: tuple[dict[str, Any], ...] = (),
    **candidate: Any,
) -> dict[str, Any]:
    """A canary named ``name`` in the namespace ``name`` with the host ``<name>.example.com``,
    its timed ``steps`` then 100 %: the stable bf16 and an FP8 candidate (changed by
    ``candidate``) of the tiny model, one replica each, judged every 10 s on ``window``, rolled
    back on a p95 latency above 2.5 s or errors above 2 % with ``min_samples`` requests at
    least; ``alerts`` its ``spec.alerts``; ``stable_replicas`` and ``capacity`` (its
    ``spec.capacity``; fixed replicas when None) to size the variants to their shares;
    ``last_checks`` more checks of the last timed step alone."""
    uri = write_model(MODEL)
    checks = [
        {"metric": "latency", "above": "2500ms", "minSamples": min_samples},
        {"metric": "errors", "above": "2%", "minSamples": min_samples},
    ]
    return canary_dict(
        name=name,
        namespace=name,
        model={"name": f"{name}-llm", "runtime": "vllm", "maxModelLen": 8192},
        stable={"name": "bf16", "storageUri": uri, "gpu": GPU, "replicas": stable_replicas},
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
            "window": window,
            "metrics": [
                {"name": "latency", "builtin": "e2e-latency", "quantile": 0.95},
                {"name": "errors", "builtin": "error-rate"},
            ],
        },
        steps=[
            *(
                {
                    "weight": w,
                    "duration": d,
                    "rollbackOn": checks + list(last_checks if i == len(steps) - 1 else ()),
                }
                for i, (w, d) in enumerate(steps)
            ),
            {"weight": 100},
        ],
        shadow=None,
        budget=None,
        alerts=alerts or [],
        # these canaries test routing, faults and checks as they were written, on fixed replicas;
        # the plan (the product's default) is the capacity tests' own, given as ``capacity``
        capacity=capacity or {"mode": "fixed", "acceptOverload": True},
    )
