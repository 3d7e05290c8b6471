"""The shape of a measured profile entry (``profiles/measured/<name>.yaml``), as pydantic models.

Owns what an entry holds: what was measured, where, when, with which engine and version, and the
raw figures of every sweep point (camelCase keys, unknown fields refused). Read and written by
:mod:`controlplane.profiles.measured` (which imports it when it parses or builds an entry, so a
command that only looks entries up starts without pydantic), ``canaryctl profile`` and
the sweeps. Pure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Mode = Literal["endpoint", "in-process"]


class _Entry(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Percentiles(_Entry):
    """p50 / p90 / p99 of one latency, in milliseconds."""

    p50: float = Field(ge=0)
    p90: float = Field(ge=0)
    p99: float = Field(ge=0)


class SweepPoint(_Entry):
    """The raw figures of one point of the sweep (one concurrency, one prompt/output length)."""

    concurrency: int = Field(ge=1)
    input_len: int = Field(ge=1)
    output_len: int = Field(ge=1)
    requests: int = Field(ge=0)
    errors: int = Field(default=0, ge=0)
    output_tokens: int = Field(ge=0)
    duration_s: float = Field(gt=0)
    ttft_ms: Percentiles
    itl_ms: Percentiles | None = None
    e2e_ms: Percentiles = Field(alias="e2eMs")
    output_tokens_per_s: float = Field(ge=0)
    requests_per_s: float = Field(ge=0)
    cost_per_million_output_tokens_usd: float | None = None
    peak_memory_gib: float | None = None
    kv_cache_usage_max: float | None = None
    gpu_utilization_max: float | None = None


class MemoryFigures(_Entry):
    """Memory of the whole model as measured, beside what ``fit.py`` predicts for it."""

    weights_gib: float = Field(gt=0)
    predicted_weights_gib: float | None = None
    peak_gib: float | None = None
    how: str = Field(min_length=1)


class EngineInfo(_Entry):
    """What served or ran the model, with versions."""

    name: str = Field(min_length=1)
    version: str | None = None
    libraries: dict[str, str] = Field(default_factory=dict)


class MeasuredProfile(_Entry):
    """One measured profile entry (``profiles/measured/<name>.yaml``)."""

    kind: Literal["MeasuredProfile"] = "MeasuredProfile"
    model: str = Field(min_length=1)
    architecture: str | None = None
    quantization: str = Field(min_length=1)
    gpu: str | None = None
    device: str = Field(min_length=1)
    mode: Mode
    endpoint: str | None = None
    measured_at: str = Field(min_length=1)
    engine: EngineInfo
    command: str = Field(min_length=1)
    layers_run: int | None = None
    layers_total: int | None = None
    fixed_output: str = Field(min_length=1)
    ttft_target_ms: float | None = None
    requests_per_s_at_target: float | None = None
    memory: MemoryFigures | None = None
    points: list[SweepPoint] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)

    def point(self, concurrency: int) -> SweepPoint | None:
        """The first point measured at ``concurrency``, or None."""
        return next((p for p in self.points if p.concurrency == concurrency), None)
