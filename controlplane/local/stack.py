"""The whole canary on one machine: model servers, router, Prometheus, load, and the rollout loop.

Owns the lifecycle behind ``canaryctl up`` (:mod:`controlplane.cli.up`): each variant's replicas
as processes of their own (:mod:`controlplane.local.replicas`), sized by the capacity plan when
the spec has ``spec.capacity``; a :class:`~controlplane.local.router.LocalRouter` in front; a real
Prometheus that discovers the replicas from a ``file_sd_configs`` file; the load generator
(:mod:`controlplane.local.load`); and the controller's own loop, unchanged
(:func:`controlplane.rollout.machine.step` fed by :func:`controlplane.analysis.evaluator.evaluate`
on the time-scaled spec), whose actions run in the plan's order as the controller's capacity
effect runs them (:mod:`controlplane.controller.capacity`). :class:`GpuLedger` notes the GPUs the
replicas hold (:class:`CapacityReport`). Shutdown runs in reverse order and always completes;
blocking calls run in threads so the servers keep answering.

What runs, how replicas start and retire, and shutdown: docs/local.md, "What runs" and
"Shutdown".
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.metric_provider import MetricProvider
from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.errors import (
    ProfileError,
    ProviderError,
    SpecError,
    UsageError,
)
from controlplane.local.display import ProgressDisplay, ProgressFrame
from controlplane.local.engines import EngineKind, make_engine
from controlplane.local.inject import Faults
from controlplane.local.load import LoadGenerator, LoadStats, RequestMaker
from controlplane.local.prometheus import PrometheusServer, start_prometheus_with_config
from controlplane.local.replicas import (
    InProcess,
    LocalStackError,
    ReplicaServer,
    ServerProcess,
    serve_command,
)
from controlplane.local.router import Backend, Endpoint, LocalRouter
from controlplane.local.server import HOST, Identity, ModelServer
from controlplane.local.timescale import Scaling, scale_canary
from controlplane.local.watcher import NoWatcher, Pod, RunSnapshot, RunWatcher
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
from controlplane.spec.models import Builtin, CapacitySpec, ModelCanary, VariantSpec
from controlplane.spec.units import Unit, display_value

ROLES = ("stable", "candidate")
TARGETS_TIMEOUT_S = 20.0
LIVE_EVERY_S = 2.0
TICK_S = 0.5
"""The loop wakes at least this often (display, stop requests) between evaluations."""
DRAIN_TIMEOUT_S = 60.0
"""The longest a retired replica's requests in flight may take before it is stopped anyway
(what is still running then fails): Kubernetes gives a terminating pod 30 s by default
(``terminationGracePeriodSeconds``); a generation may take longer."""
POLL_S = 0.1
"""How often a wait for a replica (its health, its scrapes) asks again."""
FILE_SD_REFRESH = "5s"
"""Prometheus rereads a ``file_sd_configs`` file whenever it changes (inotify) and at least this
often besides."""

_LIVE: tuple[tuple[str, Builtin, float | None, Unit], ...] = (
    ("requests/s", "request-rate", None, Unit.NUMBER),
    ("p95 latency", "e2e-latency", 0.95, Unit.SECONDS),
    ("p95 ttft", "ttft", 0.95, Unit.SECONDS),
    ("errors", "error-rate", None, Unit.RATIO),
)


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


@dataclass(frozen=True)
class CapacityPoint:
    """What ran from ``time`` on (a point is recorded when any of it changes): the candidate's
    weight and mirror on the router, each variant's replicas in service (in the router) and the
    GPUs held (every replica started and not yet stopped, those draining included)."""

    time: float
    weight: int
    mirror: bool
    stable: int
    candidate: int
    gpus: int

    def to_json(self) -> dict[str, Any]:
        return {
            "time": round(self.time, 3),
            "weight": self.weight,
            "mirror": self.mirror,
            "stable": self.stable,
            "candidate": self.candidate,
            "gpus": self.gpus,
        }


@dataclass
class GpuLedger:
    """GPU-seconds held since the first :meth:`note`, summed at every note (each tick, each start
    and stop of a replica), and the most GPUs held at a note."""

    started_at: float | None = None
    last_at: float = 0.0
    gpus: int = 0
    gpu_seconds: float = 0.0
    peak: int = 0

    def note(self, now: float, gpus: int) -> None:
        if self.started_at is None:
            self.started_at = self.last_at = now
        else:
            self.gpu_seconds += self.gpus * max(0.0, now - self.last_at)
            self.last_at = max(now, self.last_at)
        self.gpus = gpus
        self.peak = max(self.peak, gpus)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds noted."""
        return 0.0 if self.started_at is None else self.last_at - self.started_at


@dataclass(frozen=True)
class CapacityReport:
    """The GPUs of a run: the most held at once, the GPU-hours of the whole rollout in spec time
    (wall time x the time scale), and running both variants at full size for as long: the stable
    at its ``replicas``, the candidate at its size for all the traffic (:meth:`LocalStack.
    full_size`). ``planned``: the replicas followed the plan (``spec.capacity``), else they were
    fixed; ``budget_gpus`` is the plan's budget (None: none set)."""

    planned: bool
    budget_gpus: int | None
    peak_gpus: int
    gpu_hours: float
    spec_hours: float
    full_size: plan.Replicas
    full_size_gpus: int
    points: list[CapacityPoint] = field(default_factory=list)

    @property
    def full_size_gpu_hours(self) -> float:
        return self.full_size_gpus * self.spec_hours

    def to_json(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "budgetGPUs": self.budget_gpus,
            "peakGPUs": self.peak_gpus,
            "gpuHours": round(self.gpu_hours, 3),
            "specHours": round(self.spec_hours, 3),
            "fullSize": {
                "stable": self.full_size.stable,
                "candidate": self.full_size.candidate,
                "gpus": self.full_size_gpus,
                "gpuHours": round(self.full_size_gpu_hours, 3),
            },
            "timeline": [p.to_json() for p in self.points],
        }


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
                "byReplica": dict(self.by_replica),
                "status": {str(k): v for k, v in self.load.status.items()},
            },
            "capacity": None if self.capacity is None else self.capacity.to_json(),
        }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _interval_text(seconds: float) -> str:
    return queries.prom_duration(seconds)


def scrape_config(
    canary: ModelCanary,
    servers: Mapping[str, ModelServer],
    router_port: int,
    interval: float,
    *,
    targets_file: Path | None = None,
) -> str:
    """Prometheus configuration scraping the model servers (with their contract labels) and the
    router. ``servers`` are static targets; ``targets_file`` is a ``file_sd_configs`` file that
    lists the replicas that exist at the moment (:func:`replica_targets`), reread whenever it
    changes. The router's Envoy cluster stats are scraped as they are, as a cluster's gateway
    scrape takes Envoy's ``/stats/prometheus``: no per-variant relabeling (the ``error-rate``
    query finds each variant's clusters by ``envoy_cluster_name``:
    :func:`controlplane.promql.http_errors.envoy_backend`); only the target's static
    ``namespace``/``canary`` labels, which that query does not read.
    ``scrape_timeout`` may not exceed the interval."""
    every = _interval_text(interval)
    labels = {"namespace": canary.metadata.namespace, "canary": canary.metadata.name}
    variants: dict[str, Any] = {"job_name": "local-variants", "honor_labels": True}
    if servers:
        variants["static_configs"] = [
            {
                "targets": [f"127.0.0.1:{server.port}"],
                "labels": {**labels, "variant": server.who.variant},
            }
            for server in servers.values()
        ]
    if targets_file is not None:
        variants["file_sd_configs"] = [
            {"files": [str(targets_file)], "refresh_interval": FILE_SD_REFRESH}
        ]
    config = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            variants,
            {
                "job_name": "local-router",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{router_port}"], "labels": labels}],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(eq=False)
class Replica:
    """One replica of a variant: its server (a process of its own, or for the ``vllm`` engine a
    server in this one) and pod name; ``in_service`` while the router sends it requests, through
    ``endpoint`` (which counts them)."""

    role: str
    variant: str
    index: int
    pod: str
    server: ReplicaServer
    in_service: bool = False
    endpoint: Endpoint | None = None

    @property
    def requests(self) -> int:
        """Requests the router sent it."""
        return 0 if self.endpoint is None else self.endpoint.served

    @property
    def instance(self) -> str:
        """Its Prometheus ``instance``: the address it is scraped at."""
        return f"{HOST}:{self.server.port}"


def pod_name(model: str, variant: str, index: int) -> str:
    """``<model>-<variant>-<i>``: a replica's name in its ``pod`` label and in reports."""
    return f"{model}-{variant}-{index}"


def replica_targets(canary: ModelCanary, replicas: list[Replica]) -> list[dict[str, Any]]:
    """The ``file_sd_configs`` content for ``replicas``: one target each, labelled with the
    contract's ``namespace`` / ``canary`` / ``variant`` and its ``pod``."""
    return [
        {
            "targets": [r.instance],
            "labels": {
                "namespace": canary.metadata.namespace,
                "canary": canary.metadata.name,
                "variant": r.variant,
                "pod": r.pod,
            },
        }
        for r in replicas
    ]


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename, so that Prometheus never reads half a file."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)


def _active_targets(url: str) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url + "/api/v1/targets?state=active", timeout=2) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    found: list[dict[str, Any]] = data.get("data", {}).get("activeTargets", [])
    return found


def _targets_up(url: str) -> tuple[int, int]:
    targets = _active_targets(url)
    if targets is None:
        return 0, -1
    return sum(1 for t in targets if t.get("health") == "up"), len(targets)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _unix(stamp: str) -> float | None:
    """Prometheus' RFC 3339 time (up to nanoseconds, ``Z`` or an offset) in unix seconds."""
    m = _RFC3339.match(stamp)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    whole = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return whole + (float(m.group(2)) if m.group(2) else 0.0)


def last_scrape(url: str, instance: str) -> float | None:
    """When the Prometheus at ``url`` last began a successful scrape of ``instance`` (its
    ``lastScrape`` while its health is ``up``); None before one, or when it is no target."""
    for target in _active_targets(url) or []:
        if target.get("labels", {}).get("instance") != instance or target.get("health") != "up":
            continue
        return _unix(str(target.get("lastScrape", "")))
    return None


class LocalStack:
    """Replicas, router, Prometheus and load for one (time-scaled) canary. An async context."""

    def __init__(self, canary: ModelCanary, config: UpConfig, catalog: Catalog | None = None):
        self.canary = canary
        self.config = config
        self.catalog = catalog or load_catalog()
        self.memory = MemoryRouter(check_capabilities=False)
        self.replicas: dict[str, list[Replica]] = {role: [] for role in ROLES}
        """Every replica started and not yet stopped: in service, or being retired."""
        self.router: LocalRouter | None = None
        self.prometheus: PrometheusServer | None = None
        self.load: LoadGenerator | None = None
        self.sizes = self._sizes()
        self.share = plan.Share(0)
        """The weights on the router."""
        self.ledger = GpuLedger()
        self.points: list[CapacityPoint] = []
        self.evaluations: list[dict[str, Any]] = []
        self.trace: list[TracePoint] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._targets_file: Path | None = None
        self._session: aiohttp.ClientSession | None = None
        self._next_index = dict.fromkeys(ROLES, 0)
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: Tally[str] = Tally()
        self._closing = False
        self._seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
        """The first replica's seed (``--seed``, else drawn): each replica's differs."""
        self._noting = False
        """True while the rollout runs: the ledger notes the GPUs held."""

    @property
    def spec(self) -> Any:
        return self.canary.spec

    @property
    def planned(self) -> bool:
        """Whether the replicas follow the capacity plan (``spec.capacity``)."""
        return self.canary.spec.capacity is not None

    def _sizes(self) -> plan.Sizes | None:
        """Per-replica capacities (None without a plan when the catalogue cannot tell)."""
        try:
            return sizes_of(self.canary, self.catalog)
        except ProfileError:
            if self.planned:
                raise
            return None

    def _demand(self) -> float:
        assert self.sizes is not None
        return plan.sized_demand(self.canary, self.sizes)

    def gpus(self, replicas: plan.Replicas) -> int:
        """The GPUs ``replicas`` hold (:meth:`controlplane.capacity.plan.Replicas.gpus`)."""
        if self.sizes is not None:
            return replicas.gpus(self.sizes)
        spec = self.canary.spec
        stable, candidate = spec.stable.gpu_count, spec.candidate.gpu_count
        return replicas.stable * stable + replicas.candidate * candidate

    def wanted(self, share: plan.Share) -> plan.Replicas:
        """Each variant's replicas at ``share``: the plan's, else the fixed ``replicas``."""
        if not self.planned:
            return plan.fixed_replicas(self.canary)
        assert self.sizes is not None
        return plan.replicas_at(self.canary, self.sizes, self._demand(), share)

    def full_size(self) -> plan.Replicas:
        """Both variants at full size: the stable at its ``replicas``, the candidate sized for all
        the traffic the stable was sized for (the plan's for 100 %, at the spec's headroom or
        the default), never below its ``replicas``."""
        if self.sizes is None:
            return plan.fixed_replicas(self.canary)
        capacity = self.spec.capacity or CapacitySpec()
        demand = plan.sized_demand(self.canary, self.sizes)
        candidate = plan.needed(demand, 100, self.sizes.candidate, capacity)
        return plan.Replicas(
            self.spec.stable.replicas, max(candidate, self.spec.candidate.replicas)
        )

    def in_service(self) -> plan.Replicas:
        """Each variant's replicas in the router."""
        stable = sum(1 for r in self.replicas["stable"] if r.in_service)
        return plan.Replicas(stable, sum(1 for r in self.replicas["candidate"] if r.in_service))

    def held(self) -> plan.Replicas:
        """Each variant's replicas that hold their GPUs (started, not yet stopped)."""
        return plan.Replicas(len(self.replicas["stable"]), len(self.replicas["candidate"]))

    def by_replica(self) -> dict[str, int]:
        """Requests each replica received (by pod name), the retired ones included."""
        counts = Tally(self._retired)
        for role in ROLES:
            for replica in self.replicas[role]:
                counts[replica.pod] = replica.requests
        return dict(counts)

    def describe(self) -> list[str]:
        lines = []
        for role in ROLES:
            reps = self.replicas[role]
            if not reps:
                continue
            faults = self.config.faults.get(role, Faults())
            extra = f" · injected: {faults.describe()}" if faults.active else ""
            urls = ", ".join(r.server.url for r in reps)
            lines.append(
                f"{role} {reps[0].variant}: {len(reps)} replica(s), "
                f"{reps[0].server.description} at {urls}{extra}"
            )
        if self.planned and self.sizes is not None:
            budget = plan.budget_gpus(self.canary, self.sizes)
            limit = f"a budget of {budget} GPUs" if budget is not None else "no GPU budget"
            lines.append(
                f"capacity: replicas follow the plan for {self._demand():.1f} req/s (one "
                f"replica: {self.sizes.stable.requests_per_s:.2f} req/s stable, "
                f"{self.sizes.candidate.requests_per_s:.2f} candidate), {limit}"
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
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        self.memory.set_weights(canary, 0, False)
        self.router = LocalRouter(
            canary.metadata.name,
            canary.metadata.namespace,
            Backend(canary.spec.stable.name),
            Backend(canary.spec.candidate.name),
            lambda: self.memory.get_weights(self.canary),
            cohort=canary.spec.traffic.cohort,
            seed=cfg.seed,
        )
        await self.router.start()
        self._targets_file = Path(self._tmp.name) / "replicas.json"
        want = self.wanted(self.share)
        # the first replicas are listed before Prometheus starts: its first discovery finds them
        # (a change is passed on to the scrapes within about 5 s, Prometheus' update period)
        first = [
            await self._launch(role)
            for role, count in (("stable", want.stable), ("candidate", want.candidate))
            for _ in range(count)
        ]
        self._rescrape()
        text = scrape_config(
            canary, {}, self.router.port, cfg.scrape_interval, targets_file=self._targets_file
        )
        data_dir = Path(self._tmp.name) / "tsdb"
        self.prometheus = await asyncio.to_thread(start_prometheus_with_config, data_dir, text)
        await asyncio.gather(*(self._enter(replica) for replica in first))
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
        self._closing = True
        if self.load is not None:
            await self.load.stop()
        if self.router is not None:
            await self.router.stop()  # requests in flight finish: the drains end with them
        if self._retiring:
            _, late = await asyncio.wait(set(self._retiring), timeout=DRAIN_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for role in reversed(ROLES):
            for replica in reversed(self.replicas[role]):
                await replica.server.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.prometheus is not None:
            await asyncio.to_thread(self.prometheus.stop)
            self.prometheus = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ----------------------------------------------------------------- replicas

    def record(self, now: float) -> None:
        """While the rollout runs: note the GPUs held, and a point when anything changed."""
        if not self._noting:
            return
        gpus = self.gpus(self.held())
        self.ledger.note(now, gpus)
        serving = self.in_service()
        share = self.share
        point = CapacityPoint(
            now, share.weight, share.mirror, serving.stable, serving.candidate, gpus
        )
        if not self.points or replace(self.points[-1], time=now) != point:
            self.points.append(point)

    def _rescrape(self) -> None:
        """Write the scrape file: every replica that runs (retiring ones until they stop)."""
        if self._targets_file is None or self._closing:
            return
        every = [r for role in ROLES for r in self.replicas[role]]
        _write_atomically(self._targets_file, json.dumps(replica_targets(self.canary, every)))

    def _server(self, role: str, variant: VariantSpec, seed: int, pod: str) -> ReplicaServer:
        """The server of one replica: a process running the pod's command
        (:func:`~controlplane.local.replicas.serve_command`), or for the ``vllm`` engine one in
        this process."""
        canary, cfg = self.canary, self.config
        faults = cfg.faults.get(role, Faults())
        if cfg.engine == "vllm":
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
            return InProcess(ModelServer(who, engine, faults, seed=seed))
        assert self._tmp is not None
        argv = serve_command(
            canary,
            variant,
            self.catalog,
            engine=cfg.engine,
            faults=faults,
            seed=seed,
            files=Path(self._tmp.name),
        )
        return ServerProcess(argv, pod)

    async def _launch(self, role: str) -> Replica:
        """Start one replica of ``role`` (its GPUs held from here) and list it for scraping; not
        in service yet (:meth:`_enter`)."""
        canary = self.canary
        variant = self.canary.spec.variant(role)
        index = self._next_index[role]
        self._next_index[role] += 1
        # the first replica of each variant keeps the seed a variant's one server had
        seed = self._seed + ROLES.index(role) + 2 * index
        pod = pod_name(canary.spec.model.name, variant.name, index)
        server = self._server(role, variant, seed, pod)
        replica = Replica(role, variant.name, index, pod, server)
        self.replicas[role].append(replica)
        try:
            await server.start()
        except BaseException:
            self.replicas[role].remove(replica)
            raise
        self._rescrape()
        self.record(time.time())
        return replica

    async def _enter(self, replica: Replica) -> None:
        """Put ``replica`` in service once it serves: ``/health`` answers and Prometheus has
        scraped it."""
        await self._until_serving(replica)
        assert self.router is not None
        replica.endpoint = self.router.add_endpoint(replica.variant, replica.server.url)
        replica.in_service = True
        self.record(time.time())

    async def _healthy(self, replica: Replica) -> bool:
        assert self._session is not None
        try:
            async with self._session.get(replica.server.url + "/health") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _until_serving(self, replica: Replica) -> None:
        assert self.prometheus is not None
        url = self.prometheus.url
        deadline = time.monotonic() + TARGETS_TIMEOUT_S
        while time.monotonic() < deadline:
            healthy = await self._healthy(replica)
            if healthy and await asyncio.to_thread(last_scrape, url, replica.instance) is not None:
                return
            await asyncio.sleep(POLL_S)
        raise LocalStackError(
            f"replica {replica.pod} did not answer /health and get scraped within "
            f"{TARGETS_TIMEOUT_S:g}s; Prometheus' log ends with:\n{self.prometheus.log_tail()}"
        )

    async def settle(self) -> None:
        """Wait for the retirements under way: their GPUs are free once they have stopped."""
        while self._retiring:
            await asyncio.gather(*set(self._retiring), return_exceptions=True)

    async def scale_up(self, want: plan.Replicas) -> None:
        """Start what ``want`` asks beyond the replicas in service (never stop one), once the
        retirements under way have ended; return when every new replica is in service."""
        await self.settle()
        have = self.in_service()
        launched = [
            await self._launch(role)
            for role, more in (
                ("stable", want.stable - have.stable),
                ("candidate", want.candidate - have.candidate),
            )
            for _ in range(max(0, more))
        ]
        if launched:
            await asyncio.gather(*(self._enter(replica) for replica in launched))

    def scale_down(self, want: plan.Replicas) -> None:
        """Retire the replicas in service beyond ``want``, newest first (a ReplicaSet deletes
        the pods ready for the shortest time first): out of the router at once, drained and
        stopped in the background (:meth:`_retire`)."""
        assert self.router is not None
        for role, keep in (("stable", want.stable), ("candidate", want.candidate)):
            serving = [r for r in self.replicas[role] if r.in_service]
            for replica in sorted(serving, key=lambda r: r.index)[max(0, keep) :]:
                replica.in_service = False
                endpoint = self.router.remove_endpoint(replica.variant, replica.server.url)
                task = asyncio.get_running_loop().create_task(self._retire(replica, endpoint))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        self.record(time.time())

    async def _retire(self, replica: Replica, endpoint: Endpoint | None) -> None:
        """Drain it (its requests in flight finish), let Prometheus scrape its last counts,
        take it out of the scrape file, stop it."""
        assert self.router is not None
        assert self.prometheus is not None
        if endpoint is not None:
            await self.router.drain(endpoint, DRAIN_TIMEOUT_S)
        drained_at = time.time()
        url = self.prometheus.url
        deadline = time.monotonic() + max(4 * self.config.scrape_interval, 2.0)
        while not self._closing and time.monotonic() < deadline:
            seen = await asyncio.to_thread(last_scrape, url, replica.instance)
            if seen is not None and seen > drained_at:
                break
            await asyncio.sleep(POLL_S)
        self.replicas[replica.role].remove(replica)
        self._rescrape()  # out of the scrape file before it stops
        try:
            await replica.server.stop()
        finally:
            self._retired[replica.pod] = replica.requests
            self.record(time.time())

    # ----------------------------------------------------------------- the rollout loop

    async def move(self, target: plan.Share) -> None:
        """Put ``target`` on the router in the plan's order: up and serving, weights, down."""
        if not self.planned:
            self.memory.set_weights(self.canary, target.weight, target.mirror)
            self.share = target
            self.record(time.time())
            return
        assert self.sizes is not None
        moved = plan.change(self.canary, self.sizes, self._demand(), self.share, target)
        await self.scale_up(moved.before)
        self.memory.set_weights(self.canary, target.weight, target.mirror)
        self.share = target
        self.record(time.time())
        self.scale_down(moved.after)

    async def conclude(self, promoted: bool) -> None:
        """Before an outcome goes on the router: the winner sized for all the traffic and in
        service; the loser keeps what it runs (in a cluster, until it is released)."""
        if not self.planned:
            return
        assert self.sizes is not None
        target = plan.Share(100 if promoted else 0)
        winner = plan.change(self.canary, self.sizes, self._demand(), self.share, target).after
        only = plan.Replicas(0, winner.candidate) if promoted else plan.Replicas(winner.stable, 0)
        await self.scale_up(only)

    async def apply(self, actions: list[Any]) -> float | None:
        """Execute the machine's actions on the replicas and the router, in the plan's order
        (module docstring). Returns when weights went on the router (None: none did)."""
        outcome = next((a for a in actions if isinstance(a, Promote | Rollback)), None)
        if outcome is not None:
            await self.conclude(isinstance(outcome, Promote))
        set_at: float | None = None
        for action in actions:
            if isinstance(action, SetWeights):
                target = plan.Share(action.candidate_weight, action.mirror)
                if outcome is None:
                    await self.move(target)
                else:  # the winner is sized already; the loser keeps its replicas
                    self.memory.set_weights(self.canary, target.weight, target.mirror)
                    self.share = target
                set_at = time.time()
            elif isinstance(action, Promote):
                self.memory.finalize(self.canary, "promoted")
                self.share = plan.Share(100)
            elif isinstance(action, Rollback):
                self.memory.finalize(self.canary, "rolled_back")
                self.share = plan.Share(0)
        self.record(time.time())
        return set_at

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

    def snapshot(self, state: RolloutState) -> RunSnapshot:
        """The run now, for a :class:`~controlplane.local.watcher.RunWatcher`."""
        pods = tuple(Pod(role, r.pod, r.in_service) for role in ROLES for r in self.replicas[role])
        return RunSnapshot(state, pods, self.share.weight, self.share.mirror)

    async def run_rollout(
        self,
        display: ProgressDisplay,
        stop: asyncio.Event,
        started: float,
        watcher: RunWatcher | None = None,
    ) -> tuple[RolloutState, list[tuple[float, int]], bool]:
        """The controller's loop on this stack until an outcome, ``stop`` or the deadline.

        Returns the final state, the (time, weight) timeline and whether it was interrupted;
        every check result is appended to :attr:`evaluations`, the GPUs held go to
        :attr:`ledger` and :attr:`points` (:meth:`report`). ``watcher`` is told every new state
        and its intents go to the state machine each tick, as the controller's do."""
        watcher = watcher or NoWatcher()
        assert self.prometheus is not None
        provider = PrometheusProvider(from_url(self.prometheus.url, timeout_s=5.0))
        canary, cfg = self.canary, self.config
        state = initial_state(canary, time.time())
        timeline = [(time.time(), 0)]
        self._noting = True
        self.record(state.started_at)
        live: dict[str, dict[str, str]] = {}
        live_at = 0.0
        told = self.snapshot(state)
        watcher.on_state(told)
        try:
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
                state, actions = step(canary, state, obs, now, watcher.take_intents())
                set_at = await self.apply(actions)
                in_stage = state.stage in ("shadow", "steps")
                if set_at is not None and in_stage and set_at > state.stage_started_at:
                    # the step's clock starts once its weights are on the router (after the
                    # scale-up), as the controller starts it once they are verified
                    state = replace(state, stage_started_at=set_at)
                seen = self.snapshot(state)
                if seen != told:
                    told = seen
                    watcher.on_state(seen)
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
                    self.record(time.time())  # every tick: the GPUs held
                    continue
                return state, timeline, True
        finally:
            self.record(time.time())
            self._noting = False

    def report(self) -> CapacityReport:
        """The GPUs of the rollout so far (:class:`CapacityReport`)."""
        factor = self.config.time_scale
        full = self.full_size()
        budget = None
        if self.planned and self.sizes is not None:
            budget = plan.budget_gpus(self.canary, self.sizes)
        return CapacityReport(
            planned=self.planned,
            budget_gpus=budget,
            peak_gpus=self.ledger.peak,
            gpu_hours=self.ledger.gpu_seconds * factor / 3600.0,
            spec_hours=self.ledger.seconds * factor / 3600.0,
            full_size=full,
            full_size_gpus=self.gpus(full),
            points=list(self.points),
        )


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
            state, timeline, interrupted = await stack.run_rollout(display, stop, started, watcher)
        finally:
            display.stop()
        load = stack.load.stats if stack.load is not None else LoadStats()
        served = dict(stack.router.served) if stack.router is not None else {}
        evaluations = stack.evaluations
        capacity = stack.report()
        by_replica = stack.by_replica()
        if plot is not None and stack.prometheus is not None and stack.trace:
            run = SimulationResult(
                scaled, state.started_at, time.time(), state, len(stack.trace), stack.trace
            )
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
