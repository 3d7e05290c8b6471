"""Measured profiles: what ``canaryctl profile`` writes, and how the checks prefer it.

Owns the shape of a measured entry (``profiles/measured/<name>.yaml``, beside the catalogue), the
arithmetic over its raw samples, reading and writing entries, finding the one for a variant,
:func:`preferred_fit` (the fit check with measured weight memory when there is some) and
:func:`expected_change`. Pure but for reading those files. See docs/profiles.md, "Measured
profiles: ``canaryctl profile``".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from controlplane.errors import ProfileError
from controlplane.profiles.catalog import PACKAGE_DATA, Catalog
from controlplane.profiles.fit import FitReport, memory_fit

if TYPE_CHECKING:  # the models: imported where an entry is parsed or built
    from controlplane.profiles.measured_models import (
        MeasuredProfile,
        Percentiles,
        SweepPoint,
    )
    from controlplane.spec.models import ModelSpec, VariantSpec

MEASURED_DIR = "measured"
KIND = "MeasuredProfile"


Key = tuple[str, str, str | None, str]
"""What :func:`find` compares of an entry: model, quantization, GPU, ``measuredAt``."""


class Loaded:
    """An entry and the file it was read from.

    A packaged entry (:func:`_packaged`) is checked by its model when it is first read
    (:attr:`entry`), and :func:`find` compares only :attr:`key`, read from its YAML as it is:
    looking for the entry of a variant that has none (what ``canaryctl validate`` does for every
    variant) reads no model and imports no pydantic. The packaged entries are the
    package's own; the tests check each with the model."""

    __slots__ = ("_entry", "_read", "key", "source")

    def __init__(
        self,
        entry: MeasuredProfile | None,
        source: str,
        *,
        key: Key | None = None,
        read: Callable[[], MeasuredProfile] | None = None,
    ) -> None:
        self._entry = entry
        self._read = read
        self.source = source
        if key is None:
            assert entry is not None, "an entry, or its key and a reader"
            key = (entry.model, entry.quantization, entry.gpu, entry.measured_at)
        self.key = key

    @property
    def entry(self) -> MeasuredProfile:
        """The entry, checked by its model (on the first read, for a packaged one)."""
        if self._entry is None:
            assert self._read is not None
            self._entry = self._read()
        return self._entry

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Loaded):
            return NotImplemented
        return (self.entry, self.source) == (other.entry, other.source)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Loaded(entry={self.entry!r}, source={self.source!r})"


# --------------------------------------------------------------------------- arithmetic


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between order statistics; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def percentiles_ms(seconds: Sequence[float]) -> Percentiles:
    """p50/p90/p99 of latencies given in seconds, in milliseconds."""
    from controlplane.profiles.measured_models import Percentiles

    return Percentiles(
        p50=round(quantile(seconds, 0.5) * 1000, 3),
        p90=round(quantile(seconds, 0.9) * 1000, 3),
        p99=round(quantile(seconds, 0.99) * 1000, 3),
    )


def cost_per_million_tokens(tokens_per_s: float, price_per_hour_usd: float) -> float | None:
    """USD per million output tokens at ``tokens_per_s`` on a GPU of ``price_per_hour_usd``."""
    if tokens_per_s <= 0:
        return None
    return price_per_hour_usd / 3600.0 / tokens_per_s * 1e6


@dataclass(frozen=True)
class RequestSample:
    """One request as the client saw it (seconds from its start)."""

    ttft_s: float | None
    e2e_s: float
    output_tokens: int
    gaps_s: tuple[float, ...] = ()
    error: str | None = None


def summarize(
    samples: Sequence[RequestSample],
    *,
    concurrency: int,
    input_len: int,
    output_len: int,
    duration_s: float,
    price_per_hour_usd: float | None = None,
    peak_memory_gib: float | None = None,
    kv_cache_usage_max: float | None = None,
    gpu_utilization_max: float | None = None,
) -> SweepPoint:
    """One sweep point from its raw request samples (pure)."""
    ok = [s for s in samples if s.error is None]
    tokens = sum(s.output_tokens for s in ok)
    duration = max(duration_s, 1e-9)
    tps = tokens / duration
    gaps = [g for s in ok for g in s.gaps_s]
    cost = None
    if price_per_hour_usd is not None:
        cost = cost_per_million_tokens(tps, price_per_hour_usd)
    from controlplane.profiles.measured_models import SweepPoint

    return SweepPoint(
        concurrency=concurrency,
        input_len=input_len,
        output_len=output_len,
        requests=len(ok),
        errors=len(samples) - len(ok),
        output_tokens=tokens,
        duration_s=round(duration, 6),
        ttft_ms=percentiles_ms([s.ttft_s for s in ok if s.ttft_s is not None]),
        itl_ms=percentiles_ms(gaps) if gaps else None,
        e2e_ms=percentiles_ms([s.e2e_s for s in ok]),
        output_tokens_per_s=round(tps, 3),
        requests_per_s=round(len(ok) / duration, 4),
        cost_per_million_output_tokens_usd=None if cost is None else round(cost, 4),
        peak_memory_gib=peak_memory_gib,
        kv_cache_usage_max=kv_cache_usage_max,
        gpu_utilization_max=gpu_utilization_max,
    )


def requests_per_s_at(points: Sequence[SweepPoint], ttft_target_ms: float) -> float | None:
    """The most requests/s among points whose p90 TTFT meets ``ttft_target_ms``; None if none."""
    meeting = [p.requests_per_s for p in points if p.requests and p.ttft_ms.p90 <= ttft_target_ms]
    return max(meeting) if meeting else None


# --------------------------------------------------------------------------- files


def dump(entry: MeasuredProfile) -> str:
    """``entry`` as YAML (camelCase keys, None left out)."""
    data = entry.model_dump(by_alias=True, exclude_none=True, mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def parse(text: str, name: str, *, packaged: bool = False) -> MeasuredProfile:
    """An entry from YAML text; ProfileError naming ``name:LINE`` when malformed. ``packaged``:
    one of the packaged entries (parsed by libyaml when PyYAML has it, as the catalogue is)."""
    from controlplane.profiles.catalog_schema import validate
    from controlplane.profiles.measured_models import MeasuredProfile

    return validate(MeasuredProfile, text, name, packaged=packaged)


def load(path: str | Path) -> MeasuredProfile:
    """Read one entry. ProfileError (``FILE:LINE: ...``) when unreadable or malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{p}: cannot read measured profile: {exc}") from exc
    return parse(text, str(p))


def load_dir(path: str | Path) -> tuple[Loaded, ...]:
    """Every ``*.yaml`` entry of a directory, in name order (none when it does not exist)."""
    p = Path(path)
    if not p.is_dir():
        return ()
    files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
    return tuple(Loaded(load(f), str(f)) for f in files)


def measured_for(catalog: Catalog) -> tuple[Loaded, ...]:
    """The measured entries beside ``catalog``: ``<its directory>/measured/*.yaml``."""
    if catalog.gpus_source.endswith("(packaged)"):
        return _packaged()
    return load_dir(Path(catalog.gpus_source).parent / MEASURED_DIR)


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[Loaded, ...]:
    base = PACKAGE_DATA / MEASURED_DIR
    if not base.is_dir():
        return ()
    found = []
    for item in sorted(base.iterdir(), key=lambda i: i.name):
        if item.name.endswith((".yaml", ".yml")):
            name = f"{MEASURED_DIR}/{item.name} (packaged)"
            text = item.read_text(encoding="utf-8")
            found.append(_pending(text, name))
    return tuple(found)


def _pending(text: str, name: str) -> Loaded:
    """A packaged entry whose model is read when first needed (see :class:`Loaded`); one whose
    key cannot be read as it is is parsed at once (its model says what is wrong)."""
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    fields = ("model", "quantization", "gpu", "measuredAt")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(f), str) or (f == "gpu" and data.get(f) is None) for f in fields
    ):
        return Loaded(parse(text, name, packaged=True), name)
    key: Key = (data["model"], data["quantization"], data.get("gpu"), data["measuredAt"])
    return Loaded(None, name, key=key, read=lambda: parse(text, name, packaged=True))


def find(entries: Sequence[Loaded], model: str, quantization: str, gpu: str) -> Loaded | None:
    """The newest entry measured for ``model`` in ``quantization`` on ``gpu``, or None."""
    matching = [e for e in entries if e.key[:3] == (model, quantization, gpu)]
    return max(matching, key=lambda e: e.key[3], default=None)


# --------------------------------------------------------------------------- the checks


def preferred_fit(model: ModelSpec, variant: VariantSpec, catalog: Catalog) -> FitReport:
    """The memory-fit check, with the measured weight memory when an entry beside ``catalog``
    matches (``model.name``, the variant's quantization and GPU) and has one; else the cited
    arithmetic. Raises ProfileError as :func:`memory_fit` does, and for a malformed entry."""
    found = find(measured_for(catalog), model.name, variant.quantization, variant.gpu)
    memory = None if found is None else found.entry.memory
    if found is None or memory is None:
        return memory_fit(model, variant, catalog)
    entry = found.entry
    return memory_fit(
        model,
        variant,
        catalog,
        measured_weights_gib=memory.weights_gib,
        measured_from=f"{found.source}, {entry.measured_at}, {entry.engine.name}",
    )


@dataclass(frozen=True)
class Change:
    """Candidate against stable at one concurrency (ratios: candidate / stable)."""

    concurrency: int
    tokens_per_s_ratio: float
    ttft_p50_ratio: float
    cost_ratio: float | None
    ttft_p90_ratio: float | None = None
    e2e_p90_ratio: float | None = None
    itl_p90_ratio: float | None = None
    stable_tokens_per_s: float = 0.0
    candidate_tokens_per_s: float = 0.0

    def describe(self) -> str:
        parts = [
            f"at concurrency {self.concurrency}: tokens/s {_pct(self.tokens_per_s_ratio)}",
            f"TTFT p50 {_pct(self.ttft_p50_ratio)}",
        ]
        if self.ttft_p90_ratio is not None:
            parts.append(f"TTFT p90 {_pct(self.ttft_p90_ratio)}")
        if self.e2e_p90_ratio is not None:
            parts.append(f"e2e p90 {_pct(self.e2e_p90_ratio)}")
        if self.cost_ratio is not None:
            parts.append(f"$/1M output tokens {_pct(self.cost_ratio)}")
        return ", ".join(parts)


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f}%"


def expected_change(stable: MeasuredProfile, candidate: MeasuredProfile) -> list[Change]:
    """Candidate against stable at every concurrency both entries measured (same lengths)."""
    changes = []
    for cand in candidate.points:
        base = next(
            (
                p
                for p in stable.points
                if (p.concurrency, p.input_len, p.output_len)
                == (cand.concurrency, cand.input_len, cand.output_len)
            ),
            None,
        )
        if base is None or base.output_tokens_per_s <= 0 or base.ttft_ms.p50 <= 0:
            continue
        cost = None
        a, b = cand.cost_per_million_output_tokens_usd, base.cost_per_million_output_tokens_usd
        if a is not None and b:
            cost = a / b
        changes.append(
            Change(
                concurrency=cand.concurrency,
                tokens_per_s_ratio=cand.output_tokens_per_s / base.output_tokens_per_s,
                ttft_p50_ratio=cand.ttft_ms.p50 / base.ttft_ms.p50,
                cost_ratio=cost,
                ttft_p90_ratio=_ratio(cand.ttft_ms.p90, base.ttft_ms.p90),
                e2e_p90_ratio=_ratio(cand.e2e_ms.p90, base.e2e_ms.p90),
                itl_p90_ratio=(
                    _ratio(cand.itl_ms.p90, base.itl_ms.p90)
                    if cand.itl_ms is not None and base.itl_ms is not None
                    else None
                ),
                stable_tokens_per_s=base.output_tokens_per_s,
                candidate_tokens_per_s=cand.output_tokens_per_s,
            )
        )
    return changes


def _ratio(candidate: float, stable: float) -> float | None:
    return candidate / stable if stable > 0 else None
