"""The GPU and quantization catalogue: typed, validated, cached.

Owns reading ``profiles/gpus.yaml`` and ``profiles/quantization.yaml`` (packaged as
``controlplane/profiles/data/*.yaml``, symlinks to the repository copies) into immutable pydantic
models, and answering "what is GPU X" / "can GPU X run method Y". Unknown fields are rejected and
every malformed entry becomes a :class:`~controlplane.errors.ProfileError` that names
``FILE:LINE`` (from the YAML node marks), never a traceback. Each quantization method carries its
vLLM flags per vLLM version range (``vllm:``), keyed by the one parser of vLLM version strings,
:mod:`controlplane.spec.vllm_version` (below the catalogue: the spec's ``vllmVersion`` uses it).

Called by the memory-fit check (:mod:`controlplane.profiles.fit`), the cost arithmetic
(:mod:`controlplane.profiles.cost`), spec validation and the serving layer (vLLM flags). The
only I/O here is reading the two catalogue files; everything else is pure.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from controlplane.errors import ProfileError
from controlplane.spec.vllm_version import VersionKey, format_version, parse_vllm_version

Architecture = Literal["ampere", "ada", "hopper", "blackwell"]
Support = Literal["native", "weight-only", "unsupported"]
Speed = Literal["yes", "no", "low-concurrency"]

ARCHITECTURES: tuple[Architecture, ...] = ("ampere", "ada", "hopper", "blackwell")
GPUS_FILE = "gpus.yaml"
QUANT_FILE = "quantization.yaml"
_PACKAGE = "controlplane.profiles"
_M = TypeVar("_M", bound=BaseModel)


class _Entry(BaseModel):
    """Base of catalogue entries: camelCase keys, unknown fields rejected, immutable, strict."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )


class _GpuEntry(_Entry):
    product_label: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*$")
    architecture: Architecture
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    memory_gib: float = Field(gt=0, le=100_000)
    memory_marketed_gb: float = Field(gt=0, le=100_000)
    memory_bandwidth_gbps: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    fp8: bool
    price_per_hour_usd: float = Field(ge=0, le=10_000)
    price_source: str = Field(min_length=1)


class GpuProfile(_GpuEntry):
    """One GPU model: memory, speed, price and the node label that selects it.

    ``name`` is the key in ``gpus.yaml`` and what a spec's ``gpu:`` names. ``memory_gib`` is the
    memory CUDA reports (what vLLM's ``--gpu-memory-utilization`` is a fraction of).
    """

    name: str


class _SupportMap(_Entry):
    ampere: Support
    ada: Support
    hopper: Support
    blackwell: Support


def _version_field(value: str) -> str:
    if parse_vllm_version(value) is None:
        raise ValueError(f"{value!r} is not a vLLM version like 0.24.0")
    return value


class VllmRange(_Entry):
    """The vLLM flags of a method for vLLM versions ``since`` <= v < ``before`` (no ``before``:
    every later version, until the catalogue learns otherwise), with where that was read."""

    since: str
    before: str | None = None
    args: list[str] = Field(default_factory=list, max_length=20)
    source: str = Field(min_length=1)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        return _version_field(value)

    @field_validator("before")
    @classmethod
    def _before(cls, value: str | None) -> str | None:
        return None if value is None else _version_field(value)

    @model_validator(mode="after")
    def _ordered(self) -> VllmRange:
        before = self.before_key()
        if before is not None and before <= self.since_key():
            raise ValueError(
                f"before ({self.before}) must be a later version than since ({self.since})"
            )
        return self

    def since_key(self) -> VersionKey:
        key = parse_vllm_version(self.since)
        assert key is not None  # checked by the field validator
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


class VllmRemoval(_Entry):
    """vLLM dropped the method in ``since``: what to use instead, and where that was read."""

    since: str
    instead: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        return _version_field(value)


class _QuantEntry(_Entry):
    bytes_per_weight: float = Field(gt=0, le=8)
    vllm: list[VllmRange] = Field(min_length=1, max_length=50)
    removed: VllmRemoval | None = None
    support: _SupportMap
    expect_faster: Speed
    notes: str = ""
    unsupported_reason: str | None = None

    @model_validator(mode="after")
    def _removal_ends_the_last_range(self) -> _QuantEntry:
        last = self.vllm[-1]
        if self.removed is not None and last.before_key() != parse_vllm_version(self.removed.since):
            raise ValueError(
                f"removed.since ({self.removed.since}) must be where the last vllm range ends "
                f"(before: {last.before})"
            )
        return self

    @field_validator("vllm")
    @classmethod
    def _ranges_in_order(cls, ranges: list[VllmRange]) -> list[VllmRange]:
        for earlier, later in itertools.pairwise(ranges):
            end = earlier.before_key()
            if end is None:
                raise ValueError(
                    f"only the last range may leave out 'before' (the range since "
                    f"{earlier.since} is followed by one since {later.since})"
                )
            if later.since_key() < end:
                raise ValueError(
                    f"ranges overlap or are out of order: since {later.since} is before "
                    f"{earlier.before}, where the previous range ends"
                )
        return ranges


class QuantMethod(_QuantEntry):
    """One quantization method: weight size, vLLM flags per vLLM version, where it runs, what to
    expect.

    ``name`` is the key in ``quantization.yaml`` and what a spec's ``quantization:`` names.
    """

    name: str

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


class _GpuFile(_Entry):
    gpus: dict[str, _GpuEntry] = Field(min_length=1)


class _QuantFile(_Entry):
    methods: dict[str, _QuantEntry] = Field(min_length=1)


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
    return parse_catalog(
        _packaged_text(GPUS_FILE),
        _packaged_text(QUANT_FILE),
        gpus_name=f"{GPUS_FILE} (packaged)",
        quant_name=f"{QUANT_FILE} (packaged)",
        packaged=True,
    )


def _packaged_text(name: str) -> str:
    try:
        return resources.files(_PACKAGE).joinpath("data", name).read_text(encoding="utf-8")
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
    """Build a Catalog from the two files' text (pure). ProfileError names FILE:LINE.

    ``packaged``: the text is the packaged catalogue's, parsed by libyaml when PyYAML has it
    (:func:`_compose`)."""
    gpu_file = _validate(_GpuFile, gpus_text, gpus_name, packaged=packaged)
    quant_file = _validate(_QuantFile, quant_text, quant_name, packaged=packaged)
    gpus = {
        name: GpuProfile(name=name, **entry.model_dump()) for name, entry in gpu_file.gpus.items()
    }
    methods = {
        name: QuantMethod(name=name, **entry.model_dump())
        for name, entry in quant_file.methods.items()
    }
    return Catalog(gpus=gpus, methods=methods, gpus_source=gpus_name, quant_source=quant_name)


def _validate(model: type[_M], text: str, name: str, *, packaged: bool = False) -> _M:
    node = _compose(text, name, packaged=packaged)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ProfileError(_marked(name, exc)) from exc
    finally:
        loader.dispose()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            line = _line_of(node, loc)
            where = f"{name}:{line}" if line is not None else name
            dotted = ".".join(str(part) for part in loc) or "(top level)"
            lines.append(f"{where}: {dotted}: {_short(err)}")
        raise ProfileError("malformed catalogue:\n" + "\n".join(lines)) from exc


_FAST_LOADER: type[Any] | None = getattr(yaml, "CSafeLoader", None)
"""PyYAML's libyaml parser, when it was built with it: the same nodes, tags and line marks as
the pure-Python one, in a tenth of the time."""


def _compose(text: str, name: str, *, packaged: bool = False) -> yaml.Node:
    """The YAML node tree of ``text``, duplicate keys refused.

    The packaged files (``packaged``) are composed by libyaml when it is there: every command
    that loads the catalogue pays for it at start-up (issue 41). Anything else, and a packaged
    file libyaml refuses, goes through the pure-Python parser, so that what a file given on the
    command line is accepted with, or refused with, never depends on how PyYAML was built."""
    if packaged and _FAST_LOADER is not None:
        try:
            fast = yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            fast = None  # the pure parser below says what is wrong, as it always has
        if fast is not None:
            _reject_duplicate_keys(fast, name)
            return fast
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ProfileError(_marked(name, exc)) from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{name}: not valid YAML: {exc}") from exc
    if node is None:
        raise ProfileError(f"{name}: the catalogue file is empty")
    _reject_duplicate_keys(node, name)
    return node


def _marked(name: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}" if mark is not None else name
    problem = exc.problem or exc.context or "invalid YAML"
    return f"{where}: not valid YAML: {problem}"


def _reject_duplicate_keys(node: yaml.Node, name: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ProfileError(
                        f"{name}:{key.start_mark.line + 1}: duplicate key {key.value!r}"
                    )
                seen.add(key.value)
            _reject_duplicate_keys(value, name)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, name)


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the node at ``loc`` (the deepest existing ancestor when it is missing)."""
    current = node
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    break
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(current.value)
        ):
            child = current.value[part]
        if child is None:
            break
        current = child
    mark = current.start_mark
    return mark.line + 1 if mark is not None else None


def _short(err: Any) -> str:
    msg = str(err.get("msg", "invalid"))
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")
