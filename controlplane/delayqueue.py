"""A bounded, thread-safe queue of work items that fall due at a time.

The core the controller's background workers share (alert delivery, git write-back): earliest due
first; a full queue refuses or drops its oldest (``put`` hands back what did not fit); a retry is
re-queued past the bound so it never loses its place; after ``close`` the due items still come
before None and ``drain`` returns the rest. Time is ``time.monotonic`` unless a clock is given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    due: float
    seq: int
    item: T


class DelayQueue(Generic[T]):
    """See the module docstring. ``maxsize``: queued items at most (the one in flight not
    counted); ``drop_oldest``: a full queue drops its oldest item instead of the new one."""

    def __init__(
        self,
        maxsize: int,
        *,
        drop_oldest: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self._clock = clock
        self._cond = threading.Condition()
        self._entries: dict[int, _Entry[T]] = {}
        self._inflight: _Entry[T] | None = None
        self._seq = 0
        self._closed = False
        self._deadline = float("inf")

    def __len__(self) -> int:
        """Items queued or in flight."""
        with self._cond:
            return len(self._entries) + (self._inflight is not None)

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def put(self, item: T, delay: float = 0.0) -> T | None:
        """Queue ``item``, due ``delay`` seconds from now. Returns the item that did not fit:
        ``item`` itself when closed or full (``drop_oldest`` false), the oldest queued item
        when full and ``drop_oldest``; None when nothing was left out."""
        with self._cond:
            if self._closed:
                return item
            out: T | None = None
            if len(self._entries) >= self.maxsize:
                if not self.drop_oldest:
                    return item
                out = self._entries.pop(min(self._entries)).item
            self._add(item, delay)
            return out

    def get(self) -> T | None:
        """Block until an item falls due and hand it over (it is in flight until
        :meth:`task_done`). None once closed and no item falls due before the deadline."""
        with self._cond:
            while True:
                now = self._clock()
                first = min(self._entries.values(), key=_order, default=None)
                if self._closed and (
                    first is None or first.due > self._deadline or now >= self._deadline
                ):
                    return None
                if first is not None and first.due <= now:
                    del self._entries[first.seq]
                    self._inflight = first
                    return first.item
                wait = None if first is None else first.due - now
                if self._closed:
                    left = self._deadline - now
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def task_done(self, retry_in: float | None = None) -> None:
        """The item in flight is handled; with ``retry_in``, it is queued again, due that
        many seconds from now (past the bound; not once closed)."""
        with self._cond:
            entry, self._inflight = self._inflight, None
            if entry is not None and retry_in is not None and not self._closed:
                self._add(entry.item, retry_in)
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or in flight (retries waiting their turn included);
        False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._entries and self._inflight is None, timeout=timeout
            )

    def close(self, timeout: float | None = None) -> None:
        """Admit nothing more; the consumer gets what falls due within ``timeout`` seconds
        (None: everything already queued), then None."""
        with self._cond:
            self._closed = True
            if timeout is not None:
                self._deadline = min(self._deadline, self._clock() + timeout)
            self._cond.notify_all()

    def drain(self) -> list[T]:
        """Remove and return every queued item (not the one in flight), oldest first."""
        with self._cond:
            left = [e.item for e in sorted(self._entries.values(), key=lambda e: e.seq)]
            self._entries.clear()
            self._cond.notify_all()
            return left

    def _add(self, item: T, delay: float) -> None:
        """Caller holds the lock."""
        self._seq += 1
        self._entries[self._seq] = _Entry(self._clock() + max(0.0, delay), self._seq, item)
        self._cond.notify_all()


def _order(entry: _Entry[T]) -> tuple[float, int]:
    return (entry.due, entry.seq)
