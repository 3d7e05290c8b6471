"""Replaying a canary against metric history: the engine behind ``canaryctl simulate``.

Owns the replay loop: the pure state machine called every ``analysis.interval`` with observations
evaluated at that historical time, until an outcome or ``end``; nothing is deployed. The same
machine and evaluator as the controller's, so a replay shows what it would have done. A canary
with ``spec.quality`` reads recorded pairs (:mod:`controlplane.analysis.recorded_pairs`) where the
controller reads its pairer. See docs/analysis.md, "Replay (``canaryctl simulate``)".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from controlplane.analysis.evaluator import evaluate
from controlplane.analysis.metric_provider import MetricProvider
from controlplane.analysis.quality_judge import judge_page
from controlplane.analysis.recorded_pairs import RecordedPairs
from controlplane.errors import UsageError
from controlplane.providers.replay import ReplayProvider, on_demand_queries, replay_queries
from controlplane.rollout.gate_runs import pending_runs
from controlplane.rollout.intents import Intent
from controlplane.rollout.machine import step
from controlplane.rollout.observations import (
    CheckResult,
    GateObservation,
    Observations,
    QualityReading,
)
from controlplane.rollout.schedule import due_checks, initial_state
from controlplane.rollout.state import Event, Reason, RolloutState
from controlplane.rollout.wording import quality_line
from controlplane.spec import check_keys
from controlplane.spec.models import ModelCanary

MAX_EVALUATIONS = 2_000_000
"""Refuse replays longer than this many intervals (e.g. 1s interval over a month)."""
NO_PAIRS = "no recorded pairs: replay the pairer's with simulate --pairs FILE"
"""Why a quality canary's replay read no pairs (its step before the last then waits)."""


@dataclass(frozen=True)
class TracePoint:
    """One evaluation: time, the user-facing weight after it, and each evaluated check's value."""

    time: float
    weight: int
    phase: str
    values: dict[str, tuple[float | None, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckTally:
    """How one check fared over a replay, for people: named by its ``metric`` and ``where`` it
    ran (``step 2``, ``shadow``; ``key`` is the status key), how many evaluations it had and
    their verdicts, and ``last_inconclusive``: why the latest inconclusive one was (``latency:
    no data: no series matched ...``, ``too few samples: 42 of minSamples 100 ...``)."""

    key: str
    metric: str
    where: str
    evaluations: int = 0
    passed: int = 0
    breached: int = 0
    inconclusive: int = 0
    last_inconclusive: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "where": self.where,
            "key": self.key,
            "evaluations": self.evaluations,
            "pass": self.passed,
            "breach": self.breached,
            "inconclusive": self.inconclusive,
            "lastInconclusive": self.last_inconclusive or None,
        }


class _Tallies:
    """The running counts behind :class:`CheckTally`."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Any]] = {}  # key -> [metric, n, pass, breach, inc, why]

    def add(self, results: Mapping[str, CheckResult]) -> None:
        for key, result in results.items():
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = [result.metric, 0, 0, 0, 0, ""]
            row[1] += 1
            if result.verdict == "pass":
                row[2] += 1
            elif result.verdict == "breach":
                row[3] += 1
            else:
                row[4] += 1
                row[5] = result.message

    def done(self) -> tuple[CheckTally, ...]:
        return tuple(
            CheckTally(key, m, check_keys.where(key), n, ok, bad, inc, why)
            for key, (m, n, ok, bad, inc, why) in self._rows.items()
        )


@dataclass(frozen=True)
class SimulationResult:
    """What a replay found. ``state`` is the machine's final state; ``checks`` how each check
    fared (:class:`CheckTally`), in the order they were first evaluated."""

    canary: ModelCanary
    start: float
    end: float
    state: RolloutState
    evaluations: int
    trace: list[TracePoint]
    checks: tuple[CheckTally, ...] = ()

    @property
    def outcome(self) -> str:
        return self.state.outcome

    @property
    def finished_at(self) -> float | None:
        if not self.state.terminal:
            return None
        return self.state.history[-1].time if self.state.history else None

    @property
    def events(self) -> tuple[Event, ...]:
        return self.state.history

    @property
    def reason(self) -> Reason | None:
        return self.state.reason if self.outcome in ("rolled_back", "paused") else None

    def why(self) -> str | None:
        """Why a replay ended in progress, in words (None for any other outcome): where it
        stood at ``--end`` and, when the checks there were inconclusive, why (the last reason of
        each), since checks that never see data hold a step forever."""
        if self.outcome != "in_progress":
            return None
        state = self.state
        if state.stage == "steps":
            where = f"still at step {state.step} (weight {state.weight}%)"
        elif state.stage == "shadow":
            where = "still in the shadow phase"
        else:
            where = "the candidate never started"
        place = "shadow" if state.stage == "shadow" else f"step {state.step}"
        here = [t for t in self.checks if t.where == place]
        stuck = [t for t in here if t.inconclusive]
        if stuck:
            worst = ", ".join(
                f"{t.metric} inconclusive at {t.inconclusive} of {t.evaluations} evaluations "
                f"({t.last_inconclusive.removeprefix(t.metric + ': ')})"
                for t in stuck
            )
            return f"{where} when the replay ended: {worst}"
        if state.awaiting_approval:
            return f"{where} when the replay ended: waiting for approval"
        held = next((e for e in reversed(state.history) if e.type == "Held"), None)
        if state.holding and held is not None:  # e.g. for the quality judge's pass
            return f"{where} when the replay ended: {held.message}"
        return f"{where} when the replay ended: its duration had not elapsed by --end"

    def to_json(self) -> dict[str, Any]:
        """The contract's ``simulate -o json`` object."""
        return {
            "outcome": self.outcome,
            "finishedAt": iso(self.finished_at) if self.finished_at is not None else None,
            "step": self.state.step,
            "weight": self.state.weight,
            "reason": _reason_json(self.reason),
            "why": self.why(),
            "checks": [t.to_json() for t in self.checks],
            "quality": self.quality_json(),
            "events": events_json(self.events),
        }

    def quality_words(self) -> str | None:
        """The quality judge's reading at the end, in ``kubectl canary get``'s words
        (:func:`~controlplane.rollout.wording.quality_line`; None without ``spec.quality``)."""
        spec = self.canary.spec.quality
        if spec is None:
            return None
        return quality_line(spec, self.state.quality or QualityReading())

    def quality_json(self) -> dict[str, Any] | None:
        """``quality`` of the JSON: pairs read, their mean score, the decision, the words."""
        words = self.quality_words()
        if words is None:
            return None
        reading = self.state.quality or QualityReading()
        return {
            "pairs": reading.pairs,
            "mean": reading.mean,
            "decided": reading.decided or None,
            "error": reading.error or None,
            "message": words,
        }


def iso(t: float) -> str:
    """A unix time as the JSON of ``simulate`` and ``up`` writes it (whole seconds, UTC)."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def events_json(events: Iterable[Event]) -> list[dict[str, Any]]:
    """The ``events`` of the ``simulate`` and ``up`` JSON."""
    return [
        {
            "time": iso(e.time),
            "type": e.type,
            "step": e.step,
            "weight": e.weight,
            "message": e.message,
        }
        for e in events
    ]


def _reason_json(reason: Reason | None) -> dict[str, Any] | None:
    if reason is None:
        return None
    return {
        "kind": reason.kind,
        "metric": reason.metric,
        "value": reason.value,
        "candidate": reason.candidate,
        "stable": reason.stable,
        "above": reason.above,
        "below": reason.below,
        "window": reason.window,
        "step": reason.step,
        "at": iso(reason.at),
        "message": reason.message,
    }


def prefetched(
    canary: ModelCanary, source: MetricProvider, start: float, end: float
) -> ReplayProvider:
    """A provider holding every series the replay of ``canary`` over [start, end] will ask for
    (the loads a breached comparison reads: when one is first asked)."""
    interval = canary.spec.analysis.interval.seconds
    later = on_demand_queries(canary)
    plan = [q for q in replay_queries(canary) if q not in later]
    return ReplayProvider.prefetch(source, plan, start, end, interval, on_demand=later)


SIMULATED_GATE = "assumed passed: simulate runs no workflows"


def simulate(
    canary: ModelCanary,
    provider: MetricProvider,
    start: float,
    end: float,
    *,
    pairs: RecordedPairs | None = None,
    on_evaluation: Callable[[TracePoint], None] | None = None,
) -> SimulationResult:
    """Replay ``canary`` from ``start`` to ``end`` (unix seconds) against ``provider``, and for
    ``spec.quality`` against the recorded ``pairs`` (None: none recorded, so its judge reads
    nothing and says why).

    Raises :class:`UsageError` for an empty or absurdly long span. Provider failures never raise:
    they become inconclusive checks, as in the controller.
    """
    interval = canary.spec.analysis.interval.seconds
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise UsageError(f"--end must not be before --start (start={start}, end={end})")
    count = int((end - start) // interval) + 1
    if count > MAX_EVALUATIONS:
        raise UsageError(
            f"{count} evaluations (every {canary.spec.analysis.interval} from start to end) is "
            f"more than {MAX_EVALUATIONS}: shorten the span"
        )
    state = initial_state(canary, start)
    trace: list[TracePoint] = []
    tallies = _Tallies()
    evaluations = 0
    for k in range(count):
        now = start + k * interval
        due = due_checks(canary, state, now)
        obs = (
            evaluate(canary, due, provider, now, since=state.stage_started_at)
            if due
            else _spend_only(canary, provider, now)
        )
        if canary.spec.quality is not None and state.stage in ("shadow", "steps") and due:
            # as the controller reads the pairer: in the shadow phase or a step, at an evaluation
            obs = replace(obs, quality=replayed_quality(canary, state.quality, pairs, now))
        state, _actions = step(canary, state, obs, now)
        state = _assume_gates_pass(canary, state, now)
        tallies.add(obs.checks)
        evaluations += 1
        point = TracePoint(
            time=now,
            weight=state.weight,
            phase=state.phase,
            values={key: (r.value, r.verdict) for key, r in obs.checks.items()},
        )
        trace.append(point)
        if on_evaluation is not None:
            on_evaluation(point)
        if state.terminal:
            break
    return SimulationResult(canary, start, end, state, evaluations, trace, tallies.done())


def replayed_quality(
    canary: ModelCanary, reading: QualityReading | None, pairs: RecordedPairs | None, now: float
) -> QualityReading:
    """The quality judge's next reading at ``now``: ``pairs`` answer as the pairer would have
    (the pairs scored by then after the reading's number); no ``pairs`` is a failed read."""
    spec = canary.spec.quality
    if spec is None:
        raise ValueError(f"canary {canary.metadata.name!r} has no quality section")
    if pairs is None:
        return judge_page(spec, reading, None, NO_PAIRS)
    return judge_page(spec, reading, pairs.page(reading.seq if reading else 0, now), "")


def _assume_gates_pass(canary: ModelCanary, state: RolloutState, now: float) -> RolloutState:
    """Replay runs no workflows and has nobody to approve: gates the machine wants run are
    taken as passed and manual steps as approved at once, each said so in the history."""
    for _ in range(8):  # a pass may reach the next gate point (bounded: gates are finite)
        runs = pending_runs(canary, state)
        if runs:
            passed = {
                r.key: GateObservation(r.key, r.workflow, "Succeeded", SIMULATED_GATE) for r in runs
            }
            state, _ = step(canary, state, Observations(gates=passed), now)
        elif state.awaiting_approval and not state.terminal:
            state, _ = step(canary, state, None, now, [Intent("promote", now, "simulate")])
        else:
            break
    return state


def _spend_only(canary: ModelCanary, provider: MetricProvider, now: float) -> Observations:
    """Observations when no check is due: the budget still needs the spend."""
    if canary.spec.budget is None:
        return Observations()
    return evaluate(canary, [], provider, now)
