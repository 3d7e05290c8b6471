"""The canary of a ``canaryctl up`` run as the HTTP API serves it (``canaryctl up --dashboard``).

Owns :class:`LocalSource`, a :class:`~controlplane.api.sources.CanarySource` over the run's one
ModelCanary: each state the run tells it becomes the object the routes answer with and an upsert
to the dashboard's watchers; verbs are refused or recorded as ``kubectl canary`` does and handed
to the run's state machine. Called by :mod:`controlplane.cli.up`, from the run's loop and the
API's thread under one lock. See docs/local.md, "The dashboard".
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable

from controlplane import operations
from controlplane.api.hub import Hub
from controlplane.errors import NotFound, UsageError
from controlplane.kube.client import Obj
from controlplane.local.watcher import RunSnapshot
from controlplane.rollout import intents
from controlplane.rollout.intents import Intent, RecordedIntent
from controlplane.routing.base import Weights
from controlplane.spec.models import ModelCanary
from controlplane.status import document as st
from controlplane.status.times import format_time
from controlplane.view.owned import Actual, ClusterEvent, Node, Owned

WARNING_EVENTS = frozenset({"Breached", "RolledBack", "GateFailed", "Paused", "Throttled"})
"""Rollout events shown as ``Warning`` Events; the others are ``Normal``."""
ROUTER = "the local router"


class LocalSource:
    """The canary ``canary`` (time-scaled by ``time_scale``) of one local run."""

    def __init__(
        self, canary: ModelCanary, time_scale: float, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.canary, self.time_scale, self.clock = canary, time_scale, clock
        body = canary.model_dump(mode="json", by_alias=True, exclude_none=True)
        meta = body.get("metadata") or {}
        self.namespace, self.name = canary.metadata.namespace, canary.metadata.name
        self._obj: Obj = {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {
                **meta,
                "uid": uuid.uuid4().hex,
                "generation": 1,
                "resourceVersion": "1",
                "creationTimestamp": format_time(clock()),
            },
            "spec": body.get("spec") or {},
            "status": {"simulated": True, "timeScale": time_scale},
        }
        self._version = 1
        self._recorded: list[RecordedIntent] = []
        self._consumed: str | None = None
        self._run: RunSnapshot | None = None
        self._over: str | None = None
        self._hub: Hub | None = None
        self._lock = threading.Lock()

    # --- the run's side (RunWatcher) ---------------------------------------------------------

    def on_state(self, snapshot: RunSnapshot) -> None:
        with self._lock:
            self._run = snapshot
            status = snapshot.state.to_status()
            status.update(simulated=True, timeScale=self.time_scale)
            if self._consumed is not None:
                status[st.BOOK_KEY] = {"lastIntentId": self._consumed}
            self._obj["status"] = status
            obj = self._bump()
        if self._hub is not None:
            self._hub.upsert(obj)

    def take_intents(self) -> list[Intent]:
        with self._lock:
            fresh = intents.new_intents(self._recorded, self._consumed)
            if not fresh:
                return []
            self._consumed = fresh[-1].id
            status = self._obj.get("status") or {}
            status[st.BOOK_KEY] = {"lastIntentId": self._consumed}
            obj = self._bump()
        if self._hub is not None:
            self._hub.upsert(obj)
        return [r.intent for r in fresh]

    def finished(self, outcome: str) -> None:
        with self._lock:
            self._over = outcome

    def _bump(self) -> Obj:
        """A new resourceVersion; a copy of the object (the lock is held)."""
        self._version += 1
        self._obj["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(self._obj)

    # --- the API's side (CanarySource) -------------------------------------------------------

    def list(self, namespace: str | None) -> list[Obj]:
        if namespace is not None and namespace != self.namespace:
            return []
        with self._lock:
            return [copy.deepcopy(self._obj)]

    def get(self, namespace: str, name: str) -> Obj:
        operations.check_names(namespace, name)
        if (namespace, name) != (self.namespace, self.name):
            raise NotFound(
                f"modelcanary {name!r} not found in namespace {namespace!r}: this run of "
                f"canaryctl up serves {self.namespace}/{self.name} only"
            )
        with self._lock:
            return copy.deepcopy(self._obj)

    def owned(self, obj: Obj) -> Owned:
        with self._lock:
            run = self._run
        if run is None:
            return Owned(note="the run has not started its rollout yet")
        nodes = tuple(
            Node(
                "Pod",
                pod.name,
                "Ready" if pod.in_service else "Progressing",
                "" if pod.in_service else "starting, or retiring: not in the router",
                pod.role,
            )
            for pod in run.pods
        )
        events = tuple(
            ClusterEvent(
                type="Warning" if e.type in WARNING_EVENTS else "Normal",
                reason=e.type,
                object=f"ModelCanary/{self.name}",
                message=e.message,
                count=1,
                last=e.time,
                first=e.time,
            )
            for e in run.state.history
        )
        actual = Actual(Weights(run.candidate_weight, run.mirror), ROUTER)
        return Owned(nodes=nodes, actual=actual, events=events)

    def act(self, namespace: str, name: str, verb: str, user: str) -> tuple[RecordedIntent, str]:
        with self._lock:
            if (namespace, name) != (self.namespace, self.name):
                raise NotFound(
                    f"modelcanary {name!r} not found in namespace {namespace!r}: this run of "
                    f"canaryctl up serves {self.namespace}/{self.name} only"
                )
            obj = copy.deepcopy(self._obj)
            phase = operations.phase_of(obj)
            if self._over is not None:
                raise UsageError(
                    f"this run of canaryctl up is over ({self._over}): nothing acts on "
                    f"{name!r} any more; run canaryctl up again to start a new one"
                )
            if verb == "retry":
                raise UsageError(
                    "canaryctl up cannot re-run a candidate in the same run: run canaryctl up "
                    "again to start a new one"
                )
            intents.check_verb(obj, verb)
            ident, now = uuid.uuid4().hex[:12], self.clock()
            self._recorded, recorded = intents.append(self._recorded, verb, user, now, ident)
            annotations = self._obj["metadata"].setdefault("annotations", {})
            annotations[intents.INTENT_ANNOTATION] = intents.encode(self._recorded)
            fresh = self._bump()
        if self._hub is not None:
            self._hub.upsert(fresh)
        return recorded, phase

    def may(self, verb: str, namespace: str, name: str) -> tuple[bool, str]:
        """Whoever holds this run's token may act on its canary (the verb may still refuse)."""
        return True, "this run of canaryctl up"

    def feed(self, hub: Hub) -> None:
        with self._lock:
            if self._hub is hub:
                return
            self._hub = hub
            obj = copy.deepcopy(self._obj)
        for scope in hub.scopes:
            hub.reset(scope, [obj] if scope in (None, self.namespace) else [])
