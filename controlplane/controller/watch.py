"""The controller's list-then-watch of ModelCanaries, and what it last saw of each.

Owns :class:`CanaryWatch`, which marks a canary dirty in the work queue when its trigger changed;
called by :class:`controlplane.controller.runner.Controller`. docs/kube-adapter.md.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controlplane.controller.reconcile import Key
from controlplane.controller.workqueue import WorkQueue
from controlplane.errors import KubeError
from controlplane.kube.client import KubeClient, Obj, WatchEvent, event_version, is_expired
from controlplane.spec.models import API_VERSION, KIND

log = logging.getLogger(__name__)

WATCH_S = 30.0
"""How long each watch of the production loop lasts before it is started again."""


@dataclass
class WatchStats:
    """Counters of the list and watch (served as Prometheus metrics by ``canaryctl controller``)."""

    lists: int = 0
    relists: int = 0
    bookmarks: int = 0
    watch_errors: int = 0
    pruned: int = 0
    retried_on_recovery: int = 0
    """Backed-off canaries retried at once when the server answered again."""
    watch_delays: list[float] = field(default_factory=list)
    """The backoff delays chosen after list / watch failures (the last 100)."""


class CanaryWatch:
    """The ModelCanaries of ``namespaces`` (None: all) as the watch last saw them."""

    def __init__(
        self,
        kube: KubeClient,
        namespaces: Sequence[str | None],
        work: WorkQueue,
        stats: WatchStats,
        clock: Callable[[], float],
        timer: Callable[[], float],
        *,
        backoff_base_s: float,
        backoff_cap_s: float,
        list_page_size: int | None,
    ) -> None:
        self.kube = kube
        self.namespaces = list(namespaces)
        self.work = work
        self.stats = stats
        self.clock = clock
        self._timer = timer
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.list_page_size = list_page_size
        self._lock = threading.Lock()
        self._seen: dict[Key, str] = {}
        self._objects: dict[Key, Obj] = {}
        self._synced: set[str | None] = set()
        self._rv: dict[str | None, str | None] = dict.fromkeys(self.namespaces)
        self._watch_failures: dict[str | None, int] = dict.fromkeys(self.namespaces, 0)
        self._unanswered: set[str | None] = set()  # list or watch failed, no answer since
        self._retry_at: dict[str | None, float] = {}

    def unsynced(self) -> list[str | None]:
        """The namespaces not listed yet."""
        with self._lock:
            return [ns for ns in self.namespaces if ns not in self._synced]

    def known(self) -> list[Key]:
        """Every canary seen and not deleted since."""
        with self._lock:
            return list(self._seen)

    def poll(self, timeout_s: float = 0.0) -> int:
        """List where needed, then consume the watch events available now (waiting up to
        ``timeout_s`` per namespace); the number of canaries listed plus events seen.

        A namespace never listed, or whose watch expired (410), is listed first; one whose last
        list or watch failed is left alone until its backoff (on ``clock``) has passed.
        """
        count = 0
        for ns in self.namespaces:
            if self.clock() < self._retry_at.get(ns, -math.inf):
                continue
            for attempt in range(2):  # a 410 relists at once, once
                if self._rv[ns] is None:
                    try:
                        count += self.sync(ns)
                    except Exception as exc:
                        self._watch_failed(ns, "list", exc)
                        break
                for event in self._watch(ns, timeout_s):
                    self.observe(event)
                    count += 1
                if self._rv[ns] is not None or attempt:
                    break
        return count

    def sync(self, ns: str | None) -> int:
        """List the canaries of ``ns`` (None: all) and watch on from the list's version.

        Canaries seen for the first time are marked dirty, known ones only when their trigger
        changed; known canaries missing from the list were deleted meanwhile and are pruned."""
        items, version = self.kube.list_with_version(
            API_VERSION, KIND, ns, limit=self.list_page_size
        )
        listed: set[Key] = set()
        for obj in items:
            key = _key(obj)
            listed.add(key)
            with self._lock:
                known = key in self._seen
            self.observe(WatchEvent("MODIFIED" if known else "ADDED", obj))
        with self._lock:
            gone = [
                key
                for key in set(self._seen) | set(self._objects)
                if (ns is None or key[0] == ns) and key not in listed
            ]
        for namespace, name in gone:
            gone_obj = {"metadata": {"namespace": namespace, "name": name}}
            self.observe(WatchEvent("DELETED", gone_obj))
        self._answered(ns)
        with self._lock:
            if ns in self._synced:
                self.stats.relists += 1
            self.stats.lists += 1
            self.stats.pruned += len(gone)
            self._rv[ns] = version or _latest(items)
            self._synced.add(ns)
        return len(items)

    def snapshot(self) -> list[Obj]:
        """The ModelCanaries as last seen through the watch (status included), by key."""
        with self._lock:
            return [self._objects[key] for key in sorted(self._objects)]

    def _watch(self, ns: str | None, timeout_s: float) -> Iterable[WatchEvent]:
        """One watch from the remembered version; consumes BOOKMARKs, yields the rest.

        Ends cleanly (the backoff resets), with the version dropped after a 410 (relist), or
        after another failure, backed off."""
        version = self._rv[ns]
        if version is None:
            return
        try:
            stream = self.kube.watch(API_VERSION, KIND, ns, version, timeout_s, bookmarks=True)
            for event in stream:
                self._answered(ns)
                seen = event_version(event)
                if seen is not None:
                    self._rv[ns] = seen  # events come in order: resume after the latest
                if event.type == "BOOKMARK":
                    self.stats.bookmarks += 1
                    continue
                yield event
        except Exception as exc:
            if is_expired(exc):
                log.info("watch of %s in %s expired; listing again", KIND, ns or "all")
                self._rv[ns] = None
                return
            self._watch_failed(ns, "watch", exc)
            return
        self._watch_failures[ns] = 0
        self._retry_at.pop(ns, None)

    def _watch_failed(self, ns: str | None, what: str, exc: BaseException) -> float:
        """Count a list / watch failure of ``ns``; the delay before the next attempt."""
        self._unanswered.add(ns)
        self.stats.watch_errors += 1
        failures = self._watch_failures.get(ns, 0) + 1
        self._watch_failures[ns] = failures
        delay = float(min(self.backoff_base_s * 2 ** (failures - 1), self.backoff_cap_s))
        self._retry_at[ns] = self.clock() + delay
        self.stats.watch_delays.append(delay)
        del self.stats.watch_delays[:-100]
        log.warning(
            "%s of %s in %s failed (%s); retrying in %.1fs",
            what,
            KIND,
            ns or "all namespaces",
            exc,
            delay,
        )
        return delay

    def _answered(self, ns: str | None) -> None:
        """The server answered for ``ns``: after a failed list or watch, retry now every
        canary of ``ns`` that is backing off (their failure count stays: one that fails again
        backs off further)."""
        if ns not in self._unanswered:
            return
        self._unanswered.discard(ns)
        waiting = self.work.retry_now(ns)
        if waiting:
            self.stats.retried_on_recovery += len(waiting)
            log.info(
                "%s answers again: retrying %d backed-off canaries now",
                ns or "the API server",
                len(waiting),
            )

    def observe(self, event: WatchEvent) -> None:
        """Mark the event's canary dirty when something other than its status changed."""
        key = _key(event.object)
        with self._lock:
            if event.type == "BOOKMARK":
                return
            if event.type == "DELETED":
                self._objects.pop(key, None)
                self._seen.pop(key, None)
                self.work.forget(key)
                return
            self._objects[key] = event.object
            trigger = _trigger(event.object)
            if event.type == "MODIFIED" and self._seen.get(key) == trigger:
                return
            self._seen[key] = trigger
            self.work.add([key])

    def follow(
        self,
        ns: str | None,
        stop: threading.Event,
        events: queue.Queue[WatchEvent | None],
        pause: Callable[[float], object],
    ) -> None:
        """The production loop's watch of ``ns`` until ``stop``: list when needed, put the events
        (None: listed) on ``events``, ``pause`` after failures and watches that end at once."""
        while not stop.is_set():
            if self._rv[ns] is None:
                try:
                    self.sync(ns)
                except Exception as exc:
                    pause(self._watch_failed(ns, "list", exc))
                    continue
                events.put(None)
            failures = self._watch_failures.get(ns, 0)
            began, delivered = self._timer(), 0
            for event in self._watch(ns, WATCH_S):
                delivered += 1
                events.put(event)
                if stop.is_set():
                    return
            if self._watch_failures.get(ns, 0) > failures:
                pause(self.stats.watch_delays[-1])
            elif (
                self._rv[ns] is not None and not delivered and (self._timer() - began < WATCH_S / 2)
            ):
                # ended early with nothing to say: no success (the backoff keeps growing),
                # and do not hammer a server that does this
                self._watch_failures[ns] = failures
                pause(self._watch_failed(ns, "watch", KubeError("the watch ended at once")))


def _trigger(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return json.dumps(
        [
            meta.get("generation"),
            meta.get("annotations"),
            meta.get("finalizers"),
            meta.get("deletionTimestamp"),
        ],
        sort_keys=True,
    )


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata", {})
    return (meta.get("namespace") or "default", meta.get("name", ""))


def _latest(items: Iterable[Obj]) -> str | None:
    """The newest item version (for a list that reports none; resourceVersions are integers
    on every server we know, though the API calls them opaque)."""
    latest: str | None = None
    for obj in items:
        seen = obj.get("metadata", {}).get("resourceVersion")
        if seen is None:
            continue
        try:
            newer = latest is None or int(seen) > int(latest)
        except ValueError:
            newer = True
        if newer:
            latest = str(seen)
    return latest
