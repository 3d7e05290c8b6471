"""The rules that stop or slow a rollout: rollbacks, pauses and budget throttling.

Owns one function per rule: rollback on ``not-ready`` (before the start; after it for the
progress deadline, or two analysis intervals while the candidate takes traffic; at once when its
pods say it cannot start), ``not-routed``,
``breach`` and ``gate-failed``; pause after ``errorLimit`` unanswered evaluations or gate polls;
throttle over the daily budget. Called by :func:`controlplane.rollout.machine.step`, in its
order. Pure. See docs/rollback.md, "What triggers a rollback".
"""

from __future__ import annotations

from dataclasses import replace

from controlplane.rollout.gate_runs import describe_point
from controlplane.rollout.observations import TIME_SLACK_S, Observations
from controlplane.rollout.schedule import PROMOTE_KEY, progress_deadline, stage_checks
from controlplane.rollout.state import Reason
from controlplane.rollout.tick import Tick, pause, resume, rollback
from controlplane.rollout.wording import breach_reason, quality_words
from controlplane.spec.units import Duration

_EPS = TIME_SLACK_S


def check_cannot_start(tick: Tick, obs: Observations) -> bool:
    """Roll back at once a rollout (pending, shadow or a step) whose candidate, read not ready,
    certainly cannot serve (``obs.cannot_start``: its pods crash-loop or its image does not
    exist): waiting for a deadline would only serve its share of the traffic errors, or hold
    GPUs for a start that cannot happen. True when it rolled back."""
    state = tick.state
    if state.stage not in ("pending", "shadow", "steps") or obs.candidate_ready:
        return False
    if not obs.cannot_start or (state.stage != "pending" and not obs.candidate_read):
        return False
    message = f"candidate {tick.spec.spec.candidate.name} cannot start"
    if state.stage == "steps" and state.weight > 0:
        message += f" while it took {state.weight}% of the traffic"
    if obs.not_ready_why:
        message += f": {obs.not_ready_why}"
    rollback(tick, Reason("not-ready", message, tick.now, state.step))
    return True


def check_not_ready(tick: Tick, obs: Observations) -> None:
    """Roll back a pending rollout whose candidate is still not ready (``obs.candidate_ready``)
    once the progress deadline (``obs.progress_deadline_s``) has passed since it started, or at
    once when it cannot start (:func:`check_cannot_start`). The deadline is the operator's, so
    without one (None) only a candidate that cannot start is rolled back."""
    state, deadline_s = tick.state, obs.progress_deadline_s
    if state.stage != "pending" or obs.candidate_ready or check_cannot_start(tick, obs):
        return
    if deadline_s is None:
        return
    at = progress_deadline(state, deadline_s)
    if at is None or tick.now < at:
        return
    _not_ready(tick, obs, f"did not become ready within {Duration.of(deadline_s)}")


SERVING_GRACE_INTERVALS = 2
"""Analysis intervals a candidate that takes users' traffic and serves none of it may stay not
ready. The gateway answers its share with errors meanwhile that no error source may count
(Traefik v3.6.12 answers 503 for a Service with no ready endpoint and counts nothing for it:
docs/rollback.md, "What triggers a rollback", cites its source)."""


def lost_readiness_limit(
    tick: Tick, deadline_s: float, serving: bool = False
) -> tuple[float, str, str]:
    """How long a started rollout's candidate may stay not ready, what that limit is called and
    when it applies: while a step routes it users' traffic and it serves none of it (not
    ``serving``: no pod of its is Ready), the shorter of the progress deadline and
    :data:`SERVING_GRACE_INTERVALS` analysis intervals; otherwise (shadow, a step at 0 %, a
    candidate whose pods still answer its share while one is replaced, which the checks judge)
    the progress deadline."""
    state = tick.state
    if state.stage == "steps" and state.weight > 0 and not serving:
        grace = SERVING_GRACE_INTERVALS * tick.spec.spec.analysis.interval.seconds
        if grace < deadline_s:
            took = f" while it took {state.weight}% of the traffic"
            return grace, f"{SERVING_GRACE_INTERVALS} analysis intervals", took
    return deadline_s, "progress deadline", " after the rollout started"


def check_lost_readiness(tick: Tick, obs: Observations) -> None:
    """Roll back a started rollout (shadow or a step) whose candidate, read at its evaluations
    (``obs.candidate_read``), has not been ready since it was first seen not ready
    (``state.unready_since``) for as long as :func:`lost_readiness_limit` allows; a ready
    reading clears that time. A crash loop after the start leaves no samples to judge, so the
    checks alone would hold the step for ever, while the gateway answers the candidate's share
    with errors; a candidate with a pod that still serves is judged by its checks meanwhile.
    Without a progress deadline (None) this rule never fires."""
    state, deadline_s = tick.state, obs.progress_deadline_s
    if state.stage not in ("shadow", "steps") or not obs.candidate_read:
        return
    if obs.candidate_ready:
        if state.unready_since is not None:
            tick.update(unready_since=None)
        return
    if check_cannot_start(tick, obs):
        return
    since = tick.now if state.unready_since is None else state.unready_since
    if state.unready_since is None:
        tick.update(unready_since=since)
    if deadline_s is None:
        return
    limit_s, limit, when = lost_readiness_limit(tick, deadline_s, obs.candidate_serving)
    if tick.now < since + limit_s - _EPS:
        return
    _not_ready(tick, obs, f"was not ready for {Duration.of(limit_s)}", when, limit)


def _not_ready(
    tick: Tick, obs: Observations, what: str, when: str = "", limit: str = "progress deadline"
) -> None:
    """The ``not-ready`` rollback: ``candidate X <what> (<limit>)<when>``, then what the serving
    layer says of it (``obs.not_ready_why``) when it says."""
    message = f"candidate {tick.spec.spec.candidate.name} {what} ({limit}){when}"
    if obs.not_ready_why:
        message += f": {obs.not_ready_why}"
    rollback(tick, Reason("not-ready", message, tick.now, tick.state.step))


def check_not_routed(tick: Tick, obs: Observations) -> None:
    """Roll back when the router has not put the stage's weights in effect (it read them back and
    found otherwise: ``obs.weights_refused`` says what it found) for the whole progress deadline
    since the stage was asked for. Such a stage never began, so it can never be judged (KServe
    v0.20.0's ``kserve`` router routes a canary nothing)."""
    state, deadline_s, why = tick.state, obs.progress_deadline_s, obs.weights_refused
    if state.stage not in ("shadow", "steps") or deadline_s is None or why is None:
        return
    at = progress_deadline(state, deadline_s)
    if at is None or tick.now < at:
        return
    message = (
        f"the {tick.spec.spec.traffic.router} router did not put candidate {state.weight}% in "
        f"effect within {Duration.of(deadline_s)} (progress deadline): {why}"
    )
    rollback(tick, Reason("not-routed", message, tick.now, state.step))


def check_rollback(tick: Tick) -> None:
    """Roll back on the first rollbackOn check (in spec order) breached for its ``for``."""
    for due in stage_checks(tick.spec, tick.state):
        latest = tick.state.checks.get(due.key)
        if due.key == PROMOTE_KEY or latest is None or latest.since is None:
            continue
        if latest.decided == "breach" or latest.at - latest.since >= due.check.for_.seconds - _EPS:
            rollback(tick, breach_reason(tick.spec, tick.state, tick.now, due, latest))
            return


def check_quality(tick: Tick) -> None:
    """Roll back when the quality judge's test decided the candidate answers worse than its
    tolerance (``spec.quality``); the test goes on across steps."""
    spec, reading = tick.spec.spec.quality, tick.state.quality
    if spec is None or reading is None or reading.decided != "breach":
        return
    rollback(tick, Reason("quality", quality_words(spec, reading), tick.now, tick.state.step))


def check_gates(tick: Tick) -> None:
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
        rollback(tick, reason)
        return


def check_gate_errors(tick: Tick) -> None:
    """Pause after ``errorLimit`` consecutive polls the Argo Server did not answer; resume by
    itself at its first answer. Never a failure: the Workflow may well be running."""
    state = tick.state
    limit = tick.spec.spec.analysis.error_limit
    if state.gate_errors >= limit and state.paused is None:
        detail = "; ".join(dict.fromkeys(tick.errors)) or "no answer"
        message = f"{state.gate_errors} consecutive gate polls without an answer: {detail}"
        pause(tick, "gate-errors", Reason("gate-errors", message, tick.now, state.step))
    elif tick.gates_answered and state.gate_errors == 0 and state.paused == "gate-errors":
        resume(tick, "Argo Server answers again: resuming")


def check_errors(tick: Tick) -> None:
    """Pause after ``errorLimit`` consecutive evaluations with provider errors; resume by
    itself at the first evaluation without one. A user pause is left alone."""
    state = tick.state
    if state.consecutive_errors >= tick.spec.spec.analysis.error_limit and state.paused is None:
        detail = "; ".join(dict.fromkeys(tick.errors))
        count = state.consecutive_errors
        message = f"{count} consecutive evaluations with provider errors: {detail}"
        pause(tick, "errors", Reason("provider-errors", message, tick.now, state.step))
    elif state.consecutive_errors == 0 and state.paused == "errors":
        resume(tick, "metrics are back: resuming")


def check_budget(tick: Tick, obs: Observations) -> None:
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
