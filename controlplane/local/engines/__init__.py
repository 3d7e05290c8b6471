"""Inference engines behind the local model servers, and :func:`make_engine` to pick one.

``simulated`` (default, no heavy dependency), ``transformers`` (real CPU inference of a tiny
random model, bitsandbytes for the nf4/int8 variants; needs the optional torch, transformers and
bitsandbytes) and ``vllm`` (``vllm serve`` on a GPU). The heavy engines are imported only when
chosen, so the default path never pays for torch. Called by :mod:`controlplane.local.stack`.
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
    """The engine ``kind`` for ``variant``. Raises :class:`EngineError` when it cannot run here."""
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
