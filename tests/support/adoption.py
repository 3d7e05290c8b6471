"""The InferenceService a team serves today, written as they would (not by the product), and a
canary that adopts it: what the adoption tests (``tests/serving/test_adopt.py``,
``tests/controller/test_controller_adopt.py``, the real-KServe and real-node tests) share.

:func:`live_isvc` is a plain KServe v0.20.0 InferenceService on the Hugging Face runtime with the
vLLM flags a team writes by hand; :func:`adopting_canary` a ModelCanary whose ``spec.stable``
names it (``targetRef``) and whose candidate is an FP8 variant of the same checkpoint.
"""

from __future__ import annotations

from typing import Any

from controlplane.spec.models import ModelCanary
from support.canaries import canary_dict

LIVE = "chat"
"""The live InferenceService's name, and the model name its clients send."""
STORAGE_URI = "hf://meta-llama/Llama-3.1-8B-Instruct"
PRODUCT = "NVIDIA-L40S"
"""The ``nvidia.com/gpu.product`` of the catalogue's ``nvidia-l40s``."""


def live_isvc(
    namespace: str,
    name: str = LIVE,
    *,
    args: list[str] | None = None,
    replicas: int = 2,
    product: str | None = PRODUCT,
    storage_uri: str = STORAGE_URI,
    labels: dict[str, str] | None = None,
    runtime: str = "kserve-huggingfaceserver",
) -> dict[str, Any]:
    """The InferenceService a team applied before the product existed (Standard mode)."""
    predictor: dict[str, Any] = {
        "minReplicas": replicas,
        "maxReplicas": replicas,
        "model": {
            "modelFormat": {"name": "huggingface"},
            "runtime": runtime,
            "storageUri": storage_uri,
            "args": list(
                args
                if args is not None
                else [f"--model_name={name}", "--max-model-len=8192", "--enable-prefix-caching"]
            ),
            "resources": {
                "requests": {"nvidia.com/gpu": "1"},
                "limits": {"nvidia.com/gpu": "1"},
            },
        },
    }
    if product is not None:
        predictor["nodeSelector"] = {"nvidia.com/gpu.product": product}
        predictor["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {"team": "support"}),
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {"predictor": predictor},
    }


def adopting_canary(
    name: str,
    namespace: str,
    *,
    target: str = LIVE,
    base: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A ModelCanary whose stable is the live InferenceService ``target`` and whose candidate is
    its FP8 variant; ``spec`` replaces sections as :func:`support.canaries.canary_dict` does."""
    spec.setdefault("model", {"name": target, "maxModelLen": 8192})
    spec.setdefault("stable", {"name": "live", "targetRef": {"name": target}})
    spec.setdefault(
        "candidate",
        {
            "name": "fp8",
            "storageUri": STORAGE_URI,
            "quantization": "fp8",
            "gpu": "nvidia-l40s",
            "replicas": 2,
            "args": ["--enable-prefix-caching"],
        },
    )
    spec.setdefault("shadow", None)
    spec.setdefault("budget", None)
    if base is None:
        return canary_dict(name, namespace, **spec)
    return canary_dict(name, namespace, base=base, **spec)


def adopting_model(name: str, namespace: str, **spec: Any) -> ModelCanary:
    """:func:`adopting_canary`, validated."""
    return ModelCanary.model_validate(adopting_canary(name, namespace, **spec))
