"""How a rollout moves forward: start, shadow, steps, gate holds, approval and promotion.

Owns the rules of forward progress, one function each (pending, shadow, steps, workflow gates and
the stage transitions); nothing moves forward while paused. Called by
:func:`controlplane.rollout.machine.step` and the ``promote`` intent. Pure. See docs/rollout.md.
"""

from __future__ import annotations

from controlplane.rollout.actions import Deploy, RunGate
from controlplane.rollout.gate_runs import (
    PROMOTION,
    describe_point,
    gates_at,
    point_step,
    run_key,
    step_point,
    workflow_name,
)
from controlplane.rollout.observations import TIME_SLACK_S, Observations, QualityReading
from controlplane.rollout.schedule import PROMOTE_KEY, evaluation_due, stage_checks
from controlplane.rollout.state import CheckState, GateState, Reason
from controlplane.rollout.tick import Tick, promote, rollback
from controlplane.rollout.wording import number, quality_words, window

_EPS = TIME_SLACK_S


def pending(tick: Tick, obs: Observations | None) -> None:
    """Deploy the candidate once; start (shadow or step 1) when an observation says it is ready.
    Readiness is polled at the evaluation cadence, like the checks."""
    if not tick.state.deployed:
        tick.update(deployed=True)
        tick.actions.append(Deploy(tick.spec.spec.candidate.name))
    if obs is None or not evaluation_due(tick.spec, tick.state, tick.now):
        return
    tick.update(last_evaluation=tick.now)
    if tick.state.paused is not None:
        return
    if not obs.candidate_ready:
        why = f": {obs.not_ready_why}" if obs.not_ready_why else ""
        tick.update(waiting=f"the candidate was not ready{why}")
        return
    tick.update(waiting=None)
    if tick.spec.spec.shadow is not None:
        tick.update(stage="shadow", stage_started_at=tick.now, checks={})
        tick.sync_weights()
        tick.emit("ShadowStarted", f"mirroring all traffic to {tick.spec.spec.candidate.name}")
    else:
        start_steps(tick)
    progress(tick)


def progress(tick: Tick) -> None:
    """Time- and result-driven progress; nothing moves forward while paused."""
    if tick.state.paused is not None:
        return
    if tick.state.gate_point is not None:
        progress_gates(tick)
        if tick.state.gate_point is not None or tick.state.terminal:
            return
    if tick.state.stage == "shadow":
        progress_shadow(tick)
    if tick.state.stage == "steps":
        progress_steps(tick)


def progress_shadow(tick: Tick) -> None:
    """Pass when promoteOn held for its ``for`` by the deadline; fail when the deadline comes."""
    shadow, state = tick.spec.spec.shadow, tick.state
    if shadow is None:  # unreachable: a spec change restarts the rollout
        start_steps(tick)
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
        start_steps(tick)
    elif tick.now >= deadline - _EPS:
        message = (
            f"shadow ended after {shadow.duration} without {shadow.promote_on.metric} "
            f"holding for {shadow.promote_on.for_}"
        )
        rollback(
            tick,
            Reason(
                "shadow-expired",
                message,
                tick.now,
                0,
                key=PROMOTE_KEY,
                metric=shadow.promote_on.metric,
                value=held.value if held is not None else None,
                above=number(shadow.promote_on.above),
                below=number(shadow.promote_on.below),
                window=window(tick.spec, shadow.promote_on),
            ),
        )


def progress_gates(tick: Tick) -> None:
    """Make the held transition once every gate run of its point passed."""
    state = tick.state
    point = state.gate_point
    runs = [run for run in state.gates.values() if run.point == point]
    if point is None or not all(run.result == "passed" for run in runs):
        return
    tick.update(gate_point=None)
    transition(tick, point, f" (gates passed: {', '.join(run.gate for run in runs)})")


def _waits_for(metric: str, check: CheckState | None) -> str:
    """``latency (inconclusive: no data: no series matched ...)``: a check a due step waits
    for, by its metric, with the verdict's reason."""
    if check is None:
        return f"{metric} (not evaluated yet)"
    why = check.message.removeprefix(f"{check.metric}: ") if check.message else ""
    return f"{metric} ({check.verdict}: {why})" if why else f"{metric} ({check.verdict})"


def progress_steps(tick: Tick) -> None:
    """Advance while the current step is finished; mark it holding when it is due but cannot;
    a done ``approval: manual`` step waits for a ``promote`` intent."""
    while tick.state.stage == "steps" and tick.state.gate_point is None:
        state = tick.state
        current = tick.spec.spec.steps[state.step_index]
        dues = stage_checks(tick.spec, state)
        keys = [due.key for due in dues]
        latest = [state.checks.get(key) for key in keys]
        all_passed = all(c is not None and c.verdict == "pass" for c in latest)
        all_decided = bool(latest) and all(c is not None and c.decided == "pass" for c in latest)
        duration = current.duration.seconds if current.duration is not None else 0.0
        elapsed = tick.now - state.stage_started_at >= duration - _EPS
        # the quality judge's pass is due before the candidate takes the last step's share
        closing = state.step_index >= len(tick.spec.spec.steps) - 2
        quality = _quality_waits(tick) if closing else None
        if ((elapsed and all_passed) or all_decided) and quality is None:
            if current.approval == "manual":
                _await_approval(tick)
                return
            finish_step(tick, "" if elapsed else " (sequential judge decided early)")
            continue
        if elapsed and not state.holding and (any(c is not None for c in latest) or quality):
            waiting = [
                _waits_for(due.check.metric, c)
                for due, c in zip(dues, latest, strict=True)
                if c is None or c.verdict != "pass"
            ]
            waiting += [quality] if quality is not None else []
            tick.update(holding=True)
            tick.emit("Held", f"step {state.step} is due but waits for {', '.join(waiting)}")
        return


def _quality_waits(tick: Tick) -> str | None:
    """What the promotion waits for from the quality judge (None: nothing): its pass, unless
    the spec says an undecided test may promote (``undecided: promote``)."""
    spec, reading = tick.spec.spec.quality, tick.state.quality
    if spec is None or spec.undecided == "promote":
        return None
    if reading is not None and reading.decided == "pass":
        return None
    return quality_words(spec, reading or QualityReading())


def _await_approval(tick: Tick) -> None:
    """A done ``approval: manual`` step waits for ``promote`` (said once)."""
    if tick.state.awaiting_approval:
        return
    tick.update(awaiting_approval=True, holding=False)
    tick.emit(
        "AwaitingApproval",
        f"step {tick.state.step} is done and waits for approval: "
        f"kubectl canary promote {tick.spec.metadata.name} -n {tick.spec.metadata.namespace}",
    )


def start_steps(tick: Tick) -> None:
    """Begin step 1, after the gates that guard it."""
    if gated(tick, step_point(0)):
        return
    _begin_steps(tick)


def _begin_steps(tick: Tick, why: str = "") -> None:
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


def finish_step(tick: Tick, why: str) -> None:
    """The current step is done: go to the next one, or promote after the last; either after
    the gates that guard it."""
    index = tick.state.step_index
    last = index == len(tick.spec.spec.steps) - 1
    tick.update(awaiting_approval=False, holding=False)
    point = PROMOTION if last else step_point(index + 1)
    if gated(tick, point, why):
        return
    transition(tick, point, why)


def transition(tick: Tick, point: str, why: str) -> None:
    """Make the transition a gate point stands for: begin step 1, advance, or promote."""
    if point == PROMOTION:
        promote(tick, f"last step finished{why}")
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


def gated(tick: Tick, point: str, why: str = "") -> bool:
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
