"""The controller's work queue: which canaries to reconcile now, and when the others fall due.

Owns :class:`WorkQueue`: dirty keys, timers on a grid, each failing key's backoff; called by
:class:`controlplane.controller.runner.Controller`.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
from collections.abc import Callable, Iterable

from controlplane.controller.reconcile import Key

log = logging.getLogger(__name__)


class WorkQueue:
    """Dirty keys, a timer per key (the earliest wins) and failure counts; ``clock`` is now."""

    def __init__(
        self, clock: Callable[[], float], grid_s: float, backoff_base_s: float, backoff_cap_s: float
    ) -> None:
        self.clock = clock
        self.grid_s = grid_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.dirty: set[Key] = set()
        self._timers: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._failures: dict[Key, int] = {}
        self._lock = threading.Lock()

    def add(self, keys: Iterable[Key]) -> None:
        """Reconcile ``keys`` at the next pass."""
        with self._lock:
            self.dirty.update(keys)

    def forget(self, key: Key) -> None:
        """``key`` is gone: no timer, no backoff, not dirty."""
        with self._lock:
            self._timers.pop(key, None)
            self._failures.pop(key, None)
            self.dirty.discard(key)

    def retry_now(self, ns: str | None) -> list[Key]:
        """Make every backing-off key of ``ns`` (None: all) dirty (their failure count stays:
        one that fails again backs off further); those keys."""
        with self._lock:
            waiting = [key for key in self._failures if ns is None or key[0] == ns]
            self.dirty.update(waiting)
        return waiting

    def schedule(self, key: Key, at: float | None) -> None:
        if at is None:
            return
        if self.grid_s > 0:
            at = math.ceil((at - 1e-6) / self.grid_s) * self.grid_s
        with self._lock:
            current = self._timers.get(key)
            if current is not None and current <= at:
                return
            self._timers[key] = at
            heapq.heappush(self._heap, (at, key))

    def next_wake(self) -> float | None:
        """When a timer fires next (None: no timer); dirty keys mean now."""
        with self._lock:
            if self.dirty:
                return self.clock()
            while self._heap and self._timers.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    def take_due(self, now: float) -> set[Key]:
        """The dirty keys and those whose timer fired by ``now``, taken off the queue."""
        with self._lock:
            keys = set(self.dirty)
            self.dirty.clear()
            while self._heap and self._heap[0][0] <= now:
                at, key = heapq.heappop(self._heap)
                if self._timers.get(key) == at:
                    del self._timers[key]
                    keys.add(key)
            return keys

    def succeeded(self, key: Key, requeue_at: float | None) -> None:
        with self._lock:
            self._failures.pop(key, None)
        self.schedule(key, requeue_at)

    def failed(self, key: Key, now: float, exc: BaseException) -> None:
        """Back ``key`` off: ``backoff_base_s`` doubled per failure in a row, up to the cap."""
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = min(self.backoff_base_s * 2 ** (failures - 1), self.backoff_cap_s)
        log.warning("%s/%s: reconcile failed (%s); retrying in %.0fs", *key, exc, delay)
        self.schedule(key, now + delay)
