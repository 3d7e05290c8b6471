"""One process's view of its ModelCanaries, fanned out to every live watcher of the dashboard.

Owns :class:`Hub`: the canaries as last seen (filled by a feed) and the subscribers of the live
watch. Each change is rendered once and handed to each subscriber in scope; a subscriber that
falls :data:`QUEUE_SIZE` behind is dropped, never the process; a new one gets its snapshot under
the publishing lock, so it misses nothing and sees nothing twice. Thread-safe (feeds and
uvicorn's loop are different threads). See docs/api.md, "The live watch".
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controlplane.api.models import CanarySummary, detail
from controlplane.kube.client import Obj
from controlplane.view.canary import summary

QUEUE_SIZE = 256
"""Events a subscriber may have waiting before it is dropped."""
END: None = None
"""What a subscriber's queue holds last: its stream ends there."""

Key = tuple[str, str]


def sse(event: str, data: Any) -> bytes:
    """One server-sent event: ``event: NAME`` and its JSON ``data`` on one line."""
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def detail_of(obj: Obj) -> dict[str, Any]:
    """The :class:`~controlplane.api.models.CanaryDetail` of ``obj`` as JSON-ready data
    (without an expected change: no measured entries)."""
    return detail(obj).model_dump(mode="json")


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Obj) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return None if value in (None, "") else str(value)


@dataclass(eq=False)
class Subscription:
    """One watcher: the namespaces it may see (None: all), its loop and its bounded queue."""

    namespaces: frozenset[str] | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes | None]
    dropped: bool = False
    ended: bool = False

    def wants(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def offer(self, data: bytes | None) -> None:
        """Queue ``data`` (None: end); on the subscriber's loop. A full queue drops it: its
        waiting events are thrown away and its stream ends."""
        if self.ended:
            return
        if data is END:
            self.ended = True
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.dropped = self.ended = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(END)


@dataclass
class _Scope:
    synced: bool = False
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Hub:
    """The canaries of ``scopes`` (namespaces; ``(None,)``: all of them) and their watchers."""

    def __init__(
        self,
        scopes: Iterable[str | None],
        *,
        queue_size: int = QUEUE_SIZE,
        detail: Callable[[Obj], dict[str, Any]] = detail_of,
    ) -> None:
        self.queue_size = queue_size
        self._detail = detail
        self._scopes: dict[str | None, _Scope] = {scope: _Scope() for scope in scopes}
        self._objects: dict[Key, Obj] = {}
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def scopes(self) -> tuple[str | None, ...]:
        return tuple(self._scopes)

    # --- the feed's side -----------------------------------------------------------------------

    def reset(self, scope: str | None, items: Iterable[Obj]) -> None:
        """``items`` are every canary of ``scope`` now (a list): publish what changed since the
        cache was last told, and mark the scope synced."""
        fresh = {_key(o): o for o in items}
        with self._lock:
            gone = [k for k in self._objects if self._in_scope(k[0], scope) and k not in fresh]
            for key in gone:
                del self._objects[key]
                self._publish(key[0], sse("delete", {"namespace": key[0], "name": key[1]}))
            for key, obj in fresh.items():
                self._store(key, obj)
            state = self._scopes.setdefault(scope, _Scope())
            state.synced, state.error = True, None
            state.done.set()

    def _in_scope(self, namespace: str, scope: str | None) -> bool:
        return scope is None or namespace == scope

    def upsert(self, obj: Obj) -> None:
        """``obj`` was added or changed: publish it unless the cache holds that version."""
        with self._lock:
            self._store(_key(obj), obj)

    def delete(self, obj: Obj) -> None:
        """``obj`` was deleted."""
        key = _key(obj)
        with self._lock:
            if self._objects.pop(key, None) is not None:
                self._publish(key[0], sse("delete", {"namespace": key[0], "name": key[1]}))

    def fail(self, scope: str | None, error: BaseException) -> None:
        """Listing or watching ``scope`` failed with ``error`` (the feed retries)."""
        with self._lock:
            state = self._scopes.setdefault(scope, _Scope())
            state.error = error
            state.done.set()

    def _store(self, key: Key, obj: Obj) -> None:
        old = self._objects.get(key)
        if old is not None and _version(old) is not None and _version(old) == _version(obj):
            return
        self._objects[key] = obj
        self._publish(key[0], sse("upsert", self._detail(obj)))

    def _publish(self, namespace: str, data: bytes | None) -> None:
        """Hand ``data`` to every subscriber of ``namespace`` (the lock is held)."""
        kept = []
        for sub in self._subscribers:
            if sub.ended:
                continue
            if sub.wants(namespace):
                try:
                    sub.loop.call_soon_threadsafe(sub.offer, data)
                except RuntimeError:  # its loop is closed: it is gone
                    continue
            kept.append(sub)
        self._subscribers = kept

    # --- the subscribers' side -----------------------------------------------------------------

    def wait_synced(self, scopes: Iterable[str | None], timeout_s: float) -> None:
        """Block until each of ``scopes`` was listed or failed once (at most ``timeout_s``)."""
        for scope in scopes:
            state = self._scopes.get(scope)
            if state is not None:
                state.done.wait(timeout_s)

    def namespaces(self) -> frozenset[str]:
        """The namespaces that hold a canary now, as the cache knows them."""
        with self._lock:
            return frozenset(key[0] for key in self._objects)

    def synced(self, scope: str | None) -> bool:
        state = self._scopes.get(scope)
        return state is not None and state.synced

    def failed(self, scope: str | None) -> BaseException | None:
        """The error of a scope that was never listed (None once it has been)."""
        state = self._scopes.get(scope)
        if state is None or state.synced:
            return None
        return state.error

    def subscribe(
        self, namespaces: frozenset[str] | None, loop: asyncio.AbstractEventLoop
    ) -> tuple[bytes, Subscription]:
        """A new watcher of ``namespaces`` (None: all) on ``loop``: its ``snapshot`` event and
        its subscription, registered under the lock the changes are published under."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.queue_size)
        sub = Subscription(namespaces, loop, queue)
        with self._lock:
            items = [
                CanarySummary(**summary(obj)).model_dump(mode="json")
                for key, obj in sorted(self._objects.items())
                if sub.wants(key[0])
            ]
            if self._closed:
                sub.ended = True
                queue.put_nowait(END)
            else:
                self._subscribers.append(sub)
        return sse("snapshot", {"items": items}), sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not sub]

    @property
    def subscribers(self) -> int:
        with self._lock:
            return sum(1 for s in self._subscribers if not s.ended)

    def close(self) -> None:
        """End every stream (the server stops)."""
        with self._lock:
            self._closed = True
            for sub in self._subscribers:
                try:
                    sub.loop.call_soon_threadsafe(sub.offer, END)
                except RuntimeError:
                    continue
            self._subscribers = []
