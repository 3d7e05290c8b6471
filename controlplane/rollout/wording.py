"""How the rollout machine words a breach and a wait: event messages and rollback reasons.

Owns the text of ``Breached`` events and ``breach`` reasons, and why a pending rollout has not
started (:func:`pending_why`) or why its checks hold a stage (:func:`inconclusive_now`). Called by
the machine's rules, the status' conditions and ``canaryctl up``. Pure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from controlplane.spec import check_keys
from controlplane.spec.units import Unit, display_value

if TYPE_CHECKING:  # types only: `kubectl canary list` reads pending_why without pydantic
    from controlplane.rollout.observations import DueCheck, QualityReading
    from controlplane.rollout.state import CheckState, Reason, RolloutState
    from controlplane.spec.models import CheckSpec, ModelCanary, QualitySpec


def number(quantity: Any) -> float | None:
    """A threshold quantity as a plain number (None when absent)."""
    return None if quantity is None else float(quantity.value)


def window(spec: ModelCanary, check: CheckSpec) -> str:
    """The check's window as written (its own, else ``analysis.window``)."""
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


def breach_message(spec: ModelCanary, due: DueCheck, latest: CheckState) -> str:
    """The ``Breached`` event's text when a rollbackOn check starts a breach streak."""
    what = f"{_crossed(due.check, latest)} {_at(due.key)}"
    if due.check.for_.seconds <= 0 or latest.decided == "breach":
        return f"{what}: rolling back"
    return f"{what}: rolls back if still breached after {due.check.for_}"


def _at(key: str) -> str:
    """``at step 2`` / ``in shadow``: where a check runs, named for people (the check itself is
    named by its metric; ``steps[1].rollbackOn[0]`` stays in ``status.checks``' keys)."""
    place = check_keys.where(key)
    return "in shadow" if place == "shadow" else f"at {place}"


def breach_reason(
    spec: ModelCanary, state: RolloutState, now: float, due: DueCheck, latest: CheckState
) -> Reason:
    """The ``breach`` rollback reason of ``due`` breached for its ``for`` (or decided by a
    sequential judge) at ``now``."""
    from controlplane.rollout.state import Reason

    where = f"step {state.step}" if state.stage == "steps" else "shadow"
    if latest.decided == "breach":  # judge: sequential, on counts since the stage began
        message = (
            f"{_crossed(due.check, latest)} since {where} began "
            f"(sequential judge, alpha {due.check.alpha:g})"
        )
        if latest.message:
            message += f": {latest.message}"
    else:
        message = f"{_crossed(due.check, latest)} over {window(spec, due.check)} at {where}"
        if due.check.for_.seconds > 0:
            message += f" for {due.check.for_}"
    return Reason(
        "breach",
        message,
        now,
        state.step,
        key=due.key,
        metric=latest.metric,
        value=latest.value,
        candidate=latest.candidate,
        stable=latest.stable,
        above=number(due.check.above),
        below=number(due.check.below),
        window=window(spec, due.check),
    )


def quality_words(spec: QualitySpec, reading: QualityReading) -> str:
    """What the quality judge has read: the metric's mean over the pairs, against the tolerance,
    and the decision or the evidence so far (each side's e-value against ``1 / alpha``)."""
    what = "disagreement" if spec.metric == "agreement" else "KL divergence"
    unit = "" if spec.metric == "agreement" else " nats"
    level = 1 / spec.alpha
    mean = reading.mean
    if mean is None:
        return f"quality: no pair scored yet (tolerance {spec.tolerance:g}{unit})"
    seen = f"the candidate's mean {what} {mean:.3g}{unit} over {reading.pairs} pairs"
    breach, passed = math.exp(reading.log_breach), math.exp(reading.log_pass)
    if reading.decided == "breach":
        return (
            f"quality: {seen} is above the tolerance {spec.tolerance:g}{unit} "
            f"(evidence {breach:.3g} >= 1/alpha {level:g})"
        )
    if reading.decided == "pass":
        return (
            f"quality: {seen} is within the tolerance {spec.tolerance:g}{unit} "
            f"(evidence {passed:.3g} >= 1/alpha {level:g})"
        )
    return (
        f"quality: {seen}, tolerance {spec.tolerance:g}{unit}, no decision yet (evidence "
        f"above {breach:.3g}, within {passed:.3g}, either needs {level:g})"
    )


def quality_line(spec: QualitySpec, reading: QualityReading) -> str:
    """:func:`quality_words` with the pairs lost unread and why the last read failed, if it
    did: the quality judge's line of ``kubectl canary get``, the dashboard and ``simulate``."""
    text = quality_words(spec, reading)
    if reading.lost:
        text += f"; {reading.lost} pairs lost unread"
    if reading.error:
        text += f"; the last read failed: {reading.error}"
    return text


def _ago(seconds: float) -> str:
    """``45s``, ``3m``, ``2h5m``: a short span for the wait's words."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s" if secs and minutes < 10 else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


def pending_why(
    last_evaluation: float | None,
    waiting: str | None,
    interval_s: float | None,
    now: float | None,
) -> str:
    """Why a pending rollout (candidate deployed, no step started) has not started, from what
    its status holds: ``lastEvaluation``, ``waiting`` (:attr:`RolloutState.waiting`) and the
    spec's ``analysis.interval``. The controller checks readiness only at an evaluation, so a
    candidate that became ready since waits for the next one, and this says so instead of
    "waiting for the candidate to be ready". ``now`` None: without the clock-dependent parts
    (how long ago, how long until the next evaluation). Pure."""
    every = f" (every {_ago(interval_s)})" if interval_s else ""
    if last_evaluation is None:
        return (
            "the candidate is being deployed; the controller checks its readiness at its "
            f"next evaluation{every}"
        )
    ago = nxt = ""
    if now is not None:
        ago = f", {_ago(now - last_evaluation)} ago"
        if interval_s:
            left = last_evaluation + interval_s - now
            nxt = f", in {_ago(left)}" if left > 0 else ", due now"
    if waiting:
        return (
            f"at the last evaluation{ago}, {waiting}; readiness is checked again at the "
            f"next evaluation{nxt}{every}"
        )
    return f"waiting for the controller's next evaluation{nxt}{every} to start the rollout"


def inconclusive_now(state: RolloutState) -> str | None:
    """Why the current stage's checks hold it, in words: the latest reason of each check that
    was inconclusive at its last evaluation (``latency: no data: no series matched ...; errors:
    too few samples: ...``); None when none is. For a run that ended without an outcome."""
    found = [
        check.message or f"{check.metric}: inconclusive"
        for _key, check in sorted(state.checks.items())
        if check.verdict == "inconclusive"
    ]
    return "; ".join(found) if found else None
