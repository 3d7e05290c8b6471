"""The rollout state machine: ``step(spec, state, observations, now, intents) -> (state, actions)``.

Owns every rollout decision of the contract's *Checks*, *Steps, promotion, rollback* and *Shadow
and budget* sections: when checks are due, how ``for`` streaks and provider errors count, when a
step advances, holds, promotes or rolls back, shadow success and failure, budget throttling, user
intents and restarts on a spec change; and of ``spec.gates`` (a transition waits for its Argo
Workflows, a failed one rolls back), manual approval (``approval: manual``) and no-op rollouts
(candidate equal to stable). ``docs/rollout.md`` and ``docs/gates.md`` state each rule.

Called by the controller (every ``analysis.interval``, see :func:`next_evaluation`), by
``canaryctl simulate`` (replaying history) and by the local stack. Pure: time is an argument,
observations come in as data, decisions go out as :mod:`~controlplane.rollout.actions`; no I/O,
no clock. One call is one *tick*, built up in a small private accumulator, one function per rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.rollout.actions import (
    Action,
    Deploy,
    Notify,
    Pause,
    Promote,
    Rollback,
    RunGate,
    SetWeights,
)
from controlplane.rollout.gates import (
    PROMOTION,
    describe_point,
    gates_at,
    point_step,
    run_key,
    step_point,
    workflow_name,
)
from controlplane.rollout.intents import Intent, IntentVerb
from controlplane.rollout.observations import (
    TIME_SLACK_S,
    CheckResult,
    DueCheck,
    Observations,
)
from controlplane.rollout.state import (
    HISTORY_LIMIT,
    CheckState,
    Event,
    EventType,
    GateState,
    PauseKind,
    Reason,
    RolloutState,
    finite_or_none,
    spec_hash,
)
from controlplane.spec.check_keys import PROMOTE_KEY, shadow_check, step_check
from controlplane.spec.models import CheckSpec, ModelCanary
from controlplane.spec.units import Duration, Unit, display_value

__all__ = [
    "NOOP_MESSAGE",
    "PROMOTE_KEY",
    "desired_weights",
    "due_checks",
    "evaluation_due",
    "initial_state",
    "next_evaluation",
    "stage_checks",
    "step",
]

NOOP_MESSAGE = "candidate is identical to stable; nothing to roll out"
_EPS = TIME_SLACK_S


# --------------------------------------------------------------------------- public helpers


def initial_state(spec: ModelCanary, now: float) -> RolloutState:
    """A fresh rollout of ``spec`` created at ``now``: pending, candidate not yet deployed."""
    return RolloutState(
        spec_hash=spec_hash(spec), stage="pending", started_at=now, stage_started_at=now
    )


def stage_checks(spec: ModelCanary, state: RolloutState) -> list[DueCheck]:
    """Every check of the current stage (shadow: promoteOn then rollbackOn; a step: rollbackOn)."""
    if state.stage == "shadow" and spec.spec.shadow is not None:
        shadow = spec.spec.shadow
        return [
            DueCheck(PROMOTE_KEY, shadow.promote_on),
            *(DueCheck(shadow_check(j), c) for j, c in enumerate(shadow.rollback_on)),
        ]
    if state.stage == "steps":
        i = state.step_index
        step = spec.spec.steps[i]
        ends = None if step.duration is None else state.stage_started_at + step.duration.seconds
        return [DueCheck(step_check(i, j), c, ends) for j, c in enumerate(step.rollback_on)]
    return []


def evaluation_due(spec: ModelCanary, state: RolloutState, now: float) -> bool:
    """True when an evaluation (checks, spend, readiness) is due at ``now``."""
    if state.terminal:
        return False
    if state.last_evaluation is None:
        return True
    return now >= state.last_evaluation + spec.spec.analysis.interval.seconds - _EPS


def due_checks(spec: ModelCanary, state: RolloutState, now: float) -> list[DueCheck]:
    """The checks to evaluate at ``now``; empty when no evaluation is due (or none exist)."""
    return stage_checks(spec, state) if evaluation_due(spec, state, now) else []


def next_evaluation(spec: ModelCanary, state: RolloutState) -> float | None:
    """When to call :func:`step` next: the last evaluation plus ``analysis.interval`` (the start
    time before any evaluation), or the end of an unpaused shadow phase when that comes first.
    None once the rollout is promoted or rolled back."""
    if state.terminal:
        return None
    if state.last_evaluation is None:
        return state.started_at
    at = state.last_evaluation + spec.spec.analysis.interval.seconds
    if (
        state.stage == "shadow"
        and state.paused is None
        and state.gate_point is None
        and spec.spec.shadow is not None
    ):
        at = min(at, state.stage_started_at + spec.spec.shadow.duration.seconds)
    if state.gate_point is not None and state.paused != "gate-errors":
        for run in state.gates.values():
            if run.result == "running" and run.point == state.gate_point:
                at = min(at, run.submitted_at + run.timeout)
    return at


def desired_weights(spec: ModelCanary, state: RolloutState) -> tuple[int, bool]:
    """The (candidate weight, mirror) the state calls for; throttling never raises a weight."""
    budget = spec.spec.budget
    if state.stage == "shadow":
        return 0, not state.throttled
    if state.stage == "steps":
        weight = spec.spec.steps[state.step_index].weight
        if state.throttled and budget is not None:
            weight = min(weight, budget.throttle_weight)
        return weight, False
    if state.stage == "promoted":
        return (0, False) if state.noop else (100, False)
    return 0, False


# --------------------------------------------------------------------------- the tick


@dataclass
class _Tick:
    """One call of :func:`step` in progress: the state so far and the actions emitted so far."""

    spec: ModelCanary
    now: float
    state: RolloutState
    actions: list[Action] = field(default_factory=list)
    obs: Observations | None = None  # set when this call evaluated observations
    errors: list[str] = field(default_factory=list)
    gates_answered: bool = False  # the Argo Server answered about a running gate in this call

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def emit(self, kind: EventType, message: str) -> None:
        event = Event(kind, self.now, self.state.step, self.state.weight, message)
        self.update(history=(*self.state.history, event)[-HISTORY_LIMIT:])
        self.actions.append(Notify(event))

    def sync_weights(self) -> None:
        weight, mirror = desired_weights(self.spec, self.state)
        if (weight, mirror) != (self.state.weight, self.state.mirror):
            self.update(weight=weight, mirror=mirror)
            self.actions.append(SetWeights(weight, mirror))


def step(
    spec: ModelCanary,
    state: RolloutState,
    obs: Observations | None,
    now: float,
    intents: Sequence[Intent] = (),
) -> tuple[RolloutState, list[Action]]:
    """Advance the rollout to ``now``.

    ``obs`` answers :func:`due_checks` as computed on ``state`` at ``now`` (None: nothing was
    measured). Observations given when no evaluation is due are ignored, so repeating a call is
    harmless; gate observations (``obs.gates``) are taken whenever given. Order within a call:
    spec change, evaluation bookkeeping, gate observations, no-op, intents, rollback, failed
    gates, provider and gate errors, budget, progress (docs/rollout.md).
    """
    tick = _Tick(spec, now, state)
    if state.spec_hash != spec_hash(spec):
        _restart(tick, "spec changed: restarting with the new candidate")
    else:
        if (
            obs is not None
            and state.stage in ("shadow", "steps")
            and evaluation_due(spec, state, now)
        ):
            _record(tick, obs)
        if obs is not None and obs.gates:
            _record_gates(tick, obs)
    if not tick.state.terminal and spec.spec.candidate_is_stable():
        _noop(tick)
    _apply_intents(tick, intents)
    if tick.state.terminal:
        return tick.state, tick.actions
    if tick.state.stage == "pending" and tick.state.gate_point is None:
        _pending(tick, obs)
    else:
        if tick.state.stage == "pending" and obs is not None and evaluation_due(spec, state, now):
            tick.update(last_evaluation=now)  # gated before step 1: readiness is not re-read
        _decide(tick)
    return tick.state, tick.actions


# --------------------------------------------------------------------------- evaluation


def _record(tick: _Tick, obs: Observations) -> None:
    """Store this evaluation's results and streaks, count provider errors, note the spend."""
    state = tick.state
    checks = dict(state.checks)
    errors = ["spend: cost query failed"] if obs.spend_error else []
    for due in stage_checks(tick.spec, state):
        result = obs.checks.get(due.key) or CheckResult(
            key=due.key,
            metric=due.check.metric,
            verdict="inconclusive",
            message=f"{due.check.metric}: no result for {due.key}",
        )
        if result.provider_error:
            errors.append(result.message or f"{due.check.metric}: provider error")
        latest = _next_check_state(due, state.checks.get(due.key), result, tick.now)
        checks[due.key] = latest
        if due.key != PROMOTE_KEY and latest.since == tick.now:
            tick.emit("Breached", _breach_message(tick.spec, due, latest))
    tick.update(
        checks=checks,
        last_evaluation=tick.now,
        consecutive_errors=state.consecutive_errors + 1 if errors else 0,
        spend=state.spend if obs.spend_error else finite_or_none(obs.spend),
    )
    tick.obs, tick.errors = obs, errors


def _next_check_state(
    due: DueCheck, prev: CheckState | None, result: CheckResult, now: float
) -> CheckState:
    """The check's new record. The streak goes on while the condition holds at every evaluation
    (rollbackOn: breached; promoteOn: its threshold condition met); a pass or an inconclusive
    result ends it."""
    if due.key == PROMOTE_KEY:
        condition = result.verdict == "breach"
    else:
        condition = result.verdict == "breach" or result.decided == "breach"
    since = None
    if condition:
        since = prev.since if prev is not None and prev.since is not None else now
    return CheckState(
        metric=result.metric or due.check.metric,
        verdict=result.verdict,
        at=now,
        since=since,
        value=finite_or_none(result.value),
        candidate=finite_or_none(result.candidate),
        stable=finite_or_none(result.stable),
        decided=result.decided,
        message=result.message,
        above=_number(due.check.above),
        below=_number(due.check.below),
    )


def _record_gates(tick: _Tick, obs: Observations) -> None:
    """Store what the Argo Server said about the running gates of the current gate point and
    count the polls it did not answer (a later answer resets the count)."""
    state = tick.state
    if state.terminal or state.gate_point is None:
        return
    runs = dict(state.gates)
    errors: list[str] = []
    for key, seen in obs.gates.items():
        run = runs.get(key)
        if run is None or run.workflow != seen.workflow or run.result != "running":
            continue
        if seen.phase is None:
            errors.append(seen.error or f"workflow {run.workflow}: Argo Server did not answer")
            continue
        tick.gates_answered = True
        started = run.started_at if run.started_at is not None else seen.started_at
        updated = replace(run, phase=seen.phase, started_at=started, message=seen.message)
        if seen.phase == "Succeeded":
            finished = seen.finished_at if seen.finished_at is not None else tick.now
            updated = replace(updated, result="passed", finished_at=finished)
        elif seen.phase in ("Failed", "Error"):
            finished = seen.finished_at if seen.finished_at is not None else tick.now
            updated = replace(updated, result="failed", finished_at=finished)
        runs[key] = updated
        if updated.result == "passed":
            tick.update(gates=runs)
            tick.emit(
                "GatePassed",
                f"gate {run.gate} passed: workflow {run.namespace}/{run.workflow} succeeded"
                + (f" ({seen.message})" if seen.message else ""),
            )
    count = state.gate_errors + 1 if errors and not tick.gates_answered else 0
    tick.update(gates=runs, gate_errors=count)
    tick.errors.extend(errors)


# --------------------------------------------------------------------------- decisions


def _decide(tick: _Tick) -> None:
    _check_rollback(tick)
    if tick.state.terminal:
        return
    _check_gates(tick)
    if tick.state.terminal:
        return
    _check_gate_errors(tick)
    if tick.obs is not None:
        _check_errors(tick)
        _check_budget(tick, tick.obs)
    _progress(tick)


def _check_gates(tick: _Tick) -> None:
    """Roll back on the first gate run (spec order) that failed or outlived its timeout. The
    timeout is not judged while the Argo Server is unreachable (paused on gate errors): the
    Workflow's fate is unknown then, and its first answer afterwards decides."""
    state = tick.state
    if state.gate_point is None:
        return
    for key, run in state.gates.items():
        if run.point != state.gate_point:
            continue
        where = f"workflow {run.namespace}/{run.workflow}"
        if run.result == "failed":
            detail = f": {run.message}" if run.message else ""
            message = f"gate {run.gate} failed before {describe_point(run.point)}: {where} "
            message += f"{run.phase}{detail}"
        elif (
            run.result == "running"
            and state.paused != "gate-errors"
            and tick.now >= run.submitted_at + run.timeout - _EPS
        ):
            phase = run.phase or "not started"
            message = (
                f"gate {run.gate} failed before {describe_point(run.point)}: {where} did not "
                f"succeed within its timeout {Duration.of(run.timeout)} (last phase: {phase})"
            )
            tick.update(
                gates={**state.gates, key: replace(run, result="failed", finished_at=tick.now)}
            )
        else:
            continue
        tick.emit("GateFailed", message)
        reason = Reason(
            "gate-failed",
            message,
            tick.now,
            tick.state.step,
            key=key,
            workflow=f"{run.namespace}/{run.workflow}",
        )
        _rollback(tick, reason)
        return


def _check_gate_errors(tick: _Tick) -> None:
    """Pause after ``errorLimit`` consecutive polls the Argo Server did not answer; resume by
    itself at its first answer. Never a failure: the Workflow may well be running."""
    state = tick.state
    limit = tick.spec.spec.analysis.error_limit
    if state.gate_errors >= limit and state.paused is None:
        detail = "; ".join(dict.fromkeys(tick.errors)) or "no answer"
        message = f"{state.gate_errors} consecutive gate polls without an answer: {detail}"
        _pause(tick, "gate-errors", Reason("gate-errors", message, tick.now, state.step))
    elif tick.gates_answered and state.gate_errors == 0 and state.paused == "gate-errors":
        _resume(tick, "Argo Server answers again: resuming")


def _check_rollback(tick: _Tick) -> None:
    """Roll back on the first rollbackOn check (in spec order) breached for its ``for``."""
    for due in stage_checks(tick.spec, tick.state):
        latest = tick.state.checks.get(due.key)
        if due.key == PROMOTE_KEY or latest is None or latest.since is None:
            continue
        if latest.decided == "breach" or latest.at - latest.since >= due.check.for_.seconds - _EPS:
            _rollback(tick, _breach_reason(tick, due, latest))
            return


def _check_errors(tick: _Tick) -> None:
    """Pause after ``errorLimit`` consecutive evaluations with provider errors; resume by
    itself at the first evaluation without one. A user pause is left alone."""
    state = tick.state
    if state.consecutive_errors >= tick.spec.spec.analysis.error_limit and state.paused is None:
        detail = "; ".join(dict.fromkeys(tick.errors))
        count = state.consecutive_errors
        message = f"{count} consecutive evaluations with provider errors: {detail}"
        _pause(tick, "errors", Reason("provider-errors", message, tick.now, state.step))
    elif state.consecutive_errors == 0 and state.paused == "errors":
        _resume(tick, "metrics are back: resuming")


def _check_budget(tick: _Tick, obs: Observations) -> None:
    """Throttle while the candidate's spend is over ``dailyLimit``; restore when back under."""
    budget = tick.spec.spec.budget
    if budget is None or obs.spend_error or tick.state.spend is None:
        return
    spend, over = tick.state.spend, tick.state.spend > budget.daily_limit
    if over and not tick.state.throttled:
        tick.update(throttled=True)
        tick.sync_weights()
        tick.emit("Throttled", f"spend ${spend:.2f}/day is over the ${budget.daily_limit:g} limit")
    elif not over and tick.state.throttled:
        tick.update(throttled=False)
        tick.sync_weights()
        tick.emit("Unthrottled", f"spend ${spend:.2f}/day is within the ${budget.daily_limit:g}")


def _progress(tick: _Tick) -> None:
    """Time- and result-driven progress; nothing moves forward while paused."""
    if tick.state.paused is not None:
        return
    if tick.state.gate_point is not None:
        _progress_gates(tick)
        if tick.state.gate_point is not None or tick.state.terminal:
            return
    if tick.state.stage == "shadow":
        _progress_shadow(tick)
    if tick.state.stage == "steps":
        _progress_steps(tick)


def _progress_shadow(tick: _Tick) -> None:
    """Pass when promoteOn held for its ``for`` by the deadline; fail when the deadline comes."""
    shadow, state = tick.spec.spec.shadow, tick.state
    if shadow is None:  # unreachable: a spec change restarts the rollout
        _start_steps(tick)
        return
    deadline = state.stage_started_at + shadow.duration.seconds
    held = state.checks.get(PROMOTE_KEY)
    if (
        held is not None
        and held.since is not None
        and held.at - held.since >= shadow.promote_on.for_.seconds - _EPS
        and held.at <= deadline + _EPS
    ):
        tick.emit("ShadowPassed", f"{held.metric} held for {shadow.promote_on.for_}")
        _start_steps(tick)
    elif tick.now >= deadline - _EPS:
        message = (
            f"shadow ended after {shadow.duration} without {shadow.promote_on.metric} "
            f"holding for {shadow.promote_on.for_}"
        )
        _rollback(
            tick,
            Reason(
                "shadow-expired",
                message,
                tick.now,
                0,
                key=PROMOTE_KEY,
                metric=shadow.promote_on.metric,
                value=held.value if held is not None else None,
                above=_number(shadow.promote_on.above),
                below=_number(shadow.promote_on.below),
                window=_window(tick.spec, shadow.promote_on),
            ),
        )


def _progress_gates(tick: _Tick) -> None:
    """Make the held transition once every gate run of its point passed."""
    state = tick.state
    point = state.gate_point
    runs = [run for run in state.gates.values() if run.point == point]
    if point is None or not all(run.result == "passed" for run in runs):
        return
    tick.update(gate_point=None)
    _transition(tick, point, f" (gates passed: {', '.join(run.gate for run in runs)})")


def _progress_steps(tick: _Tick) -> None:
    """Advance while the current step is finished; mark it holding when it is due but cannot;
    a done ``approval: manual`` step waits for a ``promote`` intent."""
    while tick.state.stage == "steps" and tick.state.gate_point is None:
        state = tick.state
        current = tick.spec.spec.steps[state.step_index]
        keys = [due.key for due in stage_checks(tick.spec, state)]
        latest = [state.checks.get(key) for key in keys]
        all_passed = all(c is not None and c.verdict == "pass" for c in latest)
        all_decided = bool(latest) and all(c is not None and c.decided == "pass" for c in latest)
        duration = current.duration.seconds if current.duration is not None else 0.0
        elapsed = tick.now - state.stage_started_at >= duration - _EPS
        if (elapsed and all_passed) or all_decided:
            if current.approval == "manual":
                if not state.awaiting_approval:
                    tick.update(awaiting_approval=True, holding=False)
                    name = tick.spec.metadata.name
                    tick.emit(
                        "AwaitingApproval",
                        f"step {state.step} is done and waits for approval: "
                        f"kubectl canary promote {name}",
                    )
                return
            _finish_step(tick, "" if elapsed else " (sequential judge decided early)")
            continue
        if elapsed and not state.holding and any(c is not None for c in latest):
            waiting = [
                f"{key}: {c.verdict if c is not None else 'not evaluated'}"
                for key, c in zip(keys, latest, strict=True)
                if c is None or c.verdict != "pass"
            ]
            tick.update(holding=True)
            tick.emit("Held", f"step {state.step} is due but waits for {', '.join(waiting)}")
        return


# --------------------------------------------------------------------------- transitions


def _pending(tick: _Tick, obs: Observations | None) -> None:
    """Deploy the candidate once; start (shadow or step 1) when an observation says it is ready.
    Readiness is polled at the evaluation cadence, like the checks."""
    if not tick.state.deployed:
        tick.update(deployed=True)
        tick.actions.append(Deploy(tick.spec.spec.candidate.name))
    if obs is None or not evaluation_due(tick.spec, tick.state, tick.now):
        return
    tick.update(last_evaluation=tick.now)
    if tick.state.paused is not None or not obs.candidate_ready:
        return
    if tick.spec.spec.shadow is not None:
        tick.update(stage="shadow", stage_started_at=tick.now, checks={})
        tick.sync_weights()
        tick.emit("ShadowStarted", f"mirroring all traffic to {tick.spec.spec.candidate.name}")
    else:
        _start_steps(tick)
    _progress(tick)


def _start_steps(tick: _Tick) -> None:
    """Begin step 1, after the gates that guard it."""
    if _gated(tick, step_point(0)):
        return
    _begin_steps(tick)


def _begin_steps(tick: _Tick, why: str = "") -> None:
    tick.update(
        stage="steps",
        step_index=0,
        stage_started_at=tick.now,
        checks={},
        holding=False,
        awaiting_approval=False,
    )
    tick.sync_weights()
    tick.emit("StepStarted", f"step 1 started at weight {tick.spec.spec.steps[0].weight}%{why}")


def _finish_step(tick: _Tick, why: str) -> None:
    """The current step is done: go to the next one, or promote after the last; either after
    the gates that guard it."""
    index = tick.state.step_index
    last = index == len(tick.spec.spec.steps) - 1
    tick.update(awaiting_approval=False, holding=False)
    point = PROMOTION if last else step_point(index + 1)
    if _gated(tick, point, why):
        return
    _transition(tick, point, why)


def _transition(tick: _Tick, point: str, why: str) -> None:
    """Make the transition a gate point stands for: begin step 1, advance, or promote."""
    if point == PROMOTION:
        _promote(tick, f"last step finished{why}")
        return
    index = point_step(tick.spec, point) - 1
    if index == 0:
        _begin_steps(tick, why)
        return
    tick.update(
        step_index=index,
        stage_started_at=tick.now,
        checks={},
        holding=False,
        awaiting_approval=False,
    )
    tick.sync_weights()
    weight = tick.spec.spec.steps[index].weight
    tick.emit("Advanced", f"step {index} -> {index + 1} at weight {weight}%{why}")


def _gated(tick: _Tick, point: str, why: str = "") -> bool:
    """Start the gate runs of ``point`` (if it has gates): the transition waits for them.
    True when it must wait. The Workflow names are decided here, persisted with the state."""
    gates = gates_at(tick.spec, point)
    if not gates:
        return False
    namespace = tick.spec.metadata.namespace
    runs = {
        run_key(gate.name, point): GateState(
            gate=gate.name,
            point=point,
            workflow=workflow_name(tick.spec, tick.state, gate.name, point),
            namespace=gate.namespace or namespace,
            submitted_at=tick.now,
            timeout=gate.timeout.seconds,
        )
        for gate in gates
    }
    tick.update(gate_point=point, gates=runs, gate_errors=0, holding=False)
    for key, run in runs.items():
        tick.actions.append(RunGate(key, run.gate, run.workflow, run.namespace))
    shown = ", ".join(
        f"{run.gate} (workflow {run.namespace}/{run.workflow})" for run in runs.values()
    )
    tick.emit("GateStarted", f"before {describe_point(point)}{why}: waiting for {shown}")
    return True


def _noop(tick: _Tick) -> None:
    """The candidate equals the stable variant: finished at once as promoted, nothing deployed,
    no weight changed (a pending restart's weights are already back to 0)."""
    tick.update(
        stage="promoted",
        noop=True,
        deployed=False,
        paused=None,
        paused_at=None,
        throttled=False,
        holding=False,
        reason=None,
        gate_point=None,
        gates={},
        awaiting_approval=False,
    )
    tick.sync_weights()
    tick.emit("Promoted", NOOP_MESSAGE)


def _promote(tick: _Tick, message: str) -> None:
    tick.update(
        stage="promoted",
        step_index=len(tick.spec.spec.steps) - 1,
        paused=None,
        paused_at=None,
        throttled=False,
        holding=False,
        reason=None,
        gate_point=None,
        awaiting_approval=False,
    )
    tick.sync_weights()
    tick.actions.append(Promote())
    tick.emit("Promoted", f"{tick.spec.spec.candidate.name} promoted: {message}")


def _rollback(tick: _Tick, reason: Reason) -> None:
    tick.update(
        stage="rolled_back",
        paused=None,
        paused_at=None,
        throttled=False,
        holding=False,
        reason=reason,
        gate_point=None,
        awaiting_approval=False,
    )
    tick.sync_weights()
    tick.actions.append(Rollback(reason))
    tick.emit("RolledBack", reason.message)


def _pause(tick: _Tick, kind: PauseKind, reason: Reason) -> None:
    paused_at = tick.state.paused_at if tick.state.paused is not None else tick.now
    tick.update(paused=kind, paused_at=paused_at, reason=reason)
    tick.actions.append(Pause(reason))
    tick.emit("Paused", reason.message)


def _resume(tick: _Tick, message: str) -> None:
    """Leave a pause; paused time does not count towards the current step or shadow."""
    paused_for = tick.now - (tick.state.paused_at if tick.state.paused_at is not None else tick.now)
    tick.update(
        paused=None,
        paused_at=None,
        reason=None,
        stage_started_at=tick.state.stage_started_at + max(paused_for, 0.0),
    )
    tick.emit("Resumed", message)


def _restart(tick: _Tick, message: str) -> None:
    """A new rollout of the current spec (spec change or retry); history and intents carry on.
    Readiness of the (re)deployed candidate is first read one interval later."""
    old = tick.state
    noop = tick.spec.spec.candidate_is_stable()
    tick.state = replace(
        initial_state(tick.spec, tick.now),
        weight=old.weight,
        mirror=old.mirror,
        deployed=not noop,
        last_evaluation=tick.now,
        history=old.history,
        last_intent_at=old.last_intent_at,
    )
    tick.sync_weights()
    if not noop:
        tick.actions.append(Deploy(tick.spec.spec.candidate.name))
    tick.emit("Restarted", message)


# --------------------------------------------------------------------------- intents


def _apply_intents(tick: _Tick, intents: Sequence[Intent]) -> None:
    """Apply the intents newer than the last applied one, oldest first, each exactly once."""
    last = tick.state.last_intent_at
    for intent in sorted((i for i in intents if last is None or i.at > last), key=lambda i: i.at):
        _INTENT_HANDLERS[intent.verb](tick, intent)
        newest = tick.state.last_intent_at
        tick.update(last_intent_at=intent.at if newest is None else max(newest, intent.at))


def _by(intent: Intent) -> str:
    return f"by {intent.user}" if intent.user else "by user"


def _intent_pause(tick: _Tick, intent: Intent) -> None:
    if not tick.state.terminal and tick.state.paused != "user":
        reason = Reason("user-pause", f"paused {_by(intent)}", tick.now, tick.state.step)
        _pause(tick, "user", reason)


def _intent_resume(tick: _Tick, intent: Intent) -> None:
    if not tick.state.terminal and tick.state.paused is not None:
        _resume(tick, f"resumed {_by(intent)}")


def _intent_promote(tick: _Tick, intent: Intent) -> None:
    """Finish the current step (or the shadow phase) now, unless one of its checks is breached;
    this is also the approval of an ``approval: manual`` step. Workflow gates are not skipped
    (``promote-full`` is the way past them)."""
    if tick.state.gate_point is not None and not tick.state.terminal:
        waiting = [
            run.gate
            for run in tick.state.gates.values()
            if run.point == tick.state.gate_point and run.result == "running"
        ]
        tick.emit(
            "Held",
            f"promote refused: waiting for gate{'s' if len(waiting) != 1 else ''} "
            f"{', '.join(waiting)}; promote --full skips gates",
        )
        return
    if tick.state.stage not in ("shadow", "steps"):
        return
    breached = [
        due.key
        for due in stage_checks(tick.spec, tick.state)
        if due.key != PROMOTE_KEY
        and (latest := tick.state.checks.get(due.key)) is not None
        and latest.since is not None
    ]
    if breached:
        tick.emit("Held", f"promote refused: {', '.join(breached)} breached")
    elif tick.state.stage == "shadow":
        tick.emit("ShadowPassed", f"promoted {_by(intent)}")
        _start_steps(tick)
    else:
        approved = "approved" if tick.state.awaiting_approval else "promoted"
        _finish_step(tick, f" ({approved} {_by(intent)})")


def _intent_promote_full(tick: _Tick, intent: Intent) -> None:
    """Promote now from shadow or steps, skipping what is left: steps, approvals and gates
    (also gates held before step 1 while still pending)."""
    if tick.state.stage in ("shadow", "steps") or (
        tick.state.stage == "pending" and tick.state.gate_point is not None
    ):
        _promote(tick, f"promoted to 100% {_by(intent)}")


def _intent_abort(tick: _Tick, intent: Intent) -> None:
    if not tick.state.terminal:
        _rollback(tick, Reason("aborted", f"aborted {_by(intent)}", tick.now, tick.state.step))


def _intent_retry(tick: _Tick, intent: Intent) -> None:
    if tick.state.stage == "rolled_back":
        _restart(tick, f"retry requested {_by(intent)}")


_INTENT_HANDLERS: dict[IntentVerb, Callable[[_Tick, Intent], None]] = {
    "pause": _intent_pause,
    "resume": _intent_resume,
    "promote": _intent_promote,
    "promote-full": _intent_promote_full,
    "abort": _intent_abort,
    "retry": _intent_retry,
}


# --------------------------------------------------------------------------- reasons and messages


def _number(quantity: Any) -> float | None:
    return None if quantity is None else float(quantity.value)


def _window(spec: ModelCanary, check: CheckSpec) -> str:
    return str(check.window if check.window is not None else spec.spec.analysis.window)


def _show(check: CheckSpec, value: float | None) -> str:
    if value is None:
        return "n/a"
    threshold = check.above if check.above is not None else check.below
    unit = Unit.RATIO if check.compare == "baseline" or threshold is None else threshold.unit
    return display_value(value, unit)


def _bounds(check: CheckSpec, value: float | None = None) -> str:
    """The bound ``value`` crossed (``> 200ms``), or every bound when that is unknown."""
    if value is not None:
        if check.above is not None and value > check.above.value:
            return f"> {check.above}"
        if check.below is not None and value < check.below.value:
            return f"< {check.below}"
    parts = []
    if check.above is not None:
        parts.append(f"above {check.above}")
    if check.below is not None:
        parts.append(f"below {check.below}")
    return " or ".join(parts)


def _crossed(check: CheckSpec, latest: CheckState) -> str:
    """``latency 231.4ms > 200ms`` / ``kpi drift -5.04% < -5%``."""
    drift = " drift" if check.compare == "baseline" else ""
    shown = _show(check, latest.value)
    return f"{latest.metric}{drift} {shown} {_bounds(check, latest.value)}"


def _breach_message(spec: ModelCanary, due: DueCheck, latest: CheckState) -> str:
    what = _crossed(due.check, latest)
    if due.check.for_.seconds <= 0 or latest.decided == "breach":
        return f"{what} ({due.key}): rolling back"
    return f"{what} ({due.key}): rolls back if still breached after {due.check.for_}"


def _breach_reason(tick: _Tick, due: DueCheck, latest: CheckState) -> Reason:
    where = f"step {tick.state.step}" if tick.state.stage == "steps" else "shadow"
    if latest.decided == "breach":  # judge: sequential, on counts since the stage began
        message = (
            f"{_crossed(due.check, latest)} since {where} began "
            f"(sequential judge, alpha {due.check.alpha:g})"
        )
        if latest.message:
            message += f": {latest.message}"
    else:
        message = f"{_crossed(due.check, latest)} over {_window(tick.spec, due.check)} at {where}"
        if due.check.for_.seconds > 0:
            message += f" for {due.check.for_}"
    return Reason(
        "breach",
        message,
        tick.now,
        tick.state.step,
        key=due.key,
        metric=latest.metric,
        value=latest.value,
        candidate=latest.candidate,
        stable=latest.stable,
        above=_number(due.check.above),
        below=_number(due.check.below),
        window=_window(tick.spec, due.check),
    )
