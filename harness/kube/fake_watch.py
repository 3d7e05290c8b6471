"""The resourceVersion clock and the watch event log of a FakeKube.

Owns :class:`EventLog`: the global, monotonically increasing resourceVersion, the bounded log of
write events (older versions answer ``410 Gone``, as after the server's compaction), and the
watch streams read from it, many at once: each ends on its timeout or on
:meth:`EventLog.drop` (a dropped connection); with bookmarks asked for, a BOOKMARK when the
version moved past what the watcher was last told, on :meth:`EventLog.tick_bookmark` (the
server's periodic one) and at the timeout. Called by :class:`harness.kube.fake.FakeKube`,
whose lock (the condition passed in) guards it: methods not named as taking the lock expect it
held.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from controlplane.errors import KubeError
from controlplane.kube.client import Obj, WatchEvent, expired
from harness.kube.fake_objects import Key, wire_copy

INITIAL_EVENTS_END = "k8s.io/initial-events-end"
"""The annotation on the BOOKMARK that ends a watch's initial (synthetic ADDED) events."""

Fired = list[WatchEvent]
"""Watch events a write produced, handed to the listeners once the lock is released."""

WriteType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class Entry:
    """One write in the log: its resourceVersion, type, object key and stored object."""

    rv: int
    type: WriteType
    key: Key
    obj: Obj


def parse_rv(text: str | None) -> int:
    """A watch's ``resourceVersion`` as a number (``""`` and None: 0)."""
    try:
        return int(text or "0")
    except ValueError as exc:
        raise KubeError(f"400 BadRequest: invalid resourceVersion {text!r}") from exc


class EventLog:
    """The versions and write events of one FakeKube; ``history`` events are kept."""

    def __init__(self, cond: threading.Condition, history: int) -> None:
        self._cond = cond
        self._history = history
        # Starts above 0: "0" in a watch means "any version" (current state first), as on a server.
        self.rv = 1
        self.compacted_rv = 1
        self.drop_epoch = 0
        self.bookmark_epoch = 0
        self.open_watches = 0
        self._log: deque[Entry] = deque()

    def next_version(self) -> int:
        """The resourceVersion of the write being made."""
        self.rv += 1
        return self.rv

    def append(self, entry: Entry) -> None:
        """Log a write (forgetting the oldest past ``history``) and wake the watches."""
        self._log.append(entry)
        while len(self._log) > self._history:
            self.compacted_rv = self._log.popleft().rv
        self._cond.notify_all()

    def compact(self) -> None:
        """Forget the log: every version before now answers 410 Gone to a watch."""
        self._log.clear()
        self.compacted_rv = self.rv
        self._cond.notify_all()

    def drop(self) -> None:
        """End every open watch."""
        self.drop_epoch += 1
        self._cond.notify_all()

    def tick_bookmark(self) -> None:
        """The server's periodic bookmark, to every watch that asked for bookmarks."""
        self.bookmark_epoch += 1
        self._cond.notify_all()

    def stream(
        self,
        matches: Callable[[Key], bool],
        start: int,
        initial: Fired,
        deadline: float | None,
        epoch: int,
        marks: int | None,
        mark: Callable[[int], WatchEvent],
    ) -> Iterator[WatchEvent]:
        """The events after ``start``; with ``marks`` (the bookmark epoch seen), bookmarks too.
        Takes the lock itself.

        Like kube-apiserver's watch cache, a bookmark (on :meth:`tick_bookmark` or at the
        timeout) is only sent when the version moved past what the watcher was opened at or last
        told."""
        with self._cond:
            self.open_watches += 1
            told = max(start, self.rv)
        try:
            yield from initial
            pos, done = start, False
            while not done:
                out: Fired = []
                with self._cond:
                    while True:
                        if self.drop_epoch != epoch:
                            return
                        if pos < self.compacted_rv:
                            raise expired(
                                f"too old resource version: {pos} ({self.compacted_rv + 1})"
                            )
                        batch = [e for e in self._log if e.rv > pos]
                        if batch:
                            pos = batch[-1].rv
                            out = [
                                WatchEvent(e.type, wire_copy(e.obj))
                                for e in batch
                                if matches(e.key)
                            ]
                            if out:
                                told = max(told, int(out[-1].object["metadata"]["resourceVersion"]))
                        left = None if deadline is None else deadline - time.monotonic()
                        ticked = marks is not None and marks != self.bookmark_epoch
                        if ticked:
                            marks = self.bookmark_epoch
                        timed_out = left is not None and left <= 0
                        if (timed_out or ticked) and marks is not None and self.rv > told:
                            # the server's bookmark: periodic, and 2 s before a timeout
                            pos = told = max(pos, self.rv)
                            out.append(mark(pos))
                        if timed_out:
                            done = True
                            break
                        if out:
                            break
                        self._cond.wait(left)
                yield from out
        finally:
            with self._cond:
                self.open_watches -= 1
