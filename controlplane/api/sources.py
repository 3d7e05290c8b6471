"""Where the HTTP API's canaries come from: a cluster, or the one run of ``canaryctl up``.

Owns :class:`CanarySource`, the seam every canary route reads and acts through, and its cluster
implementation :class:`KubeSource` (reads and verbs through :mod:`controlplane.operations` as
``kubectl canary`` does) with :class:`KubeFeed`, one list-then-watch per scope for the live
watch's hub. Called by :func:`controlplane.api.app.create_app` and the route groups.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from controlplane import operations
from controlplane.api.hub import Hub
from controlplane.errors import Expired, KubeError
from controlplane.kube.client import KubeClient, Obj, event_version
from controlplane.rollout.intents import RecordedIntent
from controlplane.spec.models import API_GROUP, API_VERSION, KIND, PLURAL

if TYPE_CHECKING:
    from controlplane.view.owned import Owned

WATCH_S = 30.0
"""How long one watch of the feed lasts before it is renewed from its last version."""
BACKOFF_S = (1.0, 30.0)
"""The first and the longest wait before a failed list or watch is tried again."""

log = logging.getLogger(__name__)


class CanarySource(Protocol):
    """What the canary routes need, wherever the canaries are."""

    def list(self, namespace: str | None) -> list[Obj]:
        """The ModelCanaries of ``namespace`` (None: all), by namespace and name."""
        ...

    def get(self, namespace: str, name: str) -> Obj:
        """One ModelCanary, or :class:`~controlplane.errors.NotFound`."""
        ...

    def owned(self, obj: Obj) -> Owned:
        """The objects ``obj`` owns with their health, the weights in effect and the Events."""
        ...

    def act(self, namespace: str, name: str, verb: str, user: str) -> tuple[RecordedIntent, str]:
        """Record ``verb`` by ``user``; the intent and the phase it was recorded in.
        :class:`~controlplane.errors.UsageError` when the verb makes no sense now (409)."""
        ...

    def feed(self, hub: Hub) -> None:
        """Keep ``hub`` up to date from now on (idempotent)."""
        ...

    def may(self, verb: str, namespace: str, name: str) -> tuple[bool, str]:
        """Whether this source's own credentials may ``verb`` the canary, and why: what the
        verbs of a server whose caller is the source itself (``kubectl canary dashboard``) will
        meet. ``True`` with the reason when it cannot be told: the verb's answer will say."""
        ...


class KubeSource:
    """The canaries of a cluster through ``kube``; ``wake(ns, name)`` after a verb (the
    controller reconciles that canary now)."""

    def __init__(self, kube: KubeClient, wake: Callable[[str, str], None] | None = None) -> None:
        self.kube, self.wake = kube, wake
        self._feeds: list[KubeFeed] = []
        self._lock = threading.Lock()

    def list(self, namespace: str | None) -> list[Obj]:
        return operations.list_canaries(self.kube, namespace)

    def get(self, namespace: str, name: str) -> Obj:
        return operations.get_canary(self.kube, namespace, name)

    def owned(self, obj: Obj) -> Owned:
        return operations.read_owned(self.kube, obj)

    def act(self, namespace: str, name: str, verb: str, user: str) -> tuple[RecordedIntent, str]:
        recorded = operations.record_intent(self.kube, namespace, name, verb, user)
        if self.wake is not None:
            self.wake(namespace, name)
        return recorded, operations.phase_of(operations.get_canary(self.kube, namespace, name))

    def may(self, verb: str, namespace: str, name: str) -> tuple[bool, str]:
        """A SelfSubjectAccessReview (``authorization.k8s.io/v1``) of ``verb`` on the canary."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": API_GROUP,
                    "resource": PLURAL,
                    "verb": verb,
                    "namespace": namespace,
                    "name": name,
                }
            },
        }
        try:
            status = self.kube.create(review).get("status") or {}
        except KubeError as exc:
            return True, f"could not be checked: {exc}"
        allowed = bool(status.get("allowed"))
        why = str(status.get("reason") or status.get("evaluationError") or "")
        if allowed:
            return True, why or "allowed"
        return False, why or f"may not {verb} modelcanaries in namespace {namespace!r}"

    def feed(self, hub: Hub) -> None:
        with self._lock:
            if self._feeds:
                return
            self._feeds = [KubeFeed(self.kube, hub, scope) for scope in hub.scopes]
            for feed in self._feeds:
                feed.start()

    def stop(self) -> None:
        """Stop the feeds (each ends within one watch, :data:`WATCH_S`)."""
        with self._lock:
            for feed in self._feeds:
                feed.stop.set()


class KubeFeed:
    """List-then-watch of the ModelCanaries of ``scope`` (a namespace; None: all) into ``hub``."""

    def __init__(
        self, kube: KubeClient, hub: Hub, scope: str | None, *, watch_s: float = WATCH_S
    ) -> None:
        self.kube, self.hub, self.scope, self.watch_s = kube, hub, scope, watch_s
        self.stop = threading.Event()
        self._thread = threading.Thread(
            target=self.run, name=f"watch-canaries-{scope or 'all'}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def run(self) -> None:
        """Until :attr:`stop`: list, then watch from the list's version; list again on 410."""
        version: str | None = None
        backoff = BACKOFF_S[0]
        while not self.stop.is_set():
            try:
                if version is None:
                    items, version = self.kube.list_with_version(API_VERSION, KIND, self.scope)
                    self.hub.reset(self.scope, items)
                    backoff = BACKOFF_S[0]
                version = self._watch(version)
            except Expired:
                version = None
            except KubeError as exc:
                log.warning("watching modelcanaries (%s): %s", self.scope or "all", exc)
                self.hub.fail(self.scope, exc)
                version = None
                self.stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])

    def _watch(self, version: str) -> str:
        """One watch from ``version`` into the hub; the version to go on from."""
        stream = self.kube.watch(
            API_VERSION, KIND, self.scope, version, timeout_s=self.watch_s, bookmarks=True
        )
        try:
            for event in stream:
                version = event_version(event) or version
                if event.type in ("ADDED", "MODIFIED"):
                    self.hub.upsert(event.object)
                elif event.type == "DELETED":
                    self.hub.delete(event.object)
                if self.stop.is_set():
                    break
        finally:
            close = getattr(stream, "close", None)
            if callable(close):
                close()
        return version
