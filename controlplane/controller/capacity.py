"""The controller's capacity effect: each variant's replicas before and after its weights move.

Owns bringing the serving objects to the plan of :mod:`controlplane.capacity.plan`, in its order
(scale up and wait for ready before the weights move, down after), the demand kept from an
evaluation, and ``status.capacity``. Replicas are written by a field manager of their own. It
decides nothing. Called by the reconciler. See docs/capacity.md, "In the cluster".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from controlplane.capacity import plan
from controlplane.capacity.estimate import sizes_of
from controlplane.controller.context import Ctx, event
from controlplane.errors import CapacityPending, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.profiles.catalog import Catalog
from controlplane.routing.ownership import Claimant, foreign_reason
from controlplane.serving.render import deployment_name, isvc_name
from controlplane.spec.models import ModelCanary
from controlplane.status.document import CapacityRecord

FIELD_MANAGER = "canary-controller-capacity"
DEPLOYMENT_API_VERSION = "apps/v1"
ROLES = ("stable", "candidate")


def _served_kind(canary: ModelCanary) -> tuple[str, str]:
    if canary.spec.traffic.router == "llmisvc":
        return "serving.kserve.io/v1alpha2", "LLMInferenceService"
    return "serving.kserve.io/v1beta1", "InferenceService"


def _count(replicas: plan.Replicas, role: str) -> int:
    return replicas.stable if role == "stable" else replicas.candidate


def asked(obj: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The (minimum, maximum) replicas a live serving object asks for (None: not said)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "LLMInferenceService":
        value = spec.get("replicas")
        count = None if value is None else int(value)
        return count, count
    predictor = spec.get("predictor") or {}
    low, high = predictor.get("minReplicas"), predictor.get("maxReplicas")
    return (None if low is None else int(low)), (None if high is None else int(high))


def ready_replicas(kube: KubeClient, canary: ModelCanary, role: str) -> int:
    """Ready pods of ``role``'s Deployment, as KServe keeps it (0 when it does not exist)."""
    deployment = deployment_name(canary, role)  # type: ignore[arg-type]
    ref = Ref(DEPLOYMENT_API_VERSION, "Deployment", canary.metadata.namespace, deployment)
    try:
        live = kube.get(ref)
    except NotFound:
        return 0
    status = live.get("status") or {}
    return int(status.get("readyReplicas") or 0)


def _served(kube: KubeClient, ctx: Ctx, role: str) -> Obj | None:
    """``role``'s serving object, read once per reconcile (``ctx.served``); None when absent."""
    if role not in ctx.served:
        api_version, kind = _served_kind(ctx.canary)
        name = isvc_name(ctx.canary, role)  # type: ignore[arg-type]
        try:
            ctx.served[role] = kube.get(Ref(api_version, kind, ctx.canary.metadata.namespace, name))
        except NotFound:
            ctx.served[role] = None
    return ctx.served[role]


def scale(
    kube: KubeClient,
    ctx: Ctx,
    replicas: plan.Replicas,
    ceilings: plan.Replicas | None = None,
) -> list[str]:
    """Ask each variant's serving object for its count of ``replicas`` (and, autoscaling, at
    most its count of ``ceilings``) where it asks for others; the names of those changed, with
    their new bounds. An object of that name that is not the canary's is left alone."""
    canary = ctx.canary
    api_version, kind = _served_kind(canary)
    tops = ceilings if ceilings is not None else replicas
    claimant = Claimant.of_canary(canary)
    changed: list[str] = []
    for role in ROLES:
        name = isvc_name(canary, role)  # type: ignore[arg-type]
        live = _served(kube, ctx, role)
        if live is None:
            continue  # not deployed (yet, or released): nothing to size
        if foreign_reason(live, claimant) is not None:
            continue  # not the canary's: the deploy refuses it and says so, nothing is sized
        count = _count(replicas, role)
        top = max(count, 1, _count(tops, role))
        if kind == "LLMInferenceService":
            top = count
        if asked(live) == (count, top):
            continue
        body: Obj
        if kind == "LLMInferenceService":
            body = {"replicas": count}
        else:
            body = {"predictor": {"minReplicas": count, "maxReplicas": top}}
        meta = {"name": name, "namespace": canary.metadata.namespace}
        ctx.served[role] = kube.apply(
            {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": body},
            field_manager=FIELD_MANAGER,
        )
        changed.append(f"{name} to {count}" + (f"-{top}" if top > count else ""))
    return changed


def demand_of(ctx: Ctx, sizes: plan.Sizes) -> float:
    """The demand the plan is made for: what the stable's replicas were sized for, or more
    when users sent more at the last evaluation (``status.capacity.demandRps``) and the whole
    plan for it still fits the GPU budget: capacity follows traffic up, within the budget, and
    never sizes the stable below its ``replicas`` at weight 0."""
    sized = plan.sized_demand(ctx.canary, sizes)
    record = ctx.book.capacity
    observed = record.demand_rps if record is not None else None
    if observed is None or observed <= sized:
        return sized
    if plan.first_overrun(plan.rollout_plan(ctx.canary, sizes, observed), sizes) is not None:
        return sized  # more than the budget holds: what validation checked
    return observed


def observe(ctx: Ctx, demand_rps: float | None) -> None:
    """Keep the demand an evaluation read (``status.capacity.demandRps``) for the effects."""
    if ctx.canary.spec.plan is None or demand_rps is None:
        return
    was = ctx.book.capacity
    if was is None:
        new = CapacityRecord({}, {}, 0, None, 0.0, ctx.now, demand_rps)
    else:
        new = replace(was, demand_rps=demand_rps)
    ctx.book = replace(ctx.book, capacity=new)


def _ready(kube: KubeClient, ctx: Ctx, role: str) -> int:
    """:func:`ready_replicas` of ``role``, read once per reconcile (``ctx.ready``)."""
    if role not in ctx.ready:
        ctx.ready[role] = ready_replicas(kube, ctx.canary, role)
    return ctx.ready[role]


def _short(kube: KubeClient, ctx: Ctx, want: plan.Replicas) -> list[str]:
    """What is not ready yet of ``want``: ``"candidate 1/2 ready"`` per short variant."""
    short: list[str] = []
    for role in ROLES:
        count = _count(want, role)
        if count == 0:
            continue
        ready = _ready(kube, ctx, role)
        if ready < count:
            short.append(f"{role} {ready}/{count} ready")
    return short


def source_share(ctx: Ctx) -> plan.Share:
    """Where traffic is now: the weights last verified for this spec, else none on the
    candidate."""
    was = ctx.book.verified
    if was is None or was.hash != ctx.state.spec_hash:
        return plan.Share(0)
    return plan.Share(was.weight, was.mirror)


def _in_effect(ctx: Ctx) -> bool:
    """The weights of the state's stage are verified already (a step under way)."""
    was, state = ctx.book.verified, ctx.state
    return was is not None and (
        was.hash,
        was.stage,
        was.step_index,
        was.weight,
        was.mirror,
    ) == (state.spec_hash, state.stage, state.step_index, state.weight, state.mirror)


def _wait(kube: KubeClient, ctx: Ctx, short: list[str], what: str, moved: plan.Change) -> bool:
    if not short:
        return True
    message = (
        f"waiting for capacity before {what}: {', '.join(short)} "
        f"(planned {moved.before}, {moved.budget if moved.budget is not None else 'no'} GPU "
        "budget)"
    )
    ctx.unverified = True
    ctx.pending = CapacityPending(message)
    event(kube, ctx.obj, "CapacityPending", message)
    return False


def before_weights(kube: KubeClient, ctx: Ctx, catalog: Catalog) -> bool:
    """Scale up for the weights the state calls for and say whether they may be set (every
    variant whose share rises is ready at its ``before`` replicas). True without a plan."""
    canary = ctx.canary
    if canary.spec.plan is None:
        return True
    target = plan.Share(ctx.state.weight, ctx.state.mirror)
    source = source_share(ctx)
    sizes = sizes_of(canary, catalog)
    moved = plan.change(canary, sizes, demand_of(ctx, sizes), source, target)
    changed = scale(kube, ctx, moved.before, moved.ceiling_before)
    if changed:
        ctx.ready.clear()  # a scaled Deployment is read again
        event(kube, ctx.obj, "Scaled", f"before the weights move: {', '.join(changed)}")
    if ctx.state.stage == "pending" or _in_effect(ctx):
        return True  # readiness is the machine's while pending; a running step is not held
    what = f"candidate {target.weight}%{' (mirrored)' if target.mirror else ''}"
    return _wait(kube, ctx, _short(kube, ctx, moved.before), what, moved)


def after_weights(kube: KubeClient, ctx: Ctx, catalog: Catalog) -> None:
    """Once the state's weights are verified: each variant at its replicas for them (the one
    whose share fell scaled down)."""
    canary = ctx.canary
    if canary.spec.plan is None or ctx.unverified:
        return
    sizes = sizes_of(canary, catalog)
    share = plan.Share(ctx.state.weight, ctx.state.mirror)
    want = plan.replicas_at(canary, sizes, demand_of(ctx, sizes), share)
    changed = scale(kube, ctx, want, plan.ceilings(canary, share, want))
    if changed:
        ctx.ready.clear()  # a scaled Deployment is read again
        event(kube, ctx.obj, "Scaled", f"after the weights moved: {', '.join(changed)}")


def before_outcome(kube: KubeClient, ctx: Ctx, catalog: Catalog, promoted: bool) -> bool:
    """Before the outcome goes on the router: the winner sized for all the traffic and ready
    (the loser keeps what it runs until it is released). True when the outcome may go on."""
    canary = ctx.canary
    if canary.spec.plan is None:
        return True
    sizes = sizes_of(canary, catalog)
    target = plan.Share(100 if promoted else 0)
    moved = plan.change(canary, sizes, demand_of(ctx, sizes), source_share(ctx), target)
    winner = moved.after
    keep = (
        plan.Replicas(moved.before.stable, winner.candidate)
        if promoted
        else plan.Replicas(winner.stable, moved.before.candidate)
    )
    tops = moved.ceiling_before if moved.ceiling_before is not None else moved.before
    changed = scale(kube, ctx, keep, keep.at_least(tops))
    if changed:
        ctx.ready.clear()  # a scaled Deployment is read again
        event(kube, ctx.obj, "Scaled", f"before the outcome: {', '.join(changed)}")
    role = "candidate" if promoted else "stable"
    only = plan.Replicas(0, winner.candidate) if promoted else plan.Replicas(winner.stable, 0)
    short = _short(kube, ctx, only)
    what = "the promotion" if promoted else f"the rollback, {role} taking all traffic back"
    return _wait(kube, ctx, short, what, moved)


def record(kube: KubeClient, ctx: Ctx, catalog: Catalog) -> None:
    """Keep ``status.capacity`` (the book's :class:`CapacityRecord`): the plan for the state's
    weights, the ready replicas, the GPUs they hold and the GPU-hours held since the rollout
    began, rewritten only when one of those counts (or the wait) changes: the hours between
    are the GPUs held times the time (:meth:`CapacityRecord.hours_at`)."""
    canary, state = ctx.canary, ctx.state
    if canary.spec.plan is None:
        return
    sizes = sizes_of(canary, catalog)
    demand = demand_of(ctx, sizes)
    if state.terminal:
        share = plan.Share(100 if state.stage == "promoted" else 0)
    else:
        share = plan.Share(state.weight, state.mirror)
    want = plan.replicas_at(canary, sizes, demand, share)
    ready = {role: _ready(kube, ctx, role) for role in ROLES}
    held = plan.Replicas(ready["stable"], ready["candidate"]).gpus(sizes)
    planned = {"stable": want.stable, "candidate": want.candidate}
    waiting = str(ctx.pending) if isinstance(ctx.pending, CapacityPending) else None
    was = ctx.book.capacity
    hours = 0.0
    if was is not None and was.at >= state.started_at and was.planned:
        if (was.planned, was.ready, was.gpus, was.waiting) == (planned, ready, held, waiting):
            return
        hours = was.hours_at(ctx.now)
    budget = plan.budget_gpus(canary, sizes)
    observed = was.demand_rps if was is not None else None
    new = CapacityRecord(planned, ready, held, budget, hours, ctx.now, observed, waiting)
    ctx.book = replace(ctx.book, capacity=new)
