"""When the rollout machine is called and what it asks for: the public helpers around ``step``.

Owns a fresh rollout's state, the current stage's checks and when they are due, the next call,
the progress deadline and the weights a state calls for. Called by the machine's rules, the
controller, ``canaryctl simulate``, the local stack and the metrics. Pure: time is an argument.
"""

from __future__ import annotations

from controlplane.rollout.observations import TIME_SLACK_S, DueCheck
from controlplane.rollout.state import RolloutState, spec_hash
from controlplane.spec.check_keys import PROMOTE_KEY, shadow_check, step_check
from controlplane.spec.defaults import DEFAULTS
from controlplane.spec.models import ModelCanary

__all__ = [
    "PROMOTE_KEY",
    "desired_weights",
    "due_checks",
    "evaluation_due",
    "initial_state",
    "next_evaluation",
    "progress_deadline",
    "stage_checks",
]

_EPS = TIME_SLACK_S


def initial_state(spec: ModelCanary, now: float) -> RolloutState:
    """A fresh rollout of ``spec`` created at ``now``: pending, candidate not yet deployed."""
    return RolloutState(
        spec_hash=spec_hash(spec),
        stage="pending",
        started_at=now,
        stage_started_at=now,
        defaults=DEFAULTS,
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
    """When to call the machine next: the last evaluation plus ``analysis.interval`` (the start
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


def progress_deadline(state: RolloutState, deadline_s: float) -> float | None:
    """When the current stage's progress deadline (``deadline_s``, the operator's setting) passes:
    while pending, the candidate must be ready by the rollout's start plus the deadline; in shadow
    or a step, the stage's weights must be in effect by the stage's start plus the deadline. None
    once terminal. The machine's rules ``not-ready`` and ``not-routed`` judge against it, and the
    controller asks it when to observe readiness and when to wake."""
    if state.stage == "pending":
        return state.started_at + deadline_s
    if state.stage in ("shadow", "steps"):
        return state.stage_started_at + deadline_s
    return None


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
