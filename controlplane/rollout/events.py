"""One identity and one delivered-record for rollout events, shared by every sink that tells them.

Owns :func:`fingerprint` (an event's identity across restarts, by the resource's uid),
:func:`delivery_key` (one event to one sink), :class:`Delivered` (the per-sink record) and the
cursor of a sink that tells the history in order (Kubernetes Events). Kubernetes Events, alerts,
metrics and git write-back each tell an event exactly once through it. Pure; times are arguments.
See docs/controller.md, "Telling each event once".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from controlplane.rollout.state import Event

KUBE_EVENTS = "kubernetes-events"
"""Sink name of the Kubernetes Events the reconciler emits for every history entry."""
METRICS = "metrics"
"""Sink name of the controller's event counters (rollbacks, promotions, step durations)."""
WRITE_BACK = "git-write-back"
"""Sink name of the git write-back of a rollback."""


def owner_id(namespace: str, name: str, uid: str | None) -> str:
    """The resource an event belongs to: its uid, or ``namespace/name`` when it has none."""
    return uid or f"{namespace}/{name}"


def log_line(namespace: str, name: str, event: Event) -> str:
    """One readable line for the controller's log about a transition (a history entry):
    ``ml-serving/support-triage: RolledBack at step 1, weight 0%: latency 412.3ms > 300ms over
    5m at step 1``. Its message carries the reason (who promoted, what breached); newlines are
    folded so one transition stays one log line."""
    where = "before step 1" if event.step <= 0 else f"at step {event.step}"
    message = " ".join((event.message or "").split())
    said = f": {message}" if message else ""
    return f"{namespace}/{name}: {event.type} {where}, weight {event.weight}%{said}"


def fingerprint(owner: str, event: Event) -> str:
    """What identifies ``event`` of ``owner`` (:func:`owner_id`) across controller restarts.

    The type, time (as a float: the API server hands integral numbers back without their
    fraction), step and message: two entries of one evaluation (two checks breached at once)
    differ by their message. The weight is left out (it follows from the rest)."""
    text = f"{owner}|{event.type}|{float(event.time)!r}|{event.step}|{event.message}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def delivery_key(fingerprint: str, sink: str) -> str:
    """32 hex digits naming the delivery of one event (``fingerprint``) to one ``sink``; a valid
    ConfigMap data key."""
    return hashlib.sha256(f"{fingerprint}|{sink}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Delivered:
    """Which deliveries a sink made (or has in flight): delivery key -> unix seconds.

    Immutable: every change returns a new record. ``window_s`` (None: forever) is how long an
    entry counts; ``limit`` (None: no bound) how many of the newest are kept."""

    at: Mapping[str, float] = field(default_factory=dict)
    window_s: float | None = None
    limit: int | None = None

    def __len__(self) -> int:
        return len(self.at)

    def has(self, key: str, now: float | None = None) -> bool:
        """True when ``key`` is recorded (and, with ``now``, still within the window)."""
        stamp = self.at.get(key)
        if stamp is None:
            return False
        return now is None or self.window_s is None or now - stamp <= self.window_s

    def with_key(self, key: str, now: float) -> Delivered:
        """``key`` recorded at ``now``; expired entries dropped, the newest ``limit`` kept."""
        kept = {k: t for k, t in self._fresh(now).items() if k != key}
        kept[key] = now
        if self.limit is not None and len(kept) > self.limit:
            newest = sorted(kept.items(), key=lambda item: item[1])[-self.limit :]
            kept = dict(newest)
        return Delivered(kept, self.window_s, self.limit)

    def without(self, key: str) -> Delivered:
        """``key`` forgotten (a delivery that failed for good may be tried again)."""
        if key not in self.at:
            return self
        return Delivered({k: t for k, t in self.at.items() if k != key}, self.window_s, self.limit)

    def only(self, keys: Iterable[str]) -> Delivered:
        """The entries of ``keys`` alone (what a persisted cursor does not cover yet)."""
        wanted = set(keys)
        return Delivered(
            {k: t for k, t in self.at.items() if k in wanted}, self.window_s, self.limit
        )

    def _fresh(self, now: float) -> dict[str, float]:
        if self.window_s is None:
            return dict(self.at)
        return {k: t for k, t in self.at.items() if now - t <= self.window_s}

    def to_data(self) -> dict[str, str]:
        """As ConfigMap ``data``: key -> ``repr`` of the time."""
        return {k: repr(t) for k, t in self.at.items()}

    @classmethod
    def from_data(
        cls, data: object, *, window_s: float | None = None, limit: int | None = None
    ) -> Delivered:
        """From ConfigMap ``data`` (anything unreadable is left out: not delivered)."""
        at: dict[str, float] = {}
        if isinstance(data, Mapping):
            for key, stamp in data.items():
                try:
                    value = float(str(stamp))
                except ValueError:
                    continue
                if isinstance(key, str) and math.isfinite(value):
                    at[key] = value
        return cls(at, window_s, limit)


def undelivered(history: Sequence[Event], cursor: str | None, owner: str) -> list[Event]:
    """The history entries after the one whose fingerprint is ``cursor`` (all of them when it
    is None or no longer in the bounded history: an entry may be told twice, never skipped)."""
    if cursor is None:
        return list(history)
    for index in range(len(history) - 1, -1, -1):
        if fingerprint(owner, history[index]) == cursor:
            return list(history[index + 1 :])
    return list(history)


def cursor(history: Sequence[Event], owner: str, previous: str | None) -> str | None:
    """The cursor once every entry of ``history`` is told: the last one's fingerprint."""
    return fingerprint(owner, history[-1]) if history else previous
