"""One ModelCanary as a person sees it: :func:`snapshot` reads the object (spec and status,
tolerantly: a missing or bad field shows as unknown, never a traceback) into a
:class:`CanaryView` (phase, step, weights, timing, plan, checks, events, intents, gates,
warnings, the expected change from measured profiles); :func:`summary` is the API's list row.
Rendered by ``kubectl canary`` (:mod:`controlplane.cli.live`, ``list``, ``status``) and the
HTTP API. Pure: the time is an argument. docs/cli.md says what each field means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.rollout import intents as st_intents
from controlplane.rollout.wording import pending_why
from controlplane.routing import sessions
from controlplane.spec.constants import DEFAULT_INTERVAL
from controlplane.status import keys as st_keys
from controlplane.status.hours import held_hours
from controlplane.view.checks import CheckRow, check_rows
from controlplane.view.read import (
    as_duration,
    as_float,
    as_int,
    as_list,
    as_map,
    as_str,
    as_time,
    as_timestamp,
    duration_text,
)

if TYPE_CHECKING:  # the pairing loads the catalogue; `list` never pairs
    from controlplane.profiles.expected import Comparison, Observation, Pairing, Split, VariantRef
    from controlplane.profiles.measured import Loaded

TERMINAL_PHASES = ("promoted", "rolled_back")


@dataclass(frozen=True)
class EventRow:
    """One rollout event from ``status.history``."""

    type: str
    time: float | None
    step: int
    weight: int
    message: str

    def to_json(self) -> dict[str, Any]:
        from controlplane.status.times import format_time

        return {
            "time": format_time(self.time) if self.time is not None else None,
            "type": self.type,
            "step": self.step,
            "weight": self.weight,
            "message": self.message,
        }


@dataclass(frozen=True)
class PlanRow:
    """One stage of the spec's plan: ``label`` (``shadow`` or ``n/N``), its weight and duration,
    ``state`` (``done``, ``current``, ``pending``, ``rolled back``, ``skipped`` by a full
    promotion, ``not run`` after a rollback) and when it began and ended, from the history."""

    label: str
    weight: int
    duration: str | None
    state: str
    started: float | None = None
    ended: float | None = None
    manual: bool = False


@dataclass(frozen=True)
class GateRow:
    """One gate run (an Argo Workflow) of the latest gate point, from ``status.gates``."""

    key: str
    gate: str
    point: str
    workflow: str
    phase: str
    result: str
    message: str
    submitted_at: float | None


@dataclass(frozen=True)
class WarningRow:
    """Trouble beside the rollout, from ``status.warnings`` (an alert not delivered:
    ``AlertDeliveryFailed``): its type, message, when it last happened and how often."""

    type: str
    message: str
    at: float | None
    count: int


@dataclass(frozen=True)
class PendingIntent:
    """A verb recorded on the resource that the controller has not acted on yet."""

    id: str
    verb: str
    user: str
    at: float


@dataclass(frozen=True)
class CapacityView:
    """``status.capacity``: each variant's planned and ready replicas, the GPUs held, the
    budget and the GPU-hours so far (``gpu_hours`` at ``at``, ``gpus`` held since)."""

    planned: dict[str, int]
    ready: dict[str, int]
    gpus: int
    budget: int | None
    gpu_hours: float
    at: float | None = None

    def hours_at(self, now: float | None) -> float:
        """The GPU-hours at ``now`` (those recorded when ``now`` or the record's time is
        unknown)."""
        if now is None or self.at is None:
            return self.gpu_hours
        return held_hours(self.gpu_hours, self.gpus, self.at, now)

    def line(self, now: float | None = None) -> str:
        """``stable 1/1 ready (planned 1), candidate 2/2 ...; 3 GPUs held of 4; 12.5 GPU-h``."""
        parts = [
            f"{role} {self.ready.get(role, 0)} ready of {self.planned.get(role, 0)} planned"
            for role in ("stable", "candidate")
        ]
        budget = f" of a budget of {self.budget}" if self.budget is not None else ""
        return (
            f"{', '.join(parts)}; {self.gpus} GPUs held{budget}; "
            f"{self.hours_at(now):.1f} GPU-hours since the rollout began"
        )


@dataclass(frozen=True)
class SessionsView:
    """``spec.traffic.session``: the key (``header x-session-id`` or ``cookie sid``) and the
    conversations' mean ``turns`` (None: not given)."""

    key: str
    turns: float | None = None

    def line(self, weight: int) -> str:
        """Where sessions go at ``weight`` (:func:`controlplane.routing.sessions.
        candidate_buckets`), and how the sequential judge weighs their requests."""
        held = len(sessions.candidate_buckets(max(0, min(100, weight))))
        text = (
            f"by {self.key}: the candidate holds {held} of {sessions.BUCKETS} session buckets "
            f"({held / sessions.BUCKETS:.1%} of sessions), the stable {sessions.BUCKETS - held}"
        )
        if self.turns is None:
            return text + "; sessions weighed as requests (no turns given)"
        from controlplane.analysis.sequential.support import effect_of_turns  # `get` only

        effect = effect_of_turns(self.turns)
        return (
            f"{text}; {self.turns:g} turns a conversation: the sequential judge weighs "
            f"{effect:g} requests as one sample"
        )


def _sessions(raw: Any) -> SessionsView | None:
    data = as_map(raw)
    for kind in ("header", "cookie"):
        name = as_str(data.get(kind))
        if name:
            return SessionsView(f"{kind} {name}", as_float(data.get("turns")))
    return None


def _quality(spec: Any, status: Any) -> str | None:
    """The quality judge's line (``spec.quality``; None without one): what it has read of the
    pairer (``status.quality``) in :func:`~controlplane.rollout.wording.quality_line`'s words,
    the pairs lost unread and the last read's failure."""
    if not isinstance(spec, Mapping):
        return None
    from pydantic import ValidationError

    from controlplane.rollout.observations import QualityReading  # `get` only
    from controlplane.rollout.wording import quality_line
    from controlplane.spec.models import QualitySpec

    try:
        quality = QualitySpec.model_validate(spec)
    except ValidationError:
        return "quality: its spec cannot be read"
    data = as_map(status)
    decided = as_str(data.get("decided"))
    reading = QualityReading(
        lost=as_int(data.get("lost")) or 0,
        pairs=as_int(data.get("pairs")) or 0,
        total=as_float(data.get("total")) or 0.0,
        log_breach=as_float(data.get("logBreach")) or 0.0,
        log_pass=as_float(data.get("logPass")) or 0.0,
        decided="pass" if decided == "pass" else "breach" if decided == "breach" else None,
        error=as_str(data.get("error")) or "",
    )
    return quality_line(quality, reading)


def _capacity(raw: Any) -> CapacityView | None:
    data = as_map(raw)
    if not isinstance(data.get("planned"), Mapping) or not isinstance(data.get("ready"), Mapping):
        return None
    try:
        planned = {str(k): int(v) for k, v in as_map(data.get("planned")).items()}
        ready = {str(k): int(v) for k, v in as_map(data.get("ready")).items()}
        budget = data.get("budget")
        return CapacityView(
            planned,
            ready,
            int(data.get("gpus", 0)),
            None if budget is None else int(budget),
            float(data.get("gpuHours", 0.0)),
            as_time(data.get("at")),
        )
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CanaryView:
    """A ModelCanary as the ``kubectl canary`` views show it. See :func:`snapshot`."""

    namespace: str
    name: str
    phase: str
    stage: str | None = None
    step: int = 0
    steps: int = 0
    weight: int = 0
    stable: str = "?"
    candidate: str = "?"
    paused: str | None = None
    started_at: float | None = None
    stage_started_at: float | None = None
    paused_at: float | None = None
    stage_duration: float | None = None
    stage_duration_text: str | None = None
    reason: str = ""
    problems: tuple[str, ...] = ()
    checks: tuple[CheckRow, ...] = ()
    events: tuple[EventRow, ...] = ()
    pending: tuple[PendingIntent, ...] = ()
    gates: tuple[GateRow, ...] = ()
    awaiting_approval: bool = False
    generation: int | None = None
    observed_generation: int | None = None
    created_at: float | None = None
    expected: Pairing | None = None
    capacity: CapacityView | None = None
    sessions: SessionsView | None = None
    quality: str | None = None
    plan: tuple[PlanRow, ...] = ()
    last_evaluation: float | None = None
    waiting: str | None = None
    interval_s: float | None = None
    warnings: tuple[WarningRow, ...] = ()

    @property
    def stale(self) -> bool:
        """True when the controller has not yet seen the latest spec (or the canary at all)."""
        if not self.phase:
            return True
        if self.generation is None or self.observed_generation is None:
            return False
        return self.observed_generation < self.generation

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    def observations(self) -> list[Observation]:
        """What the checks last measured of each variant (for the expected-change comparison)."""
        from controlplane.profiles.expected import Observation

        return [
            Observation(c.metric, c.builtin, c.quantile, c.candidate, c.stable) for c in self.checks
        ]

    def split(self) -> Split | None:
        """Candidate's share of the traffic over stable's: 1 in shadow (a mirror of every
        request), ``w / (100 - w)`` in a step of weight 0 < w < 100; else None (unknown)."""
        if self.terminal or self.phase == "invalid":
            return None
        if self.stage == "shadow":
            return 1.0, "shadow: a mirror of every request"
        if self.stage == "steps" and 0 < self.weight < 100:
            return self.weight / (100 - self.weight), f"weight {self.weight}%"
        return None

    def expected_rows(self) -> list[Comparison]:
        """The expected change from the measured profiles beside what the checks observed
        (:func:`controlplane.profiles.expected.compare`); empty without a pairing."""
        if self.expected is None:
            return []
        from controlplane.profiles.expected import compare

        return compare(self.expected, self.observations(), self.split())

    def set_weight(self) -> tuple[int, bool]:
        """The candidate's weight and mirror the status asks of the router now (100 once
        promoted, 0 once rolled back)."""
        if self.phase == "promoted":
            return 100, False
        if self.phase == "rolled_back":
            return 0, False
        return self.weight, self.stage == "shadow"

    def paused_by(self) -> str:
        """Who paused it: ``by a user``, ``on gate errors``, else ``on provider errors``."""
        return {"user": "by a user", "gate-errors": "on gate errors"}.get(
            self.paused or "", "on provider errors"
        )

    def pending_why(self, now: float | None) -> str:
        """Why a pending rollout has not started, as the core words it
        (:func:`controlplane.rollout.wording.pending_why`; ``now`` None: no clock parts)."""
        return pending_why(self.last_evaluation, self.waiting, self.interval_s, now)

    def stage_label(self) -> str:
        if self.stage == "shadow":
            return "shadow"
        if self.step <= 0:
            return "pending" if self.stage == "pending" else "-"
        return f"{self.step}/{self.steps}" if self.steps else str(self.step)

    def in_stage(self, now: float) -> float | None:
        """Seconds spent in the current shadow phase or step; paused time does not count."""
        if self.stage_started_at is None or self.terminal or self.phase == "invalid":
            return None
        end = self.paused_at if self.paused_at is not None else now
        return max(end - self.stage_started_at, 0.0)

    def elapsed(self, row: PlanRow, now: float) -> float | None:
        """Seconds spent in the plan's stage ``row``: so far in the current one (as
        :meth:`in_stage`), from start to end in a finished one; None when unknown."""
        if row.state == "current":
            return self.in_stage(now)
        return None if row.started is None or row.ended is None else row.ended - row.started

    def left(self, now: float) -> float | None:
        """Seconds until the stage's duration has elapsed (0 when due); None without one."""
        spent = self.in_stage(now)
        if spent is None or self.stage_duration is None or self.stage not in ("shadow", "steps"):
            return None
        return max(self.stage_duration - spent, 0.0)


# --------------------------------------------------------------------------- reading


def snapshot(obj: Mapping[str, Any], measured: Sequence[Loaded] = ()) -> CanaryView:
    """Read ``obj`` (a ModelCanary as the API returns it) without ever raising on bad data;
    ``measured``: the measured profile entries to pair its variants with (none: no pairing)."""
    meta = as_map(obj.get("metadata"))
    spec = as_map(obj.get("spec"))
    status = as_map(obj.get("status"))
    steps = as_list(spec.get("steps"))
    stage = as_str(status.get("stage"))
    step = as_int(status.get("step"))
    if step is None:
        index = as_int(status.get("stepIndex"))
        step = index + 1 if index is not None else 0
    stage_duration, duration_text = _stage_duration(spec, stage, step)
    reason = as_map(status.get("reason"))
    events = tuple(_events(status))
    phase = as_str(status.get("phase")) or ""
    problems = tuple(
        f"{p.get('path')}: {p.get('message')}" if p.get("path") else str(p.get("message"))
        for p in (as_map(x) for x in as_list(status.get("problems")))
    )
    return CanaryView(
        namespace=as_str(meta.get("namespace")) or "default",
        name=as_str(meta.get("name")) or "?",
        phase=phase,
        stage=stage,
        step=step,
        steps=len(steps),
        weight=as_int(status.get("weight")) or 0,
        stable=_stable(spec.get("stable"), status.get("adopted")),
        candidate=_variant(spec.get("candidate")),
        paused=as_str(status.get("paused")),
        started_at=as_time(status.get("startedAt")),
        stage_started_at=as_time(status.get("stageStartedAt")),
        paused_at=as_time(status.get("pausedAt")),
        stage_duration=stage_duration,
        stage_duration_text=duration_text,
        reason=as_str(reason.get("message")) or "",
        problems=problems,
        checks=tuple(check_rows(spec, status, stage, step)),
        events=events,
        pending=tuple(_pending(meta, status)),
        gates=tuple(_gates(status)),
        awaiting_approval=status.get("awaitingApproval") is True,
        generation=as_int(meta.get("generation")),
        observed_generation=as_int(status.get("observedGeneration")),
        created_at=as_timestamp(meta.get("creationTimestamp")),
        expected=_pairing(spec, measured),
        capacity=_capacity(status.get("capacity")),
        sessions=_sessions(as_map(spec.get("traffic")).get("session")),
        quality=_quality(spec.get("quality"), status.get("quality")),
        plan=tuple(_plan(spec, phase, stage, step, events)),
        last_evaluation=as_time(status.get("lastEvaluation")),
        waiting=as_str(status.get("waiting")),
        interval_s=_interval(spec),
        warnings=tuple(_warnings(status)),
    )


def summary(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the API's list shows of a ModelCanary (its ``CanarySummary`` fields), read as the
    status writes it: ``step`` and ``weight`` None when unset, ``lastDecision`` the last entry
    of ``status.history`` as written."""
    meta, spec = as_map(obj.get("metadata")), as_map(obj.get("spec"))
    status = as_map(obj.get("status"))
    reason = status.get("reason")
    reason = reason.get("message") if isinstance(reason, Mapping) else reason
    if not reason and isinstance(status.get("waiting"), str):
        reason = status["waiting"]
    history = as_list(status.get("history"))
    last = history[-1] if history and isinstance(history[-1], Mapping) else None
    keys = ("type", "time", "step", "weight", "message")
    return {
        "namespace": as_str(meta.get("namespace")) or "",
        "name": as_str(meta.get("name")) or "",
        "phase": as_str(status.get("phase")) or "",
        "step": status.get("step"),
        "weight": status.get("weight"),
        "outcome": status.get("outcome"),
        "reason": reason if isinstance(reason, str) else None,
        "stable": as_map(spec.get("stable")).get("name"),
        "candidate": as_map(spec.get("candidate")).get("name"),
        "generation": meta.get("generation"),
        "resourceVersion": meta.get("resourceVersion"),
        "createdAt": as_str(meta.get("creationTimestamp")),
        "lastDecision": None if last is None else {k: last.get(k) for k in keys},
        "warnings": len(as_list(status.get(st_keys.WARNINGS_KEY))),
        "paused": as_str(status.get("paused")),
        "simulated": status.get("simulated") is True,
        "timeScale": as_float(status.get("timeScale")),
    }


_ENTERED = ("StepStarted", "Advanced")
_ENDED = ("Promoted", "RolledBack")


def _plan(
    spec: Mapping[str, Any], phase: str, stage: str | None, step: int, events: Sequence[EventRow]
) -> list[PlanRow]:
    """The spec's stages with where the rollout stands in them (:class:`PlanRow`)."""
    starts: dict[int, float] = {}  # stage -> when it began (0: the shadow phase)
    ended: float | None = None
    for event in events:
        if event.time is None:
            continue
        if event.type == "ShadowStarted":
            starts.setdefault(0, event.time)
        elif event.type in _ENTERED and event.step > 0:
            starts.setdefault(event.step, event.time)
        elif event.type in _ENDED:
            ended = event.time
    rows: list[PlanRow] = []
    shadow = spec.get("shadow")
    steps = as_list(spec.get("steps"))
    stages: list[tuple[int, str, int, Any, bool]] = []
    if isinstance(shadow, Mapping):
        stages.append((0, "shadow", 0, shadow.get("duration"), False))
    for index, raw in enumerate(steps, start=1):
        entry = as_map(raw)
        weight = as_int(entry.get("weight")) or 0
        manual = entry.get("approval") == "manual"
        stages.append((index, f"{index}/{len(steps)}", weight, entry.get("duration"), manual))
    current = 0 if stage == "shadow" else step
    for number, label, weight, duration, manual in stages:
        started = starts.get(number)
        later = [starts[n] for n in starts if n > number]
        end = min(later) if later else None
        if phase == "promoted":
            state = "done" if started is not None else "skipped"
            end = end if end is not None or started is None else ended
        elif phase == "rolled_back":
            if started is None:
                state = "not run"
            elif number == current and end is None:
                state, end = "rolled back", ended
            else:
                state = "done"
        elif stage in ("shadow", "steps") and number == current:
            state = "current"
        elif stage == "steps" and number < current:
            state = "done"
        else:
            state = "pending"
        rows.append(PlanRow(label, weight, duration_text(duration), state, started, end, manual))
    return rows


def _warnings(status: Mapping[str, Any]) -> list[WarningRow]:
    """``status.warnings`` (:func:`controlplane.status.document.with_warning`), oldest first;
    unreadable entries are skipped."""
    rows = []
    for item in as_list(status.get(st_keys.WARNINGS_KEY)):
        entry = as_map(item)
        kind, message = as_str(entry.get("type")), as_str(entry.get("message"))
        if kind is None or message is None:
            continue
        count = as_int(entry.get("count"))
        rows.append(WarningRow(kind, message, as_time(entry.get("at")), count or 1))
    return rows


def _interval(spec: Mapping[str, Any]) -> float | None:
    """``spec.analysis.interval`` in seconds (its default when unset); None when unreadable."""
    parsed = as_duration(as_map(spec.get("analysis")).get("interval", DEFAULT_INTERVAL))
    return None if parsed is None else parsed.seconds


def _ref(raw: Any) -> VariantRef | None:
    from controlplane.profiles.expected import VariantRef

    variant = as_map(raw)
    name, gpu = as_str(variant.get("name")), as_str(variant.get("gpu"))
    if name is None or gpu is None:
        return None
    return VariantRef(name, as_str(variant.get("quantization")) or "none", gpu)


def _pairing(spec: Mapping[str, Any], measured: Sequence[Loaded]) -> Pairing | None:
    """The variants paired with their measured entries when both have one; else None."""
    if not measured:  # the views that pair nothing (`list`) never load the pairing
        return None
    from controlplane.profiles.expected import pair

    model = as_str(as_map(spec.get("model")).get("name"))
    stable, candidate = _ref(spec.get("stable")), _ref(spec.get("candidate"))
    if model is None or stable is None or candidate is None:
        return None
    found = pair(measured, model, stable, candidate)
    return found if found.measured else None


def _stage_duration(
    spec: Mapping[str, Any], stage: str | None, step: int
) -> tuple[float | None, str | None]:
    if stage == "shadow":
        raw = as_map(spec.get("shadow")).get("duration")
    elif stage == "steps":
        steps = as_list(spec.get("steps"))
        raw = as_map(steps[step - 1]).get("duration") if 0 < step <= len(steps) else None
    else:
        return None, None
    parsed = as_duration(raw)
    return (None, None) if parsed is None else (parsed.seconds, str(parsed))


def _stable(raw: Any, adopted: Any) -> str:
    """The stable as :func:`_variant` shows it; an adopted one (``targetRef``) as the live
    service serves it (``status.adopted``, once the controller read it), and which it is."""
    target = as_str(as_map(as_map(raw).get("targetRef")).get("name"))
    if target is None:
        return _variant(raw)
    read = as_map(as_map(adopted).get("variant"))
    name = as_str(as_map(raw).get("name")) or "?"
    if not read:
        return f"{name} (live {target})"
    return f"{name} ({as_str(read.get('quantization')) or 'none'}, live {target})"


def _variant(raw: Any) -> str:
    variant = as_map(raw)
    name = as_str(variant.get("name")) or "?"
    quantization = as_str(variant.get("quantization")) or "none"
    return f"{name} ({quantization})"


def _events(status: Mapping[str, Any]) -> list[EventRow]:
    rows = []
    for raw in as_list(status.get("history")):
        event = as_map(raw)
        rows.append(
            EventRow(
                type=as_str(event.get("type")) or "?",
                time=as_time(event.get("time")),
                step=as_int(event.get("step")) or 0,
                weight=as_int(event.get("weight")) or 0,
                message=as_str(event.get("message")) or "",
            )
        )
    return rows


def _gates(status: Mapping[str, Any]) -> list[GateRow]:
    raw = status.get("gates")
    if not isinstance(raw, Mapping):
        return []
    rows = []
    for key, value in sorted(raw.items(), key=lambda kv: str(kv[0])):
        gate = as_map(value)
        namespace = as_str(gate.get("namespace"))
        workflow = as_str(gate.get("workflow")) or "?"
        rows.append(
            GateRow(
                key=str(key),
                gate=as_str(gate.get("gate")) or str(key),
                point=as_str(gate.get("point")) or "?",
                workflow=f"{namespace}/{workflow}" if namespace else workflow,
                phase=as_str(gate.get("phase")) or "Pending",
                result=as_str(gate.get("result")) or "running",
                message=as_str(gate.get("message")) or "",
                submitted_at=as_time(gate.get("submittedAt")),
            )
        )
    return rows


def _pending(meta: Mapping[str, Any], status: Mapping[str, Any]) -> list[PendingIntent]:
    annotations = meta.get("annotations")
    if not isinstance(annotations, Mapping):
        return []
    recorded, _problem = st_intents.read_intents({str(k): str(v) for k, v in annotations.items()})
    last = as_str(as_map(status.get(st_keys.BOOK_KEY)).get("lastIntentId"))
    return [
        PendingIntent(r.id, r.intent.verb, r.intent.user, r.intent.at)
        for r in st_intents.new_intents(recorded, last)
    ]


# --------------------------------------------------------------------------- formatting


def human(seconds: float | None) -> str:
    """``45s``, ``12m5s``, ``4h12m``, ``3d4h`` (the two largest units); ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = int(max(seconds, 0.0))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units):
        if total >= size or unit == "s":
            text = f"{total // size}{unit}"
            if index + 1 < len(units):
                next_unit, next_size = units[index + 1]
                rest = (total % size) // next_size
                if rest:
                    text += f"{rest}{next_unit}"
            return text
    return "0s"  # unreachable: the seconds unit always matches
