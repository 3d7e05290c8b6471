"""The metric contract with vLLM: what each built-in metric reads, per vLLM version.

Owns, per vLLM version whose source was read (0.24.0, pinned by KServe v0.20.0; 0.27.1; 0.33.0),
each built-in's metric name, type, labels and histogram buckets, and which ``finished_reason``
values are failures. Nothing else spells a ``vllm:`` name. A version is matched on
``major.minor``; an unread one is refused (:class:`UnknownEngineVersion`), never guessed. Pure.
Where each version was read: docs/metrics.md, "The vLLM metric contract".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from controlplane.errors import ControlPlaneError

MetricType = Literal["histogram", "counter", "gauge"]

DEFAULT_VLLM_VERSION = "0.24.0"
"""The vLLM that KServe v0.20.0's runtime image installs (``python/kserve/pyproject.toml``)."""

ENGINE_LABELS: tuple[str, ...] = ("model_name", "engine")
"""The label names vLLM puts on every metric (``labelnames`` in ``PrometheusStatLogger``)."""

LATENCY_BUILTINS: tuple[str, ...] = ("e2e-latency", "ttft", "inter-token-latency")
"""The built-ins read from a latency histogram (``histogram_quantile`` over its buckets)."""

REQUESTS = "vllm:request_success_total"
"""Requests finished, one series per ``finished_reason`` (a counter; the ``_total`` sample)."""

WAITING = "vllm:num_requests_waiting"
"""Requests waiting for the engine's scheduler, per server (a gauge, the same source)."""

RUNNING = "vllm:num_requests_running"
"""Requests in the engine's running batch, per server (a gauge: ``len(self.running)`` of
``Scheduler.make_stats``, exported in ``vllm/v1/metrics/loggers.py``; 0.24.0 to 0.33.0)."""

# Bucket upper bounds (seconds), identical in 0.24.0 (literals in vllm/v1/metrics/loggers.py) and
# 0.33.0 (vllm/v1/metrics/buckets.py). +Inf is implied, as in every Prometheus histogram.
_REQUEST_LATENCY: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
_TIME_TO_FIRST_TOKEN: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
_INTER_TOKEN_LATENCY: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip

_FINISHED_REASONS: tuple[str, ...] = ("stop", "length", "abort", "error", "repetition")
"""``FINISH_REASON_STRINGS`` in ``vllm/v1/engine/__init__.py`` (0.24.0 and 0.33.0)."""

_ERROR_REASONS: tuple[str, ...] = ("error",)
"""The ``finished_reason`` values the ``error-rate`` built-in counts as failed requests: the one
definition (:mod:`controlplane.promql.http_errors` takes its engine source from here).

``error`` only. ``abort`` is not a failure: vLLM v1 records no finished-request stats for a
client disconnect at all (``vllm/v1/engine/output_processor.py``, ``abort_requests``; vLLM 0.24.0
and 0.33.0), so an ``abort`` finish is engine-initiated housekeeping, not an answer the client
saw fail; ``stop``, ``length`` and ``repetition`` are normal ends. See docs/analysis.md, "Where
errors come from"."""


class UnknownEngineVersion(ControlPlaneError, ValueError):
    """A vLLM version with no metric contract (its source was not read)."""


@dataclass(frozen=True)
class BuiltinMetric:
    """What one built-in reads: the metric ``name`` as queried (a counter's ``_total`` sample,
    a histogram's base name), its ``type``, its ``labels`` (vLLM's, beyond the
    ``namespace``/``canary``/``variant`` that the scrape adds) and, for a histogram, the finite
    bucket upper bounds ``buckets`` and vLLM's bucket family (the key of
    ``--custom-histogram-buckets`` where the version has that option)."""

    builtin: str
    name: str
    type: MetricType
    labels: tuple[str, ...] = ENGINE_LABELS
    buckets: tuple[float, ...] = ()
    bucket_family: str | None = None

    @property
    def series(self) -> str:
        """The series a query selects: ``<name>_bucket`` for a histogram, else ``name``."""
        return f"{self.name}_bucket" if self.type == "histogram" else self.name


@dataclass(frozen=True)
class MetricContract:
    """The metrics of one vLLM version (``version`` is ``major.minor``; ``read_from`` is the
    release whose wheel was read)."""

    version: str
    read_from: str
    metrics: Mapping[str, BuiltinMetric]
    finished_reasons: tuple[str, ...] = _FINISHED_REASONS
    error_reasons: tuple[str, ...] = _ERROR_REASONS
    custom_buckets_option: str | None = None
    requests: str = field(default=REQUESTS)

    def metric(self, builtin: str) -> BuiltinMetric:
        """The metric behind ``builtin`` (KeyError for a name that is not a built-in)."""
        return self.metrics[builtin]

    def histogram(self, builtin: str) -> BuiltinMetric:
        """The latency histogram behind ``builtin`` (KeyError when it is not one)."""
        found = self.metrics[builtin]
        if found.type != "histogram":
            raise KeyError(f"{builtin!r} is not a histogram built-in")
        return found

    def buckets(self, builtin: str) -> tuple[float, ...]:
        """The finite bucket upper bounds (seconds) of the latency built-in ``builtin``."""
        return self.histogram(builtin).buckets

    def bucket_series(self) -> dict[str, str]:
        """``{latency built-in: its _bucket series}``."""
        return {b: self.histogram(b).series for b in LATENCY_BUILTINS}


def _metrics() -> dict[str, BuiltinMetric]:
    histograms = (
        ("e2e-latency", "vllm:e2e_request_latency_seconds", _REQUEST_LATENCY, "request_latency"),
        ("ttft", "vllm:time_to_first_token_seconds", _TIME_TO_FIRST_TOKEN, "time_to_first_token"),
        (
            "inter-token-latency",
            "vllm:inter_token_latency_seconds",
            _INTER_TOKEN_LATENCY,
            "inter_token_latency",
        ),
    )
    found = {
        builtin: BuiltinMetric(builtin, name, "histogram", buckets=buckets, bucket_family=family)
        for builtin, name, buckets, family in histograms
    }
    found["error-rate"] = BuiltinMetric(
        "error-rate", REQUESTS, "counter", (*ENGINE_LABELS, "finished_reason")
    )
    found["request-rate"] = BuiltinMetric(
        "request-rate", REQUESTS, "counter", (*ENGINE_LABELS, "finished_reason")
    )
    found["tokens-per-second"] = BuiltinMetric(
        "tokens-per-second", "vllm:generation_tokens_total", "counter"
    )
    found["kv-cache-usage"] = BuiltinMetric("kv-cache-usage", "vllm:kv_cache_usage_perc", "gauge")
    return found


CONTRACTS: Mapping[str, MetricContract] = {
    "0.24": MetricContract("0.24", "0.24.0", _metrics()),
    "0.27": MetricContract("0.27", "0.27.1", _metrics()),
    "0.33": MetricContract(
        "0.33", "0.33.0", _metrics(), custom_buckets_option="--custom-histogram-buckets"
    ),
}
"""Every contract, by ``major.minor`` of the vLLM release it was read from."""

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[.+-].*)?$")


def version_key(vllm_version: str) -> str:
    """``major.minor`` of a vLLM version string (``v0.24.1`` -> ``0.24``).

    Raises :class:`UnknownEngineVersion` for a string that is not a version."""
    match = _VERSION.match(vllm_version.strip())
    if match is None:
        raise UnknownEngineVersion(f"{vllm_version!r} is not a vLLM version (e.g. 0.24.0)")
    return f"{int(match.group(1))}.{int(match.group(2))}"


def contract_for(vllm_version: str | None = None) -> MetricContract:
    """The metric contract of ``vllm_version`` (None: :data:`DEFAULT_VLLM_VERSION`).

    Raises :class:`UnknownEngineVersion` (a ``ValueError`` whose message names the known
    versions) for a version whose metrics were not read from its source."""
    key = version_key(DEFAULT_VLLM_VERSION if vllm_version is None else vllm_version)
    found = CONTRACTS.get(key)
    if found is None:
        known = ", ".join(sorted(CONTRACTS))
        raise UnknownEngineVersion(
            f"no metric contract for vLLM {vllm_version}: known versions are {known}"
        )
    return found


@dataclass(frozen=True)
class ErrorTerms:
    """The ``error-rate`` built-in's two unaggregated range terms: ``failed`` requests and
    ``total`` (all) requests; its value is ``sum(failed) / sum(total)``."""

    failed: str
    total: str


def error_terms(
    contract: MetricContract,
    sel: str,
    window: str,
    *,
    fn: Literal["rate", "increase"] = "rate",
    modifier: str = "",
) -> ErrorTerms:
    """Where the ``error-rate`` built-in's errors come from, for label matchers ``sel`` over a
    ``window`` (a Prometheus duration, ``5m``), with an optional ``modifier`` after the range
    (`` @ 1700000000.000``).

    The engine's own terms: ``vllm:request_success_total`` with a ``finished_reason`` of
    :attr:`MetricContract.error_reasons` over all its series. The router's HTTP source is added
    by :func:`controlplane.promql.http_errors.error_terms`, which every canary query goes
    through; this engine-only form is the builder's answer when no router is given."""
    reasons = "|".join(contract.error_reasons)
    name = contract.metric("error-rate").name
    return ErrorTerms(
        failed=f'{fn}({name}{{{sel},finished_reason=~"{reasons}"}}[{window}]{modifier})',
        total=f"{fn}({name}{{{sel}}}[{window}]{modifier})",
    )
