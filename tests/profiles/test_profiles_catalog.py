"""Tests of the GPU / quantization catalogue: packaged copy, user paths, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import ProfileError
from controlplane.profiles.catalog import Catalog, load_catalog, parse_catalog

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "profiles"
PACKAGE_DATA = REPO / "controlplane" / "profiles" / "data"

GOOD_GPU = """\
gpus:
  test-gpu:
    productLabel: TEST-GPU
    architecture: ampere
    computeCapability: "8.0"
    memoryGib: 40.0
    memoryMarketedGb: 40
    memoryBandwidthGbps: 1555
    bf16Tflops: 312
    fp8: false
    pricePerHourUsd: 2.5
    priceSource: "a test"
"""

GOOD_QUANT = """\
methods:
  none:
    bytesPerWeight: 2.0
    vllmArgs: []
    support: {ampere: native, ada: native, hopper: native, blackwell: native}
    expectFaster: "no"
"""


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog()


def test_packaged_catalogue_is_the_repository_copy() -> None:
    for name in ("gpus.yaml", "quantization.yaml"):
        packaged = PACKAGE_DATA / name
        assert packaged.is_symlink(), f"{packaged} should be a relative symlink"
        assert not Path(packaged.readlink()).is_absolute()
        assert packaged.read_bytes() == (PROFILES / name).read_bytes()


def test_packaged_catalogue_is_cached(catalog: Catalog) -> None:
    assert load_catalog() is catalog


@pytest.mark.parametrize(
    ("name", "label", "arch", "fp8"),
    [
        ("nvidia-l4", "NVIDIA-L4", "ada", True),
        ("nvidia-a10g", "NVIDIA-A10G", "ampere", False),
        ("nvidia-l40s", "NVIDIA-L40S", "ada", True),
        ("nvidia-a100-40gb", "NVIDIA-A100-SXM4-40GB", "ampere", False),
        ("nvidia-a100-80gb", "NVIDIA-A100-SXM4-80GB", "ampere", False),
        ("nvidia-h100-80gb", "NVIDIA-H100-80GB-HBM3", "hopper", True),
        ("nvidia-h200", "NVIDIA-H200", "hopper", True),
        ("nvidia-b200", "NVIDIA-B200", "blackwell", True),
    ],
)
def test_every_required_gpu_is_profiled(
    catalog: Catalog, name: str, label: str, arch: str, fp8: bool
) -> None:
    gpu = catalog.gpu(name)
    assert gpu is not None
    assert (gpu.name, gpu.product_label, gpu.architecture, gpu.fp8) == (name, label, arch, fp8)
    assert gpu.memory_gib <= gpu.memory_marketed_gb  # CUDA reports GiB, datasheets print GB
    assert gpu.price_per_hour_usd > 0
    assert name in catalog.gpu_names()


def test_unknown_gpu_is_none_and_require_names_the_known_ones(catalog: Catalog) -> None:
    assert catalog.gpu("nvidia-t4000") is None
    with pytest.raises(ProfileError, match=r"unknown GPU 'nvidia-t4000'.*nvidia-l40s"):
        catalog.require_gpu("nvidia-t4000")


@pytest.mark.parametrize(
    ("method", "bytes_per_weight", "args"),
    [
        ("none", 2.0, []),
        ("fp8", 1.0, ["--quantization=fp8"]),
        ("awq", 0.52, ["--quantization=awq_marlin"]),
        ("gptq", 0.52, ["--quantization=gptq_marlin"]),
        ("bitsandbytes-nf4", 0.53, ["--quantization=bitsandbytes"]),
        ("bitsandbytes-int8", 1.0, ["--quantization=bitsandbytes"]),
    ],
)
def test_quantization_methods(
    catalog: Catalog, method: str, bytes_per_weight: float, args: list[str]
) -> None:
    quant = catalog.quant(method)
    assert quant.bytes_per_weight == pytest.approx(bytes_per_weight)
    assert quant.vllm_args == args
    assert "--quantization=awq" not in quant.vllm_args  # legacy kernel, ~10x slower


@pytest.mark.parametrize(
    ("method", "gpu", "expected"),
    [
        ("fp8", "nvidia-a100-80gb", "weight-only"),
        ("fp8", "nvidia-a10g", "weight-only"),
        ("fp8", "nvidia-l4", "native"),
        ("fp8", "nvidia-h100-80gb", "native"),
        ("fp8", "nvidia-b200", "native"),
        ("awq", "nvidia-a10g", "native"),
        ("bitsandbytes-nf4", "nvidia-l40s", "native"),
        ("none", "nvidia-h200", "native"),
    ],
)
def test_support_levels(catalog: Catalog, method: str, gpu: str, expected: str) -> None:
    assert catalog.support(method, gpu) == expected


def test_unknown_quantization_and_unsupported_method_are_profile_errors(catalog: Catalog) -> None:
    with pytest.raises(ProfileError, match="unknown quantization 'int3'"):
        catalog.quant("int3")
    with pytest.raises(ProfileError, match=r"'bitsandbytes-int8' cannot run on nvidia-h100-80gb"):
        catalog.support("bitsandbytes-int8", "nvidia-h100-80gb")


def test_user_directory_and_file_paths(tmp_path: Path) -> None:
    (tmp_path / "gpus.yaml").write_text(GOOD_GPU)
    only_gpus = load_catalog(tmp_path / "gpus.yaml")  # no quantization.yaml beside it: packaged
    assert only_gpus.gpu_names() == ["test-gpu"]
    assert "awq" in only_gpus.methods
    (tmp_path / "quantization.yaml").write_text(GOOD_QUANT)
    both = load_catalog(str(tmp_path))
    assert both.gpu_names() == ["test-gpu"]
    assert sorted(both.methods) == ["none"]
    with pytest.raises(ProfileError, match="unknown quantization 'awq'"):
        both.quant("awq")


def test_missing_user_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read catalogue file"):
        load_catalog(tmp_path / "nope.yaml")


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("gpus_text", "where", "what"),
    [
        pytest.param(
            _replace(GOOD_GPU, "    fp8: false\n", "    fp8: false\n    hbm: 3\n"),
            "gpus.yaml:11:",
            "gpus.test-gpu.hbm: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            _replace(GOOD_GPU, "memoryGib: 40.0", "memoryGib: lots"),
            "gpus.yaml:6:",
            "gpus.test-gpu.memoryGib",
            id="wrong-type",
        ),
        pytest.param(
            _replace(GOOD_GPU, "architecture: ampere", "architecture: volta"),
            "gpus.yaml:4:",
            "gpus.test-gpu.architecture",
            id="unknown-architecture",
        ),
        pytest.param(
            _replace(GOOD_GPU, "    bf16Tflops: 312\n", ""),
            "gpus.yaml:3:",
            "gpus.test-gpu.bf16Tflops: required field is missing",
            id="missing-field-at-parent",
        ),
        pytest.param(
            _replace(GOOD_GPU, "    fp8: false\n", "    fp8: false\n    fp8: true\n"),
            "gpus.yaml:11:",
            "duplicate key 'fp8'",
            id="duplicate-key",
        ),
        pytest.param(
            _replace(GOOD_GPU, 'priceSource: "a test"', "priceSource: [unclosed"),
            "gpus.yaml:13:",
            "not valid YAML",
            id="yaml-syntax",
        ),
        pytest.param("", "gpus.yaml", "empty", id="empty-file"),
        pytest.param("gpus: {}\n", "gpus.yaml:1:", "gpus", id="no-gpus"),
    ],
)
def test_malformed_gpu_file_names_file_and_line(
    tmp_path: Path, gpus_text: str, where: str, what: str
) -> None:
    path = tmp_path / "gpus.yaml"
    path.write_text(gpus_text)
    with pytest.raises(ProfileError) as info:
        load_catalog(path)
    message = str(info.value)
    assert f"{path}:" in message or where == "gpus.yaml"
    assert where in message
    assert what in message


def test_malformed_quantization_file_names_file_and_line() -> None:
    bad = _replace(GOOD_QUANT, "ampere: native", "ampere: sometimes")
    with pytest.raises(ProfileError, match=r"quantization\.yaml:5: methods\.none\.support\.ampere"):
        parse_catalog(GOOD_GPU, bad)


def test_docs_table_lists_every_gpu_with_its_price(catalog: Catalog) -> None:
    docs = (REPO / "docs" / "profiles.md").read_text()
    for gpu in catalog.gpus.values():
        rows = [line for line in docs.splitlines() if f"`{gpu.name}`" in line and "|" in line]
        assert rows, f"docs/profiles.md has no row for {gpu.name}"
        assert any(f"| {gpu.price_per_hour_usd:g}" in row for row in rows), gpu.name
    for method in catalog.methods:
        assert f"| `{method}` |" in docs
