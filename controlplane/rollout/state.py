"""The rollout's memory: plain, immutable data that the state machine reads and returns.

Owns :class:`RolloutState`, its :class:`Event` and :class:`Reason` records, :func:`spec_hash` and
the exact round trip through the camelCase ``status`` dict. Written by the machine only; persisted
by the controller, rendered by the CLI. Pure.
"""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    with_config,
)
from pydantic.alias_generators import to_camel

from controlplane.errors import Problem, SpecError
from controlplane.rollout.observations import QualityReading, Verdict
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import status_time, time_value

HISTORY_LIMIT = 200
"""How many events :attr:`RolloutState.history` keeps (the oldest are dropped)."""

Stage = Literal["pending", "shadow", "steps", "promoted", "rolled_back"]
"""Where the rollout is. ``paused`` / ``throttled`` / ``holding`` are overlays, see ``phase``."""

Phase = Literal[
    "pending",
    "shadow",
    "progressing",
    "holding",
    "gated",
    "awaiting_approval",
    "paused",
    "throttled",
    "promoted",
    "rolled_back",
]
"""What users see (``status.phase``), derived from the stage and the overlays."""

Outcome = Literal["promoted", "rolled_back", "paused", "in_progress"]
PauseKind = Literal["user", "errors", "gate-errors"]
ReasonKind = Literal[
    "breach",
    "aborted",
    "not-ready",
    "not-routed",
    "shadow-expired",
    "provider-errors",
    "user-pause",
    "gate-failed",
    "gate-errors",
    "quality",
]
GateResult = Literal["running", "passed", "failed"]
EventType = Literal[
    "StepStarted",
    "Advanced",
    "Breached",
    "RolledBack",
    "Promoted",
    "Held",
    "Paused",
    "Throttled",
    "ShadowStarted",
    "ShadowPassed",
    "Resumed",
    "Unthrottled",
    "Restarted",
    "GateStarted",
    "GatePassed",
    "GateFailed",
    "AwaitingApproval",
]

TERMINAL_STAGES: frozenset[Stage] = frozenset({"promoted", "rolled_back"})

Time = Annotated[
    float,
    BeforeValidator(time_value),
    PlainSerializer(status_time, return_type=str, when_used="json"),
]
"""A time of the state: unix seconds in memory, RFC 3339 in the ``status``
(:func:`~controlplane.spec.units.status_time`, read back exactly; a number written by an older
controller is read too)."""

_CONFIG = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def finite_or_none(value: float | None) -> float | None:
    """``value`` when it is a finite number, else None (NaN / Inf are not JSON-safe)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@with_config(_CONFIG)
@dataclass(frozen=True)
class Event:
    """Something that happened, as the contract's ``simulate`` JSON lists it.

    ``time`` is unix seconds; ``step`` is 1-based (0 before step 1: pending and shadow);
    ``weight`` is the candidate's user-facing weight after the event.
    """

    type: EventType
    time: Time
    step: int
    weight: int
    message: str = ""


@with_config(_CONFIG)
@dataclass(frozen=True)
class Reason:
    """Why the rollout rolled back or paused.

    For a breach: the check's ``key`` and ``metric``, the compared ``value`` (the drift for
    ``compare: baseline``), the raw ``candidate`` / ``stable`` values when known, the thresholds as
    numbers in base units (seconds, fractions), the query ``window``, the 1-based ``step`` (0 in
    shadow) and the time ``at`` (unix seconds). For a failed gate (``gate-failed``): ``key`` is
    the gate run (``regression@step-2``) and ``workflow`` the Argo Workflow's ``namespace/name``.
    """

    kind: ReasonKind
    message: str
    at: Time
    step: int
    key: str | None = None
    metric: str | None = None
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    above: float | None = None
    below: float | None = None
    window: str | None = None
    workflow: str | None = None


RECENT_RESULTS = 10
"""Results of one check kept in its ``recent`` list (the current stage's, newest last)."""


@with_config(_CONFIG)
@dataclass(frozen=True)
class CheckSample:
    """One earlier evaluation of a check: its time, verdict and compared value, both variants'
    values, the candidate's sample count and, for a sequential check, the log e-value
    (:attr:`CheckState.evidence`): what the dashboard draws over time."""

    at: Time
    verdict: Verdict
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    samples: float | None = None
    evidence: float | None = None


@with_config(_CONFIG)
@dataclass(frozen=True)
class CheckState:
    """The latest evaluation of one check in the current stage/step, plus its streak.

    ``since``: when the current streak (breached for ``rollbackOn``, holding for ``promoteOn``)
    began, None without one; ``recent``: the last :data:`RECENT_RESULTS` results, oldest first;
    ``evidence`` / ``evidence_bound``: a sequential check's log e-value and its rollback level.
    """

    metric: str
    verdict: Verdict
    at: Time
    since: Time | None = None
    value: float | None = None
    candidate: float | None = None
    stable: float | None = None
    decided: Literal["pass", "breach"] | None = None
    message: str = ""
    above: float | None = None
    below: float | None = None
    load_candidate: float | None = None
    load_stable: float | None = None
    samples: float | None = None
    evidence: float | None = None
    evidence_bound: float | None = None
    recent: tuple[CheckSample, ...] = ()


@with_config(_CONFIG)
@dataclass(frozen=True)
class GateState:
    """One run of a gate at one gate point: the Argo Workflow the machine decided to submit.

    ``workflow`` is fixed when the gate became due (deterministic: a controller that crashed after
    submitting finds it again); ``timeout`` counts from ``submitted_at``. ``phase``, the times,
    ``message`` and ``outputs`` are Argo's; ``result``: ``running``, ``passed`` or ``failed``.
    """

    gate: str
    point: str
    workflow: str
    namespace: str
    submitted_at: Time
    timeout: float
    phase: str = ""
    started_at: Time | None = None
    finished_at: Time | None = None
    message: str = ""
    result: GateResult = "running"
    outputs: dict[str, str] = field(default_factory=dict, hash=False)


@with_config(_CONFIG)
@dataclass(frozen=True)
class RolloutState:
    """Everything the machine remembers between two calls. Immutable; compare with ``==``.

    Times are unix seconds (RFC 3339 in the ``status``). ``stage_started_at`` moves forward by a
    pause's length on resume (paused time does not count). ``step_index`` is 0-based, -1 before step
    1. ``weight`` / ``mirror`` are the last ``SetWeights``, re-applied by a restarted controller.
    ``checks``: the current stage's checks by key. ``gate_point`` / ``gates`` / ``gate_errors``: the
    transition waiting for gates, its runs, unanswered polls. ``awaiting_approval``: a manual step
    waits for ``promote``. ``noop``: candidate equals stable. ``waiting``: why a pending rollout has
    not started (worded by :func:`controlplane.rollout.wording.pending_why`). ``unready_since``:
    when a started rollout's candidate was first seen not ready (None: ready when last read).
    ``defaults``: the spec defaults the rollout began under (:mod:`controlplane.spec.defaults`;
    None: written before they were kept, the first).
    """

    spec_hash: str
    stage: Stage
    started_at: Time
    stage_started_at: Time
    step_index: int = -1
    weight: int = 0
    mirror: bool = False
    last_evaluation: Time | None = None
    checks: Mapping[str, CheckState] = field(default_factory=dict)
    consecutive_errors: int = 0
    paused: PauseKind | None = None
    paused_at: Time | None = None
    throttled: bool = False
    spend: float | None = None
    holding: bool = False
    deployed: bool = False
    reason: Reason | None = None
    last_intent_at: Time | None = None
    history: tuple[Event, ...] = ()
    gate_point: str | None = None
    gates: Mapping[str, GateState] = field(default_factory=dict)
    gate_errors: int = 0
    awaiting_approval: bool = False
    noop: bool = False
    waiting: str | None = None
    unready_since: Time | None = None
    defaults: int | None = None
    quality: QualityReading | None = None

    @property
    def step(self) -> int:
        """1-based step number; 0 before the steps begin (pending, shadow)."""
        return self.step_index + 1

    @property
    def terminal(self) -> bool:
        return self.stage in TERMINAL_STAGES

    @property
    def phase(self) -> Phase:
        if self.stage in ("promoted", "rolled_back"):
            return self.stage
        if self.paused is not None:
            return "paused"
        if self.throttled:
            return "throttled"
        if self.gate_point is not None:
            return "gated"
        if self.awaiting_approval:
            return "awaiting_approval"
        if self.stage == "steps":
            return "holding" if self.holding else "progressing"
        return self.stage

    @property
    def outcome(self) -> Outcome:
        """The contract's ``simulate`` outcome."""
        if self.stage in ("promoted", "rolled_back"):
            return self.stage
        return "paused" if self.paused is not None else "in_progress"

    def to_status(self) -> dict[str, Any]:
        """JSON-safe camelCase dict; ``phase``, ``step``, ``outcome`` and ``lastChecks`` are added
        for readers (see :func:`last_checks`)."""
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json", by_alias=True)
        data["phase"] = self.phase
        data["step"] = self.step
        data["outcome"] = self.outcome
        data["lastChecks"] = [
            {
                k: status_time(v) if k in ("at", "since") and v is not None else v
                for k, v in row.items()
            }
            for row in last_checks(self)
        ]
        return data

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RolloutState:
        """Inverse of :meth:`to_status` (derived keys are ignored).

        Raises :class:`SpecError` with the field paths when ``status`` is not a rollout state.
        """
        try:
            return _ADAPTER.validate_python(status)
        except ValidationError as exc:
            raise SpecError(
                [
                    Problem(
                        path=".".join(["status", *(str(p) for p in err["loc"])]),
                        message=err["msg"],
                    )
                    for err in exc.errors()
                ]
            ) from None


_ADAPTER: TypeAdapter[RolloutState] = TypeAdapter(RolloutState)


def last_checks(state: RolloutState) -> list[dict[str, Any]]:
    """The latest result of every check of the current stage, in key order, for readers (the
    CLI's table, dashboards): ``[{key, metric, result, value, candidate, stable, above, below,
    at, since, message}]``. ``result`` is ``pass`` / ``breach`` / ``inconclusive``; ``value`` is
    what was compared (the drift for ``compare: baseline``); ``candidate`` / ``stable`` the raw
    per-variant values; ``above`` / ``below`` the bounds in base units (seconds, fractions);
    ``at`` the evaluation's time (unix seconds); ``since`` the start of a breach streak;
    ``loadCandidate`` / ``loadStable``, for a check that compares the variants, the requests in
    flight per replica of each."""
    rows = []
    for key, check in sorted(state.checks.items()):
        row: dict[str, Any] = {
            "key": key,
            "metric": check.metric,
            "result": check.verdict,
            "value": check.value,
            "candidate": check.candidate,
            "stable": check.stable,
            "above": check.above,
            "below": check.below,
            "at": check.at,
            "since": check.since,
            "message": check.message,
        }
        if check.load_candidate is not None or check.load_stable is not None:
            row["loadCandidate"] = check.load_candidate
            row["loadStable"] = check.load_stable
        rows.append(row)
    return rows


def spec_hash(canary: ModelCanary) -> str:
    """A stable hash (16 hex digits) of what is being rolled out: ``spec`` minus what does not
    change the candidate or its gates (``alerts``, ``capacity``, ``analysis.prometheus``,
    ``gates[].argoServer``, ``traffic.gateway.implementation``, ``quality.keepPrompts``), so
    editing those restarts nothing;
    an adopted stable counts as its reference. Memoized per (immutable) model object."""
    cached = _HASHES.get(id(canary))
    if cached is not None and cached[0]() is canary:
        return cached[1]
    if len(_HASHES) >= _HASHES_MAX:
        _HASHES.clear()
    digest = _compute_spec_hash(canary)
    _HASHES[id(canary)] = (weakref.ref(canary), digest)
    return digest


_HASHES_MAX = 64
_HASHES: dict[int, tuple[weakref.ref[ModelCanary], str]] = {}


def _compute_spec_hash(canary: ModelCanary) -> str:
    data = canary.spec.model_dump(mode="json", by_alias=True, exclude={"alerts", "capacity"})
    data["analysis"].pop("prometheus", None)
    for role in ("stable", "candidate"):
        if data[role].get("autoscaling") is None:
            data[role].pop("autoscaling", None)  # the hashes of specs from before it stay
        if data[role].get("targetRef") is None:
            data[role].pop("targetRef", None)
        else:  # an adopted stable is what it names, resolved from the live service or not
            data[role] = {"name": data[role]["name"], "targetRef": data[role]["targetRef"]}
    gateway = data["traffic"].get("gateway")
    if gateway is not None:
        gateway.pop("implementation", None)
    if data["traffic"].get("session") is None:
        data["traffic"].pop("session", None)  # the hashes of specs from before it stay
    if data.get("quality") is None:
        data.pop("quality", None)  # the hashes of specs from before it stay
    else:  # what the pairer keeps on its pages judges nothing: toggling it restarts nothing
        data["quality"].pop("keepPrompts", None)
    for gate in data.get("gates") or []:
        gate.pop("argoServer", None)
    if not data.get("gates"):
        data.pop("gates", None)  # hashes of specs written before gates existed stay the same
    steps = data.get("steps") or []
    for item in steps:
        if item.get("approval") == "auto":
            item.pop("approval")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
