"""Synthetic vLLM metric history: a scenario description -> OpenMetrics text.

Owns the generator behind the demo and the real-Prometheus fixtures: a :class:`Scenario` of
traffic, per-variant behaviour and changes over time, rendered with the contract's real bucket
bounds and names as deterministic expected counts (so a test knows Prometheus' exact answer).
OpenMetrics as promtool 2.42 backfills it: counters ``# TYPE x counter`` with ``x_total``
samples, contiguous families, seconds, a final ``# EOF``. See docs/analysis.md, "Testing against
a real Prometheus".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from controlplane.promql.contract import contract_for

Array = npt.NDArray[np.float64]

DAY = 86400.0
HOUR = 3600.0

LATENCY_HISTOGRAMS: tuple[tuple[str, str, str, str], ...] = (
    ("e2e", "e2e-latency", "latency_median_s", "latency_sigma"),
    ("ttft", "ttft", "ttft_median_s", "ttft_sigma"),
    ("itl", "inter-token-latency", "itl_median_s", "itl_sigma"),
)
"""``(family key, latency built-in, Variant median field, Variant log-sd field)``."""

_PARAMS = {builtin: (median, sigma) for _key, builtin, median, sigma in LATENCY_HISTOGRAMS}

FAMILIES: frozenset[str] = frozenset(
    {"e2e", "ttft", "itl", "success", "tokens", "kv", "kpi", "win", "cost"}
)


@dataclass(frozen=True)
class Variant:
    """How one variant behaves. Latencies are lognormal: ``median`` seconds and log-sd ``sigma``."""

    name: str
    latency_median_s: float = 0.15
    latency_sigma: float = 0.3
    ttft_median_s: float = 0.05
    ttft_sigma: float = 0.3
    itl_median_s: float = 0.02
    itl_sigma: float = 0.2
    error_fraction: float = 0.0
    abort_fraction: float = 0.0
    tokens_per_request: float = 200.0
    kv_cache: float = 0.3
    resolved_fraction: float = 0.7
    cost_per_hour: float = 2.0


@dataclass(frozen=True)
class Change:
    """From ``at`` seconds after the start, ``role`` ("stable" | "candidate") takes ``params``."""

    at: float
    role: str
    params: Mapping[str, float]


@dataclass(frozen=True)
class Scenario:
    """A metric history. ``weights`` and ``win_rate`` are step functions ``((at, value), ...)``."""

    start: float
    duration: float
    stable: Variant
    candidate: Variant
    namespace: str = "ml-serving"
    canary: str = "support-triage"
    step: float = 60.0
    total_rps: float = 10.0
    weights: tuple[tuple[float, float], ...] = ((0.0, 25.0),)
    win_rate: tuple[tuple[float, float], ...] = ((0.0, 0.55),)
    changes: tuple[Change, ...] = ()
    vllm_version: str | None = None
    families: frozenset[str] = FAMILIES
    noise: float = 0.0
    seed: int = 0
    times: Array = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = int(self.duration // self.step) + 1
        object.__setattr__(self, "times", self.start + self.step * np.arange(n, dtype=np.float64))

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def variant(self, role: str) -> Variant:
        return self.candidate if role == "candidate" else self.stable

    def params_at(self, role: str, at: float) -> Variant:
        """The parameters of ``role`` in effect at unix time ``at``."""
        current = self.variant(role)
        for change in sorted(self.changes, key=lambda c: c.at):
            if change.role == role and self.start + change.at <= at:
                current = _replace(current, change.params)
        return current

    def buckets(self, builtin: str) -> tuple[float, ...]:
        """The finite bucket bounds (seconds) of latency built-in ``builtin`` (``e2e-latency``,
        ``ttft``, ``inter-token-latency``) in this scenario's vLLM version."""
        return contract_for(self.vllm_version).buckets(builtin)

    def expected_quantile(self, q: float, builtin: str, role: str, at: float) -> float:
        """What ``histogram_quantile(q, ...)`` over ``role``'s ``builtin`` histogram returns at
        ``at`` (a window within one parameter regime, no noise): the lognormal in effect there
        over vLLM's buckets (:func:`expected_histogram_quantile`)."""
        median, sigma = _PARAMS[builtin]
        params = self.params_at(role, at)
        return expected_histogram_quantile(
            q, self.buckets(builtin), getattr(params, median), getattr(params, sigma)
        )

    def weight_at(self, at: float) -> float:
        return _step_value(self.weights, at - self.start)

    # -- column-wise generation -------------------------------------------------------------

    def _param(self, role: str, name: str) -> Array:
        base = float(getattr(self.variant(role), name))
        out = np.full(len(self.times), base)
        for change in sorted(self.changes, key=lambda c: c.at):
            if change.role == role and name in change.params:
                out[self.times >= self.start + change.at] = float(change.params[name])
        return out

    def _schedule(self, points: Sequence[tuple[float, float]]) -> Array:
        out = np.zeros(len(self.times))
        for at, value in sorted(points):
            out[self.times >= self.start + at] = value
        return out

    def _requests(self, role: str) -> Array:
        """Requests finished in the step ending at each sample (0 at the first sample)."""
        share = self._schedule(self.weights) / 100.0
        rps = self.total_rps * (share if role == "candidate" else 1.0 - share)
        per_step = rps * self.step
        if self.noise > 0:
            rng = np.random.default_rng(self.seed + (1 if role == "candidate" else 0))
            per_step = per_step * np.clip(
                1 + self.noise * rng.standard_normal(len(per_step)), 0, None
            )
        per_step[0] = 0.0
        return per_step

    def series(self) -> Iterator[tuple[str, str, str, dict[str, str], Array]]:
        """Every series as ``(family, type, sample name, labels, values)``, families contiguous."""
        roles = ("stable", "candidate")
        req = {r: self._requests(r) for r in roles}

        def labels(role: str, **extra: str) -> dict[str, str]:
            return {
                "namespace": self.namespace,
                "canary": self.canary,
                "variant": self.variant(role).name,
                **extra,
            }

        contract = contract_for(self.vllm_version)
        for key, builtin, median_name, sigma_name in LATENCY_HISTOGRAMS:
            if key not in self.families:
                continue
            family = contract.histogram(builtin).name
            for role in roles:
                median, sigma = self._param(role, median_name), self._param(role, sigma_name)
                for le in contract.buckets(builtin):
                    cdf = lognormal_cdf(le, median, sigma)
                    values = np.cumsum(req[role] * cdf)
                    yield family, "histogram", f"{family}_bucket", labels(role, le=_le(le)), values
                count = np.cumsum(req[role])
                yield family, "histogram", f"{family}_bucket", labels(role, le="+Inf"), count
                yield family, "histogram", f"{family}_count", labels(role), count
                mean = median * np.exp(sigma**2 / 2)
                yield (
                    family,
                    "histogram",
                    f"{family}_sum",
                    labels(role),
                    np.cumsum(req[role] * mean),
                )
        if "success" in self.families:
            family = contract.requests.removesuffix("_total")
            for role in roles:
                err = self._param(role, "error_fraction")
                abort = self._param(role, "abort_fraction")
                for reason, frac in (("stop", 1 - err - abort), ("error", err), ("abort", abort)):
                    values = np.cumsum(req[role] * frac)
                    yield (
                        family,
                        "counter",
                        f"{family}_total",
                        labels(role, finished_reason=reason),
                        values,
                    )
        if "tokens" in self.families:
            family = contract.metric("tokens-per-second").name.removesuffix("_total")
            for role in roles:
                values = np.cumsum(req[role] * self._param(role, "tokens_per_request"))
                yield family, "counter", f"{family}_total", labels(role), values
        if "kv" in self.families:
            kv = contract.metric("kv-cache-usage").name
            for role in roles:
                values = self._param(role, "kv_cache")
                yield (
                    kv,
                    "gauge",
                    kv,
                    labels(role),
                    values,
                )
        if "kpi" in self.families:
            for family, frac_name in (("ticket_resolved", "resolved_fraction"), ("ticket", None)):
                for role in roles:
                    share = self._param(role, frac_name) if frac_name else np.ones_like(req[role])
                    values = np.cumsum(req[role] * share, dtype=np.float64)
                    yield family, "counter", f"{family}_total", labels(role), values
        if "win" in self.families:
            values = self._schedule(self.win_rate)
            yield (
                "shadow_win_rate",
                "gauge",
                "shadow_win_rate",
                {
                    "namespace": self.namespace,
                    "canary": self.canary,
                },
                values,
            )
        if "cost" in self.families:
            family = "gpu_cost_dollars"
            for role in roles:
                per_step = self._param(role, "cost_per_hour") * self.step / HOUR
                per_step[0] = 0.0
                yield family, "counter", f"{family}_total", labels(role), np.cumsum(per_step)

    def openmetrics(self, first: int = 0, last: int | None = None) -> Iterator[str]:
        """OpenMetrics text (in pieces) for samples ``first..last`` (indices, inclusive)."""
        stop = len(self.times) if last is None else last + 1
        stamps = [f" {t:.0f}\n" for t in self.times[first:stop].tolist()]
        declared: set[str] = set()
        for family, kind, name, lbls, values in self.series():
            if family not in declared:
                declared.add(family)
                yield f"# TYPE {family} {kind}\n"
            prefix = name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in lbls.items()) + "} "
            yield "".join(
                [
                    prefix + repr(v) + s
                    for v, s in zip(values[first:stop].tolist(), stamps, strict=True)
                ]
            )
        yield "# EOF\n"

    def write(self, directory: Path, split: float = DAY) -> list[Path]:
        """Write OpenMetrics files, one per ``split`` seconds of history (faster to backfill)."""
        directory.mkdir(parents=True, exist_ok=True)
        per_file = max(1, int(split // self.step))
        paths: list[Path] = []
        for number, first in enumerate(range(0, len(self.times), per_file)):
            last = min(first + per_file, len(self.times)) - 1
            path = directory / f"history-{number:04d}.om"
            with path.open("w") as out:
                out.writelines(self.openmetrics(first, last))
            paths.append(path)
        return paths


def _replace(variant: Variant, params: Mapping[str, float]) -> Variant:
    """``variant`` with some numeric parameters changed (names checked by the dataclass)."""
    changed: Variant = dataclasses.replace(variant, **params)  # type: ignore[arg-type]
    return changed


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _le(bound: float) -> str:
    return repr(float(bound))


def _step_value(points: Sequence[tuple[float, float]], offset: float) -> float:
    value = 0.0
    for at, v in sorted(points):
        if at <= offset:
            value = v
    return value


def lognormal_cdf(x: float, median: Array | float, sigma: Array | float) -> Array:
    """P(X <= x) for a lognormal with the given median and log-sd."""
    return np.asarray(ndtr((math.log(x) - np.log(median)) / sigma), dtype=np.float64)


def lognormal_quantile(q: float, median: float, sigma: float) -> float:
    """The true ``q`` quantile of the lognormal."""
    from scipy.special import ndtri

    return float(median * math.exp(sigma * float(ndtri(q))))


def expected_histogram_quantile(
    q: float, buckets: Sequence[float], median: float, sigma: float
) -> float:
    """What Prometheus' ``histogram_quantile(q, ...)`` returns over ``buckets`` (finite upper
    bounds, seconds) for this lognormal's expected counts.

    Same algorithm as Prometheus' ``bucketQuantile`` (``promql/quantile.go``, v2.42.0): find the
    first bucket whose cumulative count reaches rank ``q * count`` and interpolate linearly inside
    it; the first bucket starts at 0, so a quantile in it reads ``b_1 * q / P(X <= b_1)``, never
    less than ``q * b_1``; the +Inf bucket returns the last finite bound.
    For a scenario's histogram use :meth:`Scenario.expected_quantile` (vLLM's buckets).
    """
    bounds = list(buckets)
    cdf = [float(lognormal_cdf(b, median, sigma)) for b in bounds] + [1.0]
    rank = q * 1.0
    for i, c in enumerate(cdf):
        if c >= rank:
            if i == len(bounds):
                return bounds[-1]
            lo, lo_c = (0.0, 0.0) if i == 0 else (bounds[i - 1], cdf[i - 1])
            return lo + (bounds[i] - lo) * (rank - lo_c) / (c - lo_c)
    return bounds[-1]


def history_end(now: float, margin: float = 4 * HOUR) -> float:
    """A whole hour at least ``margin`` before ``now``: backfills stay out of the head block."""
    return math.floor((now - margin) / HOUR) * HOUR
