"""One call of the rollout machine in progress, and the outcomes every rule ends in.

Owns :class:`Tick` (the state and actions so far, with the one way to record an event and to
align the weights) and the outcomes :func:`promote`, :func:`rollback`, :func:`pause`,
:func:`resume`, :func:`restart` and :func:`noop`. Called by the machine's rule modules. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from controlplane.rollout.actions import (
    Action,
    Deploy,
    Notify,
    Pause,
    Promote,
    Rollback,
    SetWeights,
)
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import desired_weights, initial_state
from controlplane.rollout.state import (
    HISTORY_LIMIT,
    Event,
    EventType,
    PauseKind,
    Reason,
    RolloutState,
)
from controlplane.spec.models import ModelCanary

NOOP_MESSAGE = "candidate is identical to stable; nothing to roll out"


@dataclass
class Tick:
    """One call of :func:`~controlplane.rollout.machine.step` in progress: the state so far and
    the actions emitted so far."""

    spec: ModelCanary
    now: float
    state: RolloutState
    actions: list[Action] = field(default_factory=list)
    obs: Observations | None = None  # set when this call evaluated observations
    errors: list[str] = field(default_factory=list)
    gates_answered: bool = False  # the Argo Server answered about a running gate in this call

    def update(self, **changes: Any) -> None:
        """The state with ``changes``, as :func:`dataclasses.replace` gives it (a name that is no
        field is a TypeError), copied field by field: ``replace`` re-runs ``__init__`` over the
        state's 24 fields, a tenth of a four-week replay's time. RolloutState has no
        ``__post_init__`` and no ``init=False`` field, so the copy is the same value."""
        unknown = changes.keys() - _STATE_FIELDS
        if unknown:
            raise TypeError(f"RolloutState has no field {sorted(unknown)[0]!r}")
        state = object.__new__(RolloutState)
        state.__dict__.update(self.state.__dict__)
        state.__dict__.update(changes)
        self.state = state

    def emit(self, kind: EventType, message: str) -> None:
        event = Event(kind, self.now, self.state.step, self.state.weight, message)
        self.update(history=(*self.state.history, event)[-HISTORY_LIMIT:])
        self.actions.append(Notify(event))

    def sync_weights(self) -> None:
        weight, mirror = desired_weights(self.spec, self.state)
        if (weight, mirror) != (self.state.weight, self.state.mirror):
            self.update(weight=weight, mirror=mirror)
            self.actions.append(SetWeights(weight, mirror))


_STATE_FIELDS = frozenset(f.name for f in fields(RolloutState))


FINISHED: dict[str, Any] = {
    "paused": None,
    "paused_at": None,
    "throttled": False,
    "holding": False,
    "gate_point": None,
    "awaiting_approval": False,
}
"""What a rollout that ends (promoted, rolled back, no-op) no longer is: paused, throttled,
holding, at a gate or awaiting approval."""


def noop(tick: Tick) -> None:
    """The candidate equals the stable variant: finished at once as promoted, nothing deployed,
    no weight changed (a pending restart's weights are already back to 0)."""
    tick.update(**FINISHED, stage="promoted", noop=True, deployed=False, reason=None, gates={})
    tick.sync_weights()
    tick.emit("Promoted", NOOP_MESSAGE)


def promote(tick: Tick, message: str) -> None:
    tick.update(**FINISHED, stage="promoted", step_index=len(tick.spec.spec.steps) - 1, reason=None)
    tick.sync_weights()
    tick.actions.append(Promote())
    tick.emit("Promoted", f"{tick.spec.spec.candidate.name} promoted: {message}")


def rollback(tick: Tick, reason: Reason) -> None:
    tick.update(**FINISHED, stage="rolled_back", reason=reason)
    tick.sync_weights()
    tick.actions.append(Rollback(reason))
    tick.emit("RolledBack", reason.message)


def pause(tick: Tick, kind: PauseKind, reason: Reason) -> None:
    paused_at = tick.state.paused_at if tick.state.paused is not None else tick.now
    tick.update(paused=kind, paused_at=paused_at, reason=reason)
    tick.actions.append(Pause(reason))
    tick.emit("Paused", reason.message)


def resume(tick: Tick, message: str) -> None:
    """Leave a pause; paused time does not count towards the current step or shadow."""
    paused_for = tick.now - (tick.state.paused_at if tick.state.paused_at is not None else tick.now)
    tick.update(
        paused=None,
        paused_at=None,
        reason=None,
        stage_started_at=tick.state.stage_started_at + max(paused_for, 0.0),
    )
    tick.emit("Resumed", message)


def restart(tick: Tick, message: str) -> None:
    """A new rollout of the current spec (spec change or retry); history and intents carry on.
    Readiness of the (re)deployed candidate is first read one interval later."""
    old = tick.state
    is_noop = tick.spec.spec.candidate_is_stable()
    tick.state = replace(
        initial_state(tick.spec, tick.now),
        weight=old.weight,
        mirror=old.mirror,
        deployed=not is_noop,
        last_evaluation=tick.now,
        history=old.history,
        last_intent_at=old.last_intent_at,
    )
    tick.sync_weights()
    if not is_noop:
        tick.actions.append(Deploy(tick.spec.spec.candidate.name))
    tick.emit("Restarted", message)
