"""What the rollout machine keeps of an evaluation: check results, streaks, errors, gate polls.

Owns the bookkeeping half of a machine call; it decides nothing, the rules in
:mod:`~controlplane.rollout.safety` and :mod:`~controlplane.rollout.progress` read what it kept.
Called by :func:`controlplane.rollout.machine.step`. Pure.
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.rollout.observations import CheckResult, DueCheck, Observations
from controlplane.rollout.schedule import PROMOTE_KEY, stage_checks
from controlplane.rollout.state import RECENT_RESULTS, CheckSample, CheckState, finite_or_none
from controlplane.rollout.tick import Tick
from controlplane.rollout.wording import breach_message, number
from controlplane.spec.check_keys import where


def record(tick: Tick, obs: Observations) -> None:
    """Store this evaluation's results and streaks, count provider errors, note the spend."""
    state = tick.state
    checks = dict(state.checks)
    errors = ["spend: cost query failed"] if obs.spend_error else []
    for due in stage_checks(tick.spec, state):
        result = obs.checks.get(due.key) or CheckResult(
            key=due.key,
            metric=due.check.metric,
            verdict="inconclusive",
            message=f"{due.check.metric}: no result at this evaluation ({where(due.key)})",
        )
        if result.provider_error:
            errors.append(result.message or f"{due.check.metric}: provider error")
        latest = next_check_state(due, state.checks.get(due.key), result, tick.now)
        checks[due.key] = latest
        if due.key != PROMOTE_KEY and latest.since == tick.now:
            tick.emit("Breached", breach_message(tick.spec, due, latest))
    quality = state.quality
    judged = state.stage in ("shadow", "steps")
    if obs.quality is not None and tick.spec.spec.quality is not None and judged:
        quality = obs.quality
        if quality.error:
            errors.append(f"quality: {quality.error}")
    tick.update(
        quality=quality,
        checks=checks,
        last_evaluation=tick.now,
        consecutive_errors=state.consecutive_errors + 1 if errors else 0,
        spend=state.spend if obs.spend_error else finite_or_none(obs.spend),
    )
    tick.obs, tick.errors = obs, errors


def next_check_state(
    due: DueCheck, prev: CheckState | None, result: CheckResult, now: float
) -> CheckState:
    """The check's new record. The streak goes on while the condition holds at every evaluation
    (rollbackOn: breached; promoteOn: its threshold condition met); a pass or an inconclusive
    result ends it. ``recent`` keeps the last results of the stage (``prev`` is None in a new
    stage: the checks are reset when a stage begins)."""
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
        above=number(due.check.above),
        below=number(due.check.below),
        load_candidate=finite_or_none(result.load_candidate),
        load_stable=finite_or_none(result.load_stable),
        samples=finite_or_none(result.samples),
        evidence=finite_or_none(result.evidence),
        evidence_bound=finite_or_none(result.evidence_bound),
        recent=(
            *(prev.recent if prev is not None else ())[-(RECENT_RESULTS - 1) :],
            CheckSample(
                now,
                result.verdict,
                finite_or_none(result.value),
                finite_or_none(result.candidate),
                finite_or_none(result.stable),
                finite_or_none(result.samples),
                finite_or_none(result.evidence),
            ),
        ),
    )


def record_gates(tick: Tick, obs: Observations) -> None:
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
        updated = replace(
            run,
            phase=seen.phase,
            started_at=started,
            message=seen.message,
            outputs=dict(seen.outputs) or run.outputs,
        )
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
