"""Why a pending rollout has not started, in words (issue #41: "waiting for the candidate to be
ready" while both variants were Ready: it was waiting for the next evaluation)."""

from __future__ import annotations

from support.canaries import one_step_canary

from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import initial_state
from controlplane.rollout.wording import pending_why
from controlplane.status.document import Book, rollout_status

T0 = 1_800_000_000.0
CANARY = one_step_canary()


def test_the_machine_records_why_it_did_not_start() -> None:
    not_ready = Observations(candidate_ready=False, not_ready_why="CrashLoopBackOff")
    state, _ = step(CANARY, initial_state(CANARY, T0), not_ready, T0)
    assert state.stage == "pending"
    assert state.waiting == "the candidate was not ready: CrashLoopBackOff"
    status = rollout_status(state, Book(), 1, None, T0)
    assert status["waiting"] == state.waiting
    ready = next(c for c in status["conditions"] if c["type"] == "Reconciling")
    assert ready["message"] == (
        "at the last evaluation, the candidate was not ready: CrashLoopBackOff; readiness is "
        "checked again at the next evaluation"
    )
    started, _ = step(CANARY, state, Observations(), T0 + 60)
    assert (started.stage, started.waiting) == ("steps", None)


def test_ready_since_the_last_evaluation_waits_for_the_next_one() -> None:
    said = pending_why(T0, "the candidate was not ready", 60, T0 + 40)
    assert said == (
        "at the last evaluation, 40s ago, the candidate was not ready; readiness is checked "
        "again at the next evaluation, in 20s (every 1m)"
    )
    assert pending_why(None, None, 60, T0) == (
        "the candidate is being deployed; the controller checks its readiness at its next "
        "evaluation (every 1m)"
    )
    assert pending_why(T0, None, 300, T0 + 400) == (
        "waiting for the controller's next evaluation, due now (every 5m) to start the rollout"
    )
