"""The controller's loop on the local stack: the machine's steps, its weights in the plan's order.

Owns :class:`LocalLoop`, whose actions run on the replicas and the router in the order the
controller's capacity effect runs them; called by :mod:`controlplane.local.stack`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from controlplane.analysis.evaluator import evaluate
from controlplane.capacity import plan
from controlplane.errors import ProviderError, SpecError
from controlplane.local.display import ProgressDisplay, ProgressFrame
from controlplane.local.gpus import GpuAccount
from controlplane.local.load import LoadGenerator
from controlplane.local.pool import ROLES, ReplicaPool
from controlplane.local.prometheus import PrometheusServer
from controlplane.local.watcher import NoWatcher, Pod, RunSnapshot, RunWatcher
from controlplane.promql import queries
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.rollout.actions import Promote, Rollback, SetWeights
from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import due_checks, evaluation_due, initial_state, next_evaluation
from controlplane.rollout.state import RolloutState
from controlplane.routing.memory import MemoryRouter
from controlplane.simulation import TracePoint
from controlplane.spec.models import Builtin, ModelCanary
from controlplane.spec.units import Unit, display_value

LIVE_EVERY_S = 2.0
TICK_S = 0.5
"""The loop wakes at least this often (display, stop requests) between evaluations."""
_LIVE: tuple[tuple[str, Builtin, float | None, Unit], ...] = (
    ("requests/s", "request-rate", None, Unit.NUMBER),
    ("p95 latency", "e2e-latency", 0.95, Unit.SECONDS),
    ("p95 ttft", "ttft", 0.95, Unit.SECONDS),
    ("errors", "error-rate", None, Unit.RATIO),
)


class LocalLoop:
    """The rollout of ``canary`` on ``pool`` (set once the stack has started), its weights in
    ``memory`` (the router reads them), its GPUs in ``capacity``; every check result goes to
    :attr:`evaluations`, every evaluation to :attr:`trace`."""

    def __init__(
        self,
        canary: ModelCanary,
        capacity: GpuAccount,
        memory: MemoryRouter,
        *,
        engine: str,
        time_scale: float,
        max_time_s: float | None,
    ) -> None:
        self.canary = canary
        self.capacity = capacity
        self.memory = memory
        self.engine = engine
        self.time_scale = time_scale
        self.max_time_s = max_time_s
        self.pool: ReplicaPool | None = None
        self.share = plan.Share(0)
        """The weights on the router."""
        self.evaluations: list[dict[str, Any]] = []
        self.trace: list[TracePoint] = []
        self._noting = False
        """True while the rollout runs: the ledger notes the GPUs held."""

    def running(self) -> ReplicaPool:
        """The replicas (once the stack has started)."""
        assert self.pool is not None
        return self.pool

    def record(self, now: float) -> None:
        """While the rollout runs: note the GPUs held, and a point when anything changed."""
        if self._noting:
            pool = self.running()
            self.capacity.note(now, pool.held(), pool.in_service(), self.share)

    def _set(self, target: plan.Share, *, record: bool = True) -> None:
        """Put ``target`` on the router."""
        self.memory.set_weights(self.canary, target.weight, target.mirror)
        self.share = target
        if record:
            self.record(time.time())

    async def move(self, target: plan.Share) -> None:
        """Put ``target`` on the router in the plan's order: up and serving, weights, down."""
        if not self.capacity.planned:
            self._set(target)
            return
        sizes, pool = self.capacity.sizes, self.running()
        assert sizes is not None
        moved = plan.change(self.canary, sizes, self.capacity.demand(), self.share, target)
        await pool.scale_up(moved.before)
        self._set(target)
        pool.scale_down(moved.after)

    async def conclude(self, promoted: bool) -> None:
        """Before an outcome goes on the router: the winner sized for all the traffic and in
        service; the loser keeps what it runs (in a cluster, until it is released)."""
        sizes = self.capacity.sizes
        if not self.capacity.planned:
            return
        assert sizes is not None
        target = plan.Share(100 if promoted else 0)
        winner = plan.change(self.canary, sizes, self.capacity.demand(), self.share, target).after
        only = plan.Replicas(0, winner.candidate) if promoted else plan.Replicas(winner.stable, 0)
        await self.running().scale_up(only)

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
                    self._set(target, record=False)
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
        window = self.canary.spec.analysis.window.seconds
        out: dict[str, dict[str, str]] = {}
        for variant in (self.canary.spec.stable.name, self.canary.spec.candidate.name):
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
        replicas = self.running().replicas
        pods = tuple(Pod(role, r.pod, r.in_service) for role in ROLES for r in replicas[role])
        return RunSnapshot(state, pods, self.share.weight, self.share.mirror)

    async def run(
        self,
        display: ProgressDisplay,
        stop: asyncio.Event,
        started: float,
        prometheus: PrometheusServer | None,
        load: LoadGenerator | None,
        watcher: RunWatcher | None = None,
    ) -> tuple[RolloutState, list[tuple[float, int]], bool]:
        """The controller's loop on this stack until an outcome, ``stop`` or the deadline.

        Returns the final state, the (time, weight) timeline and whether it was interrupted;
        every check result is appended to :attr:`evaluations`, the GPUs held go to
        :attr:`ledger` and :attr:`points` (:meth:`report`). ``watcher`` is told every new state
        and its intents go to the state machine each tick, as the controller's do."""
        watcher = watcher or NoWatcher()
        assert prometheus is not None
        provider = PrometheusProvider(from_url(prometheus.url, timeout_s=5.0))
        canary = self.canary
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
                stats = load.stats if load is not None else None
                display.update(
                    ProgressFrame(canary, state, self.engine, self.time_scale, now, stats, live)
                )
                if state.terminal:
                    return state, timeline, False
                if self.max_time_s is not None and time.monotonic() - started >= self.max_time_s:
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
