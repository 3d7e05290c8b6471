"""The speed model of a variant on its GPU, and the batch limits its vLLM would run with.

Owns the one model the simulated engine and the capacity estimate share: memory-bound decoding at
the GPU's bandwidth, compute-bound prefill at its TFLOP/s, quantization faster only where the
catalogue expects it, and vLLM 0.24.0's batch defaults or the variant's flags. Pure;
ProfileError for an unknown GPU or a refused flag. See docs/local.md, "Scheduling as vLLM does".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog, GpuProfile
from controlplane.profiles.fit import kv_bytes_per_token

if TYPE_CHECKING:
    from controlplane.spec.models import ModelSpec, VariantSpec

BANDWIDTH_UTILISATION = 0.6
COMPUTE_UTILISATION = 0.4
DEFAULT_PARAMETERS = 8.0e9
OVERHEAD_S = 0.015
"""Fixed time before a request reaches the engine's queue: tokenization, the HTTP hop."""
BATCH_SLOWDOWN = 0.01
"""Each other request in a step makes the step this much slower."""
DEQUANT_OVERHEAD = {"yes": 1.1, "low-concurrency": 1.15, "no": 1.15}

BLOCK_SIZE = 16
"""vLLM 0.24.0 ``CacheConfig.DEFAULT_BLOCK_SIZE`` (``config/cache.py``)."""
LARGE_GPU_GIB = 70.0
"""``get_batch_defaults``: GPUs with at least this much memory (and not A100s) get larger
batches (``engine/arg_utils.py``)."""
LARGE_GPU_DEFAULTS = (1024, 8192)
"""(max_num_seqs, max_num_batched_tokens) for ``OPENAI_API_SERVER`` on a large GPU."""
GPU_DEFAULTS = (256, 2048)
"""(max_num_seqs, max_num_batched_tokens) for ``OPENAI_API_SERVER`` on any other GPU."""


@dataclass(frozen=True)
class Speed:
    """How fast one variant is on its GPU, and how its vLLM would batch.

    ``max_num_seqs`` / ``max_num_batched_tokens`` default to vLLM 0.24.0's for ``vllm serve`` on a
    GPU under 70 GiB (:data:`GPU_DEFAULTS`); :func:`speed_for` sets them from the variant."""

    decode_s_per_token: float
    prefill_s_per_token: float
    kv_capacity_tokens: float
    overhead_s: float = OVERHEAD_S
    jitter_sigma: float = 0.1
    max_num_seqs: int = GPU_DEFAULTS[0]
    max_num_batched_tokens: int = GPU_DEFAULTS[1]
    block_size: int = BLOCK_SIZE
    batch_slowdown: float = BATCH_SLOWDOWN
    """What each other request in a step adds to it, as a share of a lone request's step."""

    @property
    def kv_blocks(self) -> int:
        """KV-cache blocks: the capacity in whole blocks (at least one)."""
        return max(1, int(self.kv_capacity_tokens // self.block_size))

    def step_s(self, batch: int) -> float:
        """One decode step of ``batch`` requests, before jitter: every weight read once, and
        ``batch_slowdown`` (:data:`BATCH_SLOWDOWN` unless measured) more per other request."""
        return self.decode_s_per_token * (1 + self.batch_slowdown * (max(1, batch) - 1))

    def describe(self) -> str:
        return (
            f"{1 / self.decode_s_per_token:.0f} tok/s decode, "
            f"{self.prefill_s_per_token * 1e6:.0f} µs/prompt token, "
            f"max {self.max_num_seqs} seqs"
        )


def _flag(args: Sequence[str], name: str) -> str | None:
    """The value of ``--name`` in ``args`` (``--name V`` or ``--name=V``, ``_`` or ``-`` in the
    name, as vLLM's FlexibleArgumentParser reads it; the last one wins, as in argparse)."""
    found: str | None = None
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        key, eq, value = arg.partition("=")
        if key.replace("_", "-") != f"--{name}":
            continue
        if eq:
            found = value
        elif i + 1 < len(args):
            found = args[i + 1]
    return found


def _positive_int(args: Sequence[str], name: str) -> int | None:
    value = _flag(args, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ProfileError(f"--{name} {value!r}: vLLM wants an integer >= 1")
    return number


def batch_defaults(gpu: GpuProfile) -> tuple[int, int]:
    """vLLM 0.24.0's ``(max_num_seqs, max_num_batched_tokens)`` for ``vllm serve`` on ``gpu``
    (``get_batch_defaults``: >= 70 GiB and not an A100, else the smaller pair)."""
    large = gpu.memory_gib >= LARGE_GPU_GIB and "a100" not in gpu.product_label.lower()
    return LARGE_GPU_DEFAULTS if large else GPU_DEFAULTS


def scheduler_limits(args: Sequence[str], gpu: GpuProfile, max_model_len: int) -> tuple[int, int]:
    """``(max_num_seqs, max_num_batched_tokens)`` of a ``vllm serve`` given ``args`` on ``gpu``:
    the flags when given, else the defaults, adjusted as
    ``_set_default_max_num_seqs_and_batched_tokens_args`` adjusts them (module docstring)."""
    seqs = _positive_int(args, "max-num-seqs")
    tokens = _positive_int(args, "max-num-batched-tokens")
    default_seqs, default_tokens = batch_defaults(gpu)
    factor = 2 if _flag(args, "performance-mode") == "throughput" else 1
    max_num_seqs = seqs if seqs is not None else default_seqs * factor
    max_num_batched_tokens = tokens if tokens is not None else default_tokens * factor
    if tokens is None:
        max_num_batched_tokens = min(max_num_seqs * max_model_len, max_num_batched_tokens)
    if seqs is None:
        max_num_seqs = min(max_num_seqs, max_num_batched_tokens)
    return max_num_seqs, max_num_batched_tokens


def speed_for(model: ModelSpec, variant: VariantSpec, catalog: Catalog) -> Speed:
    """The speed model of ``variant`` (see the module docstring). Pure; ProfileError when its
    ``args`` give a batch limit vLLM would refuse."""
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
    seqs, batched = scheduler_limits(variant.args, gpu, model.max_model_len)
    return Speed(
        decode,
        prefill,
        max(capacity, 1.0),
        max_num_seqs=seqs,
        max_num_batched_tokens=batched,
    )
