"""The whole canary on one machine: model servers, router, Prometheus, load, and the rollout loop.

Owns :func:`run_up` behind ``canaryctl up`` and :class:`LocalStack`, which starts and stops the
router, Prometheus, the replicas (:mod:`controlplane.local.pool`), the load and the loop
(:mod:`controlplane.local.loop`). What runs: docs/local.md, "What runs" and "Shutdown".
"""

from __future__ import annotations

import asyncio
import math
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controlplane.analysis.metric_provider import MetricProvider
from controlplane.capacity import plan
from controlplane.errors import UsageError
from controlplane.local.display import ProgressDisplay
from controlplane.local.engines import EngineKind
from controlplane.local.gpus import CapacityReport, GpuAccount
from controlplane.local.inject import Faults
from controlplane.local.load import LoadGenerator, LoadStats, RequestMaker
from controlplane.local.loop import LocalLoop
from controlplane.local.pool import ROLES, TARGETS_TIMEOUT_S, ReplicaPool
from controlplane.local.prometheus import (
    PrometheusServer,
    scrape_config,
    start_prometheus_with_config,
    targets_up,
)
from controlplane.local.replicas import LocalStackError
from controlplane.local.router import Backend, LocalRouter
from controlplane.local.timescale import Scaling, scale_canary
from controlplane.local.watcher import RunWatcher
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.rollout.state import RolloutState
from controlplane.routing.memory import MemoryRouter
from controlplane.simulation import SimulationResult, events_json, iso
from controlplane.spec.models import ModelCanary


@dataclass(frozen=True)
class UpConfig:
    """How to run: time scale, load, faults per role, engine, scrape cadence and limits."""

    time_scale: float = 1.0
    load_rps: float = 10.0
    faults: Mapping[str, Faults] = field(default_factory=dict)
    engine: EngineKind = "simulated"
    scrape_interval: float = 1.0
    max_time_s: float | None = None
    seed: int | None = None


@dataclass
class UpResult:
    """How a run ended. ``outcome``: promoted | rolled_back | paused | in_progress | interrupted."""

    outcome: str
    state: RolloutState
    canary: ModelCanary
    scaling: Scaling
    engine: str
    elapsed_s: float
    load: LoadStats
    served: dict[str, int]
    timeline: list[tuple[float, int]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    capacity: CapacityReport | None = None
    by_replica: dict[str, int] = field(default_factory=dict)
    """Requests each replica received (by pod name), mirrored copies included."""

    def to_json(self) -> dict[str, Any]:
        """The ``simulate`` JSON shape, plus what only a live run knows."""
        state = self.state
        reason = state.reason
        finished = any(e.type in ("Promoted", "RolledBack") for e in state.history)
        return {
            "outcome": self.outcome,
            "finishedAt": iso(state.history[-1].time) if finished and state.history else None,
            "step": state.step,
            "weight": state.weight,
            "reason": None
            if reason is None
            else {
                "metric": reason.metric,
                "value": reason.value,
                "above": reason.above,
                "below": reason.below,
                "window": reason.window,
                "step": reason.step,
                "message": reason.message,
            },
            "events": events_json(state.history),
            "evaluations": self.evaluations,
            "engine": self.engine,
            "timeScale": self.scaling.factor,
            "elapsedSeconds": round(self.elapsed_s, 3),
            "requests": {
                "sent": self.load.sent,
                "answered": self.load.done,
                "byVariant": dict(self.load.by_variant),
                "byReplica": dict(self.by_replica),
                "status": {str(k): v for k, v in self.load.status.items()},
            },
            "capacity": None if self.capacity is None else self.capacity.to_json(),
        }


class LocalStack:
    """Replicas, router, Prometheus and load for one (time-scaled) canary. An async context."""

    def __init__(self, canary: ModelCanary, config: UpConfig, catalog: Catalog | None = None):
        self.canary = canary
        self.config = config
        self.catalog = catalog or load_catalog()
        self.memory = MemoryRouter(check_capabilities=False)
        self.capacity = GpuAccount(canary, self.catalog)
        self.loop = LocalLoop(
            canary,
            self.capacity,
            self.memory,
            engine=config.engine,
            time_scale=config.time_scale,
            max_time_s=config.max_time_s,
        )
        self.router: LocalRouter | None = None
        self.prometheus: PrometheusServer | None = None
        self.load: LoadGenerator | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        """The first replica's seed (``--seed``, else drawn): each replica's differs."""

    def describe(self) -> list[str]:
        lines = []
        for role in ROLES:
            reps = self.loop.running().replicas[role]
            if not reps:
                continue
            faults = self.config.faults.get(role, Faults())
            extra = f" · injected: {faults.describe()}" if faults.active else ""
            urls = ", ".join(r.server.url for r in reps)
            lines.append(
                f"{role} {reps[0].variant}: {len(reps)} replica(s), "
                f"{reps[0].server.description} at {urls}{extra}"
            )
        sizes = self.capacity.sizes
        if self.capacity.planned and sizes is not None:
            budget = plan.budget_gpus(self.canary, sizes)
            limit = f"a budget of {budget} GPUs" if budget is not None else "no GPU budget"
            lines.append(
                f"capacity: replicas follow the plan for {self.capacity.demand():.1f} req/s (one "
                f"replica: {sizes.stable.requests_per_s:.2f} req/s stable, "
                f"{sizes.candidate.requests_per_s:.2f} candidate), {limit}"
            )
        if self.router is not None:
            lines.append(f"router: {self.router.url}/v1 (OpenAI API; metrics at /metrics)")
        if self.prometheus is not None:
            lines.append(
                f"prometheus: {self.prometheus.url} (scrape every "
                f"{queries.prom_duration(self.config.scrape_interval)})"
            )
        return lines

    async def __aenter__(self) -> LocalStack:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _start(self) -> None:
        canary, cfg = self.canary, self.config
        self._tmp = tempfile.TemporaryDirectory(prefix="canaryctl-up-")
        self.memory.set_weights(canary, 0, False)
        self.router = LocalRouter(
            canary.metadata.name,
            canary.metadata.namespace,
            Backend(canary.spec.stable.name),
            Backend(canary.spec.candidate.name),
            lambda: self.memory.get_weights(self.canary),
            cohort=canary.spec.traffic.cohort,
            seed=cfg.seed,
            session=canary.spec.traffic.session,
        )
        await self.router.start()
        files = Path(self._tmp.name)
        pool = self.loop.pool = ReplicaPool(
            canary,
            cfg.faults,
            cfg.engine,
            cfg.scrape_interval,
            self.catalog,
            self.router,
            files,
            self._seed,
            lambda: self.loop.record(time.time()),
        )
        want = self.capacity.wanted(self.loop.share)
        # the first replicas are listed before Prometheus starts: its first discovery finds them
        # (a change is passed on to the scrapes within about 5 s, Prometheus' update period)
        first = [
            await pool.launch(role)
            for role, count in (("stable", want.stable), ("candidate", want.candidate))
            for _ in range(count)
        ]
        pool.rescrape()
        text = scrape_config(
            canary, {}, self.router.port, cfg.scrape_interval, targets_file=pool.targets_file
        )
        self.prometheus = await asyncio.to_thread(
            start_prometheus_with_config, files / "tsdb", text
        )
        pool.prometheus = self.prometheus
        await asyncio.gather(*(pool.enter(replica) for replica in first))
        await self._wait_targets()
        maker = RequestMaker(canary.spec.model.name, canary.spec.traffic.cohort, seed=cfg.seed)
        self.load = LoadGenerator(self.router.url, cfg.load_rps, maker, seed=cfg.seed)
        await self.load.start()

    async def _wait_targets(self) -> None:
        assert self.prometheus is not None
        deadline = time.monotonic() + TARGETS_TIMEOUT_S
        up, total = 0, -1
        while time.monotonic() < deadline:
            up, total = await asyncio.to_thread(targets_up, self.prometheus.url)
            if total > 0 and up == total:
                return
            await asyncio.sleep(0.2)
        raise LocalStackError(
            f"Prometheus scrapes only {up} of {max(total, 0)} local targets after "
            f"{TARGETS_TIMEOUT_S:g}s; its log ends with:\n{self.prometheus.log_tail()}"
        )

    async def close(self) -> None:
        """Stop everything, newest first; never raises for a part that is already gone."""
        pool = self.loop.pool
        if pool is not None:
            pool.closing = True
        if self.load is not None:
            await self.load.stop()
        if self.router is not None:
            await self.router.stop()  # requests in flight finish: the drains end with them
        if pool is not None:
            await pool.close()
        if self.prometheus is not None:
            await asyncio.to_thread(self.prometheus.stop)
            self.prometheus = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def min_samples_notes(canary: ModelCanary, scaling: Scaling, rps: float) -> list[str]:
    """Warnings for checks whose ``minSamples`` the given load cannot reach in the scaled window
    at the step's weight (they would stay inconclusive and hold the step)."""
    notes = []
    cohort = canary.spec.traffic.cohort
    share = 0.5 if cohort is not None else 1.0  # the load generator's cohort share
    for i, step_spec in enumerate(canary.spec.steps):
        for j, check in enumerate(step_spec.rollback_on):
            metric = canary.metric(check.metric)
            if metric is None or metric.builtin is None:
                continue
            need = 100 if check.min_samples is None else check.min_samples
            window = canary.window_s(check)
            expect = rps * share * step_spec.weight / 100 * window
            if expect < need:
                notes.append(
                    f"steps[{i}].rollbackOn[{j}] ({check.metric}): ~{math.floor(expect)} "
                    f"candidate requests per {window:g}s window at {rps:g} req/s and weight "
                    f"{step_spec.weight}%, below minSamples {need}: it stays inconclusive "
                    f"(raise --load, or lower minSamples)"
                )
    return notes


Plotter = Callable[[SimulationResult, MetricProvider], object]
"""Draws a finished run while its Prometheus still runs (``canaryctl up --plot``)."""


async def run_up(
    canary: ModelCanary,
    config: UpConfig,
    display: ProgressDisplay,
    stop: asyncio.Event | None = None,
    catalog: Catalog | None = None,
    plot: Plotter | None = None,
    watcher: RunWatcher | None = None,
) -> UpResult:
    """Run ``canary`` end to end on this machine (see the module docstring). ``plot`` is
    called with the run as a :class:`~controlplane.simulation.SimulationResult` (the shape
    ``simulate`` plots) and the live Prometheus before the stack stops. ``watcher`` follows
    the run and may pause, resume, promote or abort it (:mod:`controlplane.local.watcher`)."""
    if config.load_rps < 0 or not math.isfinite(config.load_rps):
        raise UsageError(f"--load must be a non-negative number, got {config.load_rps!r}")
    scaled, scaling = scale_canary(canary, config.time_scale, config.scrape_interval)
    stop = stop or asyncio.Event()
    started = time.monotonic()
    async with LocalStack(scaled, config, catalog) as stack:
        lines = [*stack.describe()]
        lines += [f"note: {n}" for n in scaling.notes]
        lines += [f"warning: {n}" for n in min_samples_notes(scaled, scaling, config.load_rps)]
        display.start(lines)
        try:
            state, timeline, interrupted = await stack.loop.run(
                display, stop, started, stack.prometheus, stack.load, watcher
            )
        finally:
            display.stop()
        load = stack.load.stats if stack.load is not None else LoadStats()
        served = dict(stack.router.served) if stack.router is not None else {}
        evaluations = stack.loop.evaluations
        capacity = stack.capacity.report(config.time_scale)
        by_replica = stack.loop.running().by_replica()
        trace = stack.loop.trace
        if plot is not None and stack.prometheus is not None and trace:
            run = SimulationResult(scaled, state.started_at, time.time(), state, len(trace), trace)
            provider = PrometheusProvider(from_url(stack.prometheus.url, timeout_s=10.0))
            await asyncio.to_thread(plot, run, provider)
    outcome = "interrupted" if interrupted else state.outcome
    if watcher is not None:
        watcher.finished(outcome)
    return UpResult(
        outcome,
        state,
        scaled,
        scaling,
        config.engine,
        time.monotonic() - started,
        load,
        served,
        timeline,
        evaluations,
        capacity,
        by_replica,
    )
