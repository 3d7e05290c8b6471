"""Telling a canary's new history entries: one Kubernetes Event each, then the notifiers.

Owns :class:`EventSink`, the reconciler's notify step: the entries after the status' cursor
become one Event and one log line each, then go to the notifiers. An entry is emitted once per
process (a delivered record in memory) and once across processes (the Event's name is its
delivery key, so a second create is AlreadyExists). See docs/controller.md, "Telling each event
once".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controlplane.controller.context import event as write_event
from controlplane.kube.client import KubeClient, Obj
from controlplane.rollout import events
from controlplane.rollout.state import Event, RolloutState
from controlplane.spec.models import ModelCanary
from controlplane.status import document as st


def event_name(obj: Obj, key: str) -> str:
    """The Kubernetes Event of one history entry: ``<canary>.<delivery key>``, a valid object
    name (at most 253 characters, the key's 32 hex digits kept whole)."""
    canary = str((obj.get("metadata") or {}).get("name") or "canary")
    return f"{canary[: 252 - len(key)]}.{key}"


WARNING_EVENTS = frozenset({"Breached", "RolledBack", "Paused", "Throttled", "Held", "GateFailed"})
"""History entries emitted as Kubernetes Events of type Warning (the others are Normal)."""

log = logging.getLogger(__name__)

Notify = Callable[[Obj, ModelCanary, RolloutState, Event], None]


class EventSink:
    """Emits each history entry of a canary as a Kubernetes Event once, and hands it to
    ``notify`` (the reconciler's Notifier). Thread-safe."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._emitted: dict[str, events.Delivered] = {}  # owner -> told, cursor not persisted

    def tell(
        self,
        obj: Obj,
        canary: ModelCanary,
        state: RolloutState,
        book: st.Book,
        now: float,
        notify: Notify | None = None,
    ) -> st.Book:
        """Tell the entries after ``book``'s cursor; the book with the cursor past them.

        An Event the API server refuses raises (the reconcile is retried); what was emitted
        before it is not emitted again."""
        owner = st.owner_of(obj)
        meta = obj.get("metadata") or {}
        pending = st.unnotified(state.history, book.notified, owner)
        keys = [
            events.delivery_key(events.fingerprint(owner, event), events.KUBE_EVENTS)
            for event in pending
        ]
        with self._lock:
            told = self._emitted.pop(owner, events.Delivered()).only(keys)
        try:
            for event, key in zip(pending, keys, strict=True):
                if not told.has(key):
                    type_ = "Warning" if event.type in WARNING_EVENTS else "Normal"
                    log.log(
                        logging.WARNING if type_ == "Warning" else logging.INFO,
                        "%s",
                        events.log_line(str(meta.get("namespace")), str(meta.get("name")), event),
                    )
                    write_event(
                        self.kube,
                        obj,
                        event.type,
                        event.message or event.type,
                        type_,
                        name=event_name(obj, key),
                    )
                    told = told.with_key(key, now)
                if notify is not None:
                    notify(obj, canary, state, event)
        finally:
            if len(told):
                with self._lock:
                    self._emitted[owner] = told
        return st.with_notified(book, state.history, owner)
