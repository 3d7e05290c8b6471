"""Reconcile one ModelCanary at one time: the imperative shell around the rollout machine.

Owns the per-resource algorithm (docs/controller.md states it rule by rule):

1. Deleted (``deletionTimestamp``): delete what the canary deployed, drop the finalizer.
2. Validate the spec with the same function as ``canaryctl validate``; an invalid spec gets
   ``phase: invalid``, a Stalled condition and an Event, and nothing is applied.
3. Ensure the finalizer; read the rollout state from ``status`` (a new rollout starts with
   :func:`~controlplane.rollout.machine.initial_state`, persisted before anything is deployed).
4. **Catch up** the world with the persisted state (level-triggered, idempotent): deploy the spec's
   serving objects (with ownerReferences), set and VERIFY the weights (the step clock starts when
   verification succeeds), finalize the outcome on the router, release the losing variant after
   its delay, emit an Event for every new history entry. The bookkeeping of what has been done is
   the status' ``controller`` section (:class:`~controlplane.controller.status.Book`).
5. When the machine wants to be called (an evaluation is due, the spec changed, a new intent):
   a candidate not ready within the progress deadline is rolled back; otherwise
   :func:`~controlplane.rollout.machine.step` runs on observations (readiness while pending; the
   analysis of the due checks, batched by the runner, in shadow/steps), its new state is
   persisted with ``replace_status`` and the resourceVersion read, and only then step 4 applies
   its effects. Actions returned by the machine are not executed as such: every effect is derived
   from the persisted state, so a controller killed between the write and the effect redoes the
   effect, never the decision.
6. **Gates** (``spec.gates``, docs/gates.md): while the machine holds a transition for gate runs,
   catching up submits each run's Workflow (deterministic name, recorded in
   ``controller.gatesSubmitted``; an AlreadyExists after a crash is the same Workflow), and every
   reconcile polls the submitted ones and hands their phases to the machine as observations,
   requeueing at the gate runner's poll interval. A Workflow still running when the machine no
   longer waits for it (it timed out, another gate failed, a rollback, an abort) is stopped, and
   the stop is retried until the Argo Server takes it; a new rollout (spec change, ``retry``)
   stops its predecessor's once, best effort. A no-op rollout (candidate equal to stable) touches
   nothing in the cluster.

:class:`Reconciler` is driven by :mod:`controlplane.controller.runner` in two halves,
:meth:`Reconciler.prepare` and :meth:`Reconciler.finish`, so that one analysis tick can serve
every canary due at it. Time is always an argument (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from controlplane.controller import status as st
from controlplane.controller.gates import DEFAULT_POLL_S, GateRunner, variant_endpoint
from controlplane.errors import (
    KubeError,
    NotFound,
    Problem,
    RouterError,
    RouterPending,
    SpecError,
)
from controlplane.kube.client import KubeClient, Obj, Ref, canary_ref
from controlplane.profiles.catalog import Catalog
from controlplane.rollout import machine
from controlplane.rollout.gates import abandoned_runs, pending_runs, unfinished_runs
from controlplane.rollout.observations import DueCheck, GateObservation, Observations
from controlplane.rollout.state import (
    HISTORY_LIMIT,
    Event,
    Reason,
    RolloutState,
    spec_hash,
)
from controlplane.routing.base import CAPABILITIES, Router, Weights
from controlplane.routing.base import Outcome as RouterOutcome
from controlplane.routing.objects import desired_objects, make_router
from controlplane.serving.render import LABEL_ROLE
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import Duration
from controlplane.validation import check_object

log = logging.getLogger(__name__)

FIELD_MANAGER = "canary-controller"
OWNER_FIELD_MANAGER = "canary-controller-owner"
SERVED_KINDS = frozenset({"InferenceService", "LLMInferenceService"})
WARNING_EVENTS = frozenset({"Breached", "RolledBack", "Paused", "Throttled", "Held", "GateFailed"})


class Notifier(Protocol):
    """Told of every rollout event once, after the decision is persisted (alerts, metrics).

    Must not block: implementations queue the work and return (``controlplane.notify``).
    """

    def notify(self, obj: Obj, canary: ModelCanary, state: RolloutState, event: Event) -> None: ...


Key = tuple[str, str]
"""(namespace, name) of a ModelCanary."""


@dataclass(frozen=True)
class Settings:
    """What the operator may tune (``canaryctl controller`` flags).

    ``progress_deadline_s``: how long a candidate may take to become ready (GPU model loading is
    slow) before it is rolled back. ``promote_cleanup_s`` / ``rollback_cleanup_s``: how long the
    losing variant (old stable / failed candidate) keeps running after the outcome, for a quick
    manual undo. ``verify_retry_s``: how soon unverified weights are tried again.
    ``interval_override_s``: replace every spec's ``analysis.interval`` (demos and tests; note that
    it is part of the spec hash, so changing it restarts rollouts).
    """

    progress_deadline_s: float = 1800.0
    promote_cleanup_s: float = 600.0
    rollback_cleanup_s: float = 600.0
    verify_retry_s: float = 10.0
    interval_override_s: float | None = None
    default_prometheus: str | None = None


@dataclass
class _Ctx:
    """One canary during one reconcile: the object as last read or written, and its state."""

    obj: Obj
    canary: ModelCanary
    state: RolloutState
    book: st.Book
    now: float
    unverified: bool = False
    error: Exception | None = None
    recorded: list[st.RecordedIntent] = field(default_factory=list)
    gate_obs: dict[str, GateObservation] = field(default_factory=dict)
    gate_problems: dict[str, GateObservation] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.canary.metadata.namespace, self.canary.metadata.name)


@dataclass(frozen=True)
class Done:
    """Nothing more to do now; call again at ``requeue_at`` (None: only on a change)."""

    requeue_at: float | None


@dataclass(frozen=True)
class NeedsAnalysis:
    """The machine wants observations of ``due`` at ``ctx.now``; the runner batches them."""

    ctx: _Ctx
    due: Sequence[DueCheck]

    @property
    def canary(self) -> ModelCanary:
        return self.ctx.canary


Prepared = Done | NeedsAnalysis


class Reconciler:
    """Reconciles ModelCanaries through ``kube``; ``router_for`` builds a canary's router;
    ``gates`` runs ``spec.gates`` Workflows (None: gates cannot run, so a gated canary pauses
    after ``analysis.errorLimit`` polls and says why)."""

    def __init__(
        self,
        kube: KubeClient,
        catalog: Catalog,
        settings: Settings | None = None,
        router_for: Callable[[ModelCanary], Router] | None = None,
        notifier: Notifier | None = None,
        gates: GateRunner | None = None,
    ) -> None:
        self.kube = kube
        self.catalog = catalog
        self.settings = settings or Settings()
        self.notifier = notifier
        self.gates = gates
        self._stop_warned: set[str] = set()  # Workflows whose failed stop was announced
        self._router_for = router_for or (
            lambda canary: make_router(canary.spec.traffic.router, kube, catalog)
        )

    # ------------------------------------------------------------------------- the two halves

    def prepare(self, key: Key, now: float) -> Prepared:
        """Read, validate, catch up, and decide whether the machine must run now."""
        try:
            obj = self.kube.get(canary_ref(*key))
        except NotFound:
            return Done(None)
        meta = obj.get("metadata", {})
        if meta.get("deletionTimestamp"):
            self._delete(obj)
            return Done(None)
        canary, problems = self._load(obj)
        if canary is None:
            self._invalid(obj, problems, now)
            return Done(None)
        obj = self._ensure_finalizer(obj)
        previous = obj.get("status")
        try:
            state = st.read_state(previous)
        except SpecError as exc:
            self._invalid(obj, [Problem(p.path, p.message) for p in exc.problems], now)
            return Done(None)
        fresh = state or machine.initial_state(canary, now)
        ctx = _Ctx(obj, canary, fresh, st.read_book(previous), now)
        if state is None or previous.get("phase") == "invalid":  # type: ignore[union-attr]
            self._persist(ctx)  # the decision to start (or go on) comes before any effect
        recorded, problem = st.read_intents(meta.get("annotations"))
        if problem:
            self._event(ctx.obj, "InvalidIntent", problem, "Warning")
        ctx.recorded = st.new_intents(recorded, ctx.book.last_intent_id)
        spec_changed = ctx.state.spec_hash != spec_hash(canary)
        if not spec_changed:
            self._catch_up(ctx)
        state = ctx.state
        if (
            not spec_changed
            and state.stage == "pending"
            and now >= state.started_at + self.settings.progress_deadline_s
            and not self._ready(ctx)
        ):
            ctx.state = deadline_rollback(ctx.state, canary, now, self.settings.progress_deadline_s)
            self._persist(ctx)
            self._catch_up(ctx)
            return Done(self._requeue(ctx))
        if not spec_changed:
            ctx.gate_obs = self._poll_gates(ctx)
        due_now = machine.evaluation_due(canary, state, now)
        if not (spec_changed or ctx.recorded or due_now or ctx.gate_obs):
            return Done(self._requeue(ctx))
        if ctx.unverified and not (spec_changed or ctx.recorded):
            return Done(self._requeue(ctx))  # the step has not begun: nothing to evaluate yet
        if not spec_changed and due_now and state.stage in ("shadow", "steps"):
            return NeedsAnalysis(ctx, machine.due_checks(canary, state, now))
        obs = None
        if not spec_changed and due_now and state.stage == "pending":
            obs = Observations(candidate_ready=self._ready(ctx))
        return Done(self.finish(ctx, obs))

    def finish(self, ctx: _Ctx, obs: Observations | None) -> float | None:
        """Step the machine, persist its decision, then apply the effects. The next wake time."""
        intents = [r.intent for r in ctx.recorded]
        if ctx.gate_obs:
            gates = dict(ctx.gate_obs)
            obs = replace(obs, gates=gates) if obs is not None else Observations(gates=gates)
            ctx.gate_obs = {}
        previous = ctx.state
        ctx.state, _actions = machine.step(ctx.canary, ctx.state, obs, ctx.now, intents)
        if ctx.recorded:
            ctx.book = replace(ctx.book, last_intent_id=ctx.recorded[-1].id)
            ctx.recorded = []
        self._persist(ctx)
        if (ctx.state.spec_hash, ctx.state.started_at) != (previous.spec_hash, previous.started_at):
            self._stop_previous_gates(ctx, previous)
        self._catch_up(ctx)
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

    def _load(self, obj: Obj) -> tuple[ModelCanary | None, list[Problem]]:
        data = {k: v for k, v in obj.items() if k != "status"}
        problems = check_object(data, self.catalog)
        if problems:
            return None, problems
        canary = ModelCanary.model_validate(data)
        override = self.settings.interval_override_s
        if override is not None:
            analysis = canary.spec.analysis.model_copy(update={"interval": Duration.of(override)})
            spec = canary.spec.model_copy(update={"analysis": analysis})
            canary = canary.model_copy(update={"spec": spec})
        return canary, []

    def _ready(self, ctx: _Ctx) -> bool:
        """True when every InferenceService / LLMInferenceService of the spec reports Ready for
        its latest generation."""
        for obj in self._objects(ctx):
            if obj["kind"] not in SERVED_KINDS:
                continue
            try:
                live = self.kube.get(Ref.of(obj))
            except NotFound:
                return False
            if not is_ready(live):
                return False
        return True

    def _objects(self, ctx: _Ctx) -> list[Obj]:
        return desired_objects(ctx.canary, self.catalog, ctx.state.weight, ctx.state.mirror)

    # ------------------------------------------------------------------------- writing

    def _persist(self, ctx: _Ctx) -> None:
        """Write the status (state + book) with the resourceVersion read; Conflict propagates
        (the runner re-reads and retries: nothing has been applied for this decision yet)."""
        previous = ctx.obj.get("status")
        generation = ctx.obj.get("metadata", {}).get("generation")
        new = st.rollout_status(ctx.state, ctx.book, generation, previous, ctx.now)
        if st.same_status(previous, new):
            return
        body = copy.deepcopy(ctx.obj)
        body["status"] = new
        ctx.obj = self.kube.replace_status(body)

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
        self._event(stored, "InvalidSpec", text, "Warning")

    def _ensure_finalizer(self, obj: Obj) -> Obj:
        finalizers = list(obj.get("metadata", {}).get("finalizers") or [])
        if st.FINALIZER in finalizers:
            return obj
        body = copy.deepcopy(obj)
        body["metadata"]["finalizers"] = [*finalizers, st.FINALIZER]
        body.pop("status", None)
        return self.kube.replace(body)

    def _event(self, obj: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        self.kube.event(obj, reason, message[:1024], type_)

    # ------------------------------------------------------------------------- effects

    def _catch_up(self, ctx: _Ctx) -> None:
        """Bring the world to the persisted state (idempotent), then persist the book."""
        state, canary = ctx.state, ctx.canary
        router = self._router_for(canary)
        if state.deployed and ctx.book.deployed_hash != state.spec_hash and not state.terminal:
            self._deploy(ctx)
            ctx.book = replace(ctx.book, deployed_hash=state.spec_hash)
            text = f"applied the serving objects of {canary.spec.candidate.name}"
            self._event(ctx.obj, "Deployed", text)
        self._stop_gates(ctx)
        if not state.terminal:
            self._verify_weights(ctx, router)
            if self._weights_overdue(ctx):
                error, ctx.error, ctx.unverified = ctx.error, None, False
                ctx.state = weights_rollback(
                    ctx.state, canary, ctx.now, self.settings.progress_deadline_s, str(error)
                )
                self._persist(ctx)  # the decision comes before its effects
                self._finalize(ctx, router)
            else:
                self._submit_gates(ctx)
        elif state.noop:
            self._finalize_noop(ctx, router)
        else:
            self._finalize(ctx, router)
        self._notify(ctx)
        self._persist(ctx)
        if ctx.error is not None:
            error, ctx.error = ctx.error, None
            raise error  # the runner backs this canary off (exponentially, capped)

    def _deploy(self, ctx: _Ctx) -> None:
        owner = owner_reference(ctx.obj)
        for obj in self._objects(ctx):
            self.kube.apply(obj, field_manager=FIELD_MANAGER)
            meta = obj["metadata"]
            if meta.get("namespace") == ctx.canary.metadata.namespace:
                patch: Obj = {
                    "apiVersion": obj["apiVersion"],
                    "kind": obj["kind"],
                    "metadata": {
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "ownerReferences": [owner],
                    },
                }
                self.kube.apply(patch, field_manager=OWNER_FIELD_MANAGER)

    def _verify_weights(self, ctx: _Ctx, router: Router) -> None:
        state = ctx.state
        want = st.Verified(
            state.spec_hash, state.stage, state.step_index, state.weight, state.mirror, ctx.now
        )
        have = ctx.book.verified
        if have is not None and replace(have, at=ctx.now) == want:
            ctx.unverified = False
            return
        if state.stage == "pending" and ctx.book.deployed_hash != state.spec_hash:
            ctx.unverified = False  # nothing deployed yet: nothing to route, nothing to wait for
            return
        try:
            router.set_weights(ctx.canary, state.weight, state.mirror)
            router.verify(ctx.canary, Weights(state.weight, state.mirror))
        except (RouterError, KubeError) as exc:  # retried with the canary's backoff
            ctx.unverified = True
            ctx.error = exc
            self._event(ctx.obj, "WeightsNotVerified", str(exc), "Warning")
            return
        ctx.unverified = False
        started = have is None or (have.hash, have.stage, have.step_index) != (
            state.spec_hash,
            state.stage,
            state.step_index,
        )
        if started and state.stage in ("shadow", "steps") and ctx.now > state.stage_started_at:
            # The step's clock starts when its weights are verified, not when they were asked for.
            ctx.state = replace(state, stage_started_at=ctx.now)
        ctx.book = replace(ctx.book, verified=want)
        self._event(
            ctx.obj,
            "WeightsVerified",
            f"candidate {state.weight}%{' (mirrored)' if state.mirror else ''} verified",
        )

    def _weights_overdue(self, ctx: _Ctx) -> bool:
        """The router has refused the step's weights (read back and found otherwise) for the
        whole progress deadline since the step was asked for: no traffic reached the candidate
        as the step needs, so it can never be judged (KServe v0.20.0's ``kserve`` router)."""
        state = ctx.state
        return (
            ctx.unverified
            and isinstance(ctx.error, RouterError)
            and state.stage in ("shadow", "steps")
            and ctx.now >= state.stage_started_at + self.settings.progress_deadline_s
        )

    def _finalize(self, ctx: _Ctx, router: Router) -> None:
        state, canary = ctx.state, ctx.canary
        tag = f"{state.spec_hash}:{state.stage}"
        outcome: RouterOutcome = "promoted" if state.stage == "promoted" else "rolled_back"
        if ctx.book.finalized != tag:
            try:
                router.finalize(canary, outcome)
                router.verify(canary, Weights(100 if outcome == "promoted" else 0))
            except RouterPending as exc:  # a phase applied; the next waits for the cluster
                ctx.unverified = True
                self._event(ctx.obj, "FinalizePending", str(exc))
                return
            except (RouterError, KubeError) as exc:
                ctx.unverified = True
                ctx.error = exc
                self._event(ctx.obj, "WeightsNotVerified", str(exc), "Warning")
                return
            # a later restart (retry, new spec) redeploys everything: the losing variant goes
            ctx.book = replace(
                ctx.book, finalized=tag, finished_at=ctx.now, cleaned=None, deployed_hash=None
            )
        delay = (
            self.settings.promote_cleanup_s
            if outcome == "promoted"
            else self.settings.rollback_cleanup_s
        )
        finished = ctx.book.finished_at if ctx.book.finished_at is not None else ctx.now
        if ctx.book.cleaned != tag and ctx.now >= finished + delay:
            released = self._release(ctx, "stable" if outcome == "promoted" else "candidate")
            ctx.book = replace(ctx.book, cleaned=tag)
            if released:
                self._event(ctx.obj, "Released", f"deleted {', '.join(released)}")

    def _finalize_noop(self, ctx: _Ctx, router: Router) -> None:
        """A no-op rollout (candidate equal to stable) deploys, routes and releases nothing.
        Only when it replaced a rollout that had sent traffic to another candidate and was never
        finalized is all traffic given back to stable."""
        state, book = ctx.state, ctx.book
        tag = f"{state.spec_hash}:{state.stage}"
        if book.finalized == tag:
            return
        was = book.verified
        if (
            was is not None
            and was.hash != state.spec_hash
            and not (book.finalized or "").startswith(f"{was.hash}:")
            and (was.weight > 0 or was.mirror)
        ):
            try:
                router.finalize(ctx.canary, "rolled_back")
                router.verify(ctx.canary, Weights(0))
            except (RouterError, KubeError) as exc:
                ctx.unverified = True
                ctx.error = exc
                self._event(ctx.obj, "WeightsNotVerified", str(exc), "Warning")
                return
        ctx.book = replace(
            book, finalized=tag, finished_at=ctx.now, cleaned=tag, deployed_hash=None
        )

    # ------------------------------------------------------------------------- gates

    def _submit_gates(self, ctx: _Ctx) -> None:
        """Submit the Workflow of every gate run the persisted state waits for and that the
        Argo Server has not accepted yet (an effect of the persisted decision)."""
        current = {run.workflow for run in ctx.state.gates.values()}
        submitted = tuple(n for n in ctx.book.gates_submitted if n in current)
        runs = [r for r in pending_runs(ctx.canary, ctx.state) if r.workflow not in submitted]
        if runs and self.gates is not None:
            endpoints = self._endpoints(ctx)
            for run in runs:
                problem = self.gates.submit(ctx.canary, run, endpoints, ctx.state.spec_hash)
                if problem is not None:
                    ctx.gate_problems[run.key] = problem
                    continue
                submitted = (*submitted, run.workflow)
                text = (
                    f"submitted workflow {run.namespace}/{run.workflow} for gate "
                    f"{run.gate.name} ({run.point})"
                )
                self._event(ctx.obj, "GateSubmitted", text)
        if submitted != ctx.book.gates_submitted:
            ctx.book = replace(ctx.book, gates_submitted=submitted)

    def _stop_gates(self, ctx: _Ctx) -> None:
        """Stop the Workflows of gate runs the rollout no longer waits for (an effect of the
        persisted state, :func:`~controlplane.rollout.gates.abandoned_runs`): submitted, last
        seen unfinished, and not awaited (the rollout rolled back, was aborted or ended, or the
        run timed out). A stop that fails stays in ``controller.gatesSubmitted`` and is tried
        again."""
        if self.gates is None:
            return
        stopped: list[str] = []
        for run in abandoned_runs(ctx.canary, ctx.state, ctx.book.gates_submitted):
            why = (
                f"the rollout ended ({ctx.state.stage.replace('_', ' ')})"
                if ctx.state.terminal
                else "the rollout no longer waits for it"
            )
            error = self.gates.stop(ctx.canary, run, f"stopped by {FIELD_MANAGER}: {why}")
            where = f"workflow {run.namespace}/{run.workflow} of gate {run.gate.name} ({run.point})"
            if error is not None:
                self._stop_failed(ctx, run.workflow, f"{where}: {error}")
                continue
            self._stop_warned.discard(run.workflow)
            stopped.append(run.workflow)
            self._event(ctx.obj, "GateStopped", f"{where} is not running now: {why}")
        if stopped:
            left = tuple(n for n in ctx.book.gates_submitted if n not in stopped)
            ctx.book = replace(ctx.book, gates_submitted=left)

    def _stop_previous_gates(self, ctx: _Ctx, previous: RolloutState) -> None:
        """A new rollout began (a spec change or ``retry``): stop the Workflows its predecessor
        left running. Best effort, once: the new state no longer records those runs, so a stop
        that fails (a Warning event) or a crash before it leaves the Workflow to its own
        ``activeDeadlineSeconds``."""
        if self.gates is None:
            return
        why = "a new rollout of the canary began"
        for run in unfinished_runs(ctx.canary, previous, ctx.book.gates_submitted):
            where = f"workflow {run.namespace}/{run.workflow} of gate {run.gate.name} ({run.point})"
            error = self.gates.stop(ctx.canary, run, f"stopped by {FIELD_MANAGER}: {why}")
            if error is not None:
                self._stop_failed(ctx, run.workflow, f"{where}: {error}")
            else:
                self._event(ctx.obj, "GateStopped", f"{where} is not running now: {why}")

    def _stop_failed(self, ctx: _Ctx, workflow: str, text: str) -> None:
        """One ``GateStopFailed`` warning per Workflow and controller process (the stop is
        retried at every poll; an Event each time would flood the canary's events)."""
        if workflow in self._stop_warned:
            log.info("still cannot stop %s", text)
            return
        self._stop_warned.add(workflow)
        self._event(ctx.obj, "GateStopFailed", text, "Warning")

    def _poll_gates(self, ctx: _Ctx) -> dict[str, GateObservation]:
        """What the Argo Server says about each running gate of the persisted state."""
        found: dict[str, GateObservation] = {}
        for run in pending_runs(ctx.canary, ctx.state):
            if run.key in ctx.gate_problems:
                found[run.key] = ctx.gate_problems[run.key]
            elif self.gates is None:
                found[run.key] = GateObservation(
                    run.key,
                    run.workflow,
                    None,
                    error="the controller runs without gates (no --argo-server)",
                )
            elif run.workflow in ctx.book.gates_submitted:
                found[run.key] = self.gates.poll(ctx.canary, run)
        ctx.gate_problems = {}
        return found

    def _endpoints(self, ctx: _Ctx) -> dict[str, str]:
        """In-cluster base URLs of the two variants (``{{candidate.endpoint}}``)."""
        served = [o for o in self._objects(ctx) if o["kind"] in SERVED_KINDS]
        single = CAPABILITIES[ctx.canary.spec.traffic.router].single_service
        out: dict[str, str] = {}
        for role in ("candidate", "stable"):
            obj = next(
                (
                    o
                    for o in served
                    if single or (o["metadata"].get("labels") or {}).get(LABEL_ROLE) == role
                ),
                None,
            )
            live = None
            if obj is not None:
                try:
                    live = self.kube.get(Ref.of(obj))
                except NotFound:
                    live = None
            out[role] = variant_endpoint(ctx.canary, role, live)
        return out

    def _release(self, ctx: _Ctx, role: str) -> list[str]:
        """Delete the serving objects of the losing ``role`` (single-service routers drop it
        themselves on finalize). Returns what was deleted."""
        if CAPABILITIES[ctx.canary.spec.traffic.router].single_service:
            return []
        deleted = []
        for obj in reversed(self._objects(ctx)):
            if (obj["metadata"].get("labels") or {}).get(LABEL_ROLE) != role:
                continue
            try:
                self.kube.delete(Ref.of(obj))
            except NotFound:
                continue
            deleted.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return deleted

    def _notify(self, ctx: _Ctx) -> None:
        history = ctx.state.history
        for event in st.unnotified(history, ctx.book.notified):
            type_ = "Warning" if event.type in WARNING_EVENTS else "Normal"
            self._event(ctx.obj, event.type, event.message or event.type, type_)
            if self.notifier is not None:
                self.notifier.notify(ctx.obj, ctx.canary, ctx.state, event)
        ctx.book = st.with_notified(ctx.book, history)

    def _delete(self, obj: Obj) -> None:
        """Finalizer: delete what the canary deployed (routes first), then drop the finalizer."""
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if st.FINALIZER not in finalizers:
            return
        canary, _ = self._load(obj)
        if canary is not None:
            state = st.read_state(obj.get("status")) if st.has_state(obj.get("status")) else None
            weight = state.weight if state is not None else 0
            mirror = state.mirror if state is not None else False
            for item in reversed(desired_objects(canary, self.catalog, weight, mirror)):
                try:
                    self.kube.delete(Ref.of(item))
                except NotFound:
                    continue
        body = copy.deepcopy(obj)
        body["metadata"]["finalizers"] = [f for f in finalizers if f != st.FINALIZER]
        body.pop("status", None)
        self.kube.replace(body)

    # ------------------------------------------------------------------------- timing

    def _requeue(self, ctx: _Ctx) -> float | None:
        state, canary = ctx.state, ctx.canary
        times: list[float] = []
        if ctx.unverified:
            times.append(ctx.now + self.settings.verify_retry_s)
        if state.spec_hash != spec_hash(canary):
            times.append(ctx.now)
        nxt = machine.next_evaluation(canary, state)
        if nxt is not None:
            times.append(nxt)
        deadline = state.started_at + self.settings.progress_deadline_s
        if state.stage == "pending" and deadline > ctx.now:  # a passed one is no wake time
            times.append(deadline)
        submitted = ctx.book.gates_submitted
        stopping = self.gates is not None and abandoned_runs(canary, state, submitted)
        if pending_runs(canary, state) or stopping:
            poll = self.gates.poll_interval_s if self.gates is not None else DEFAULT_POLL_S
            times.append(ctx.now + poll)
        if state.terminal and ctx.book.finished_at is not None:
            tag = f"{state.spec_hash}:{state.stage}"
            if ctx.book.cleaned != tag:
                delay = (
                    self.settings.promote_cleanup_s
                    if state.stage == "promoted"
                    else self.settings.rollback_cleanup_s
                )
                times.append(ctx.book.finished_at + delay)
        return min(times) if times else None


# --------------------------------------------------------------------------- pure helpers


def is_ready(obj: Mapping[str, Any]) -> bool:
    """KServe readiness: condition Ready True for the object's current spec.

    An InferenceService's ``status.observedGeneration`` is not its own: KServe copies the one of
    its child, the predictor Deployment's in Standard mode (``PropagateRawStatus``) or the
    Knative Service's in Serverless mode (``PropagateStatus``, both in
    ``pkg/apis/serving/v1beta1/inference_service_status.go``, v0.20.0). A change that leaves the
    Deployment alone (a canary's ``trafficPercent``) therefore never brings it up to the
    InferenceService's generation, and comparing the two would wait forever. Readiness of an
    InferenceService is its Ready condition and, for each ``spec.canary`` entry, a
    ``status.canaryStatuses`` entry that is ready at the same ``trafficPercent`` (which KServe
    writes only once it has reconciled that spec). Other kinds (LLMInferenceService) must also
    have observed their current generation.
    """
    status = obj.get("status") or {}
    if obj.get("kind") != "InferenceService":
        generation = obj.get("metadata", {}).get("generation")
        observed = status.get("observedGeneration")
        if generation is not None and observed is not None and int(observed) < int(generation):
            return False
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )
    canaries = (obj.get("spec") or {}).get("canary") or []
    if ready and canaries:
        seen = {
            c.get("name"): c for c in status.get("canaryStatuses") or [] if isinstance(c, Mapping)
        }
        for entry in canaries:
            name = (entry.get("predictor") or {}).get("name")
            got = seen.get(name)
            if (
                got is None
                or got.get("ready") is not True
                or int(got.get("trafficPercent", -1)) != int(entry.get("trafficPercent", 0))
            ):
                return False
    return ready


def owner_reference(obj: Mapping[str, Any]) -> Obj:
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deadline_rollback(
    state: RolloutState, canary: ModelCanary, now: float, deadline_s: float
) -> RolloutState:
    """The state after the candidate missed its progress deadline: rolled back, weight 0 (pure).

    The machine has no rule for readiness timeouts (it only starts once ready), so this and
    :func:`weights_rollback` are the controller's decisions of its own; each is persisted like
    any other before its effects.
    """
    message = (
        f"candidate {canary.spec.candidate.name} did not become ready within "
        f"{Duration.of(deadline_s)} (progress deadline)"
    )
    return _rolled_back(state, Reason("not-ready", message, now, state.step), now)


def weights_rollback(
    state: RolloutState, canary: ModelCanary, now: float, deadline_s: float, why: str
) -> RolloutState:
    """The state after the router could not put the step's weights in effect within the
    progress deadline (``why``: its last read-back): rolled back, weight 0 (pure)."""
    message = (
        f"the {canary.spec.traffic.router} router did not put candidate {state.weight}% in "
        f"effect within {Duration.of(deadline_s)} (progress deadline): {why}"
    )
    return _rolled_back(state, Reason("not-routed", message, now, state.step), now)


def _rolled_back(state: RolloutState, reason: Reason, now: float) -> RolloutState:
    message = reason.message
    event = Event("RolledBack", now, state.step, 0, message)
    return replace(
        state,
        stage="rolled_back",
        weight=0,
        mirror=False,
        paused=None,
        paused_at=None,
        holding=False,
        throttled=False,
        reason=reason,
        history=(*state.history, event)[-HISTORY_LIMIT:],
    )
