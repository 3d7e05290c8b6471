"""The rollout state machine: ``step(spec, state, observations, now, intents) -> (state, actions)``.

Owns the order in which every rollout decision is taken in one call (one tick); each rule is a
function of its own module. Called by the controller, ``canaryctl simulate`` and the local stack;
when to call it is :mod:`controlplane.rollout.schedule`'s. Pure: time is an argument. The order:
docs/rollout.md, "One call of ``step``: the order"; the functions: docs/architecture.md, "Where
is it decided".
"""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.rollout.actions import Action
from controlplane.rollout.intent_rules import apply_intents
from controlplane.rollout.intents import Intent
from controlplane.rollout.observations import Observations
from controlplane.rollout.progress import pending, progress
from controlplane.rollout.records import record, record_gates
from controlplane.rollout.safety import (
    check_budget,
    check_errors,
    check_gate_errors,
    check_gates,
    check_lost_readiness,
    check_not_ready,
    check_not_routed,
    check_quality,
    check_rollback,
)
from controlplane.rollout.schedule import evaluation_due
from controlplane.rollout.state import RolloutState, spec_hash
from controlplane.rollout.tick import Tick, noop, restart
from controlplane.spec.models import ModelCanary

__all__ = ["step"]


def step(
    spec: ModelCanary,
    state: RolloutState,
    obs: Observations | None,
    now: float,
    intents: Sequence[Intent] = (),
) -> tuple[RolloutState, list[Action]]:
    """Advance the rollout to ``now``.

    ``obs`` answers :func:`~controlplane.rollout.schedule.due_checks` as computed on ``state`` at
    ``now`` (None: nothing was measured). Observations given when no evaluation is due are
    ignored, so repeating a call is harmless; gate observations (``obs.gates``) and the progress
    deadline's facts (``candidate_ready``, ``weights_refused`` against ``progress_deadline_s``)
    are taken whenever given. While ``obs.weights_refused`` says the stage's weights are not in
    effect, the stage has not begun and nothing of it is evaluated. Order within a call: spec
    change, evaluation bookkeeping, gate observations, progress deadline, no-op, intents,
    rollback, failed gates, provider and gate errors, budget, progress (docs/rollout.md).
    """
    tick = Tick(spec, now, state)
    if state.spec_hash != spec_hash(spec):
        restart(tick, "spec changed: restarting with the new candidate")
    elif obs is not None:
        if (
            obs.weights_refused is None
            and state.stage in ("shadow", "steps")
            and evaluation_due(spec, state, now)
        ):
            record(tick, obs)
        if obs.gates:
            record_gates(tick, obs)
        check_not_ready(tick, obs)
        if not tick.state.terminal:
            check_lost_readiness(tick, obs)
        if not tick.state.terminal:
            check_not_routed(tick, obs)
    if not tick.state.terminal and spec.spec.candidate_is_stable():
        noop(tick)
    apply_intents(tick, intents)
    if tick.state.terminal:
        return tick.state, tick.actions
    if tick.state.stage == "pending" and tick.state.gate_point is None:
        pending(tick, obs)
    else:
        if tick.state.stage == "pending" and obs is not None and evaluation_due(spec, state, now):
            tick.update(last_evaluation=now)  # gated before step 1: readiness is not re-read
        _decide(tick)
    return tick.state, tick.actions


def _decide(tick: Tick) -> None:
    """The rules of a started rollout, in order; the first that ends it ends the call."""
    check_rollback(tick)
    if tick.state.terminal:
        return
    check_quality(tick)
    if tick.state.terminal:
        return
    check_gates(tick)
    if tick.state.terminal:
        return
    check_gate_errors(tick)
    if tick.obs is not None:
        check_errors(tick)
        check_budget(tick, tick.obs)
    progress(tick)
