"""The ``transformers`` engine: a tiny random Llama on the CPU, really quantized by bitsandbytes.

Optional: skipped, with the reason, when torch / transformers / bitsandbytes are absent (the
``local-cpu`` extra, which ``make test`` and CI install from the lock). Real compute, real
quantization, through the real model server.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from support.extras import local_cpu

from controlplane.local.engines.base import EngineError
from controlplane.local.engines.transformers_engine import (
    TransformersEngine,
    build_model,
    weight_bytes,
)
from controlplane.local.server import Identity, ModelServer

# The torch stack takes seconds to import: only when a test here runs, never at collection.
pytestmark = [pytest.mark.slow, pytest.mark.binary, local_cpu()]  # torch runs ldconfig on import


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    import torch

    return torch


@pytest.fixture(scope="module")
def models(torch: ModuleType) -> dict[str, Any]:
    return {q: build_model(q) for q in ("none", "bitsandbytes-nf4", "bitsandbytes-int8")}


@pytest.mark.parametrize(
    ("quantization", "dtype", "max_ratio", "max_error"),
    [("bitsandbytes-nf4", "uint8", 0.45, 0.5), ("bitsandbytes-int8", "int8", 0.6, 0.1)],
    ids=["nf4", "int8"],
)
def test_quantization_is_real(
    torch: ModuleType,
    models: dict[str, Any],
    quantization: str,
    dtype: str,
    max_ratio: float,
    max_error: float,
) -> None:
    full, quantized = models["none"], models[quantization]
    proj = quantized.model.layers[0].mlp.up_proj
    assert proj.weight.dtype == getattr(torch, dtype)
    assert weight_bytes(quantized) < max_ratio * weight_bytes(full) + 140_000  # embeddings stay
    ids = torch.tensor([[72, 101, 108, 108, 111]])
    with torch.inference_mode():
        ref = full(ids).logits
        out = quantized(ids).logits
    error = float((out - ref).norm() / ref.norm())
    assert 0 < error < max_error  # different weights, same model


def test_unsupported_method_is_a_clear_error() -> None:
    with pytest.raises(EngineError, match="needs a GPU"):
        build_model("awq")


def test_serves_chat_with_real_inference(torch: ModuleType) -> None:
    async def main() -> None:
        who = Identity("demo-llm", "default", "local-demo", "nf4")
        server = ModelServer(who, TransformersEngine("bitsandbytes-nf4"))
        await server.start()
        try:
            body = {
                "messages": [{"role": "user", "content": "hello"}],
                "max_tokens": 12,
                "temperature": 0,
            }
            async with aiohttp.ClientSession() as session:
                async with session.post(server.url + "/v1/chat/completions", json=body) as r:
                    assert r.status == 200
                    assert r.headers["x-controlplane-engine"] == "transformers"
                    answer = await r.json()
                async with session.get(server.url + "/metrics") as r:
                    text = await r.text()
            assert answer["usage"]["completion_tokens"] == 12
            assert len(answer["choices"][0]["message"]["content"]) == 12
            assert 'kind="transformers"' in text
            assert "transformers (tiny random Llama on CPU, bitsandbytes-nf4" in (
                server.engine.description
            )
        finally:
            await server.stop()

    asyncio.run(main())
