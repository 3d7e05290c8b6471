"""Resolution-aware validation: a latency threshold that vLLM's histogram cannot resolve.

Owns the rule that an absolute latency threshold must lie within the engine version's finite
bucket bounds (refused outside, a warning inside a coarse bucket). Pure; called by
:func:`controlplane.validation.validate`. The derivation, from Prometheus' ``bucketQuantile``:
docs/analysis.md, "Histogram resolution".
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from controlplane.errors import Problem
from controlplane.promql.contract import (
    LATENCY_BUILTINS,
    MetricContract,
    UnknownEngineVersion,
    contract_for,
)
from controlplane.promql.queries import all_checks
from controlplane.spec.units import Quantity, Unit, display_value

if TYPE_CHECKING:
    from controlplane.spec.models import CheckSpec, MetricSpec, ModelCanary

COARSE_ERROR = 0.25
"""A latency threshold inside a bucket is coarse when a reading can be more than this fraction of
the threshold off: vLLM's finest buckets (bounds 1.2x-1.33x apart) stay within it but for
thresholds just above a bound, its coarse ones (2x-5x apart: TTFT 100ms-250ms, 1s-2.5s; e2e
2.5s-5s) never do."""

_ALTERNATIVES = {
    "e2e-latency": "the ttft metric (its buckets start at {ttft}) or a custom query",
    "ttft": "a custom query",
    "inter-token-latency": "a custom query",
}


def quantile_floor(q: float, buckets: tuple[float, ...]) -> float:
    """The smallest value ``histogram_quantile(q, ...)`` can return over ``buckets`` (positive
    bounds, some observations): ``q * b_1``, reached when every request is in the first bucket."""
    return q * buckets[0]


def resolvable(threshold: float, buckets: tuple[float, ...]) -> bool:
    """Whether an absolute latency threshold (seconds) is within ``[b_1, b_n)``."""
    return buckets[0] <= threshold < buckets[-1]


def _s(value: float) -> str:
    return display_value(value, Unit.SECONDS)


def _bounds(buckets: tuple[float, ...]) -> str:
    shown = ", ".join(f"{b:g}" for b in buckets[:6])
    return f"{shown}, ... {buckets[-1]:g}" if len(buckets) > 6 else shown


def _problem(
    contract: MetricContract,
    path: str,
    name: str,
    builtin: str,
    quantile: float,
    side: str,
    threshold: Quantity,
) -> Problem:
    hist = contract.histogram(builtin)
    buckets = hist.buckets
    p = f"p{quantile * 100:g}"
    where = (
        f"metric {name!r} ({builtin} {p}) reads {hist.name} "
        f"(vLLM {contract.version} buckets, seconds: {_bounds(buckets)})"
    )
    if threshold.value < buckets[0]:
        floor = quantile_floor(quantile, buckets)
        why = (
            f"{threshold} is below its first bucket bound {_s(buckets[0])}: histogram_quantile "
            f"interpolates from 0 inside that bucket, so a {p} under {_s(buckets[0])} reads "
            f"anywhere from {_s(floor)} ({quantile:g} x {_s(buckets[0])}) to {_s(buckets[0])}"
        )
        if side == "above" and threshold.value < floor:
            why += f": 'above {threshold}' breaches at every evaluation"
        alternatives = _ALTERNATIVES[builtin].format(ttft=_s(contract.buckets("ttft")[0]))
        fix = f"use a threshold of at least {_s(buckets[0])}, {alternatives}"
        if contract.custom_buckets_option is not None:
            fix += (
                f", or finer buckets with vLLM's {contract.custom_buckets_option} "
                f"(family {hist.bucket_family}) and a custom query"
            )
    else:
        why = (
            f"{threshold} is at or above its last finite bucket bound {_s(buckets[-1])}: "
            f"histogram_quantile never reports more than {_s(buckets[-1])}"
        )
        fix = f"use a threshold below {_s(buckets[-1])} or a custom query"
    return Problem(f"{path}.{side}", f"{where}: {why}; {fix}")


def _absolute_latency(canary: ModelCanary, check: CheckSpec) -> tuple[MetricSpec, str] | None:
    """The metric of ``check`` and its latency built-in when its thresholds are absolute
    latencies read from a histogram (not ``compare: baseline``); None otherwise."""
    metric = canary.metric(check.metric)
    if metric is None or metric.builtin not in LATENCY_BUILTINS or check.compare == "baseline":
        return None
    return metric, str(metric.builtin)


def check_problems(
    canary: ModelCanary, check: CheckSpec, path: str, contract: MetricContract
) -> list[Problem]:
    """The thresholds of ``check`` that its latency histogram cannot resolve."""
    found_latency = _absolute_latency(canary, check)
    if found_latency is None:
        return []
    metric, builtin = found_latency
    quantile = metric.quantile_or_default
    buckets = contract.buckets(builtin)
    found: list[Problem] = []
    for side, threshold in (("above", check.above), ("below", check.below)):
        if threshold is None or threshold.unit is Unit.RATIO:
            continue  # a unit mismatch is reported by the spec's own rules
        # A bare number (refused by the spec's rules unless 0) is read as seconds, as the
        # evaluator would read it: the rule holds whatever else is reported.
        if not resolvable(threshold.value, buckets):
            found.append(_problem(contract, path, metric.name, builtin, quantile, side, threshold))
    return found


def problems(canary: ModelCanary, vllm_version: str | None = None) -> list[Problem]:
    """Every latency threshold of ``canary`` that the histograms of ``vllm_version`` (None: the
    KServe-pinned version; spec validation passes
    :func:`controlplane.serving.versions.vllm_version`) cannot resolve, with the field path of
    the threshold. A version without a metric contract is a problem at each built-in metric
    (``spec.analysis.metrics[i].builtin``): its queries cannot be built."""
    try:
        contract = contract_for(vllm_version)
    except UnknownEngineVersion as exc:
        return [
            Problem(
                f"spec.analysis.metrics[{i}].builtin",
                f"{exc}: the built-in {metric.builtin!r} reads vLLM's metrics, whose names and "
                "buckets were read for those versions only; set spec.model.vllmVersion to one "
                "of them if the runtime's metrics match, or use a custom query",
            )
            for i, metric in enumerate(canary.spec.analysis.metrics)
            if metric.builtin is not None
        ]
    found: list[Problem] = []
    for key, check in all_checks(canary):
        found.extend(check_problems(canary, check, f"spec.{key}", contract))
    return found


def coarse_bucket(threshold: float, buckets: tuple[float, ...]) -> tuple[float, float] | None:
    """The bucket ``(lo, hi)`` that ``threshold`` (seconds) lies strictly inside when
    ``histogram_quantile`` may read it more than :data:`COARSE_ERROR` of the threshold off
    (``max(threshold - lo, hi - threshold)``); None on a bound, outside ``[b_1, b_n)`` (an
    error, not a warning) or inside a fine bucket."""
    if not resolvable(threshold, buckets):
        return None
    for lo, hi in pairwise(buckets):
        if lo < threshold < hi:
            if max(threshold - lo, hi - threshold) > COARSE_ERROR * threshold:
                return lo, hi
            return None
    return None


def _edge(value: float) -> str:
    """``0.1`` -> ``100ms``, ``1.5`` -> ``1.5s``, ``0.0375`` -> ``37.5ms`` (bucket bounds)."""
    return f"{value * 1000:.4g}ms" if value < 1 else f"{value:.4g}s"


def check_warnings(
    canary: ModelCanary, check: CheckSpec, path: str, contract: MetricContract
) -> list[Problem]:
    """The thresholds of ``check`` that lie inside a coarse bucket of its latency histogram."""
    found_latency = _absolute_latency(canary, check)
    if found_latency is None:
        return []
    metric, builtin = found_latency
    quantile = metric.quantile_or_default
    p = f"p{quantile * 100:g}"
    found: list[Problem] = []
    for side, threshold in (("above", check.above), ("below", check.below)):
        if threshold is None or threshold.unit is Unit.RATIO:
            continue
        bucket = coarse_bucket(threshold.value, contract.buckets(builtin))
        if bucket is None:
            continue
        lo, hi = bucket
        off = max(threshold.value - lo, hi - threshold.value)
        found.append(
            Problem(
                f"{path}.{side}",
                f"{threshold} lies in {builtin}'s bucket {_edge(lo)}–{_edge(hi)}; "
                "histogram_quantile interpolates linearly inside it, so a true "
                f"{p} anywhere in that bucket can read as anything from {_edge(lo)} to "
                f"{_edge(hi)} (up to {_edge(off)} off); a bound on a bucket edge "
                f"({_edge(lo)} or {_edge(hi)}) is read exactly",
            )
        )
    return found


def warnings(canary: ModelCanary, vllm_version: str | None = None) -> list[Problem]:
    """Every latency threshold of ``canary`` inside a coarse bucket of the histograms of
    ``vllm_version`` (None: the KServe-pinned version), with its field path: warnings, not
    problems (the canary is valid). None for a version without a metric contract (that is a
    problem of :func:`problems`)."""
    try:
        contract = contract_for(vllm_version)
    except UnknownEngineVersion:
        return []
    found: list[Problem] = []
    for key, check in all_checks(canary):
        found.extend(check_warnings(canary, check, f"spec.{key}", contract))
    return found
