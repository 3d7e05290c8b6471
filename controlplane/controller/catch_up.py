"""The controller's catch-up: the world brought to a canary's persisted state, effect by effect.

Owns :class:`CatchUp`, idempotent, called by :class:`controlplane.controller.reconcile.Reconciler`
after every decision is persisted (docs/controller.md, "Crash safety").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from controlplane.controller import capacity, children, traffic
from controlplane.controller.context import Ctx, event, persist
from controlplane.controller.event_sink import EventSink, Notifier
from controlplane.controller.gate_effects import GateEffects
from controlplane.kube.client import KubeClient, Obj
from controlplane.profiles.catalog import Catalog
from controlplane.rollout import machine, schedule
from controlplane.rollout.observations import Observations
from controlplane.routing.base import Outcome as RouterOutcome
from controlplane.routing.base import Router
from controlplane.spec.models import ModelCanary


class CatchUp:
    """The effects of one canary's persisted state through ``kube``: ``router_for`` builds its
    router, ``objects`` its serving objects; ``cleanup_s`` is how long an outcome's loser keeps
    running."""

    def __init__(
        self,
        kube: KubeClient,
        catalog: Catalog,
        gate_effects: GateEffects,
        notifier: Notifier | None,
        router_for: Callable[[ModelCanary], Router],
        objects: Callable[[Ctx], list[Obj]],
        progress_deadline_s: float,
        cleanup_s: Callable[[RouterOutcome], float],
    ) -> None:
        self.kube = kube
        self.catalog = catalog
        self.gate_effects = gate_effects
        self.notifier = notifier
        self.told = EventSink(kube)  # Kubernetes Events, then the notifier
        self.router_for = router_for
        self.objects = objects
        self.progress_deadline_s = progress_deadline_s
        self.cleanup_s = cleanup_s

    def run(self, ctx: Ctx, *, defer_error: bool = False) -> None:
        """Bring the world to the persisted state (idempotent), then persist the book. A failed
        effect is raised (the runner backs the canary off) unless ``defer_error``: then the
        machine runs first, and the effects are tried again after it (``finish``)."""
        state, canary = ctx.state, ctx.canary
        ctx.unverified, ctx.pending, ctx.trouble = False, None, {}
        router = self.router_for(canary)
        if state.deployed and ctx.book.deployed_hash != state.spec_hash and not state.terminal:
            objects = self.objects(ctx)
            ctx.notes.update(
                children.deploy(self.kube, ctx.obj, canary.metadata.namespace, objects, ctx.now)
            )
            ctx.book = replace(ctx.book, deployed_hash=state.spec_hash)
            text = f"applied the serving objects of {canary.spec.candidate.name}"
            event(self.kube, ctx.obj, "Deployed", text)
        self.gate_effects.stop_abandoned(ctx)
        if not state.terminal:
            if capacity.before_weights(self.kube, ctx, self.catalog):  # scale up first
                traffic.verify_weights(self.kube, ctx, router)
                capacity.after_weights(self.kube, ctx, self.catalog)  # then down
            self._weights_refused(ctx)
            if ctx.state.terminal:
                self._finalize(ctx, router)
            else:
                self.gate_effects.submit(ctx, self._endpoints)
        elif state.noop:
            traffic.finalize_noop(self.kube, ctx, router)
        else:
            self._finalize(ctx, router)
        capacity.record(self.kube, ctx, self.catalog)
        self._notify(ctx)
        persist(self.kube, ctx, effects=True)
        if ctx.error is not None:
            error, ctx.error = ctx.error, None
            if not defer_error:
                raise error  # the runner backs this canary off (exponentially, capped)

    def _weights_refused(self, ctx: Ctx) -> None:
        """Once the progress deadline has passed since the stage began with its weights still
        refused by the router, ask the machine (rule ``not-routed``) with the router's read-back;
        its decision is persisted before any effect of it."""
        refused = traffic.weights_refused(ctx)
        deadline_s = self.progress_deadline_s
        deadline = schedule.progress_deadline(ctx.state, deadline_s)
        if refused is None or deadline is None or ctx.now < deadline:
            return
        obs = Observations(weights_refused=refused, progress_deadline_s=deadline_s)
        ctx.state, _actions = machine.step(ctx.canary, ctx.state, obs, ctx.now)
        if ctx.state.terminal:
            ctx.error, ctx.pending, ctx.unverified = None, None, False
            persist(self.kube, ctx)  # the decision comes before its effects

    def _finalize(self, ctx: Ctx, router: Router) -> None:
        state = ctx.state
        if ctx.book.finalized != f"{state.spec_hash}:{state.stage}":
            promoted = state.stage == "promoted"
            if not capacity.before_outcome(self.kube, ctx, self.catalog, promoted):
                return  # the winner is not sized for all the traffic yet
        traffic.finalize(self.kube, ctx, router, self.cleanup_s, self._release)

    def _release(self, ctx: Ctx, role: str) -> list[str]:
        return children.release(self.kube, ctx.canary, self.objects(ctx), role)

    def _endpoints(self, ctx: Ctx) -> dict[str, str]:
        return children.variant_endpoints(self.kube, ctx.canary, self.objects(ctx))

    def _notify(self, ctx: Ctx) -> None:
        notify = self.notifier.notify if self.notifier is not None else None
        ctx.book = self.told.tell(ctx.obj, ctx.canary, ctx.state, ctx.book, ctx.now, notify)
