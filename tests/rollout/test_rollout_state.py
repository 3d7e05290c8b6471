"""The rollout state's status round trip and its derived views."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from controlplane.errors import SpecError
from controlplane.rollout.state import CheckState, Event, Reason, RolloutState, finite_or_none
from controlplane.spec.units import status_time

T0 = 1_800_000_000.0


def busy_state() -> RolloutState:
    return RolloutState(
        spec_hash="0123456789abcdef",
        stage="steps",
        started_at=T0,
        stage_started_at=T0 + 60.5,
        step_index=1,
        weight=25,
        last_evaluation=T0 + 120,
        checks={
            "steps[1].rollbackOn[0]": CheckState(
                metric="kpi",
                verdict="breach",
                at=T0 + 120,
                since=T0 + 60.5,
                value=0.071,
                candidate=0.6,
                stable=0.56,
                message="kpi drift 7.1%",
            ),
        },
        consecutive_errors=1,
        paused="user",
        paused_at=T0 + 90,
        throttled=True,
        spend=120.25,
        holding=True,
        deployed=True,
        reason=Reason("user-pause", "paused by ana", T0 + 90, 2),
        last_intent_at=T0 + 89.75,
        history=(
            Event("StepStarted", T0, 1, 5, "step 1 started"),
            Event("Advanced", T0 + 60.5, 2, 25, "step 1 -> 2"),
        ),
    )


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(RolloutState("h", "pending", T0, T0), id="initial"),
        pytest.param(busy_state(), id="busy"),
    ],
)
def test_status_round_trips_exactly_through_json(state: RolloutState) -> None:
    status = state.to_status()
    text = json.dumps(status, allow_nan=False)
    assert RolloutState.from_status(json.loads(text)) == state


def test_status_is_camel_case_with_derived_views() -> None:
    status = busy_state().to_status()
    assert status["phase"] == "paused"
    assert status["step"] == 2
    assert status["outcome"] == "paused"
    assert status["stageStartedAt"] == status_time(T0 + 60.5) == "2027-01-15T08:01:00.5Z"
    assert status["checks"]["steps[1].rollbackOn[0]"]["since"] == status_time(T0 + 60.5)
    assert status["history"][1] == {
        "type": "Advanced",
        "time": status_time(T0 + 60.5),
        "step": 2,
        "weight": 25,
        "message": "step 1 -> 2",
    }


def test_integer_times_from_the_api_server_are_read_as_floats() -> None:
    status = busy_state().to_status()
    status["startedAt"] = int(T0)
    state = RolloutState.from_status(status)
    assert state.started_at == T0
    assert isinstance(state.started_at, float)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        pytest.param({"stage": "exploded"}, "status.stage", id="bad-stage"),
        pytest.param({"weight": "lots"}, "status.weight", id="bad-weight"),
        pytest.param({"specHash": None}, "status.specHash", id="missing-hash"),
        pytest.param(
            {"history": [{"type": "Nope", "time": 1, "step": 0, "weight": 0}]},
            "status.history.0.type",
            id="bad-event",
        ),
    ],
)
def test_bad_status_is_a_spec_error_with_its_path(change: dict[str, Any], path: str) -> None:
    status = {**busy_state().to_status(), **change}
    with pytest.raises(SpecError) as caught:
        RolloutState.from_status(status)
    assert path in [p.path for p in caught.value.problems]


@pytest.mark.parametrize(
    ("stage", "paused", "throttled", "holding", "phase", "outcome"),
    [
        ("pending", None, False, False, "pending", "in_progress"),
        ("shadow", None, True, False, "throttled", "in_progress"),
        ("steps", None, False, False, "progressing", "in_progress"),
        ("steps", None, False, True, "holding", "in_progress"),
        ("steps", None, True, True, "throttled", "in_progress"),
        ("steps", "errors", True, True, "paused", "paused"),
        ("promoted", None, False, False, "promoted", "promoted"),
        ("rolled_back", None, False, False, "rolled_back", "rolled_back"),
    ],
)
def test_phase_and_outcome(
    stage: Any, paused: Any, throttled: bool, holding: bool, phase: str, outcome: str
) -> None:
    state = RolloutState(
        "h", stage, T0, T0, paused=paused, throttled=throttled, holding=holding, step_index=0
    )
    assert (state.phase, state.outcome) == (phase, outcome)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (None, None), (math.nan, None), (math.inf, None), (-math.inf, None)],
)
def test_finite_or_none(value: float | None, expected: float | None) -> None:
    assert finite_or_none(value) == expected


def test_a_tick_updates_the_state_as_replace_does() -> None:
    """``Tick.update`` copies the fields instead of calling ``dataclasses.replace`` (a replay's
    hot path, issue 41): the same state, and a name that is no field still refused."""
    import dataclasses

    from support.canaries import model_canary

    from controlplane.rollout.tick import Tick

    # what makes a copy of the fields the same value as a new __init__
    assert not hasattr(RolloutState, "__post_init__")
    assert all(f.init for f in dataclasses.fields(RolloutState))
    before = busy_state()
    tick = Tick(spec=model_canary(), now=T0, state=before)
    tick.update(weight=75, consecutive_errors=0)
    expected = dataclasses.replace(before, weight=75, consecutive_errors=0)
    assert tick.state == expected
    assert tick.state.__dict__ == expected.__dict__
    assert type(tick.state) is RolloutState
    assert before.weight == 25  # the old state is untouched
    with pytest.raises(TypeError, match="no field 'wieght'"):
        tick.update(wieght=75)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tick.state.weight = 5  # type: ignore[misc]
