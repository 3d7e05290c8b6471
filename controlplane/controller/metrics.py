"""The controller's Prometheus metrics (``prometheus_client``), served on ``/metrics``.

Owns :class:`ControllerMetrics`: the runner's and the per-canary gauges (read at scrape time) and
the event counters, each incremented once. No label carries a URL (``/metrics`` is served without
authentication). docs/metrics.md lists every metric.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from controlplane.controller.reconcile import Key
from controlplane.controller.runner import Stats
from controlplane.errors import SpecError
from controlplane.rollout import events
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import time_value
from controlplane.status.document import CapacityRecord

PHASES: tuple[str, ...] = (
    "pending",
    "shadow",
    "progressing",
    "holding",
    "paused",
    "throttled",
    "promoted",
    "rolled_back",
    "invalid",
)
VERDICTS: tuple[str, ...] = ("pass", "breach", "inconclusive")
SOURCES: tuple[str, ...] = ("default", "spec", "none")
"""``source`` of ``canary_controller_provider_errors_total``: the controller's ``--prometheus``
(``default``), a URL of a canary's ``spec.analysis.prometheus`` other than it (``spec``), or no
URL at all (``none``)."""
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    3 * 3600.0,
    6 * 3600.0,
    12 * 3600.0,
    86400.0,
    2 * 86400.0,
    3 * 86400.0,
    7 * 86400.0,
    14 * 86400.0,
    30 * 86400.0,
)
REMEMBERED_EVENTS = 256
"""Events remembered per canary to refuse counting one twice (more than the history holds)."""


class ControllerView(Protocol):
    """What the collectors read from :class:`~controlplane.controller.runner.Controller`."""

    stats: Stats
    default_prometheus: str | None

    def clock(self) -> float: ...

    def snapshot(self) -> list[dict[str, Any]]: ...

    def exports_canaries(self) -> bool: ...


class ControllerMetrics:
    """Every metric of the controller on one registry (module docstring).

    ``controller`` may be attached later with :meth:`attach` (the runner needs the metrics as its
    observer before it exists). ``collectors``: more collectors to register (alert metrics).
    ``parse``: how a ModelCanary object becomes a model for the threshold gauges (None: skip).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        collectors: Iterable[Collector] = (),
        parse: Callable[[dict[str, Any]], ModelCanary | None] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.controller: ControllerView | None = None
        self._parse = parse or _parse
        self._lock = threading.Lock()
        self._counted: dict[Key, events.Delivered] = {}
        self._models: dict[tuple[str, str], tuple[Hashable, ModelCanary | None]] = {}
        self.checks = Counter(
            "canary_checks",
            "Check evaluations persisted, by metric and verdict",
            ["namespace", "canary", "metric", "result"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "canary_rollbacks", "Rollbacks decided", ["namespace", "canary"], registry=self.registry
        )
        self.promotions = Counter(
            "canary_promotions",
            "Promotions decided",
            ["namespace", "canary"],
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "canary_step_duration_seconds",
            "How long completed steps lasted (start to advance or promotion)",
            ["namespace", "canary"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.tick_duration = Histogram(
            "canary_controller_analysis_tick_duration_seconds",
            "Wall time of one batched analysis tick (queries, judging, status writes)",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "canary_controller_provider_errors",
            "Check results that were inconclusive because the metric source failed, by where "
            "the Prometheus URL came from (default: the controller's; spec: a canary's)",
            ["source"],
            registry=self.registry,
        )
        for source in SOURCES:
            self.provider_errors.labels(source)
        self.registry.register(_RunnerCollector(self))
        self.registry.register(_CanaryCollector(self))
        for collector in collectors:
            self.registry.register(collector)

    def attach(self, controller: ControllerView) -> None:
        self.controller = controller

    def exposition(self) -> tuple[bytes, str]:
        """The registry in the Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # ----------------------------------------------------------------------- AnalysisObserver

    def tick(self, duration_s: float, canaries: int, queries: int) -> None:
        self.tick_duration.observe(duration_s)

    def evaluated(self, key: Key, prometheus: str | None, obs: Observations) -> None:
        namespace, name = key
        source = self.source_of(prometheus)
        for result in obs.checks.values():
            self.checks.labels(namespace, name, result.metric, result.verdict).inc()
            if result.provider_error:
                self.provider_errors.labels(source).inc()
        if obs.spend_error:
            self.provider_errors.labels(source).inc()

    def source_of(self, prometheus: str | None) -> str:
        """The :data:`SOURCES` value of the Prometheus URL an evaluation used (never the URL)."""
        if not prometheus:
            return "none"
        default = self.controller.default_prometheus if self.controller is not None else None
        return "default" if prometheus == default else "spec"

    # ----------------------------------------------------------------------- Notifier

    def notify(
        self, obj: dict[str, Any], canary: ModelCanary, state: RolloutState, event: Event
    ) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or canary.metadata.namespace)
        name = str(meta.get("name") or canary.metadata.name)
        uid = meta.get("uid")
        owner = events.owner_id(namespace, name, uid if isinstance(uid, str) else None)
        key = events.delivery_key(events.fingerprint(owner, event), events.METRICS)
        if not self._first_time((namespace, name), key, event.time):
            return
        if event.type == "RolledBack":
            self.rollbacks.labels(namespace, name).inc()
        elif event.type == "Promoted":
            self.promotions.labels(namespace, name).inc()
        if event.type in ("Advanced", "Promoted"):
            started = step_started(state.history, event)
            if started is not None:
                self.step_duration.labels(namespace, name).observe(max(event.time - started, 0.0))

    def _first_time(self, canary: Key, key: str, at: float) -> bool:
        """Record delivery ``key`` for ``canary``; False when it was counted before."""
        with self._lock:
            counted = self._counted.get(canary) or events.Delivered(limit=REMEMBERED_EVENTS)
            if counted.has(key):
                return False
            self._counted[canary] = counted.with_key(key, at)
            return True

    # ----------------------------------------------------------------------- models

    def model_of(self, obj: dict[str, Any]) -> ModelCanary | None:
        """``obj`` as a model (cached per uid and generation); None when it does not parse."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        version = (meta.get("uid"), meta.get("generation"))
        with self._lock:
            cached = self._models.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        model = self._parse(obj)
        with self._lock:
            self._models[key] = (version, model)
        return model


def step_started(history: Sequence[Event], event: Event) -> float | None:
    """When the step that ``event`` (Advanced / Promoted) completed began, from the history: the
    latest StepStarted or Advanced before it, unless the rollout restarted or was in shadow."""
    try:
        index = max(i for i, e in enumerate(history) if e == event)
    except ValueError:
        index = len(history)
    for previous in reversed(history[:index]):
        if previous.type in ("StepStarted", "Advanced"):
            return previous.time
        if previous.type in ("Restarted", "ShadowStarted", "RolledBack", "Promoted"):
            return None
    return None


def _parse(obj: dict[str, Any]) -> ModelCanary | None:
    try:
        return ModelCanary.model_validate({k: v for k, v in obj.items() if k != "status"})
    except ValueError:
        return None


class _RunnerCollector(Collector):
    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        controller = self.metrics.controller
        if controller is None:
            return
        stats = controller.stats
        prefix = "canary_controller"
        yield CounterMetricFamily(f"{prefix}_reconciles", "Reconcile attempts", stats.reconciles)
        yield CounterMetricFamily(
            f"{prefix}_reconcile_errors", "Reconciles that failed (backed off)", stats.errors
        )
        yield CounterMetricFamily(
            f"{prefix}_conflicts", "Status writes that met a newer resourceVersion", stats.conflicts
        )
        yield CounterMetricFamily(f"{prefix}_analysis_ticks", "Analysis ticks", stats.ticks)
        yield CounterMetricFamily(
            f"{prefix}_analysis_queries", "Metric queries sent", stats.queries_total
        )
        yield GaugeMetricFamily(
            f"{prefix}_last_tick_queries", "Queries of the last tick", stats.last_tick_queries
        )
        yield GaugeMetricFamily(
            f"{prefix}_last_tick_canaries", "Canaries of the last tick", stats.last_tick_canaries
        )
        yield GaugeMetricFamily(
            f"{prefix}_leader", "1 while this replica leads (or runs alone)", int(stats.leader)
        )


def _capacity(
    obj: dict[str, Any],
    replicas: GaugeMetricFamily,
    gpus: GaugeMetricFamily,
    gpu_hours: GaugeMetricFamily,
    now: float,
) -> None:
    """The capacity gauges of one canary, from its ``status.capacity`` (none without one); its
    GPU-hours at ``now`` (those recorded plus the GPUs held since)."""
    meta = obj.get("metadata") or {}
    record = (obj.get("status") or {}).get("capacity")
    if not isinstance(record, dict):
        return
    ids = [str(meta.get("namespace") or ""), str(meta.get("name") or "")]
    for kind in ("planned", "ready"):
        counts = record.get(kind)
        if isinstance(counts, dict):
            for variant, count in sorted(counts.items()):
                if isinstance(count, int | float) and not isinstance(count, bool):
                    replicas.add_metric([*ids, str(variant), kind], float(count))
    read = CapacityRecord.from_dict(record)
    if read is not None:
        gpus.add_metric(ids, float(read.gpus))
        gpu_hours.add_metric(ids, read.hours_at(now))


class _CanaryCollector(Collector):
    """The per-canary gauges, from the controller's last-seen objects (scrape time)."""

    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "canary"]
        phase = GaugeMetricFamily(
            "canary_phase", "1 for the canary's phase", labels=[*labels, "phase"]
        )
        weight = GaugeMetricFamily("canary_weight", "Candidate traffic weight (%)", labels=labels)
        step = GaugeMetricFamily(
            "canary_step", "Current step (1-based; 0 before step 1)", labels=labels
        )
        started = GaugeMetricFamily(
            "canary_step_started_timestamp_seconds",
            "When the current step (or shadow phase) started, unix seconds",
            labels=labels,
        )
        value = GaugeMetricFamily(
            "canary_check_value",
            "Latest value of a check's metric per variant",
            labels=[*labels, "metric", "variant"],
        )
        threshold = GaugeMetricFamily(
            "canary_check_threshold",
            "Threshold of a current check (base units; drift for compare: baseline)",
            labels=[*labels, "metric", "bound"],
        )
        replicas = GaugeMetricFamily(
            "canary_replicas",
            "Replicas of a variant: planned by the capacity plan, or ready (spec.capacity only)",
            labels=[*labels, "variant", "kind"],
        )
        gpus = GaugeMetricFamily(
            "canary_gpus", "GPUs held by both variants' ready replicas", labels=labels
        )
        gpu_hours = GaugeMetricFamily(
            "canary_gpu_hours", "GPU-hours held since the rollout began", labels=labels
        )
        controller = self.metrics.controller
        if controller is not None and controller.exports_canaries():
            now = controller.clock()
            for obj in controller.snapshot():
                self._one(obj, phase, weight, step, started, value, threshold)
                _capacity(obj, replicas, gpus, gpu_hours, now)
        yield from (phase, weight, step, started, value, threshold, replicas, gpus, gpu_hours)

    def _one(
        self,
        obj: dict[str, Any],
        phase: GaugeMetricFamily,
        weight: GaugeMetricFamily,
        step: GaugeMetricFamily,
        started: GaugeMetricFamily,
        value: GaugeMetricFamily,
        threshold: GaugeMetricFamily,
    ) -> None:
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        if not status:
            return
        ids = [str(meta.get("namespace") or ""), str(meta.get("name") or "")]
        current = str(status.get("phase") or "")
        for name in PHASES:
            phase.add_metric([*ids, name], 1.0 if name == current else 0.0)
        for family, field in ((weight, "weight"), (step, "step")):
            number = status.get(field)
            if isinstance(number, int | float) and not isinstance(number, bool):
                family.add_metric(ids, float(number))
        if (stage_started := _time(status.get("stageStartedAt"))) is not None:
            started.add_metric(ids, stage_started)
        latest: dict[tuple[str, str], tuple[float, float]] = {}
        for check in (status.get("checks") or {}).values():
            if not isinstance(check, dict):
                continue
            at = _time(check.get("at")) or 0.0
            for variant in ("candidate", "stable"):
                number = check.get(variant)
                if not isinstance(number, int | float) or isinstance(number, bool):
                    continue
                key = (str(check.get("metric") or ""), variant)
                if key not in latest or latest[key][0] <= at:
                    latest[key] = (at, float(number))
        for (metric, variant), (_at, number) in sorted(latest.items()):
            value.add_metric([*ids, metric, variant], number)
        self._thresholds(obj, status, ids, threshold)

    def _thresholds(
        self,
        obj: dict[str, Any],
        status: dict[str, Any],
        ids: list[str],
        threshold: GaugeMetricFamily,
    ) -> None:
        if status.get("phase") in ("invalid", "promoted", "rolled_back"):
            return
        model = self.metrics.model_of(obj)
        if model is None:
            return
        try:
            state = RolloutState.from_status(status)
        except SpecError:
            return
        seen: set[tuple[str, str]] = set()
        for due in stage_checks(model, state):
            for bound in ("above", "below"):
                quantity = getattr(due.check, bound)
                key = (due.check.metric, bound)
                if quantity is None or key in seen:
                    continue
                seen.add(key)
                threshold.add_metric([*ids, due.check.metric, bound], float(quantity.value))


def _time(value: Any) -> float | None:
    """A time of the status as unix seconds (RFC 3339 or an older controller's number); None
    when it is missing or unreadable."""
    try:
        return time_value(value)
    except ValueError:
        return None
