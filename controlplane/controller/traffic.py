"""The controller's traffic effects: put the weights in effect, finalize an outcome, release.

Owns :func:`verify_weights` (the step's clock starts once the weights read back), the
``not-routed`` observation, :func:`finalize` and :func:`finalize_noop`. None decides anything:
each brings the world to the persisted state idempotently and records it in the book. Called by
the reconciler. See docs/routing.md, "When weights count as verified".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from controlplane.controller.context import Ctx, event
from controlplane.errors import KubeError, RouterError, RouterPending
from controlplane.kube.client import KubeClient
from controlplane.routing.base import Outcome as RouterOutcome
from controlplane.routing.base import Router, Weights
from controlplane.routing.ownership import ForeignObject
from controlplane.status import document as st


def _reason(exc: Exception) -> str:
    """The Event reason of a router write that failed: ``ForeignObject`` when the router's object
    is not the canary's (nothing was written), else ``WeightsNotVerified``."""
    return "ForeignObject" if isinstance(exc, ForeignObject) else "WeightsNotVerified"


def _trouble(kube: KubeClient, ctx: Ctx, exc: Exception) -> None:
    """A router write that failed: a Warning Event, and the same in ``status.warnings`` while it
    lasts (``ctx.trouble``)."""
    event(kube, ctx.obj, _reason(exc), str(exc), "Warning")
    ctx.trouble[_reason(exc)] = str(exc)


def verify_weights(kube: KubeClient, ctx: Ctx, router: Router) -> None:
    """Set the weights the state calls for and read them back (once per stage and weight);
    a failure leaves ``ctx.unverified`` and ``ctx.error`` set, retried with the canary's
    backoff."""
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
    except RouterPending as exc:  # written; the gateway has not taken them up yet
        ctx.unverified = True
        ctx.pending = exc
        event(kube, ctx.obj, "WeightsPending", str(exc))
        return
    except (RouterError, KubeError) as exc:  # retried with the canary's backoff
        ctx.unverified = True
        ctx.error = exc
        _trouble(kube, ctx, exc)
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
    event(
        kube,
        ctx.obj,
        "WeightsVerified",
        f"candidate {state.weight}%{' (mirrored)' if state.mirror else ''} verified",
    )


def weights_refused(ctx: Ctx) -> str | None:
    """The router's last read-back when it refused the weights of the current shadow phase or
    step (read them back and found otherwise, a :class:`~controlplane.errors.RouterError`, not an
    API error) or its data plane has not taken them up (:class:`RouterPending`); None when they
    are in effect or the failure says nothing about routing."""
    if not ctx.unverified or ctx.state.stage not in ("shadow", "steps"):
        return None
    for why in (ctx.error, ctx.pending):
        if isinstance(why, RouterError):
            return str(why)
    return None


def finalize(
    kube: KubeClient,
    ctx: Ctx,
    router: Router,
    cleanup_s: Callable[[RouterOutcome], float],
    release: Callable[[Ctx, str], list[str]],
) -> None:
    """Put the terminal outcome in effect on the router (once), then ``release`` the losing
    variant once ``cleanup_s(outcome)`` has passed since."""
    state, canary = ctx.state, ctx.canary
    tag = f"{state.spec_hash}:{state.stage}"
    outcome: RouterOutcome = "promoted" if state.stage == "promoted" else "rolled_back"
    if ctx.book.finalized != tag:
        try:
            router.finalize(canary, outcome)
            router.verify(canary, Weights(100 if outcome == "promoted" else 0))
        except RouterPending as exc:  # a phase applied; the next waits for the cluster
            ctx.unverified = True
            ctx.pending = exc
            event(kube, ctx.obj, "FinalizePending", str(exc))
            return
        except (RouterError, KubeError) as exc:
            ctx.unverified = True
            ctx.error = exc
            _trouble(kube, ctx, exc)
            return
        # a later restart (retry, new spec) redeploys everything: the losing variant goes
        ctx.book = replace(
            ctx.book, finalized=tag, finished_at=ctx.now, cleaned=None, deployed_hash=None
        )
    finished = ctx.book.finished_at if ctx.book.finished_at is not None else ctx.now
    if ctx.book.cleaned != tag and ctx.now >= finished + cleanup_s(outcome):
        released = release(ctx, "stable" if outcome == "promoted" else "candidate")
        ctx.book = replace(ctx.book, cleaned=tag)
        if released:
            event(kube, ctx.obj, "Released", f"deleted {', '.join(released)}")


def finalize_noop(kube: KubeClient, ctx: Ctx, router: Router) -> None:
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
            _trouble(kube, ctx, exc)
            return
    ctx.book = replace(book, finalized=tag, finished_at=ctx.now, cleaned=tag, deployed_hash=None)
