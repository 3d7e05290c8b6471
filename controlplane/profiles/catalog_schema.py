"""The catalogue files' schema: what ``gpus.yaml`` and ``quantization.yaml`` may hold.

Owns the strict pydantic models of the two files and :func:`validate` (a text to a model, or a
:class:`~controlplane.errors.ProfileError` naming ``FILE:LINE``), also used for measured profiles.
Imported only when a file is checked, so ``canaryctl validate`` starts without pydantic. Pure.
"""

from __future__ import annotations

import itertools
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from controlplane.errors import ProfileError
from controlplane.profiles.catalog_files import Architecture, Speed, Support, compose, marked
from controlplane.spec.vllm_version import VersionKey, parse_vllm_version

_M = TypeVar("_M", bound=BaseModel)


class _Entry(BaseModel):
    """Base of catalogue entries: camelCase keys, unknown fields rejected, immutable, strict."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True
    )


class GpuEntry(_Entry):
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


class SupportEntry(_Entry):
    ampere: Support
    ada: Support
    hopper: Support
    blackwell: Support


def _version_field(value: str) -> str:
    if parse_vllm_version(value) is None:
        raise ValueError(f"{value!r} is not a vLLM version like 0.24.0")
    return value


class VllmRangeEntry(_Entry):
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
    def _ordered(self) -> VllmRangeEntry:
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


class VllmRemovalEntry(_Entry):
    """vLLM dropped the method in ``since``: what to use instead, and where that was read."""

    since: str
    instead: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        return _version_field(value)


class QuantEntry(_Entry):
    bytes_per_weight: float = Field(gt=0, le=8)
    vllm: list[VllmRangeEntry] = Field(min_length=1, max_length=50)
    removed: VllmRemovalEntry | None = None
    support: SupportEntry
    expect_faster: Speed
    notes: str = ""
    unsupported_reason: str | None = None

    @model_validator(mode="after")
    def _removal_ends_the_last_range(self) -> QuantEntry:
        last = self.vllm[-1]
        if self.removed is not None and last.before_key() != parse_vllm_version(self.removed.since):
            raise ValueError(
                f"removed.since ({self.removed.since}) must be where the last vllm range ends "
                f"(before: {last.before})"
            )
        return self

    @field_validator("vllm")
    @classmethod
    def _ranges_in_order(cls, ranges: list[VllmRangeEntry]) -> list[VllmRangeEntry]:
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


class GpuFile(_Entry):
    gpus: dict[str, GpuEntry] = Field(min_length=1)


class QuantFile(_Entry):
    methods: dict[str, QuantEntry] = Field(min_length=1)


def validate(model: type[_M], text: str, name: str, *, packaged: bool = False) -> _M:
    """``text`` (the file ``name``) as ``model``; ProfileError naming ``FILE:LINE`` when it is
    not one. ``packaged``: a packaged file (composed by libyaml when PyYAML has it)."""
    node = compose(text, name, packaged=packaged)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ProfileError(marked(name, exc)) from exc
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
