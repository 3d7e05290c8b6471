"""The ``simulated`` engine: no model runs; latencies and token rates come from the GPU profile.

Owns the speed model of a variant on its GPU, derived from ``profiles/`` (never hard-coded per
GPU): decoding is memory-bound, so one token costs ``parameters x bytes per weight`` read at the
GPU's bandwidth (at :data:`BANDWIDTH_UTILISATION`); prefill is compute-bound at the GPU's BF16
TFLOP/s (at :data:`COMPUTE_UTILISATION`). Quantization changes the bytes read only where the
catalogue expects a speed-up (``expectFaster`` yes / low-concurrency: AWQ, GPTQ, FP8); the
bitsandbytes methods dequantize on the fly and read as much as bf16 plus an overhead, as the
field notes measured. Concurrent requests slow decoding a little (a batch shares the GPU), and
KV-cache use is the tokens in flight over what fits beside the weights.

Every answer is placeholder text and every output of ``up`` says "simulated". Called by
:mod:`controlplane.local.server` through :mod:`controlplane.local.engines`.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

from controlplane.local.engines.base import Chunk, EngineKind, FinishReason, Generation
from controlplane.profiles.catalog import Catalog
from controlplane.profiles.fit import kv_bytes_per_token
from controlplane.spec.models import ModelSpec, VariantSpec

BANDWIDTH_UTILISATION = 0.6
COMPUTE_UTILISATION = 0.4
DEFAULT_PARAMETERS = 8.0e9
OVERHEAD_S = 0.015
"""Fixed time to first token: scheduling, tokenization, the HTTP hop."""
BATCH_SLOWDOWN = 0.01
"""Each other running request makes a decode step this much slower."""
DEQUANT_OVERHEAD = {"yes": 1.1, "low-concurrency": 1.15, "no": 1.15}
CHUNK_INTERVAL_S = 0.05
"""Streaming sends at most one chunk per this many seconds (tokens are coalesced)."""

_TEXT = (
    "thanks for reaching out I checked your account and the order shipped yesterday "
    "the refund should appear within five business days please restart the device and "
    "try again if the problem persists we can escalate to the support team here are the "
    "steps to reset your password open settings select security and follow the prompts "
    "your ticket has been updated the invoice is attached let me know if anything else"
)
_WORDS = tuple(_TEXT.split())


@dataclass(frozen=True)
class Speed:
    """How fast one variant is on its GPU."""

    decode_s_per_token: float
    prefill_s_per_token: float
    kv_capacity_tokens: float
    overhead_s: float = OVERHEAD_S
    jitter_sigma: float = 0.1

    def describe(self) -> str:
        return (
            f"{1 / self.decode_s_per_token:.0f} tok/s decode, "
            f"{self.prefill_s_per_token * 1e6:.0f} µs/prompt token"
        )


def speed_for(model: ModelSpec, variant: VariantSpec, catalog: Catalog) -> Speed:
    """The speed model of ``variant`` (see the module docstring). Pure."""
    gpu = catalog.require_gpu(variant.gpu)
    method = catalog.quant(variant.quantization)
    params = model.parameters or DEFAULT_PARAMETERS
    gpus = variant.gpu_count
    faster = method.expect_faster
    read_bytes = method.bytes_per_weight if faster != "no" else 2.0
    overhead = 1.0 if variant.quantization == "none" else DEQUANT_OVERHEAD[faster]
    bandwidth = gpu.memory_bandwidth_gbps * 1e9 * BANDWIDTH_UTILISATION * gpus
    decode = params * read_bytes * overhead / bandwidth
    compute = gpu.bf16_tflops * 1e12 * COMPUTE_UTILISATION * gpus
    if variant.quantization == "fp8" and gpu.fp8:
        compute *= 1.6
    prefill = 2 * params / compute
    weights = params * method.bytes_per_weight
    free = gpu.memory_gib * 2**30 * gpus * variant.gpu_memory_utilization - weights
    per_token, _, _ = kv_bytes_per_token(model)
    capacity = free / per_token if per_token > 0 and free > 0 else 1e6
    return Speed(decode, prefill, max(capacity, 1.0))


class SimulatedEngine:
    """Sleeps like the variant would compute; yields placeholder words."""

    kind: EngineKind = "simulated"

    def __init__(self, speed: Speed, label: str, seed: int | None = None) -> None:
        self.speed = speed
        self.label = label
        self._rng = random.Random(seed)
        self._running = 0
        self._tokens_in_flight = 0

    @property
    def description(self) -> str:
        return f"simulated ({self.label}: {self.speed.describe()})"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def count_tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text.split()) * 4 / 3))

    def load(self) -> float:
        return min(1.0, self._tokens_in_flight / self.speed.kv_capacity_tokens)

    def _jitter(self) -> float:
        return self._rng.lognormvariate(0.0, self.speed.jitter_sigma)

    def _length(self, max_tokens: int) -> tuple[int, bool]:
        """Tokens the answer would naturally have (lognormal around 70% of max_tokens)."""
        natural = max(1, round(self._rng.lognormvariate(math.log(0.7 * max_tokens), 0.5)))
        return min(natural, max_tokens), natural >= max_tokens

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        n, truncated = self._length(request.max_tokens)
        if request.ignore_eos:  # vLLM's ignore_eos: no natural stop, exactly max_tokens
            n, truncated = request.max_tokens, True
        seq = request.prompt_tokens + n
        self._running += 1
        self._tokens_in_flight += seq
        try:
            ttft = self.speed.overhead_s + request.prompt_tokens * self.speed.prefill_s_per_token
            await asyncio.sleep(ttft * self._jitter())
            sent = 0
            pending: list[str] = []
            wait = 0.0
            for i in range(n):
                pending.append(self._rng.choice(_WORDS))
                if i > 0:
                    step = self.speed.decode_s_per_token * (
                        1 + BATCH_SLOWDOWN * (self._running - 1)
                    )
                    wait += step * self._jitter()
                last = i == n - 1
                if i == 0 or wait >= CHUNK_INTERVAL_S or last:
                    if wait:
                        await asyncio.sleep(wait)
                        wait = 0.0
                    text = (" " if sent else "") + " ".join(pending)
                    reason: FinishReason | None = None
                    if last:
                        reason = "length" if truncated else "stop"
                    yield Chunk(text, len(pending), reason)
                    sent += len(pending)
                    pending = []
        finally:
            self._running -= 1
            self._tokens_in_flight -= seq
