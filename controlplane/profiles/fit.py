"""The GPU memory-fit check: does a variant's model fit on its GPUs under vLLM?

Owns the memory arithmetic (weights, KV cache, overhead against the GPUs' usable memory), pure,
with the KV size estimated from ``KV_ANCHORS`` when ``model.architecture`` is absent (the message
says so). Called by validation and the controller before deploying. The formulas and why:
docs/profiles.md, "The memory-fit check".
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.profiles.catalog import Catalog, Support

if TYPE_CHECKING:
    from controlplane.spec.models import ModelSpec, VariantSpec

GIB = float(2**30)
KV_DTYPE_BYTES = 2  # vLLM's default KV cache dtype follows the model dtype: bf16
OVERHEAD_FIXED_GIB = 1.5  # per GPU: CUDA context + CUDA graphs + non-torch allocations
OVERHEAD_WEIGHT_FRACTION = 0.02  # of the weights: the activation peak grows with layer sizes
ASSUMED_KV_HEADS = 8  # every anchor below uses grouped-query attention with 8 KV heads

# (parameters, KV-cache bytes per token in bf16) of published model shapes, from each model's
# config.json (num_hidden_layers x num_key_value_heads x head_dim):
KV_ANCHORS: tuple[tuple[float, int], ...] = (
    (1e9, 2 * 16 * 8 * 64 * KV_DTYPE_BYTES),  # Llama-3.2-1B: 16 layers x 8 kv heads x 64
    (3e9, 2 * 28 * 8 * 128 * KV_DTYPE_BYTES),  # Llama-3.2-3B: 28 x 8 x 128
    (8e9, 2 * 32 * 8 * 128 * KV_DTYPE_BYTES),  # Llama-3.1-8B: 32 x 8 x 128
    (14e9, 2 * 48 * 8 * 128 * KV_DTYPE_BYTES),  # Qwen2.5-14B: 48 x 8 x 128
    (32e9, 2 * 64 * 8 * 128 * KV_DTYPE_BYTES),  # Qwen2.5-32B: 64 x 8 x 128
    (70e9, 2 * 80 * 8 * 128 * KV_DTYPE_BYTES),  # Llama-3.1-70B: 80 x 8 x 128
    (405e9, 2 * 126 * 8 * 128 * KV_DTYPE_BYTES),  # Llama-3.1-405B: 126 x 8 x 128
)

UNQUANTIZED_BYTES = 2.0  # embeddings and lm_head stay bf16 under every method
# (parameters, parameters of the token embeddings + lm_head) of the same shapes: vocab x hidden,
# twice when the embeddings are not tied. Only the decoder's linear layers are quantized (vLLM's
# fp8 / bitsandbytes / AWQ / GPTQ and bitsandbytes in transformers alike), which
# `canaryctl profile --in-process` measured (docs/profiles.md, "Measured against fit.py").
EMBEDDING_ANCHORS: tuple[tuple[float, float], ...] = (
    (1e9, 128256 * 2048),  # Llama-3.2-1B: tied
    (3e9, 128256 * 3072),  # Llama-3.2-3B: tied
    (8e9, 2 * 128256 * 4096),  # Llama-3.1-8B
    (14e9, 2 * 152064 * 5120),  # Qwen2.5-14B
    (32e9, 2 * 152064 * 5120),  # Qwen2.5-32B
    (70e9, 2 * 128256 * 8192),  # Llama-3.1-70B
    (405e9, 2 * 128256 * 16384),  # Llama-3.1-405B
)


def estimate_embedding_parameters(parameters: float) -> float:
    """Parameters of the embeddings and lm_head, interpolated in log(parameters) between the
    ``EMBEDDING_ANCHORS`` (proportional below the first; never more than half the model)."""
    params = [p for p, _ in EMBEDDING_ANCHORS]
    sizes = [e for _, e in EMBEDDING_ANCHORS]
    if parameters <= params[0]:
        return min(sizes[0] * parameters / params[0], parameters / 2)
    i = min(max(bisect.bisect_left(params, parameters), 1), len(params) - 1)
    t = (math.log(parameters) - math.log(params[i - 1])) / (
        math.log(params[i]) - math.log(params[i - 1])
    )
    return min(max(sizes[i - 1] + t * (sizes[i] - sizes[i - 1]), 0.0), parameters / 2)


def weight_bytes(
    parameters: float, bytes_per_weight: float, embedding_parameters: float | None = None
) -> float:
    """Bytes of the weights: the decoder's linear layers at ``bytes_per_weight``, embeddings and
    lm_head in bf16 (unchanged for unquantized models). ``embedding_parameters`` when the shape
    is known, else estimated from ``parameters``."""
    if bytes_per_weight >= UNQUANTIZED_BYTES:
        return parameters * bytes_per_weight
    embed = embedding_parameters
    if embed is None:
        embed = estimate_embedding_parameters(parameters)
    return (parameters - embed) * bytes_per_weight + embed * UNQUANTIZED_BYTES


@dataclass(frozen=True)
class FitBreakdown:
    """Where the memory goes, in GiB summed over the variant's GPUs of one replica."""

    weights_gib: float
    kv_cache_gib: float
    overhead_gib: float
    bytes_per_weight: float
    kv_bytes_per_token: float
    kv_estimated: bool
    tokens: int
    sequences: int
    gpu_count: int


@dataclass(frozen=True)
class FitReport:
    """The answer of :func:`memory_fit`. ``shortfall_gib`` is 0 when it fits."""

    fits: bool
    required_gib: float
    available_gib: float
    shortfall_gib: float
    breakdown: FitBreakdown | None
    message: str
    skipped: bool = False
    support: Support = "native"
    notes: tuple[str, ...] = ()

    @property
    def headroom_gib(self) -> float:
        """Spare GiB (negative when short)."""
        return self.available_gib - self.required_gib


def estimate_kv_bytes_per_token(parameters: float) -> float:
    """KV-cache bytes per token (bf16) estimated from the parameter count.

    Piecewise linear in log(parameters) between the ``KV_ANCHORS``; below the smallest anchor
    proportional to the parameters; above the largest, the last segment's slope continues.
    """
    params = [p for p, _ in KV_ANCHORS]
    sizes = [float(b) for _, b in KV_ANCHORS]
    if parameters <= params[0]:
        return sizes[0] * parameters / params[0]
    i = bisect.bisect_left(params, parameters)
    i = min(max(i, 1), len(params) - 1)
    p0, p1 = params[i - 1], params[i]
    b0, b1 = sizes[i - 1], sizes[i]
    t = (math.log(parameters) - math.log(p0)) / (math.log(p1) - math.log(p0))
    return b0 + t * (b1 - b0)


def kv_bytes_per_token(model: ModelSpec) -> tuple[float, int, bool]:
    """(bytes per token over all KV heads, KV heads, estimated?) for ``model``."""
    arch = model.architecture
    if arch is not None:
        per_token = 2 * arch.layers * arch.kv_heads * arch.head_dim * KV_DTYPE_BYTES
        return float(per_token), arch.kv_heads, False
    if model.parameters is None:
        return 0.0, ASSUMED_KV_HEADS, True
    return estimate_kv_bytes_per_token(model.parameters), ASSUMED_KV_HEADS, True


def memory_fit(
    model: ModelSpec,
    variant: VariantSpec,
    catalog: Catalog,
    *,
    measured_weights_gib: float | None = None,
    measured_from: str | None = None,
) -> FitReport:
    """Check that one replica of ``variant`` fits on its GPUs.

    Raises ProfileError for an unknown GPU or quantization, or a quantization the GPU cannot
    run. When ``model.parameters`` is not set the check is skipped (``fits`` True, ``skipped``).
    ``measured_weights_gib`` (from a measured profile, :mod:`controlplane.profiles.measured`)
    replaces ``parameters x bytes per weight``; the message then says "measured" and names
    ``measured_from``. It is used even without ``parameters``.
    """
    gpu = catalog.require_gpu(variant.gpu)
    method = catalog.quant(variant.quantization)
    support = catalog.support(variant.quantization, variant.gpu)
    count = variant.gpu_count
    util = variant.gpu_memory_utilization
    available = gpu.memory_gib * util * count
    offer = (
        f"{gpu.name} x{count} offers {available:.1f} GiB "
        f"({gpu.memory_gib:.1f} GiB x {util:.2f} utilization"
        + (f" x {count} GPUs)" if count > 1 else ")")
    )
    notes = _notes(variant.quantization, support, gpu.architecture, method.expect_faster)

    if model.parameters is None and measured_weights_gib is None:
        return FitReport(
            fits=True,
            required_gib=0.0,
            available_gib=available,
            shortfall_gib=0.0,
            breakdown=None,
            message=(
                "memory fit check skipped: spec.model.parameters is not set "
                f"({offer}; set parameters to check the fit)"
            ),
            skipped=True,
            support=support,
            notes=notes,
        )

    if measured_weights_gib is not None:
        weights = measured_weights_gib
        weights_what = f"measured: {measured_from or 'a measured profile'}"
    else:
        assert model.parameters is not None  # checked above
        weights = weight_bytes(model.parameters, method.bytes_per_weight) / GIB
        weights_what = (
            f"{model.parameters / 1e9:.3g}B x {method.bytes_per_weight:g} bytes, "
            f"{variant.quantization}"
        )
        if method.bytes_per_weight < UNQUANTIZED_BYTES:
            weights_what += ", embeddings and lm_head bf16"
    per_token, kv_heads, estimated = kv_bytes_per_token(model)
    replication = max(count, kv_heads) / kv_heads
    tokens, seqs = model.max_model_len, model.fit_concurrency
    kv = per_token * tokens * seqs * replication / GIB
    overhead = count * OVERHEAD_FIXED_GIB + OVERHEAD_WEIGHT_FRACTION * weights
    required = weights + kv + overhead
    shortfall = max(0.0, required - available)
    fits = shortfall == 0.0
    if replication > 1:
        notes += (
            f"{count} GPUs exceed the {kv_heads} KV heads: vLLM replicates KV heads, "
            f"KV cache counted {replication:g}x",
        )

    breakdown = FitBreakdown(
        weights_gib=weights,
        kv_cache_gib=kv,
        overhead_gib=overhead,
        bytes_per_weight=method.bytes_per_weight,
        kv_bytes_per_token=per_token,
        kv_estimated=estimated,
        tokens=tokens,
        sequences=seqs,
        gpu_count=count,
    )
    kv_what = "KV cache (estimated from parameters)" if estimated else "KV cache"
    seq_word = "sequence" if seqs == 1 else "sequences"
    needs = (
        f"needs {required:.1f} GiB (weights {weights:.1f} [{weights_what}] + {kv_what} "
        f"{kv:.1f} at {tokens} tokens x {seqs} {seq_word}"
        f" + overhead {overhead:.1f})"
    )
    if fits:
        message = f"fits: {needs} and {offer}: {available - required:.1f} GiB spare"
    else:
        message = f"{needs} but {offer}: {shortfall:.1f} GiB short"
    return FitReport(
        fits=fits,
        required_gib=required,
        available_gib=available,
        shortfall_gib=shortfall,
        breakdown=breakdown,
        message=message,
        support=support,
        notes=notes,
    )


def _notes(method: str, support: Support, architecture: str, faster: str) -> tuple[str, ...]:
    notes: list[str] = []
    if support == "weight-only":
        notes.append(
            f"{method} runs weight-only on {architecture} GPUs (no {method} compute): "
            "memory is saved, speed-ups only where decoding is memory-bound"
        )
    if faster == "no" and method != "none":
        notes.append(f"{method} saves memory but is usually not faster than bf16")
    return tuple(notes)
