"""The GPU and quantization catalogue: typed, validated, cached.

Owns reading ``profiles/gpus.yaml`` and ``profiles/quantization.yaml`` into immutable objects and
answering "what is GPU X" / "can GPU X run method Y", with each method's vLLM flags per version
range. A file given by path is checked by :mod:`controlplane.profiles.catalog_schema` first
(errors name ``FILE:LINE``); the packaged files, checked by the tests, are read as they are.
Called by the fit check, the cost arithmetic, validation and serving. See docs/profiles.md.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.errors import ProfileError
from controlplane.profiles.catalog_files import Architecture, Speed, Support, compose
from controlplane.spec.vllm_version import VersionKey, format_version, parse_vllm_version

__all__ = ["Architecture", "Speed", "Support", "format_version", "parse_vllm_version"]


ARCHITECTURES: tuple[Architecture, ...] = ("ampere", "ada", "hopper", "blackwell")
GPUS_FILE = "gpus.yaml"
QUANT_FILE = "quantization.yaml"
PACKAGE_DATA = Path(__file__).with_name("data")
"""The packaged catalogue and measured entries: a folder of the package (read as a path, not
through importlib.resources, whose imports every command would pay for at start-up)."""


@dataclass(frozen=True)
class GpuProfile:
    """One GPU model: memory, speed, price and the node label that selects it.

    ``name`` is the key in ``gpus.yaml`` and what a spec's ``gpu:`` names. ``memory_gib`` is the
    memory CUDA reports (what vLLM's ``--gpu-memory-utilization`` is a fraction of). The fields
    are those of :class:`~controlplane.profiles.catalog_schema.GpuEntry` (checked by a test)."""

    name: str
    product_label: str
    architecture: Architecture
    compute_capability: str
    memory_gib: float
    memory_marketed_gb: float
    memory_bandwidth_gbps: float
    bf16_tflops: float
    fp8: bool
    price_per_hour_usd: float
    price_source: str


@dataclass(frozen=True)
class SupportMap:
    """How a quantization method runs on each GPU architecture."""

    ampere: Support
    ada: Support
    hopper: Support
    blackwell: Support


@dataclass(frozen=True)
class VllmRange:
    """The vLLM flags of a method for vLLM versions ``since`` <= v < ``before`` (no ``before``:
    every later version, until the catalogue learns otherwise), with where that was read."""

    since: str
    before: str | None
    args: list[str]
    source: str

    def since_key(self) -> VersionKey:
        key = parse_vllm_version(self.since)
        assert key is not None  # checked by the schema
        return key

    def before_key(self) -> VersionKey | None:
        return None if self.before is None else parse_vllm_version(self.before)

    def describe(self) -> str:
        """``vLLM 0.24.0 to before 0.31.0`` / ``vLLM 0.31.0 and later``."""
        if self.before is None:
            return f"vLLM {self.since} and later"
        return f"vLLM {self.since} to before {self.before}"

    def holds(self, version: VersionKey) -> bool:
        """True when ``version`` is in this range."""
        before = self.before_key()
        return self.since_key() <= version and (before is None or version < before)


@dataclass(frozen=True)
class VllmRemoval:
    """vLLM dropped the method in ``since``: what to use instead, and where that was read."""

    since: str
    instead: str
    source: str


@dataclass(frozen=True)
class QuantMethod:
    """One quantization method: weight size, vLLM flags per vLLM version, where it runs, what to
    expect.

    ``name`` is the key in ``quantization.yaml`` and what a spec's ``quantization:`` names.
    """

    name: str
    bytes_per_weight: float
    vllm: list[VllmRange]
    removed: VllmRemoval | None
    support: SupportMap
    expect_faster: Speed
    notes: str
    unsupported_reason: str | None

    def support_on(self, architecture: Architecture) -> Support:
        """How this method runs on ``architecture``: native, weight-only or unsupported."""
        level: Support = getattr(self.support, architecture)
        return level

    def range_for(self, version: VersionKey) -> VllmRange | None:
        """The range holding vLLM ``version``, or None when the method has no flags for it."""
        return next((r for r in self.vllm if r.holds(version)), None)

    def vllm_args_for(self, version: VersionKey) -> list[str]:
        """The vLLM flags of this method on vLLM ``version``; ProfileError when there are none."""
        found = self.range_for(version)
        if found is None:
            raise ProfileError(self.missing_version(version))
        return list(found.args)

    def missing_version(self, version: VersionKey) -> str:
        """Why this method has no flags for vLLM ``version`` and what to do instead."""
        shown = format_version(version)
        first, last = self.vllm[0], self.vllm[-1]
        last_end = last.before_key()
        if version < first.since_key():
            return (
                f"quantization {self.name!r} is not known for vLLM {shown}: the catalogue has its "
                f"flags from vLLM {first.since} on (the oldest version read for it)"
            )
        if self.removed is not None and last_end is not None and version >= last_end:
            return (
                f"quantization {self.name!r} does not exist in vLLM {shown}: vLLM removed it in "
                f"{self.removed.since}; use {self.removed.instead}"
            )
        return (
            f"quantization {self.name!r} has no flags for vLLM {shown} in the catalogue "
            f"(it has them for {', '.join(r.describe() for r in self.vllm)})"
        )


@dataclass(frozen=True)
class Catalog:
    """Every GPU and quantization method known, with the files they came from."""

    gpus: Mapping[str, GpuProfile]
    methods: Mapping[str, QuantMethod]
    gpus_source: str = GPUS_FILE
    quant_source: str = QUANT_FILE

    def gpu(self, name: str) -> GpuProfile | None:
        """The GPU called ``name``, or None when the catalogue has no such GPU."""
        return self.gpus.get(name)

    def gpu_names(self) -> list[str]:
        """Every GPU name, sorted."""
        return sorted(self.gpus)

    def require_gpu(self, name: str) -> GpuProfile:
        """The GPU called ``name``; ProfileError naming the known GPUs when there is none."""
        gpu = self.gpus.get(name)
        if gpu is None:
            raise ProfileError(
                f"unknown GPU {name!r}: {self.gpus_source} knows {', '.join(self.gpu_names())}"
            )
        return gpu

    def quant(self, method: str) -> QuantMethod:
        """The quantization method ``method``; ProfileError when the catalogue lacks it."""
        entry = self.methods.get(method)
        if entry is None:
            raise ProfileError(
                f"unknown quantization {method!r}: {self.quant_source} knows "
                f"{', '.join(sorted(self.methods))}"
            )
        return entry

    def support(self, method: str, gpu_name: str) -> Support:
        """How ``method`` runs on ``gpu_name`` (native or weight-only).

        Raises ProfileError for an unknown GPU or method, or when the GPU cannot run the method.
        """
        gpu = self.require_gpu(gpu_name)
        quant = self.quant(method)
        level = quant.support_on(gpu.architecture)
        if level == "unsupported":
            reason = quant.unsupported_reason or (
                f"vLLM has no {method} kernel for {gpu.architecture} GPUs"
            )
            raise ProfileError(
                f"quantization {method!r} cannot run on {gpu_name} "
                f"({gpu.architecture}, compute capability {gpu.compute_capability}): {reason}"
            )
        return level


# --------------------------------------------------------------------------- loading


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load the catalogue.

    ``path`` None: the packaged catalogue (cached: loaded once per process). A directory: its
    ``gpus.yaml`` and ``quantization.yaml`` (the packaged quantization file when the directory
    has none). A file: it is the GPU file, and ``quantization.yaml`` beside it is used when it
    exists, else the packaged one. Raises ProfileError with ``FILE:LINE`` on a malformed file
    and when a file cannot be read.
    """
    if path is None:
        return _load_packaged()
    p = Path(path)
    gpus_path = p / GPUS_FILE if p.is_dir() else p
    quant_path = gpus_path.parent / QUANT_FILE
    gpus_text = _read(gpus_path)
    if quant_path.is_file():
        quant_text, quant_name = _read(quant_path), str(quant_path)
    else:
        quant_text, quant_name = _packaged_text(QUANT_FILE), f"{QUANT_FILE} (packaged)"
    return parse_catalog(gpus_text, quant_text, gpus_name=str(gpus_path), quant_name=quant_name)


@functools.lru_cache(maxsize=1)
def _load_packaged() -> Catalog:
    """The packaged catalogue, read as it is: its files are the package's own, and
    tests/profiles/test_catalog_schema.py checks them with the schema and that this gives the
    same catalogue as :func:`parse_catalog`, so every command (``canaryctl validate`` first)
    starts without pydantic."""
    gpus_name, quant_name = f"{GPUS_FILE} (packaged)", f"{QUANT_FILE} (packaged)"
    return from_data(
        _packaged_data(GPUS_FILE, gpus_name),
        _packaged_data(QUANT_FILE, quant_name),
        gpus_name=gpus_name,
        quant_name=quant_name,
    )


def _packaged_data(file: str, name: str) -> Any:
    node = compose(_packaged_text(file), name, packaged=True)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _packaged_text(name: str) -> str:
    try:
        return (PACKAGE_DATA / name).read_text(encoding="utf-8")
    except OSError as exc:  # pragma: no cover - only a broken install lands here
        raise ProfileError(f"packaged catalogue file {name} is missing: {exc}") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read catalogue file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: catalogue file is not UTF-8 text") from exc


def parse_catalog(
    gpus_text: str,
    quant_text: str,
    *,
    gpus_name: str = GPUS_FILE,
    quant_name: str = QUANT_FILE,
    packaged: bool = False,
) -> Catalog:
    """Build a Catalog from the two files' text, each checked by its schema
    (:mod:`controlplane.profiles.catalog_schema`). ProfileError names FILE:LINE.

    ``packaged``: the text is the packaged catalogue's, parsed by libyaml when PyYAML has it
    (:func:`compose`)."""
    from controlplane.profiles.catalog_schema import GpuFile, QuantFile, validate

    gpu_file = validate(GpuFile, gpus_text, gpus_name, packaged=packaged)
    quant_file = validate(QuantFile, quant_text, quant_name, packaged=packaged)
    return from_data(
        gpu_file.model_dump(by_alias=True),
        quant_file.model_dump(by_alias=True),
        gpus_name=gpus_name,
        quant_name=quant_name,
    )


def from_data(
    gpus: Mapping[str, Any], quant: Mapping[str, Any], *, gpus_name: str, quant_name: str
) -> Catalog:
    """The Catalog of the two files' data (camelCase keys, as a file writes them): the one
    converter, after the schema (:func:`parse_catalog`) or for the packaged files as they are
    (:func:`_load_packaged`)."""
    gpu_objects = {name: _gpu(name, entry) for name, entry in gpus["gpus"].items()}
    methods = {name: _method(name, entry) for name, entry in quant["methods"].items()}
    return Catalog(
        gpus=gpu_objects, methods=methods, gpus_source=gpus_name, quant_source=quant_name
    )


def _gpu(name: str, entry: Mapping[str, Any]) -> GpuProfile:
    return GpuProfile(
        name=name,
        product_label=entry["productLabel"],
        architecture=entry["architecture"],
        compute_capability=entry["computeCapability"],
        memory_gib=float(entry["memoryGib"]),
        memory_marketed_gb=float(entry["memoryMarketedGb"]),
        memory_bandwidth_gbps=float(entry["memoryBandwidthGbps"]),
        bf16_tflops=float(entry["bf16Tflops"]),
        fp8=entry["fp8"],
        price_per_hour_usd=float(entry["pricePerHourUsd"]),
        price_source=entry["priceSource"],
    )


def _method(name: str, entry: Mapping[str, Any]) -> QuantMethod:
    removed = entry.get("removed")
    return QuantMethod(
        name=name,
        bytes_per_weight=float(entry["bytesPerWeight"]),
        vllm=[
            VllmRange(r["since"], r.get("before"), list(r.get("args", ())), r["source"])
            for r in entry["vllm"]
        ],
        removed=None
        if removed is None
        else VllmRemoval(removed["since"], removed["instead"], removed["source"]),
        support=SupportMap(**entry["support"]),
        expect_faster=entry["expectFaster"],
        notes=entry.get("notes", ""),
        unsupported_reason=entry.get("unsupportedReason"),
    )
