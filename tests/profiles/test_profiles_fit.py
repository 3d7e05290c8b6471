"""Tests of the memory-fit check and the GPU cost arithmetic, against hand-computed numbers.

Hand arithmetic used below (GiB = 2^30 bytes):
  Llama-3.1-8B shape 32 layers x 8 KV heads x 128: KV = 2*32*8*128*2 B = 128 KiB/token,
      x 8192 tokens = 1.0 GiB per sequence; weights bf16 = 8e9*2/2^30 = 14.9012 GiB.
  Llama-3.1-70B shape 80 x 8 x 128: KV = 320 KiB/token, x 8192 = 2.5 GiB per sequence;
      weights bf16 = 70e9*2/2^30 = 130.3852 GiB.
  overhead = 1.5 GiB per GPU + 2% of the weights.
  available = memoryGib x 0.90 x GPUs, e.g. L4: 22.49 x 0.9 = 20.241 GiB.
"""

from __future__ import annotations

import pytest

from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.profiles.cost import daily_cost, hourly_cost
from controlplane.profiles.fit import (
    KV_ANCHORS,
    FitReport,
    estimate_kv_bytes_per_token,
    memory_fit,
)
from controlplane.spec.models import ModelArchitecture, ModelSpec, VariantSpec

LLAMA_8B = ModelSpec(
    name="llama-8b",
    max_model_len=8192,
    parameters=8e9,
    architecture=ModelArchitecture(layers=32, kv_heads=8, head_dim=128),
)
LLAMA_70B = ModelSpec(
    name="llama-70b",
    max_model_len=8192,
    parameters=70e9,
    architecture=ModelArchitecture(layers=80, kv_heads=8, head_dim=128),
)
METHODS = ("none", "fp8", "awq", "gptq", "bitsandbytes-nf4")

# Spare GiB (negative: short) of one GPU at 0.90 utilization, 8192 tokens x 1 sequence, in the
# order of METHODS. Required GiB (weights + KV + overhead), computed by hand from the header:
# weights = (parameters - E) x bytes per weight + E x 2 for the quantized methods, E the
# embeddings + lm_head (2 x 128256 x 4096 for 8B, 2 x 128256 x 8192 for 70B) kept in bf16:
#   8B:  none 17.6992  fp8 11.0977  awq/gptq 7.9290  nf4 7.9950
#   70B: none 136.9929 fp8 72.4926  awq/gptq 41.5325 nf4 42.1775
HEADROOM: dict[str, dict[str, tuple[float, ...]]] = {
    "nvidia-l4": {  # 20.241 available
        "8b": (2.54, 9.14, 12.31, 12.31, 12.25),
        "70b": (-116.75, -52.25, -21.29, -21.29, -21.94),
    },
    "nvidia-a10g": {  # 20.241
        "8b": (2.54, 9.14, 12.31, 12.31, 12.25),
        "70b": (-116.75, -52.25, -21.29, -21.29, -21.94),
    },
    "nvidia-l40s": {  # 40.491
        "8b": (22.79, 29.39, 32.56, 32.56, 32.50),
        "70b": (-96.50, -32.00, -1.04, -1.04, -1.69),
    },
    "nvidia-a100-40gb": {  # 36.000
        "8b": (18.30, 24.90, 28.07, 28.07, 28.01),
        "70b": (-100.99, -36.49, -5.53, -5.53, -6.18),
    },
    "nvidia-a100-80gb": {  # 72.000
        "8b": (54.30, 60.90, 64.07, 64.07, 64.01),
        "70b": (-64.99, -0.49, 30.47, 30.47, 29.82),
    },
    "nvidia-h100-80gb": {  # 71.685
        "8b": (53.99, 60.59, 63.76, 63.76, 63.69),
        "70b": (-65.31, -0.81, 30.15, 30.15, 29.51),
    },
    "nvidia-h200": {  # 126.360
        "8b": (108.66, 115.26, 118.43, 118.43, 118.37),
        "70b": (-10.63, 53.87, 84.83, 84.83, 84.18),
    },
    "nvidia-b200": {  # 161.154
        "8b": (143.45, 150.06, 153.23, 153.23, 153.16),
        "70b": (24.16, 88.66, 119.62, 119.62, 118.98),
    },
}
MODELS = {"8b": LLAMA_8B, "70b": LLAMA_70B}
CASES = [
    pytest.param(gpu, size, method, spare, id=f"{size}-{method}-on-{gpu}")
    for gpu, by_size in HEADROOM.items()
    for size, row in by_size.items()
    for method, spare in zip(METHODS, row, strict=True)
]


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def variant(gpu: str, quantization: str = "none", **kw: object) -> VariantSpec:
    return VariantSpec.model_validate(
        {"name": "v", "storageUri": "hf://org/model", "gpu": gpu, "quantization": quantization} | kw
    )


@pytest.mark.parametrize(("gpu", "size", "method", "spare"), CASES)
def test_fit_table(catalog: Catalog, gpu: str, size: str, method: str, spare: float) -> None:
    report = memory_fit(MODELS[size], variant(gpu, method), catalog)
    assert report.headroom_gib == pytest.approx(spare, abs=0.006)
    assert report.fits is (spare >= 0)
    assert report.shortfall_gib == pytest.approx(max(0.0, -spare), abs=0.006)
    assert report.available_gib == pytest.approx(catalog.require_gpu(gpu).memory_gib * 0.9)
    assert not report.skipped
    assert ("GiB short" in report.message) is (spare < 0)


@pytest.mark.parametrize(
    ("model", "gpu", "method", "weights", "kv", "overhead"),
    [
        pytest.param(LLAMA_8B, "nvidia-l4", "none", 14.9012, 1.0, 1.7980, id="8b-bf16"),
        pytest.param(LLAMA_8B, "nvidia-l4", "fp8", 8.4291, 1.0, 1.6686, id="8b-fp8"),
        pytest.param(LLAMA_8B, "nvidia-l4", "awq", 5.3225, 1.0, 1.6065, id="8b-awq"),
        pytest.param(LLAMA_70B, "nvidia-h200", "none", 130.3852, 2.5, 4.1077, id="70b-bf16"),
        pytest.param(
            LLAMA_70B, "nvidia-h200", "bitsandbytes-nf4", 37.4289, 2.5, 2.2486, id="70b-nf4"
        ),
    ],
)
def test_breakdown(
    catalog: Catalog,
    model: ModelSpec,
    gpu: str,
    method: str,
    weights: float,
    kv: float,
    overhead: float,
) -> None:
    report = memory_fit(model, variant(gpu, method), catalog)
    assert report.breakdown is not None
    assert report.breakdown.weights_gib == pytest.approx(weights, abs=1e-4)
    assert report.breakdown.kv_cache_gib == pytest.approx(kv, abs=1e-4)
    assert report.breakdown.overhead_gib == pytest.approx(overhead, abs=1e-4)
    assert report.required_gib == pytest.approx(weights + kv + overhead, abs=1e-3)
    assert not report.breakdown.kv_estimated


def test_llama_8b_bf16_on_l4_with_8_full_sequences_is_short_and_says_why(
    catalog: Catalog,
) -> None:
    model = LLAMA_8B.model_copy(update={"fit_concurrency": 8})
    report = memory_fit(model, variant("nvidia-l4"), catalog)
    # 14.9012 + 8 x 1.0 + 1.7980 = 24.6992 needed, 20.241 offered: 4.4582 short
    assert not report.fits
    assert report.shortfall_gib == pytest.approx(4.4582, abs=1e-3)
    assert report.message == (
        "needs 24.7 GiB (weights 14.9 [8B x 2 bytes, none] + KV cache 8.0 at 8192 tokens"
        " x 8 sequences + overhead 1.8) but nvidia-l4 x1 offers 20.2 GiB"
        " (22.5 GiB x 0.90 utilization): 4.5 GiB short"
    )


def test_tensor_parallel_sums_over_gpus(catalog: Catalog) -> None:
    report = memory_fit(LLAMA_70B, variant("nvidia-h100-80gb", gpu_count=2), catalog)
    # 130.3852 + 2.5 + (2 x 1.5 + 2.6077) = 138.4929 of 2 x 79.65 x 0.9 = 143.37
    assert report.fits
    assert report.required_gib == pytest.approx(138.4929, abs=1e-3)
    assert report.available_gib == pytest.approx(143.37, abs=1e-3)
    assert "x 2 GPUs" in report.message


def test_more_gpus_than_kv_heads_replicates_the_kv_cache(catalog: Catalog) -> None:
    report = memory_fit(LLAMA_8B, variant("nvidia-l4", gpu_count=16), catalog)
    assert report.breakdown is not None
    assert report.breakdown.kv_cache_gib == pytest.approx(2.0)  # 16 / 8 KV heads
    assert any("replicates KV heads" in n for n in report.notes)


def test_lower_utilization_shrinks_what_is_available(catalog: Catalog) -> None:
    report = memory_fit(LLAMA_8B, variant("nvidia-l4", gpu_memory_utilization=0.8), catalog)
    # 22.49 x 0.8 = 17.992 offered, 17.6992 needed: 0.2928 spare
    assert report.fits
    assert report.headroom_gib == pytest.approx(0.2928, abs=1e-3)


def test_estimated_kv_cache_is_said(catalog: Catalog) -> None:
    model = ModelSpec(name="m", max_model_len=8192, parameters=8e9)
    report = memory_fit(model, variant("nvidia-l4"), catalog)
    assert report.breakdown is not None
    assert report.breakdown.kv_estimated
    assert report.breakdown.kv_cache_gib == pytest.approx(1.0)  # the 8B anchor exactly
    assert "estimated" in report.message


def test_no_parameters_skips_the_check(catalog: Catalog) -> None:
    report = memory_fit(ModelSpec(name="m"), variant("nvidia-l4"), catalog)
    assert isinstance(report, FitReport)
    assert (report.fits, report.skipped, report.shortfall_gib) == (True, True, 0.0)
    assert "skipped" in report.message


@pytest.mark.parametrize(
    ("gpu", "method", "match"),
    [
        ("nvidia-t4000", "none", "unknown GPU 'nvidia-t4000'"),
        ("nvidia-l4", "bitsandbytes-int8", "in-flight bitsandbytes quantization loads as 4-bit"),
        ("nvidia-a100-80gb", "bitsandbytes-int8", "cannot run on nvidia-a100-80gb"),
    ],
)
def test_profile_errors(catalog: Catalog, gpu: str, method: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        memory_fit(LLAMA_8B, variant(gpu, method), catalog)
    # raised even when the size is unknown: the GPU / method itself is the problem
    with pytest.raises(ProfileError):
        memory_fit(ModelSpec(name="m"), variant(gpu, method), catalog)


@pytest.mark.parametrize(
    ("gpu", "method", "note"),
    [
        ("nvidia-a100-80gb", "fp8", "weight-only on ampere"),
        ("nvidia-l4", "bitsandbytes-nf4", "not faster"),
    ],
)
def test_notes(catalog: Catalog, gpu: str, method: str, note: str) -> None:
    report = memory_fit(LLAMA_8B, variant(gpu, method), catalog)
    assert any(note in n for n in report.notes)
    assert report.fits


def test_no_notes_for_native_fp8(catalog: Catalog) -> None:
    report = memory_fit(LLAMA_8B, variant("nvidia-h100-80gb", "fp8"), catalog)
    assert (report.support, report.notes) == ("native", ())


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        pytest.param(0.5e9, 16384.0, id="below-smallest-is-proportional"),
        pytest.param(8e9, 131072.0, id="anchor-8b"),
        pytest.param(70e9, 327680.0, id="anchor-70b"),
        # geometric midpoint of 8B and 14B: halfway in log space
        pytest.param((8e9 * 14e9) ** 0.5, (131072.0 + 196608.0) / 2, id="log-midpoint"),
        # 405B x (405 / 70): the 70B -> 405B step once more, on the last segment's slope
        pytest.param(405e9 * 405 / 70, 516096.0 + (516096.0 - 327680.0), id="extrapolated"),
    ],
)
def test_kv_estimate(parameters: float, expected: float) -> None:
    assert estimate_kv_bytes_per_token(parameters) == pytest.approx(expected, rel=1e-9)


def test_kv_anchors_are_increasing() -> None:
    assert [p for p, _ in KV_ANCHORS] == sorted(p for p, _ in KV_ANCHORS)
    assert [b for _, b in KV_ANCHORS] == sorted(b for _, b in KV_ANCHORS)


@pytest.mark.parametrize(
    ("gpu", "gpu_count", "replicas", "per_day"),
    [
        pytest.param("nvidia-l4", 1, 1, 19.32, id="l4-0.805x24"),
        pytest.param("nvidia-l40s", 1, 2, 89.328, id="l40s-1.861x2x24"),
        pytest.param("nvidia-h100-80gb", 4, 2, 1320.96, id="h100-6.88x4x2x24"),
        pytest.param("nvidia-a10g", 1, 0, 0.0, id="zero-replicas"),
    ],
)
def test_daily_cost(
    catalog: Catalog, gpu: str, gpu_count: int, replicas: int, per_day: float
) -> None:
    v = variant(gpu, gpu_count=gpu_count, replicas=replicas)
    assert daily_cost(v, catalog) == pytest.approx(per_day)
    assert hourly_cost(v, catalog) == pytest.approx(per_day / 24)


def test_cost_of_unknown_gpu_is_a_profile_error(catalog: Catalog) -> None:
    with pytest.raises(ProfileError, match="unknown GPU"):
        daily_cost(variant("nvidia-t4000"), catalog)
