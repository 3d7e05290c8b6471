"""The whole canary on one machine: model servers, router, Prometheus, load, and the rollout loop.

Owns the lifecycle behind ``canaryctl up`` (:mod:`controlplane.cli.up`):

1. one :class:`~controlplane.local.server.ModelServer` per variant (engine ``simulated`` by
   default), faults injected where asked;
2. a :class:`~controlplane.local.router.LocalRouter` in front, reading the weights that the rollout
   sets on a :class:`~controlplane.routing.memory.MemoryRouter`;
3. a real Prometheus (:func:`~controlplane.local.prometheus.start_prometheus_with_config`) scraping
   the servers and the router every ``scrape_interval`` seconds, with the contract's ``namespace``
   / ``canary`` / ``variant`` target labels (``honor_labels``, so servers that already export
   them, like ours, keep theirs);
4. the load generator (:mod:`controlplane.local.load`);
5. the controller's own loop, unchanged: :func:`controlplane.rollout.machine.step` fed by
   :func:`controlplane.analysis.evaluator.evaluate` against that Prometheus, on the time-scaled
   spec (:mod:`controlplane.local.timescale`), at :func:`~controlplane.rollout.machine.
   next_evaluation`. ``SetWeights`` goes to the router at once; ``Promote`` / ``Rollback``
   finalize it.

Shutdown (outcome, ``stop`` event from SIGINT/SIGTERM, deadline or an error) runs in reverse
order and always completes: load stopped, router and servers closed, Prometheus terminated and
waited for, the temporary directory removed. Blocking calls (Prometheus queries, process waits)
run in threads so the servers keep answering.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.metric_provider import MetricProvider
from controlplane.errors import ControlPlaneError, ProviderError, SpecError, UsageError
from controlplane.local.display import ProgressDisplay, ProgressFrame
from controlplane.local.engines import EngineKind, make_engine
from controlplane.local.inject import Faults
from controlplane.local.load import LoadGenerator, LoadStats, RequestMaker
from controlplane.local.prometheus import PrometheusServer, start_prometheus_with_config
from controlplane.local.router import Backend, LocalRouter
from controlplane.local.server import Identity, ModelServer
from controlplane.local.timescale import Scaling, scale_canary
from controlplane.profiles.catalog import Catalog, load_catalog
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.rollout.actions import Promote, Rollback, SetWeights
from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import (
    due_checks,
    evaluation_due,
    initial_state,
    next_evaluation,
)
from controlplane.rollout.state import RolloutState
from controlplane.routing.memory import MemoryRouter
from controlplane.simulation import SimulationResult, TracePoint
from controlplane.spec.models import Builtin, ModelCanary
from controlplane.spec.units import Unit, display_value

ROLES = ("stable", "candidate")
TARGETS_TIMEOUT_S = 20.0
LIVE_EVERY_S = 2.0
TICK_S = 0.5
"""The loop wakes at least this often (display, stop requests) between evaluations."""

_LIVE: tuple[tuple[str, Builtin, float | None, Unit], ...] = (
    ("requests/s", "request-rate", None, Unit.NUMBER),
    ("p95 latency", "e2e-latency", 0.95, Unit.SECONDS),
    ("p95 ttft", "ttft", 0.95, Unit.SECONDS),
    ("errors", "error-rate", None, Unit.RATIO),
)


class LocalStackError(ControlPlaneError):
    """The local stack could not start or run (ports, processes, Prometheus targets)."""


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

    def to_json(self) -> dict[str, Any]:
        """The ``simulate`` JSON shape, plus what only a live run knows."""
        state = self.state
        reason = state.reason
        finished = any(e.type in ("Promoted", "RolledBack") for e in state.history)
        return {
            "outcome": self.outcome,
            "finishedAt": _iso(state.history[-1].time) if finished and state.history else None,
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
            "events": [
                {
                    "time": _iso(e.time),
                    "type": e.type,
                    "step": e.step,
                    "weight": e.weight,
                    "message": e.message,
                }
                for e in state.history
            ],
            "evaluations": self.evaluations,
            "engine": self.engine,
            "timeScale": self.scaling.factor,
            "elapsedSeconds": round(self.elapsed_s, 3),
            "requests": {
                "sent": self.load.sent,
                "answered": self.load.done,
                "byVariant": dict(self.load.by_variant),
                "status": {str(k): v for k, v in self.load.status.items()},
            },
        }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _interval_text(seconds: float) -> str:
    return queries.prom_duration(seconds)


def scrape_config(
    canary: ModelCanary, servers: Mapping[str, ModelServer], router_port: int, interval: float
) -> str:
    """Prometheus configuration scraping every server (with its contract labels) and the
    router. The router's Envoy cluster stats are scraped as they are, as a cluster's gateway
    scrape takes Envoy's ``/stats/prometheus``: no per-variant relabeling (the ``error-rate``
    query finds each variant's clusters by ``envoy_cluster_name``:
    :func:`controlplane.promql.http_errors.envoy_backend`); only the target's static
    ``namespace``/``canary`` labels, which that query does not read.
    ``scrape_timeout`` may not exceed the interval."""
    every = _interval_text(interval)
    labels = {"namespace": canary.metadata.namespace, "canary": canary.metadata.name}
    config = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            {
                "job_name": "local-variants",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{server.port}"],
                        "labels": {**labels, "variant": server.who.variant},
                    }
                    for server in servers.values()
                ],
            },
            {
                "job_name": "local-router",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{router_port}"], "labels": labels}],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _targets_up(url: str) -> tuple[int, int]:
    try:
        with urllib.request.urlopen(url + "/api/v1/targets?state=active", timeout=2) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return 0, -1
    targets = data.get("data", {}).get("activeTargets", [])
    return sum(1 for t in targets if t.get("health") == "up"), len(targets)


class LocalStack:
    """Servers, router, Prometheus and load for one (time-scaled) canary. An async context."""

    def __init__(self, canary: ModelCanary, config: UpConfig, catalog: Catalog | None = None):
        self.canary = canary
        self.config = config
        self.catalog = catalog or load_catalog()
        self.memory = MemoryRouter(check_capabilities=False)
        self.servers: dict[str, ModelServer] = {}
        self.router: LocalRouter | None = None
        self.prometheus: PrometheusServer | None = None
        self.load: LoadGenerator | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.evaluations: list[dict[str, Any]] = []
        self.trace: list[TracePoint] = []

    @property
    def spec(self) -> Any:
        return self.canary.spec

    def describe(self) -> list[str]:
        lines = []
        for role, server in self.servers.items():
            faults = self.config.faults.get(role, Faults())
            extra = f" · injected: {faults.describe()}" if faults.active else ""
            lines.append(
                f"{role} {server.who.variant}: {server.engine.description} at {server.url}{extra}"
            )
        if self.router is not None:
            lines.append(f"router: {self.router.url}/v1 (OpenAI API; metrics at /metrics)")
        if self.prometheus is not None:
            lines.append(
                f"prometheus: {self.prometheus.url} (scrape every "
                f"{_interval_text(self.config.scrape_interval)})"
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
        for i, role in enumerate(ROLES):
            variant = canary.spec.stable if role == "stable" else canary.spec.candidate
            seed = None if cfg.seed is None else cfg.seed + i
            engine = make_engine(cfg.engine, canary.spec.model, variant, self.catalog, seed=seed)
            who = Identity(
                model=canary.spec.model.name,
                namespace=canary.metadata.namespace,
                canary=canary.metadata.name,
                variant=variant.name,
                system_prompt=variant.system_prompt,
                max_model_len=canary.spec.model.max_model_len,
                root=variant.storage_uri.removeprefix("hf://"),  # what `vllm serve` is given
            )
            server = ModelServer(who, engine, cfg.faults.get(role), seed=seed)
            self.servers[role] = server
            await server.start()
        self.router = LocalRouter(
            canary.metadata.name,
            canary.metadata.namespace,
            Backend(canary.spec.stable.name, self.servers["stable"].url),
            Backend(canary.spec.candidate.name, self.servers["candidate"].url),
            lambda: self.memory.get_weights(self.canary),
            cohort=canary.spec.traffic.cohort,
            seed=cfg.seed,
        )
        await self.router.start()
        text = scrape_config(canary, self.servers, self.router.port, cfg.scrape_interval)
        data_dir = Path(self._tmp.name) / "tsdb"
        self.prometheus = await asyncio.to_thread(start_prometheus_with_config, data_dir, text)
        await self._wait_targets()
        maker = RequestMaker(canary.spec.model.name, canary.spec.traffic.cohort, seed=cfg.seed)
        self.load = LoadGenerator(self.router.url, cfg.load_rps, maker, seed=cfg.seed)
        await self.load.start()

    async def _wait_targets(self) -> None:
        assert self.prometheus is not None
        deadline = time.monotonic() + TARGETS_TIMEOUT_S
        up, total = 0, -1
        while time.monotonic() < deadline:
            up, total = await asyncio.to_thread(_targets_up, self.prometheus.url)
            if total > 0 and up == total:
                return
            await asyncio.sleep(0.2)
        raise LocalStackError(
            f"Prometheus scrapes only {up} of {max(total, 0)} local targets after "
            f"{TARGETS_TIMEOUT_S:g}s; its log ends with:\n{self.prometheus.log_tail()}"
        )

    async def close(self) -> None:
        """Stop everything, newest first; never raises for a part that is already gone."""
        if self.load is not None:
            await self.load.stop()
        if self.router is not None:
            await self.router.stop()
        for server in reversed(list(self.servers.values())):
            await server.stop()
        if self.prometheus is not None:
            await asyncio.to_thread(self.prometheus.stop)
            self.prometheus = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ----------------------------------------------------------------- the rollout loop

    def apply(self, actions: list[Any]) -> None:
        """Execute the machine's actions on the router (the only shell a local run has)."""
        for action in actions:
            if isinstance(action, SetWeights):
                self.memory.set_weights(self.canary, action.candidate_weight, action.mirror)
            elif isinstance(action, Promote):
                self.memory.finalize(self.canary, "promoted")
            elif isinstance(action, Rollback):
                self.memory.finalize(self.canary, "rolled_back")

    def live_values(self, provider: PrometheusProvider, now: float) -> dict[str, dict[str, str]]:
        """Display metrics per variant over the analysis window (blocking: run in a thread)."""
        window = self.spec.analysis.window.seconds
        out: dict[str, dict[str, str]] = {}
        for variant in (self.spec.stable.name, self.spec.candidate.name):
            values: dict[str, str] = {}
            for label, builtin, quantile, unit in _LIVE:
                try:
                    query = queries.canary_builtin_query(
                        self.canary, builtin, variant, window, quantile
                    )
                    value = provider.instant(query, now)
                except (ProviderError, SpecError):
                    values[label] = "-"
                    continue
                values[label] = (
                    f"{value:.1f}" if unit is Unit.NUMBER else display_value(value, unit)
                )
            out[variant] = values
        return out

    async def run_rollout(
        self, display: ProgressDisplay, stop: asyncio.Event, started: float
    ) -> tuple[RolloutState, list[tuple[float, int]], bool]:
        """The controller's loop on this stack until an outcome, ``stop`` or the deadline.

        Returns the final state, the (time, weight) timeline and whether it was interrupted;
        every check result is appended to :attr:`evaluations`."""
        assert self.prometheus is not None
        provider = PrometheusProvider(from_url(self.prometheus.url, timeout_s=5.0))
        canary, cfg = self.canary, self.config
        state = initial_state(canary, time.time())
        timeline = [(time.time(), 0)]
        live: dict[str, dict[str, str]] = {}
        live_at = 0.0
        while True:
            now = time.time()
            obs: Observations | None = None
            if evaluation_due(canary, state, now):
                due = due_checks(canary, state, now)
                obs = await asyncio.to_thread(evaluate, canary, due, provider, now)
                self.evaluations += [
                    {
                        "time": round(now, 3),
                        "step": state.step,
                        "key": r.key,
                        "metric": r.metric,
                        "verdict": r.verdict,
                        "value": r.value,
                        "candidate": r.candidate,
                        "stable": r.stable,
                        "samples": r.samples,
                    }
                    for r in obs.checks.values()
                ]
            values: dict[str, tuple[float | None, str]] = {}
            if obs is not None:
                values = {k: (r.value, str(r.verdict)) for k, r in obs.checks.items()}
            state, actions = step(canary, state, obs, now)
            self.apply(actions)
            if obs is not None:
                self.trace.append(TracePoint(now, state.weight, state.phase, values))
            if any(isinstance(a, SetWeights) for a in actions):
                timeline.append((now, state.weight))
            if now - live_at >= LIVE_EVERY_S or state.terminal:
                live = await asyncio.to_thread(self.live_values, provider, now)
                live_at = now
            load = self.load.stats if self.load is not None else None
            display.update(
                ProgressFrame(canary, state, cfg.engine, cfg.time_scale, now, load, live)
            )
            if state.terminal:
                return state, timeline, False
            if cfg.max_time_s is not None and time.monotonic() - started >= cfg.max_time_s:
                return state, timeline, False
            due_at = next_evaluation(canary, state)
            wait = TICK_S if due_at is None else min(TICK_S, max(0.0, due_at - time.time()))
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.01))
            except TimeoutError:
                continue
            return state, timeline, True


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
            window = (check.window or canary.spec.analysis.window).seconds
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
) -> UpResult:
    """Run ``canary`` end to end on this machine (see the module docstring). ``plot`` is
    called with the run as a :class:`~controlplane.simulation.SimulationResult` (the shape
    ``simulate`` plots) and the live Prometheus before the stack stops."""
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
            state, timeline, interrupted = await stack.run_rollout(display, stop, started)
        finally:
            display.stop()
        load = stack.load.stats if stack.load is not None else LoadStats()
        served = dict(stack.router.served) if stack.router is not None else {}
        evaluations = stack.evaluations
        if plot is not None and stack.prometheus is not None and stack.trace:
            run = SimulationResult(
                scaled, state.started_at, time.time(), state, len(stack.trace), stack.trace
            )
            provider = PrometheusProvider(from_url(stack.prometheus.url, timeout_s=10.0))
            await asyncio.to_thread(plot, run, provider)
    outcome = "interrupted" if interrupted else state.outcome
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
    )
