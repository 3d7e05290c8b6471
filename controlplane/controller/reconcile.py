"""Reconcile one ModelCanary at one time: the imperative shell around the rollout machine.

Owns :class:`Reconciler`: read, validate, decide and requeue, in two halves (``prepare``,
``finish``) so one analysis tick serves every canary due at it; each decision is persisted before
its effects (:mod:`controlplane.controller.catch_up`). docs/controller.md, "Per resource".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from controlplane.controller import adoption, capacity, children, starved
from controlplane.controller.argo_gates import DEFAULT_POLL_S, GateRunner
from controlplane.controller.catch_up import CatchUp
from controlplane.controller.context import Ctx, event, persist
from controlplane.controller.event_sink import Notifier
from controlplane.controller.gate_effects import GateEffects
from controlplane.controller.gateway_source import GatewaySources
from controlplane.controller.pairs import PairsReader, ServicePairs, read_quality
from controlplane.desired import adopting_router, desired_objects, make_router
from controlplane.errors import NotFound, Problem, SpecError
from controlplane.kube.client import KubeClient, Obj, canary_ref
from controlplane.profiles.catalog import Catalog
from controlplane.promql.http_errors import HttpSource
from controlplane.rollout import machine, schedule
from controlplane.rollout.gate_runs import abandoned_runs, pending_runs
from controlplane.rollout.intents import new_intents, read_intents
from controlplane.rollout.observations import DueCheck, Observations, QualityReading, Readiness
from controlplane.rollout.state import RolloutState, spec_hash
from controlplane.routing.base import Outcome as RouterOutcome
from controlplane.routing.base import Router
from controlplane.serving.render import LABEL_ROLE
from controlplane.serving.startup import CRASH_LOOP_RESTARTS
from controlplane.spec.defaults import as_begun
from controlplane.spec.endpoints import EndpointPolicy, endpoint_problems
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import Duration
from controlplane.status import document as st
from controlplane.validation import check_object

Key = tuple[str, str]
"""(namespace, name) of a ModelCanary."""


@dataclass(frozen=True)
class Settings:
    """What the operator may tune: the ``canaryctl controller`` flags (docs/controller.md).

    ``interval_override_s`` is part of the spec hash: changing it restarts rollouts. ``endpoints``
    are the URLs a spec may name (``--allow-prometheus``, ``--allow-argo-server``,
    ``--allow-alert-url``), closed by default to ``default_prometheus`` and the policy's own.
    """

    progress_deadline_s: float = 1800.0
    crash_loop_restarts: int = CRASH_LOOP_RESTARTS
    promote_cleanup_s: float = 600.0
    rollback_cleanup_s: float = 600.0
    verify_retry_s: float = 10.0
    pending_retry_s: float = 1.0
    interval_override_s: float | None = None
    default_prometheus: str | None = None
    endpoints: EndpointPolicy = field(default_factory=EndpointPolicy)
    pairer_image: str | None = None
    """The image of the quality judge's pairer (``--pairer-image``, this controller's own)."""

    @property
    def policy(self) -> EndpointPolicy:
        """:attr:`endpoints` with :attr:`default_prometheus` allowed (exactly)."""
        if self.default_prometheus is None or self.endpoints.own_prometheus is not None:
            return self.endpoints
        return self.endpoints.with_own(prometheus=self.default_prometheus)


@dataclass(frozen=True)
class Done:
    """Nothing more to do now; call again at ``requeue_at`` (None: only on a change)."""

    requeue_at: float | None


@dataclass(frozen=True)
class NeedsAnalysis:
    """The machine wants observations of ``due`` at ``ctx.now``; the runner batches them,
    ``error-rate`` reading ``http_source`` (None: the spec's)."""

    ctx: Ctx
    due: Sequence[DueCheck]
    http_source: HttpSource | None = None

    @property
    def canary(self) -> ModelCanary:
        return self.ctx.canary

    @property
    def reads_quality(self) -> bool:
        """Whether this evaluation also reads the canary's pairer (``spec.quality``, in the
        shadow phase or a step): the runner reads it beside the batch's queries
        (:meth:`Reconciler.read_pairs`)."""
        quality = self.canary.spec.quality is not None
        return quality and self.ctx.state.stage in ("shadow", "steps") and bool(self.due)


Prepared = Done | NeedsAnalysis


def candidate_objects(objects: Sequence[Obj]) -> list[Obj]:
    """The candidate's own objects among ``objects`` (its role label), or all of them where the
    variants share one (the ``kserve`` router's single InferenceService) (pure)."""
    own = [o for o in objects if o["metadata"].get("labels", {}).get(LABEL_ROLE) == "candidate"]
    return own or list(objects)


class Reconciler:
    """Reconciles ModelCanaries through ``kube``; ``router_for`` builds a canary's router;
    ``gates`` runs ``spec.gates`` Workflows (None: gates cannot run, so a gated canary pauses
    after ``analysis.errorLimit`` polls and says why); ``pairs`` reads a quality canary's pairer
    at each evaluation of a step (default: through the API server's Service proxy,
    :class:`ServicePairs`)."""

    def __init__(
        self,
        kube: KubeClient,
        catalog: Catalog,
        settings: Settings | None = None,
        router_for: Callable[[ModelCanary], Router] | None = None,
        notifier: Notifier | None = None,
        gates: GateRunner | None = None,
        pairs: PairsReader | None = None,
    ) -> None:
        self.kube = kube
        self.pairs = pairs or ServicePairs(kube)
        self.catalog = catalog
        self.settings = settings or Settings()
        self.gates = gates
        self._gate_effects = GateEffects(kube, gates)
        self._gateways = GatewaySources(kube)  # error-rate's HTTP source
        self._made_router = router_for or (
            lambda canary: make_router(canary.spec.traffic.router, kube, catalog)
        )
        self.catch_up = CatchUp(
            kube,
            catalog,
            self._gate_effects,
            notifier,
            self._router_for,
            self._objects,
            self.settings.progress_deadline_s,
            self._cleanup_s,
        )

    def _router_for(self, canary: ModelCanary) -> Router:
        """The canary's router (promoting into the live service for an adopted stable)."""
        return adopting_router(self._made_router(canary), canary, self.kube, self.catalog)

    # ------------------------------------------------------------------------- the two halves

    def prepare(self, key: Key, now: float) -> Prepared:
        """Read, validate, catch up, and decide whether the machine must run now."""
        read = self._read(key, now)
        if isinstance(read, Done):
            return read
        ctx, canary = read, read.canary
        spec_changed = ctx.state.spec_hash != spec_hash(canary)
        if not spec_changed:
            # a person's intent (abort, promote, pause) is heard even while the router refuses
            # the weights: the failure is raised after the machine has seen it (``finish``)
            self.catch_up.run(ctx, defer_error=bool(ctx.recorded))
            ctx.gate_obs = self._gate_effects.poll(ctx)
        state = ctx.state
        overdue = not spec_changed and self._readiness_overdue(state, now)
        due_now = schedule.evaluation_due(canary, state, now)
        if not (spec_changed or ctx.recorded or due_now or ctx.gate_obs or overdue):
            return Done(self._requeue(ctx))
        if ctx.unverified and not (spec_changed or ctx.recorded or overdue):
            return Done(self._requeue(ctx))  # the step has not begun: nothing to evaluate yet
        if (
            not spec_changed
            and due_now
            and state.stage in ("shadow", "steps")
            and not ctx.unverified
        ):
            due = schedule.due_checks(canary, state, now)
            objects = candidate_objects(self._objects(ctx))
            ctx.candidate_readiness = self._candidate_readiness(ctx, objects)
            return NeedsAnalysis(ctx, due, self._gateways.source(ctx.obj, canary, now))
        obs = None
        if not spec_changed and state.stage == "pending" and (due_now or overdue):
            ready = self._candidate_readiness(ctx, self._objects(ctx))
            obs = Observations(
                candidate_ready=ready.ready,
                not_ready_why=ready.why,
                cannot_start=ready.cannot_start,
                progress_deadline_s=self.settings.progress_deadline_s,
            )
        return Done(self.finish(ctx, obs))

    def read_pairs(self, ctx: Ctx) -> QualityReading:
        """The quality judge's next reading: the pairs ``ctx``'s pairer scored since the last
        folded in (:func:`~controlplane.controller.pairs.read_quality`; a pairer that cannot be
        read is a failed read). Called by the runner, for :attr:`NeedsAnalysis.reads_quality`,
        in a thread of its own beside the batch's queries; its result goes into the
        evaluation's observations."""
        return read_quality(self.pairs, ctx.canary, ctx.state.quality)

    def finish(self, ctx: Ctx, obs: Observations | None) -> float | None:
        """Step the machine, persist its decision, then apply the effects. The next wake time."""
        intents = [r.intent for r in ctx.recorded]
        if obs is not None and ctx.candidate_readiness is not None:
            ready = ctx.candidate_readiness
            obs = replace(
                obs,
                candidate_ready=ready.ready,
                not_ready_why=ready.why,
                cannot_start=ready.cannot_start,
                candidate_serving=ready.serving,
                candidate_read=True,
                progress_deadline_s=self.settings.progress_deadline_s,
            )
            ctx.candidate_readiness = None
        if ctx.gate_obs:
            gates = dict(ctx.gate_obs)
            obs = replace(obs, gates=gates) if obs is not None else Observations(gates=gates)
            ctx.gate_obs = {}
        previous = ctx.state
        if obs is not None:
            capacity.observe(ctx, obs.demand_rps)  # the demand the capacity plan follows
            if obs.checks:
                starved.assess(self.kube, ctx, obs)  # a candidate its route starves
        ctx.state, _actions = machine.step(ctx.canary, ctx.state, obs, ctx.now, intents)
        if ctx.recorded:
            ctx.book = replace(ctx.book, last_intent_id=ctx.recorded[-1].id)
            ctx.recorded = []
        persist(self.kube, ctx)
        if (ctx.state.spec_hash, ctx.state.started_at) != (previous.spec_hash, previous.started_at):
            self._gate_effects.stop_previous(ctx, previous)
        self.catch_up.run(ctx)
        return self._requeue(ctx)

    def reconcile(
        self,
        key: Key,
        now: float,
        analyse: Callable[[ModelCanary, Sequence[DueCheck], float], Observations],
    ) -> float | None:
        """Both halves for one canary (the runner batches many instead)."""
        prepared = self.prepare(key, now)
        if isinstance(prepared, Done):
            return prepared.requeue_at
        return self.finish(prepared.ctx, analyse(prepared.canary, prepared.due, now))

    # ------------------------------------------------------------------------- reading

    def _read(self, key: Key, now: float) -> Ctx | Done:
        """The canary's context at ``now`` (its finalizer ensured, a new rollout's first state
        persisted), or Done when it is gone, being deleted or invalid."""
        try:
            obj = self.kube.get(canary_ref(*key))
        except NotFound:
            self._gateways.forget(*key)
            return Done(None)
        meta = obj.get("metadata", {})
        if meta.get("deletionTimestamp"):
            self._gateways.forget(*key)
            self._delete(obj)
            return Done(None)
        canary, problems = self._load(obj)
        if canary is None:
            self._invalid(obj, problems, now)
            return Done(None)
        obj = self._ensure_finalizer(obj)
        # an adopted stable is read when its rollout begins, then from status.adopted
        obj, canary = adoption.resolved(self.kube, obj, canary, self.catalog, now)
        previous = obj.get("status")
        try:
            state = st.read_state(previous)
        except SpecError as exc:
            self._invalid(obj, [Problem(p.path, p.message) for p in exc.problems], now)
            return Done(None)
        fresh = state or schedule.initial_state(canary, now)
        canary = as_begun(canary, fresh.defaults)  # a rollout keeps the defaults it began under
        ctx = Ctx(obj, canary, fresh, st.read_book(previous), now)
        if state is None or previous.get("phase") == "invalid":  # type: ignore[union-attr]
            persist(self.kube, ctx)  # the decision to start (or go on) comes before any effect
        recorded, problem = read_intents(meta.get("annotations"))
        if problem:
            event(self.kube, ctx.obj, "InvalidIntent", problem, "Warning")
        ctx.intent_problem = problem or None
        ctx.recorded = new_intents(recorded, ctx.book.last_intent_id)
        return ctx

    def _load(
        self, obj: Obj, *, endpoints: bool = True
    ) -> tuple[ModelCanary | None, list[Problem]]:
        """The canary of ``obj``, or every problem it has: the spec's own and the product's
        (:func:`~controlplane.validation.check_object`), and each URL it names that this
        controller's endpoint policy does not allow (:func:`~controlplane.spec.endpoints.
        endpoint_problems`: the controller is not sent where an administrator did not allow;
        ``endpoints=False`` leaves them out, for deleting what the canary deployed)."""
        data = {k: v for k, v in obj.items() if k != "status"}
        problems = check_object(data, self.catalog)
        try:
            canary = ModelCanary.model_validate(data)
        except ValidationError:
            return None, problems  # its shape is wrong: check_object said where
        if endpoints:
            problems.extend(endpoint_problems(canary, self.settings.policy))
        if problems:
            return None, problems
        override = self.settings.interval_override_s
        if override is not None:
            analysis = canary.spec.analysis.model_copy(update={"interval": Duration.of(override)})
            spec = canary.spec.model_copy(update={"analysis": analysis})
            canary = canary.model_copy(update={"spec": spec})
        return canary, []

    def _objects(self, ctx: Ctx) -> list[Obj]:
        return desired_objects(
            ctx.canary,
            self.catalog,
            ctx.state.weight,
            ctx.state.mirror,
            pairer_image=self.settings.pairer_image,
        )

    def _candidate_readiness(self, ctx: Ctx, objects: Sequence[Obj]) -> Readiness:
        """``objects``' readiness and, when not ready, whether the candidate's pods say it
        cannot start (:func:`~controlplane.controller.children.candidate_readiness`)."""
        return children.candidate_readiness(
            self.kube, ctx.canary, objects, ctx.obj, self.settings.crash_loop_restarts
        )

    def _readiness_overdue(self, state: RolloutState, now: float) -> bool:
        """Pending past the progress deadline: readiness is observed at every reconcile, for the
        machine's ``not-ready`` rule."""
        deadline = schedule.progress_deadline(state, self.settings.progress_deadline_s)
        return state.stage == "pending" and deadline is not None and now >= deadline

    # ------------------------------------------------------------------------- writing

    def _invalid(self, obj: Obj, problems: Sequence[Problem], now: float) -> None:
        previous = obj.get("status")
        generation = obj.get("metadata", {}).get("generation")
        new = st.invalid_status(problems, generation, previous, now)
        if st.same_status(previous, new):
            return
        body = copy.deepcopy(obj)
        body["status"] = new
        stored = self.kube.replace_status(body)
        message = "; ".join(p.format() for p in problems[:5])
        text = f"spec is invalid, nothing applied: {message}"
        event(self.kube, stored, "InvalidSpec", text, "Warning")

    def _ensure_finalizer(self, obj: Obj) -> Obj:
        finalizers = list(obj.get("metadata", {}).get("finalizers") or [])
        if st.FINALIZER in finalizers:
            return obj
        return self._with_finalizers(obj, [*finalizers, st.FINALIZER])

    def _with_finalizers(self, obj: Obj, finalizers: list[str]) -> Obj:
        body = copy.deepcopy(obj)
        body["metadata"]["finalizers"] = finalizers
        body.pop("status", None)
        return self.kube.replace(body)

    # ------------------------------------------------------------------------- effects

    def _cleanup_s(self, outcome: RouterOutcome) -> float:
        """How long the losing variant of ``outcome`` keeps running."""
        if outcome == "promoted":
            return self.settings.promote_cleanup_s
        return self.settings.rollback_cleanup_s

    def _delete(self, obj: Obj) -> None:
        """Finalizer: delete what the canary deployed (routes first), then drop the finalizer."""
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if st.FINALIZER not in finalizers:
            return
        canary, _ = self._load(obj, endpoints=False)  # deleting sends nothing to them
        if canary is not None:
            canary = adoption.from_status(obj, canary)  # the live service is never deleted
            state = st.read_state(obj.get("status")) if st.has_state(obj.get("status")) else None
            weight = state.weight if state is not None else 0
            mirror = state.mirror if state is not None else False
            objects = desired_objects(
                canary, self.catalog, weight, mirror, pairer_image=self.settings.pairer_image
            )
            left = children.delete_all(self.kube, obj, objects)  # only the canary's own
            if left:
                text = f"left {len(left)} object(s) this canary did not create: {'; '.join(left)}"
                event(self.kube, obj, children.FOREIGN_REASON, text)
        self._with_finalizers(obj, [f for f in finalizers if f != st.FINALIZER])

    # ------------------------------------------------------------------------- timing

    def _requeue(self, ctx: Ctx) -> float | None:
        state, canary = ctx.state, ctx.canary
        times: list[float] = []
        if ctx.unverified:
            retry_s = self.settings.verify_retry_s
            if ctx.pending is not None and ctx.error is None:
                retry_s = self.settings.pending_retry_s
            times.append(ctx.now + retry_s)
        if state.spec_hash != spec_hash(canary):
            times.append(ctx.now)
        nxt = schedule.next_evaluation(canary, state)
        if nxt is not None:
            times.append(nxt)
        deadline = schedule.progress_deadline(state, self.settings.progress_deadline_s)
        if state.stage == "pending" and deadline is not None and deadline > ctx.now:
            times.append(deadline)  # a passed one is no wake time
        submitted = ctx.book.gates_submitted
        stopping = self.gates is not None and abandoned_runs(canary, state, submitted)
        if pending_runs(canary, state) or stopping:
            poll = self.gates.poll_interval_s if self.gates is not None else DEFAULT_POLL_S
            times.append(ctx.now + poll)
        if state.terminal and ctx.book.finished_at is not None:
            tag = f"{state.spec_hash}:{state.stage}"
            if ctx.book.cleaned != tag:
                outcome: RouterOutcome = "promoted" if state.stage == "promoted" else "rolled_back"
                times.append(ctx.book.finished_at + self._cleanup_s(outcome))
        return min(times) if times else None
