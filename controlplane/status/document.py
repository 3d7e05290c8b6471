"""The ``status`` document of a ModelCanary: the source of truth of the controller.

Owns the whole ``status`` dict (:func:`rollout_status`, :func:`invalid_status`) and :class:`Book`,
the bookkeeping of effects: decisions live in the rollout state, the book says how far the world
has caught up, so a restarted controller re-applies exactly what is missing; plus the cursor of
told events. Pure. See docs/controller.md, "Status: the source of truth".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from controlplane.errors import Problem
from controlplane.rollout import events
from controlplane.rollout.state import Event, RolloutState
from controlplane.rollout.wording import pending_why
from controlplane.spec.constants import API_GROUP
from controlplane.spec.units import status_time, time_value
from controlplane.status import conditions
from controlplane.status.hours import held_hours
from controlplane.status.keys import ADOPTED_KEY as ADOPTED_KEY
from controlplane.status.keys import BOOK_KEY as BOOK_KEY
from controlplane.status.keys import CAPACITY_KEY as CAPACITY_KEY
from controlplane.status.keys import PROBLEMS_KEY as PROBLEMS_KEY
from controlplane.status.keys import WARNINGS_KEY as WARNINGS_KEY

FINALIZER = f"{API_GROUP}/cleanup"
"""Finalizer the controller puts on every ModelCanary it manages."""

WARNINGS_KEPT = 5
EFFECT_WARNINGS = frozenset({"WeightsNotVerified", "ForeignObject", "InvalidIntent"})
"""Warnings the controller puts in ``status.warnings`` while their trouble lasts (a router that
refuses or cannot be written, an intent annotation that cannot be read): :func:`with_trouble`
adds and clears them."""


@dataclass(frozen=True)
class Verified:
    """Weights read back from the router: ``weight``/``mirror`` for ``hash`` at ``stage`` /
    ``step_index``, verified at ``at`` (unix seconds)."""

    hash: str
    stage: str
    step_index: int
    weight: int
    mirror: bool
    at: float


@dataclass(frozen=True)
class Book:
    """How far the effects have caught up with the persisted rollout state; each field is a
    ``status.controller`` field (docs/controller.md, "Status: the source of truth").

    ``notified`` may be a mapping when written by an older controller (read, never written);
    ``gates_submitted``: a Workflow accepted once and then missing from the Argo Server was deleted,
    and its gate fails.
    """

    deployed_hash: str | None = None
    verified: Verified | None = None
    finalized: str | None = None
    finished_at: float | None = None
    cleaned: str | None = None
    notified: str | dict[str, Any] | None = None
    last_intent_id: str | None = None
    gates_submitted: tuple[str, ...] = ()
    capacity: CapacityRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "deployedHash": self.deployed_hash,
            "verified": None
            if self.verified is None
            else _camel({**asdict(self.verified), "at": status_time(self.verified.at)}),
            "finalized": self.finalized,
            "finishedAt": None if self.finished_at is None else status_time(self.finished_at),
            "cleaned": self.cleaned,
            "notified": self.notified,
            "lastIntentId": self.last_intent_id,
            "gatesSubmitted": list(self.gates_submitted) or None,
        }
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Book:
        """Tolerant: anything unreadable is treated as "not done yet" (effects are idempotent)."""
        if not isinstance(data, Mapping):
            return cls()
        verified = None
        v = data.get("verified")
        if isinstance(v, Mapping):
            try:
                verified = Verified(
                    hash=str(v["hash"]),
                    stage=str(v["stage"]),
                    step_index=int(v["stepIndex"]),
                    weight=int(v["weight"]),
                    mirror=bool(v["mirror"]),
                    at=time_value(v["at"]),
                )
            except (KeyError, TypeError, ValueError):
                verified = None
        notified = data.get("notified")
        submitted = data.get("gatesSubmitted")
        gates = (
            tuple(str(name) for name in submitted if isinstance(name, str))
            if isinstance(submitted, list)
            else ()
        )
        return cls(
            deployed_hash=_str_or_none(data.get("deployedHash")),
            verified=verified,
            finalized=_str_or_none(data.get("finalized")),
            finished_at=_time_or_none(data.get("finishedAt")),
            cleaned=_str_or_none(data.get("cleaned")),
            notified=notified
            if isinstance(notified, str)
            else dict(notified)
            if isinstance(notified, Mapping)
            else None,
            last_intent_id=_str_or_none(data.get("lastIntentId")),
            gates_submitted=gates,
        )


@dataclass(frozen=True)
class CapacityRecord:
    """What the capacity effect last saw (``status.capacity``): each variant's planned and ready
    replicas, the GPUs they hold, the budget, and the GPU-hours held from the rollout's start to
    ``at`` (ready replicas x GPUs, summed each time a count changes, ``at`` the last): the
    ``gpus`` are held since, so the hours at any later time are :meth:`hours_at` and a status
    is not rewritten only because time passed;
    ``demand_rps`` the requests per second users sent at the last evaluation (None: not read);
    ``waiting``: why the weights wait for capacity (None: they do not), the ``CapacityReady``
    condition's message."""

    planned: dict[str, int]
    ready: dict[str, int]
    gpus: int
    budget: int | None
    gpu_hours: float
    at: float
    demand_rps: float | None = None
    waiting: str | None = None

    def hours_at(self, now: float) -> float:
        """The GPU-hours held since the rollout began, at ``now``."""
        return held_hours(self.gpu_hours, self.gpus, self.at, now)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "planned": dict(self.planned),
            "ready": dict(self.ready),
            "gpus": self.gpus,
            "gpuHours": round(self.gpu_hours, 6),
            "at": status_time(self.at),
        }
        if self.budget is not None:
            out["budget"] = self.budget
        if self.demand_rps is not None:
            out["demandRps"] = round(self.demand_rps, 6)
        if self.waiting is not None:
            out["waiting"] = self.waiting
        return out

    @classmethod
    def from_dict(cls, data: Any) -> CapacityRecord | None:
        """Tolerant: None for anything unreadable."""
        if not isinstance(data, Mapping):
            return None
        try:
            planned = {str(k): int(v) for k, v in dict(data["planned"]).items()}
            ready = {str(k): int(v) for k, v in dict(data["ready"]).items()}
            budget, demand, waiting = data.get("budget"), data.get("demandRps"), data.get("waiting")
            return cls(
                planned,
                ready,
                int(data["gpus"]),
                None if budget is None else int(budget),
                float(data["gpuHours"]),
                time_value(data["at"]),
                None if demand is None else float(demand),
                waiting if isinstance(waiting, str) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _camel(data: dict[str, Any]) -> dict[str, Any]:
    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(p.capitalize() for p in rest)

    return {camel(k): v for k, v in data.items()}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time_or_none(value: Any) -> float | None:
    try:
        return time_value(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- reading the status


def has_state(status: Mapping[str, Any] | None) -> bool:
    """True when ``status`` holds a rollout state (written by :func:`rollout_status`)."""
    return isinstance(status, Mapping) and "specHash" in status and "stage" in status


def read_state(status: Mapping[str, Any] | None) -> RolloutState | None:
    """The persisted rollout state, None when there is none yet. SpecError when unreadable."""
    if not has_state(status):
        return None
    assert status is not None
    return RolloutState.from_status(status)


def read_book(status: Mapping[str, Any] | None) -> Book:
    """The book of ``status`` (its ``controller`` section), with ``status.capacity``."""
    book = Book.from_dict((status or {}).get(BOOK_KEY))
    capacity = CapacityRecord.from_dict((status or {}).get(CAPACITY_KEY))
    return book if capacity is None else replace(book, capacity=capacity)


# --------------------------------------------------------------------------- writing the status


def rollout_status(
    state: RolloutState,
    book: Book,
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """The whole status for ``state``; conditions keep their transition times from ``previous``."""
    status = state.to_status()
    message = state.reason.message if state.reason is not None else ""
    if not message and state.stage == "pending" and state.paused is None:
        message = pending_why(state.last_evaluation, state.waiting, None, None)
    if not message and state.history:
        message = state.history[-1].message
    # an unreachable Argo Server stalls a rollout like an unreachable Prometheus does
    paused = "errors" if state.paused == "gate-errors" else state.paused
    wanted = conditions.for_phase(state.phase, message, paused)
    if book.capacity is not None and not state.terminal:
        wanted.append(conditions.capacity(book.capacity.waiting))
    status["observedGeneration"] = generation
    status["conditions"] = conditions.render(
        wanted, (previous or {}).get("conditions"), generation, now
    )
    status[BOOK_KEY] = book.to_dict()
    if book.capacity is not None:
        status[CAPACITY_KEY] = book.capacity.to_dict()
    if previous and ADOPTED_KEY in previous:
        status[ADOPTED_KEY] = previous[ADOPTED_KEY]
    warnings = (previous or {}).get(WARNINGS_KEY)
    if warnings and (previous or {}).get("specHash") == state.spec_hash:
        if state.terminal and isinstance(warnings, list):  # no traffic is sent to judge now
            warnings = [
                w for w in warnings if not (isinstance(w, Mapping) and w.get("type") == NO_TRAFFIC)
            ]
        if warnings:
            status[WARNINGS_KEY] = warnings  # a new rollout (a new spec) starts without them
    return status


def with_warning(
    previous: Any, type_: str, message: str, now: float, *, kept: int = WARNINGS_KEPT
) -> list[dict[str, Any]]:
    """``status.warnings`` with one more: ``{type, message, at (RFC 3339), count}``. The same
    type and message again moves to the end with ``count`` + 1 and its new ``at``; the newest
    ``kept`` are kept. ``previous`` is read tolerantly (anything unreadable is dropped)."""
    entries = [
        dict(w)
        for w in (previous if isinstance(previous, list) else [])
        if isinstance(w, Mapping) and isinstance(w.get("type"), str)
    ]
    count = 1
    for entry in entries:
        if entry.get("type") == type_ and entry.get("message") == message:
            seen = entry.get("count")
            count = (seen if isinstance(seen, int) and not isinstance(seen, bool) else 1) + 1
    entries = [e for e in entries if (e.get("type"), e.get("message")) != (type_, message)]
    entries.append({"type": type_, "message": message, "at": status_time(now), "count": count})
    return entries[-kept:]


NO_TRAFFIC = "NoTraffic"
"""The warning of a candidate that its route sends traffic to and that finished no request at
the last evaluation: set and cleared by evaluations alone (:func:`with_trouble` with
``managed={NO_TRAFFIC}``)."""


def with_trouble(
    status: dict[str, Any],
    trouble: Mapping[str, str],
    now: float,
    managed: frozenset[str] = EFFECT_WARNINGS,
) -> dict[str, Any]:
    """``status`` with its ``managed`` warnings (:data:`EFFECT_WARNINGS`) as ``trouble``
    (reason -> message) says now: one entry per reason in trouble (kept as it is while its
    message is the same, so a lasting failure writes nothing new), those no longer in trouble
    removed; other warnings (an alert not delivered) untouched. Pure."""
    current = status.get(WARNINGS_KEY)
    entries = [w for w in (current if isinstance(current, list) else []) if isinstance(w, Mapping)]
    kept = [
        dict(w)
        for w in entries
        if w.get("type") not in managed or trouble.get(str(w.get("type"))) == w.get("message")
    ]
    have = {(w.get("type"), w.get("message")) for w in kept}
    for reason, message in trouble.items():
        if (reason, message) not in have:
            kept.append({"type": reason, "message": message, "at": status_time(now), "count": 1})
    out = dict(status)
    if kept:
        out[WARNINGS_KEY] = kept[-WARNINGS_KEPT:]
    else:
        out.pop(WARNINGS_KEY, None)
    return out


def invalid_status(
    problems: Sequence[Problem],
    generation: int | None,
    previous: Mapping[str, Any] | None,
    now: float,
) -> dict[str, Any]:
    """Status of a ModelCanary whose spec does not validate: ``phase: invalid``, Stalled True
    with every problem; a rollout state already there is kept (the spec may be fixed)."""
    status = dict(previous or {})
    lines = [p.format() for p in problems]
    message = "; ".join(lines[:10]) + (f" (+{len(lines) - 10} more)" if len(lines) > 10 else "")
    status["phase"] = "invalid"
    status[PROBLEMS_KEY] = [{"path": p.path, "message": p.message} for p in problems]
    status["observedGeneration"] = generation
    wanted = conditions.for_phase("invalid", message)
    before = (previous or {}).get("conditions")
    status["conditions"] = conditions.render(wanted, before, generation, now)
    return status


def same_status(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """True when writing ``b`` over ``a`` would change nothing (JSON equality).

    Numbers compare by value: the API server stores JSON numbers as float64 and writes an
    integral one back without its fraction (``1795370400.0`` is read back as ``1795370400``),
    so a textual comparison would rewrite an unchanged status on every reconcile."""
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> str:
    return json.dumps(_integral(value), sort_keys=True, default=str)


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(v) for v in value]
    return value


# --------------------------------------------------------------------------- events


def owner_of(obj: Mapping[str, Any]) -> str:
    """Whose events these are (:func:`controlplane.rollout.events.owner_id` of the resource)."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    return events.owner_id(
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        uid if isinstance(uid, str) else None,
    )


def unnotified(
    history: Sequence[Event], notified: str | Mapping[str, Any] | None, owner: str
) -> list[Event]:
    """History events after the last one told (all of them when it is no longer in the
    bounded history). An Event may be told twice after a crash, never skipped."""
    if not isinstance(notified, Mapping):
        return events.undelivered(history, notified, owner)
    legacy = dict(notified)  # {type, time, step, message} of a controller from before
    for index in range(len(history) - 1, -1, -1):
        event = history[index]
        fields = {"type": event.type, "time": event.time, "step": event.step}
        if {**fields, "message": event.message} == legacy:
            return list(history[index + 1 :])
    return list(history)


def with_notified(book: Book, history: Sequence[Event], owner: str) -> Book:
    """``book`` once every entry of ``history`` is told."""
    if not history:
        return book
    return replace(book, notified=events.cursor(history, owner, None))
