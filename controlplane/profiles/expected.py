"""The expected change of a canary from measured profiles, and that expectation beside what it saw.

Owns pairing a canary's variants with their measured entries, the one comparison of the two
(headline at the largest concurrency both measured), the line ``validate`` and ``render`` print
(:func:`notes`) and :func:`compare`, the expectation beside the observed values for ``kubectl
canary get``. See docs/profiles.md, "Pairing with the canary".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controlplane.profiles.catalog import Catalog
from controlplane.profiles.measured import (
    Change,
    Loaded,
    expected_change,
    find,
    measured_for,
    preferred_fit,
)

if TYPE_CHECKING:
    from controlplane.spec.models import ModelCanary


@dataclass(frozen=True)
class VariantRef:
    """What a measured entry must match of one variant (and the name people know it by)."""

    name: str
    quantization: str
    gpu: str


@dataclass(frozen=True)
class Pairing:
    """A canary's two variants with their measured entries (None: not measured) and the change."""

    model: str
    stable: VariantRef
    candidate: VariantRef
    stable_entry: Loaded | None
    candidate_entry: Loaded | None
    changes: tuple[Change, ...]

    @property
    def measured(self) -> bool:
        """Both variants have an entry."""
        return self.stable_entry is not None and self.candidate_entry is not None

    @property
    def headline(self) -> Change | None:
        """The change at the largest concurrency both entries measured; None without one."""
        return max(self.changes, key=lambda c: c.concurrency, default=None)

    @property
    def in_process(self) -> bool:
        """Either entry was measured in-process (``canaryctl profile --in-process``):
        transformers' eager forward of one static batch, whose speed ranks quantizations by
        that engine's kernels, not by what the served engine (vLLM) runs."""
        return any(
            e is not None and e.entry.mode == "in-process"
            for e in (self.stable_entry, self.candidate_entry)
        )

    def sources(self) -> str:
        """``[stable entry, candidate entry]``, file names as they were read."""
        files = [e.source for e in (self.stable_entry, self.candidate_entry) if e is not None]
        return "[" + ", ".join(files) + "]"

    def line(self) -> str | None:
        """``expected from measured profiles: tokens/s +38% (bf16 1,020 -> nf4 1,410 at
        concurrency 8), TTFT p90 -12%, $/1M output tokens -28% [files]``; None when the entries
        are missing or share no sweep point (same concurrency, prompt and output length)."""
        head = self.headline
        if head is None:
            return None
        parts = [
            f"tokens/s {pct(head.tokens_per_s_ratio)} ({self.stable.name} "
            f"{tokens(head.stable_tokens_per_s)} -> {self.candidate.name} "
            f"{tokens(head.candidate_tokens_per_s)} at concurrency {head.concurrency})"
        ]
        for label, ratio in (
            ("TTFT p90", head.ttft_p90_ratio),
            ("e2e p90", head.e2e_p90_ratio),
            ("$/1M output tokens", head.cost_ratio),
        ):
            if ratio is not None:
                parts.append(f"{label} {pct(ratio)}")
        where = " (in-process, not the served engine)" if self.in_process else ""
        return f"expected from measured profiles{where}: {', '.join(parts)} {self.sources()}"


def pct(ratio: float) -> str:
    """A candidate / stable ratio as a signed change: ``+38%``."""
    return f"{(ratio - 1) * 100:+.0f}%"


def tokens(value: float) -> str:
    """Tokens/s as people read them: ``1,410``; three significant digits below 100."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def pair(
    entries: Sequence[Loaded], model: str, stable: VariantRef, candidate: VariantRef
) -> Pairing:
    """The measured entries of ``stable`` and ``candidate`` of ``model`` and their change."""
    found = [find(entries, model, v.quantization, v.gpu) for v in (stable, candidate)]
    base, cand = found
    changes = expected_change(base.entry, cand.entry) if base and cand else []
    return Pairing(model, stable, candidate, base, cand, tuple(changes))


def pair_canary(canary: ModelCanary, entries: Sequence[Loaded]) -> Pairing:
    """:func:`pair` for a validated canary."""
    spec = canary.spec
    refs = [VariantRef(v.name, v.quantization, v.gpu) for v in (spec.stable, spec.candidate)]
    return pair(entries, spec.model.name, refs[0], refs[1])


def notes(canary: ModelCanary, catalog: Catalog) -> list[str]:
    """What ``validate`` and ``render`` print for a valid canary whose two variants both have a
    measured entry beside ``catalog``: each variant's fit check, then the expected change (one
    line each, ``NAME: ...``). Empty when either variant has no entry."""
    pairing = pair_canary(canary, measured_for(catalog))
    if not pairing.measured:
        return []
    name = canary.metadata.name
    spec = canary.spec
    lines = [
        f"{name}: spec.{role}.gpu: {preferred_fit(spec.model, variant, catalog).message}"
        for role, variant in (("stable", spec.stable), ("candidate", spec.candidate))
    ]
    line = pairing.line()
    if line is None:
        line = (
            "expected from measured profiles: none (the entries share no sweep point) "
            + pairing.sources()
        )
    lines.append(f"{name}: {line}")
    return lines


# --------------------------------------------------------------------------- against the canary


@dataclass(frozen=True)
class Observation:
    """One check's latest values: the metric's name in the spec, its built-in (or None for a
    custom query) and quantile, and the candidate's and stable's values."""

    metric: str
    builtin: str | None
    quantile: float | None
    candidate: float | None
    stable: float | None


@dataclass(frozen=True)
class Comparison:
    """One quantity: the expected change (ratio) and the observed one (ratio or None, with how)."""

    quantity: str
    expected: float
    observed: float | None
    how: str


# quantity shown, the built-in that observes it, and the headline's ratio for it
_QUANTITIES: tuple[tuple[str, str | None], ...] = (
    ("tokens/s", "tokens-per-second"),
    ("TTFT p90", "ttft"),
    ("e2e p90", "e2e-latency"),
    ("inter-token p90", "inter-token-latency"),
    ("$/1M output tokens", None),
)


def _expected(change: Change, quantity: str) -> float | None:
    return {
        "tokens/s": change.tokens_per_s_ratio,
        "TTFT p90": change.ttft_p90_ratio,
        "e2e p90": change.e2e_p90_ratio,
        "inter-token p90": change.itl_p90_ratio,
        "$/1M output tokens": change.cost_ratio,
    }[quantity]


Split = tuple[float, str]
"""The candidate's share of the traffic over the stable's, and how to say it (``weight 5%``)."""


def compare(
    pairing: Pairing, observations: Sequence[Observation], split: Split | None
) -> list[Comparison]:
    """Each quantity the headline change has, beside what the canary observed of it.

    Latencies compare per request (candidate / stable of the check's own quantile). A
    tokens-per-second check is a rate that follows each variant's share of the traffic, so its
    ratio is divided by ``split`` (candidate share / stable share; 1 in shadow, where the
    candidate gets a mirror of every request); not compared when the split is unknown (None: no
    step weight between 0 and 100). Cost is never observed by the canary."""
    head = pairing.headline
    if head is None:
        return []
    rows = []
    for quantity, builtin in _QUANTITIES:
        expected = _expected(head, quantity)
        if expected is None:
            continue
        if builtin is None:
            rows.append(Comparison(quantity, expected, None, "not measured by the canary"))
            continue
        seen = next(
            (
                o
                for o in observations
                if o.builtin == builtin and o.candidate is not None and o.stable
            ),
            None,
        )
        if seen is None or seen.candidate is None or not seen.stable:
            rows.append(Comparison(quantity, expected, None, f"no {builtin} check"))
            continue
        ratio = seen.candidate / seen.stable
        what = seen.metric if seen.metric == builtin else f"{seen.metric} ({builtin})"
        if seen.quantile is not None:
            what += f" p{seen.quantile * 100:g}"
        if builtin == "tokens-per-second":
            if split is None or split[0] <= 0:
                rows.append(
                    Comparison(quantity, expected, None, f"{what}: a rate, traffic split unknown")
                )
                continue
            ratio /= split[0]
            what += f" per share of traffic ({split[1]})"
        rows.append(Comparison(quantity, expected, ratio, what))
    return rows


def sources_line(pairing: Pairing) -> str:
    """Where the expectation comes from: concurrency and files (file names only)."""
    head = pairing.headline
    where = f" at concurrency {head.concurrency}" if head is not None else ""
    files = [Path(e.source).name for e in (pairing.stable_entry, pairing.candidate_entry) if e]
    how = " in-process, not the served engine," if pairing.in_process else ""
    return f"expected: measured profiles{how}{where} [{', '.join(files)}]"
