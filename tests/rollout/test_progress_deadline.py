"""The progress deadline's two rules in the machine (pure): ``not-ready`` and ``not-routed``.

The controller observes the facts (the candidate's readiness; the router's read-back while it
refuses the stage's weights) and passes them with the operator's deadline in
:class:`~controlplane.rollout.observations.Observations`; the machine decides the rollback.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from support.canaries import SMALL, model_canary, one_step_canary

from controlplane.rollout.actions import Rollback
from controlplane.rollout.intents import Intent
from controlplane.rollout.machine import step
from controlplane.rollout.observations import CheckResult, Observations
from controlplane.rollout.schedule import initial_state, progress_deadline
from controlplane.rollout.state import RolloutState

T0 = 1_800_000_000.0
MIN = 60.0
DEADLINE = 30 * MIN
REFUSED = "KServe v0.20.0 routes none of good-llm to the candidate"

CANARY = one_step_canary()


def pending() -> RolloutState:
    """Deployed at T0, the candidate not ready yet (readiness last read at T0)."""
    state, _ = step(CANARY, initial_state(CANARY, T0), Observations(candidate_ready=False), T0)
    assert state.stage == "pending"
    return state


def in_step_one(at: float) -> RolloutState:
    """Step 1 (weight 10%) asked for at ``at``; its weights not in effect since."""
    state, _ = step(CANARY, initial_state(CANARY, at), Observations(), at)
    assert (state.stage, state.weight, state.stage_started_at) == ("steps", 10, at)
    return state


def not_ready(**extra: object) -> Observations:
    return Observations(candidate_ready=False, progress_deadline_s=DEADLINE, **extra)  # type: ignore[arg-type]


def refused() -> Observations:
    return Observations(weights_refused=REFUSED, progress_deadline_s=DEADLINE)


# --------------------------------------------------------------------------- not-ready


@pytest.mark.parametrize(
    ("seconds", "stage"),
    [
        pytest.param(DEADLINE - 1, "pending", id="before-the-deadline"),
        pytest.param(DEADLINE, "rolled_back", id="at-the-deadline"),
        pytest.param(DEADLINE + 30, "rolled_back", id="between-evaluations"),
    ],
)
def test_a_candidate_not_ready_by_the_deadline_is_rolled_back(seconds: float, stage: str) -> None:
    state, actions = step(CANARY, pending(), not_ready(), T0 + seconds)
    assert state.stage == stage
    if stage == "pending":
        assert state.reason is None
        assert not any(isinstance(a, Rollback) for a in actions)
        return
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.message == (
        "candidate nf4 did not become ready within 30m (progress deadline)"
    )
    assert (state.reason.at, state.reason.step) == (T0 + seconds, 0)  # before step 1
    assert (state.weight, state.mirror) == (0, False)
    assert [a for a in actions if isinstance(a, Rollback)] == [Rollback(state.reason)]
    last = state.history[-1]
    assert (last.type, last.time, last.weight, last.message) == (
        "RolledBack",
        T0 + seconds,
        0,
        state.reason.message,
    )


@pytest.mark.parametrize(
    "obs",
    [
        pytest.param(Observations(candidate_ready=True, progress_deadline_s=DEADLINE), id="ready"),
        pytest.param(Observations(candidate_ready=False), id="no-deadline"),
        pytest.param(None, id="nothing-observed"),
    ],
)
def test_no_not_ready_rollback_without_the_facts(obs: Observations | None) -> None:
    state, _ = step(CANARY, pending(), obs, T0 + 2 * DEADLINE)
    assert state.stage != "rolled_back"


def test_not_ready_comes_before_the_intents_of_the_same_call() -> None:
    abort = Intent("abort", T0 + DEADLINE, user="ada")
    state, _ = step(CANARY, pending(), not_ready(), T0 + DEADLINE, [abort])
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.last_intent_at == abort.at  # consumed, on a rollout already rolled back


def test_a_spec_change_restarts_the_deadline() -> None:
    candidate = CANARY.spec.candidate.model_copy(update={"storage_uri": "hf://org/other"})
    changed = CANARY.model_copy(
        update={"spec": CANARY.spec.model_copy(update={"candidate": candidate})}
    )
    state, _ = step(changed, pending(), not_ready(), T0 + DEADLINE)
    assert (state.stage, state.started_at) == ("pending", T0 + DEADLINE)
    assert progress_deadline(state, DEADLINE) == T0 + 2 * DEADLINE


# --------------------------------------------------------------------------- not-routed


@pytest.mark.parametrize(
    ("seconds", "stage"),
    [
        pytest.param(DEADLINE - 1, "steps", id="before-the-deadline"),
        pytest.param(DEADLINE, "rolled_back", id="at-the-deadline"),
    ],
)
def test_weights_refused_for_the_whole_deadline_roll_back(seconds: float, stage: str) -> None:
    start = in_step_one(T0)
    state, actions = step(CANARY, start, refused(), T0 + seconds)
    assert state.stage == stage
    if stage == "steps":
        assert (state.reason, state.weight) == (None, 10)
        return
    router = CANARY.spec.traffic.router
    assert state.reason is not None
    assert state.reason.kind == "not-routed"
    assert state.reason.message == (
        f"the {router} router did not put candidate 10% in effect within 30m "
        f"(progress deadline): {REFUSED}"
    )
    assert (state.weight, state.mirror) == (0, False)
    assert [a for a in actions if isinstance(a, Rollback)] == [Rollback(state.reason)]
    assert [e.type for e in state.history] == ["StepStarted", "RolledBack"]
    assert state.history[-1].weight == 0


def test_the_routing_deadline_runs_from_the_stage_start() -> None:
    start = in_step_one(T0 + DEADLINE)  # the rollout began long before this stage
    state, _ = step(CANARY, replace(start, started_at=T0), refused(), T0 + DEADLINE + 1)
    assert state.stage == "steps"


def test_refused_weights_mean_nothing_is_evaluated() -> None:
    """The stage has not begun: due checks given with the refusal are not recorded."""
    start = in_step_one(T0)
    breach = CheckResult("steps[0].rollbackOn[0]", "latency", "breach", value=0.5)
    obs = replace(refused(), checks={breach.key: breach})
    state, _ = step(CANARY, start, obs, T0 + 5 * MIN)
    assert (state.checks, state.last_evaluation) == (start.checks, start.last_evaluation)
    assert [e.type for e in state.history] == ["StepStarted"]


def test_not_routed_leaves_a_pending_rollout_to_not_ready() -> None:
    obs = Observations(weights_refused=REFUSED, progress_deadline_s=DEADLINE, candidate_ready=False)
    state, _ = step(CANARY, pending(), obs, T0 + DEADLINE)
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    state, _ = step(CANARY, in_step_one(T0), Observations(weights_refused=REFUSED), T0 + DEADLINE)
    assert state.stage == "steps"  # no deadline given: never


def test_the_not_ready_rollback_says_why_when_the_serving_layer_says() -> None:
    why = "InferenceService llm-nf4 failed to load (ModelLoadFailed, exit code 1): OOM"
    state, _ = step(CANARY, pending(), not_ready(not_ready_why=why), T0 + DEADLINE)
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.message == (
        f"candidate nf4 did not become ready within 30m (progress deadline): {why}"
    )


# --------------------------------------------------------------------------- lost readiness


def lost(**extra: object) -> Observations:
    """The candidate read not ready at an evaluation of a started rollout."""
    return replace(not_ready(**extra), candidate_read=True)


def ready_again() -> Observations:
    return Observations(candidate_ready=True, candidate_read=True, progress_deadline_s=DEADLINE)


GRACE = 2 * MIN
"""Two analysis intervals of :data:`CANARY` (``interval: 1m``)."""

WHY = "InferenceService llm-nf4 failed to load (ModelLoadFailed, exit code 1): EngineDeadError"


def test_a_candidate_not_ready_while_it_takes_traffic_is_rolled_back_after_two_intervals() -> None:
    """Step 1 routes it 10 %: the gateway answers that share with errors meanwhile, so the
    rollout waits two analysis intervals, not the 30-minute deadline."""
    start = in_step_one(T0)
    state, _ = step(CANARY, start, lost(), T0 + MIN)
    assert (state.stage, state.unready_since) == ("steps", T0 + MIN)
    state, _ = step(CANARY, state, lost(), T0 + MIN + GRACE - 1)
    assert (state.stage, state.unready_since) == ("steps", T0 + MIN)  # the first sighting stays
    state, actions = step(CANARY, state, lost(not_ready_why=WHY), T0 + MIN + GRACE)
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert state.reason.kind == "not-ready"
    assert state.reason.message == (
        "candidate nf4 was not ready for 2m (2 analysis intervals) while it took 10% of the "
        f"traffic: {WHY}"
    )
    assert state.reason.step == 1
    assert (state.weight, state.mirror) == (0, False)
    assert [a for a in actions if isinstance(a, Rollback)] == [Rollback(state.reason)]


def test_a_candidate_not_ready_at_zero_percent_is_rolled_back_at_the_deadline() -> None:
    """A step that routes it nothing costs no user an error: the operator's deadline holds."""
    canary = model_canary(base=SMALL, steps=[{"weight": 0, "duration": "1h"}, {"weight": 100}])
    state, _ = step(canary, initial_state(canary, T0), Observations(), T0)
    assert (state.stage, state.weight) == ("steps", 0)
    state, _ = step(canary, state, lost(), T0 + MIN)
    state, _ = step(canary, state, lost(), T0 + MIN + DEADLINE - 1)
    assert state.stage == "steps"
    state, _ = step(canary, state, lost(not_ready_why=WHY), T0 + MIN + DEADLINE)
    assert state.reason is not None
    assert state.reason.message == (
        f"candidate nf4 was not ready for 30m (progress deadline) after the rollout started: {WHY}"
    )


def test_a_candidate_that_still_serves_while_a_pod_is_replaced_has_the_deadline() -> None:
    """One of its pods gone (KServe reads a two-replica Deployment short of one as not Ready):
    the other still answers its share, so the checks judge it and the short grace does not
    apply; once no pod serves, the grace runs from the first sighting."""
    serving = lost(candidate_serving=True)
    state, _ = step(CANARY, in_step_one(T0), serving, T0 + MIN)
    state, _ = step(CANARY, state, serving, T0 + MIN + GRACE + 5 * MIN)
    assert (state.stage, state.unready_since) == ("steps", T0 + MIN)
    state, _ = step(CANARY, state, lost(), T0 + MIN + GRACE + 6 * MIN)
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert "(2 analysis intervals) while it took 10% of the traffic" in state.reason.message


def test_a_serving_candidate_not_ready_for_the_deadline_is_rolled_back() -> None:
    serving = lost(candidate_serving=True)
    state, _ = step(CANARY, in_step_one(T0), serving, T0 + MIN)
    state, _ = step(CANARY, state, serving, T0 + MIN + DEADLINE - 1)
    assert state.stage == "steps"
    state, _ = step(CANARY, state, serving, T0 + MIN + DEADLINE)
    assert state.reason is not None
    assert state.reason.message == (
        "candidate nf4 was not ready for 30m (progress deadline) after the rollout started"
    )


def test_a_deadline_shorter_than_two_intervals_still_decides() -> None:
    obs = replace(lost(), progress_deadline_s=MIN)
    state, _ = step(CANARY, in_step_one(T0), obs, T0 + MIN)
    state, _ = step(CANARY, state, obs, T0 + 2 * MIN)
    assert state.reason is not None
    assert state.reason.message == (
        "candidate nf4 was not ready for 1m (progress deadline) after the rollout started"
    )


def test_a_ready_reading_clears_the_lost_readiness() -> None:
    state, _ = step(CANARY, in_step_one(T0), lost(), T0 + MIN)
    state, _ = step(CANARY, state, ready_again(), T0 + 2 * MIN)
    assert state.unready_since is None
    state, _ = step(CANARY, state, lost(), T0 + 3 * MIN)
    state, _ = step(CANARY, state, lost(), T0 + MIN + GRACE)  # since the second sighting only
    assert (state.stage, state.unready_since) == ("steps", T0 + 3 * MIN)
    state, _ = step(CANARY, state, lost(), T0 + 3 * MIN + GRACE)
    assert state.stage == "rolled_back"


@pytest.mark.parametrize(
    "obs",
    [
        pytest.param(not_ready(), id="readiness-not-read"),
        pytest.param(replace(lost(), progress_deadline_s=None), id="no-deadline"),
    ],
)
def test_no_lost_readiness_rollback_without_the_facts(obs: Observations) -> None:
    state, _ = step(CANARY, in_step_one(T0), obs, T0 + MIN)
    state, _ = step(CANARY, state, obs, T0 + MIN + 2 * DEADLINE)
    assert state.stage == "steps"


def test_lost_readiness_survives_a_restart_of_the_controller() -> None:
    """The first sighting is in the status: a restarted controller keeps counting from it."""
    state, _ = step(CANARY, in_step_one(T0), lost(), T0 + MIN)
    restored = RolloutState.from_status(state.to_status())
    assert restored.unready_since == T0 + MIN
    state, _ = step(CANARY, restored, lost(), T0 + MIN + GRACE)
    assert state.stage == "rolled_back"


# --------------------------------------------------------------------------- cannot start

CRASH = "pod good-llm-nf4-predictor-0: container kserve-container restarted 3 times"


@pytest.mark.parametrize("deadline", [DEADLINE, None], ids=["deadline", "no-deadline"])
def test_a_candidate_that_cannot_start_is_rolled_back_at_once(deadline: float | None) -> None:
    obs = Observations(
        candidate_ready=False,
        not_ready_why=CRASH,
        cannot_start=True,
        progress_deadline_s=deadline,
    )
    state, actions = step(CANARY, pending(), obs, T0 + MIN)  # long before the deadline
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert (state.reason.kind, state.reason.at, state.reason.step) == ("not-ready", T0 + MIN, 0)
    assert state.reason.message == f"candidate nf4 cannot start: {CRASH}"
    assert [a for a in actions if isinstance(a, Rollback)] == [Rollback(state.reason)]


def test_cannot_start_is_not_read_while_the_candidate_is_ready_or_only_slow() -> None:
    ready = Observations(cannot_start=True, not_ready_why=CRASH, progress_deadline_s=DEADLINE)
    state, _ = step(CANARY, pending(), ready, T0 + MIN)
    assert state.stage != "rolled_back"
    slow = not_ready(not_ready_why="InferenceService good-llm-nf4 is loading")
    state, _ = step(CANARY, pending(), slow, T0 + MIN)
    assert (state.stage, state.reason) == ("pending", None)


def test_mid_step_cannot_start_needs_the_candidate_read_and_says_its_weight() -> None:
    started, _ = step(CANARY, pending(), Observations(), T0 + MIN)
    assert (started.stage, started.weight) == ("steps", 10)
    unread = Observations(candidate_ready=False, cannot_start=True, not_ready_why=CRASH)
    state, _ = step(CANARY, started, unread, T0 + 2 * MIN)
    assert state.stage == "steps"  # not read at an evaluation: nothing to decide
    read = replace(unread, candidate_read=True, progress_deadline_s=DEADLINE)
    state, _ = step(CANARY, started, read, T0 + 2 * MIN)
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert state.reason.message == (
        f"candidate nf4 cannot start while it took 10% of the traffic: {CRASH}"
    )
    assert state.reason.step == 1
