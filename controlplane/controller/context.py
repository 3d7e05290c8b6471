"""One canary during one reconcile: the object as last read or written, its state and book.

Owns :class:`Ctx`, the record the reconciler and its effects pass along, :func:`persist`, the one
status write of a decision, and :func:`event`, the one way the controller writes an Event.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from controlplane.errors import RouterPending
from controlplane.kube.client import KubeClient, Obj
from controlplane.rollout.intents import RecordedIntent
from controlplane.rollout.observations import GateObservation, Readiness
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.status import document as st

EVENT_MESSAGE_LIMIT = 1024


@dataclass
class Ctx:
    """One canary during one reconcile: the object as last read or written, and its state.

    ``unverified``: the weights (or the outcome) asked of the router are not known to be in
    effect; ``error``: why, raised at the end of the catch-up so the runner backs the canary off;
    ``pending``: why, when the router wrote them and waits for the cluster to take them up (not
    a failure: asked again soon, without backing off).
    """

    obj: Obj
    canary: ModelCanary
    state: RolloutState
    book: st.Book
    now: float
    unverified: bool = False
    error: Exception | None = None
    pending: RouterPending | None = None
    recorded: list[RecordedIntent] = field(default_factory=list)
    gate_obs: dict[str, GateObservation] = field(default_factory=dict)
    gate_problems: dict[str, GateObservation] = field(default_factory=dict)
    ready: dict[str, int] = field(default_factory=dict)
    """Each variant's ready pods as read in this reconcile (by role): the capacity effect reads
    a Deployment once, for the wait and for ``status.capacity`` alike."""
    served: dict[str, Obj | None] = field(default_factory=dict)
    """Each variant's serving object as read (or last applied) in this reconcile, by role
    (None: not there): sized before and after the weights move on one read."""
    traffic: dict[str, str] | None = None
    """What this reconcile's evaluation found of the candidate's traffic: ``{"NoTraffic": why}``
    when its route sends it traffic and it finished no request, ``{}`` when it did; None when no
    evaluation ran (``status.warnings`` keeps what the last one found)."""
    trouble: dict[str, str] = field(default_factory=dict)
    """What an effect of this catch-up could not do, by Event reason (``WeightsNotVerified``:
    the router's error): put in ``status.warnings`` while it lasts
    (:func:`controlplane.status.document.with_trouble`)."""
    intent_problem: str | None = None
    """Why the intent annotation could not be read (``InvalidIntent``): a lasting trouble too,
    in ``status.warnings`` until the annotation is mended."""
    candidate_readiness: Readiness | None = None
    """The candidate's readiness read for this evaluation of a started rollout (ready, why not,
    whether its pods say it cannot start, whether it serves all the same),
    put into its observations by :meth:`~controlplane.controller.reconcile.Reconciler.finish`."""
    notes: dict[str, str] = field(default_factory=dict)
    """Warnings that happened once (``NoPodMonitor``: the deploy found no Prometheus Operator),
    by Event reason: added to ``status.warnings`` at the next write
    (:func:`controlplane.status.document.with_warning`), kept while the rollout runs."""

    @property
    def key(self) -> tuple[str, str]:
        """(namespace, name) of the ModelCanary."""
        return (self.canary.metadata.namespace, self.canary.metadata.name)


def event(
    kube: KubeClient,
    obj: Obj,
    reason: str,
    message: str,
    type_: str = "Normal",
    *,
    name: str | None = None,
) -> bool:
    """A Kubernetes Event on ``obj`` (the message cut to the API server's limit); with ``name``,
    False when an Event of that name exists already (:meth:`KubeClient.event`)."""
    return kube.event(obj, reason, message[:EVENT_MESSAGE_LIMIT], type_, name=name)


def persist(kube: KubeClient, ctx: Ctx, *, effects: bool = False) -> None:
    """Write the status (state + book) with the resourceVersion read; Conflict propagates
    (the runner re-reads and retries: nothing has been applied for this decision yet).
    ``effects``: after the catch-up, whose trouble (``ctx.trouble``) ``status.warnings``
    then holds (:func:`~controlplane.status.document.with_trouble`)."""
    previous = ctx.obj.get("status")
    generation = ctx.obj.get("metadata", {}).get("generation")
    new = st.rollout_status(ctx.state, ctx.book, generation, previous, ctx.now)
    for reason, message in ctx.notes.items():
        new[st.WARNINGS_KEY] = st.with_warning(new.get(st.WARNINGS_KEY), reason, message, ctx.now)
    if ctx.traffic is not None:
        new = st.with_trouble(new, ctx.traffic, ctx.now, frozenset({st.NO_TRAFFIC}))
    if effects:
        trouble = dict(ctx.trouble)
        if ctx.intent_problem:
            trouble["InvalidIntent"] = ctx.intent_problem
        new = st.with_trouble(new, trouble, ctx.now)
    if st.same_status(previous, new):
        return
    body = copy.deepcopy(ctx.obj)
    body["status"] = new
    ctx.obj = kube.replace_status(body)
    ctx.notes = {}  # written once
