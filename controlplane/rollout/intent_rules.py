"""What each user intent does to a rollout: :func:`apply_intents`, one rule per verb.

Applies each intent newer than the last applied one, oldest first, exactly once; the intents
themselves are :mod:`controlplane.rollout.intents`'s. Called by
:func:`controlplane.rollout.machine.step`. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from controlplane.rollout.intents import Intent, IntentVerb
from controlplane.rollout.progress import finish_step, start_steps
from controlplane.rollout.schedule import PROMOTE_KEY, stage_checks
from controlplane.rollout.state import Reason
from controlplane.rollout.tick import Tick, pause, promote, restart, resume, rollback


def apply_intents(tick: Tick, intents: Sequence[Intent]) -> None:
    """Apply the intents newer than the last applied one, oldest first, each exactly once."""
    last = tick.state.last_intent_at
    for intent in sorted((i for i in intents if last is None or i.at > last), key=lambda i: i.at):
        _INTENT_HANDLERS[intent.verb](tick, intent)
        newest = tick.state.last_intent_at
        tick.update(last_intent_at=intent.at if newest is None else max(newest, intent.at))


def _by(intent: Intent) -> str:
    return f"by {intent.user}" if intent.user else "by user"


def _intent_pause(tick: Tick, intent: Intent) -> None:
    if not tick.state.terminal and tick.state.paused != "user":
        reason = Reason("user-pause", f"paused {_by(intent)}", tick.now, tick.state.step)
        pause(tick, "user", reason)


def _intent_resume(tick: Tick, intent: Intent) -> None:
    if not tick.state.terminal and tick.state.paused is not None:
        resume(tick, f"resumed {_by(intent)}")


def _intent_promote(tick: Tick, intent: Intent) -> None:
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
        start_steps(tick)
    else:
        approved = "approved" if tick.state.awaiting_approval else "promoted"
        finish_step(tick, f" ({approved} {_by(intent)})")


def _intent_promote_full(tick: Tick, intent: Intent) -> None:
    """Promote now from shadow or steps, skipping what is left: steps, approvals and gates
    (also gates held before step 1 while still pending)."""
    if tick.state.stage in ("shadow", "steps") or (
        tick.state.stage == "pending" and tick.state.gate_point is not None
    ):
        promote(tick, f"promoted to 100% {_by(intent)}")


def _intent_abort(tick: Tick, intent: Intent) -> None:
    if not tick.state.terminal:
        rollback(tick, Reason("aborted", f"aborted {_by(intent)}", tick.now, tick.state.step))


def _intent_retry(tick: Tick, intent: Intent) -> None:
    if tick.state.stage == "rolled_back":
        restart(tick, f"retry requested {_by(intent)}")


_INTENT_HANDLERS: dict[IntentVerb, Callable[[Tick, Intent], None]] = {
    "pause": _intent_pause,
    "resume": _intent_resume,
    "promote": _intent_promote,
    "promote-full": _intent_promote_full,
    "abort": _intent_abort,
    "retry": _intent_retry,
}
