"""Inference engines behind the local model servers, and :func:`make_engine` to pick one.

The heavy engines (torch, transformers, bitsandbytes; vLLM) are imported only when chosen, so
the default simulated engine never pays for them. Called by :mod:`controlplane.local.stack`. Its
modules, one line each: docs/architecture.md, "Module map" (`local/engines/`).
"""

from __future__ import annotations

from controlplane.local.engines.base import (
    ENGINE_KINDS,
    Chunk,
    Engine,
    EngineError,
    EngineKind,
    Generation,
)
from controlplane.profiles.catalog import Catalog
from controlplane.spec.models import ModelSpec, VariantSpec

__all__ = [
    "ENGINE_KINDS",
    "Chunk",
    "Engine",
    "EngineError",
    "EngineKind",
    "Generation",
    "make_engine",
]


def make_engine(
    kind: EngineKind,
    model: ModelSpec,
    variant: VariantSpec,
    catalog: Catalog,
    *,
    seed: int | None = None,
    gpu_share: float = 0.45,
) -> Engine:
    """The engine ``kind`` for ``variant``. Raises :class:`EngineError` when it cannot run here,
    :class:`~controlplane.errors.ProfileError` for an unknown GPU or a batch flag vLLM refuses."""
    if kind == "simulated":
        from controlplane.local.engines.simulated import SimulatedEngine, speed_for

        label = f"{variant.name}: {variant.quantization} on {variant.gpu}"
        return SimulatedEngine(speed_for(model, variant, catalog), label, seed=seed)
    if kind == "transformers":
        from controlplane.local.engines.transformers_engine import TransformersEngine

        return TransformersEngine(variant.quantization, seed=0 if seed is None else seed)
    if kind == "vllm":
        from controlplane.local.engines.vllm_engine import VllmEngine

        return VllmEngine(model, variant, catalog, gpu_share=gpu_share)
    raise EngineError(f"unknown engine {kind!r}; known: {', '.join(ENGINE_KINDS)}")
