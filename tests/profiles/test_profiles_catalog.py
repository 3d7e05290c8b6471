"""Tests of the GPU / quantization catalogue: packaged copy, user paths, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import ProfileError
from controlplane.profiles.catalog import (
    Catalog,
    format_version,
    load_catalog,
    parse_catalog,
    parse_vllm_version,
)
from controlplane.serving.versions import DEFAULT_VLLM_VERSION

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
    vllm:
      - {since: "0.0.0", args: [], source: "a test"}
    support: {ampere: native, ada: native, hopper: native, blackwell: native}
    expectFaster: "no"
"""

RANGED_QUANT = """\
methods:
  old-method:
    bytesPerWeight: 1.0
    vllm:
      - since: "0.19.0"
        before: "0.24.0"
        args: ["--quantization=old"]
        source: "read in 0.19.0"
      - since: "0.24.0"
        before: "0.28.0"
        args: ["--quantization=renamed"]
        source: "read in 0.24.0"
    removed:
      since: "0.28.0"
      instead: "new-method"
      source: "read in 0.28.0"
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
    default = parse_vllm_version(DEFAULT_VLLM_VERSION)
    assert default is not None
    assert quant.vllm_args_for(default) == args  # the pinned KServe's vLLM 0.24.0


# What the vLLM wheels say (docs/serving.md, "Verified against vLLM"): one row per fact.
@pytest.mark.parametrize(
    ("method", "version", "args"),
    [
        ("fp8", "0.19.0", ["--quantization=fp8"]),
        ("fp8", "0.30.0", ["--quantization=fp8"]),
        ("fp8", "0.31.0", ["--quantization=fp8_per_tensor"]),  # fp8 deprecated for online
        ("fp8", "0.33.0", ["--quantization=fp8_per_tensor"]),
        ("fp8", "0.40.1", ["--quantization=fp8_per_tensor"]),  # the last range is open
        ("awq", "0.20.0", ["--quantization=awq_marlin"]),  # explicit awq: the legacy kernel
        ("awq", "0.33.0", ["--quantization=awq_marlin"]),
        ("gptq", "0.33.0", ["--quantization=gptq_marlin"]),
        ("bitsandbytes-nf4", "0.27.1", ["--quantization=bitsandbytes"]),
        ("none", "0.1.0", []),
    ],
)
def test_flags_per_vllm_version(
    catalog: Catalog, method: str, version: str, args: list[str]
) -> None:
    key = parse_vllm_version(version)
    assert key is not None
    assert catalog.quant(method).vllm_args_for(key) == args


@pytest.mark.parametrize(
    ("method", "version", "words"),
    [
        ("bitsandbytes-nf4", "0.28.0", ["removed it in 0.28.0", "use awq or gptq"]),
        (
            "bitsandbytes-nf4",
            "0.33.0",
            ["does not exist in vLLM 0.33.0", "or fp8 for 8-bit weights"],
        ),
        ("bitsandbytes-int8", "0.33.0", ["removed it in 0.28.0", "use fp8"]),
        ("fp8", "0.18.0", ["not known for vLLM 0.18.0", "from vLLM 0.19.0 on"]),
    ],
)
def test_no_flags_for_a_version_says_why(
    catalog: Catalog, method: str, version: str, words: list[str]
) -> None:
    key = parse_vllm_version(version)
    assert key is not None
    quant = catalog.quant(method)
    assert quant.range_for(key) is None
    with pytest.raises(ProfileError) as info:
        quant.vllm_args_for(key)
    for word in words:
        assert word in str(info.value)


def test_ranges_are_half_open_and_removal_ends_them() -> None:
    method = parse_catalog(GOOD_GPU, RANGED_QUANT).quant("old-method")
    expect = {
        "0.18.9": None,
        "0.19.0": ["--quantization=old"],
        "0.23.9": ["--quantization=old"],
        "0.24.0": ["--quantization=renamed"],
        "0.27.1": ["--quantization=renamed"],
        "0.28.0": None,
    }
    for version, args in expect.items():
        key = parse_vllm_version(version)
        assert key is not None
        found = method.range_for(key)
        assert (None if found is None else found.args) == args, version
    assert "use new-method" in method.missing_version((0, 30, 0))


def test_a_version_after_a_closed_range_without_removal_lists_the_ranges() -> None:
    text = _replace(RANGED_QUANT, "    removed:\n", "    gone:\n")
    text = text[: text.index("    gone:")] + text[text.index("    support:") :]
    method = parse_catalog(GOOD_GPU, text).quant("old-method")
    assert method.missing_version((0, 28, 0)) == (
        "quantization 'old-method' has no flags for vLLM 0.28.0 in the catalogue (it has them for "
        "vLLM 0.19.0 to before 0.24.0, vLLM 0.24.0 to before 0.28.0)"
    )


def test_removal_since_compares_as_a_version() -> None:
    text = _replace(
        RANGED_QUANT, 'since: "0.28.0"\n      instead', 'since: "v0.28.0"\n      instead'
    )
    assert parse_catalog(GOOD_GPU, text).quant("old-method").removed is not None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("0.24.0", (0, 24, 0)),
        ("v0.33.0", (0, 33, 0)),
        ("0.8.5.post1", (0, 8, 5)),
        ("0.10.1.1", (0, 10, 1)),
        (" 1.2.3 ", (1, 2, 3)),
        ("0.24", None),
        ("latest", None),
        ("0.24.0-rc1", None),
        ("", None),
    ],
)
def test_parse_vllm_version(text: str, key: tuple[int, int, int] | None) -> None:
    assert parse_vllm_version(text) == key
    if key is not None:
        assert parse_vllm_version(format_version(key)) == key


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
    with pytest.raises(ProfileError, match=r"quantization\.yaml:6: methods\.none\.support\.ampere"):
        parse_catalog(GOOD_GPU, bad)


@pytest.mark.parametrize(
    ("quant_text", "where", "what"),
    [
        pytest.param(
            _replace(RANGED_QUANT, 'since: "0.24.0"\n        before: "0.28.0"', 'since: "0.24"'),
            "quantization.yaml:9:",
            "methods.old-method.vllm.1.since: '0.24' is not a vLLM version like 0.24.0",
            id="unparseable-version",
        ),
        pytest.param(
            _replace(RANGED_QUANT, 'before: "0.24.0"', 'before: "0.19.0"'),
            "quantization.yaml:5:",
            "before (0.19.0) must be a later version than since (0.19.0)",
            id="empty-range",
        ),
        pytest.param(
            _replace(RANGED_QUANT, 'since: "0.24.0"', 'since: "0.23.0"'),
            "quantization.yaml:5:",
            "ranges overlap or are out of order: since 0.23.0 is before 0.24.0",
            id="overlap",
        ),
        pytest.param(
            _replace(RANGED_QUANT, '        before: "0.24.0"\n', ""),
            "quantization.yaml:5:",
            "only the last range may leave out 'before'",
            id="open-range-in-the-middle",
        ),
        pytest.param(
            _replace(
                RANGED_QUANT, 'since: "0.28.0"\n      instead', 'since: "0.29.0"\n      instead'
            ),
            "quantization.yaml:3:",
            "removed.since (0.29.0) must be where the last vllm range ends (before: 0.28.0)",
            id="removal-not-at-the-end",
        ),
        pytest.param(
            _replace(RANGED_QUANT, '        source: "read in 0.19.0"\n', ""),
            "quantization.yaml:5:",
            "methods.old-method.vllm.0.source: required field is missing",
            id="range-without-source",
        ),
        pytest.param(
            _replace(GOOD_QUANT, 'source: "a test"}', 'source: "a test", flags: []}'),
            "quantization.yaml:5:",
            "methods.none.vllm.0.flags: unknown field",
            id="unknown-field-in-range",
        ),
        pytest.param(
            _replace(
                GOOD_QUANT, '    vllm:\n      - {since: "0.0.0", args: [], source: "a test"}\n', ""
            ),
            "quantization.yaml:3:",
            "methods.none.vllm: required field is missing",
            id="no-vllm-ranges",
        ),
    ],
)
def test_malformed_vllm_ranges_name_file_and_line(quant_text: str, where: str, what: str) -> None:
    with pytest.raises(ProfileError) as info:
        parse_catalog(GOOD_GPU, quant_text)
    message = str(info.value)
    assert where in message
    assert what in message


def test_docs_table_lists_every_gpu_with_its_price(catalog: Catalog) -> None:
    docs = (REPO / "docs" / "profiles.md").read_text()
    for gpu in catalog.gpus.values():
        rows = [line for line in docs.splitlines() if f"`{gpu.name}`" in line and "|" in line]
        assert rows, f"docs/profiles.md has no row for {gpu.name}"
        assert any(f"| {gpu.price_per_hour_usd:g}" in row for row in rows), gpu.name
    for method in catalog.methods:
        assert f"| `{method}` |" in docs


def test_the_packaged_files_read_the_same_with_libyaml() -> None:
    """The packaged catalogue and measured entries go through libyaml (start-up, issue 41): the
    same catalogue and entries as the pure-Python parser gives."""
    from controlplane.profiles import measured

    gpus = (PACKAGE_DATA / "gpus.yaml").read_text(encoding="utf-8")
    quant = (PACKAGE_DATA / "quantization.yaml").read_text(encoding="utf-8")
    assert parse_catalog(gpus, quant, packaged=True) == parse_catalog(gpus, quant)
    entries = sorted((PACKAGE_DATA / "measured").glob("*.yaml"))
    assert entries
    for path in entries:
        text = path.read_text(encoding="utf-8")
        assert measured.parse(text, path.name, packaged=True) == measured.parse(text, path.name)


@pytest.mark.parametrize(
    "gpus_text",
    [
        _replace(GOOD_GPU, "    fp8: false\n", "    fp8: false\n    hbm: 3\n"),
        _replace(GOOD_GPU, "memoryGib: 40.0", "memoryGib: lots"),
        _replace(GOOD_GPU, "    fp8: false\n", "    fp8: false\n    fp8: true\n"),
        _replace(GOOD_GPU, 'priceSource: "a test"', "priceSource: [unclosed"),
        _replace(GOOD_GPU, "gpus:\n", "gpus:\n\t"),
        "",
    ],
    ids=["unknown-field", "wrong-type", "duplicate-key", "yaml-syntax", "tab", "empty"],
)
def test_a_packaged_file_is_refused_as_any_other(gpus_text: str) -> None:
    """libyaml's marks give the same lines; what it refuses, the pure parser words as ever."""
    with pytest.raises(ProfileError) as pure:
        parse_catalog(gpus_text, GOOD_QUANT)
    with pytest.raises(ProfileError) as fast:
        parse_catalog(gpus_text, GOOD_QUANT, packaged=True)
    assert str(fast.value) == str(pure.value)
