"""Long scripted runs of the rollout state machine, and the crash-safety (resume) property.

The contract's example canary is driven the way the controller drives it: call ``step`` at
``next_evaluation`` with observations answering ``due_checks``, here synthesised from per-metric
values over time and judged by a small threshold judge written for the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.canaries import ANALYSIS, canary_dict, model_canary

from controlplane.rollout.actions import Action, Notify, Rollback
from controlplane.rollout.intents import INTENT_VERBS, Intent
from controlplane.rollout.machine import step
from controlplane.rollout.observations import CheckResult, Observations
from controlplane.rollout.schedule import (
    desired_weights,
    due_checks,
    initial_state,
    next_evaluation,
)
from controlplane.rollout.state import RolloutState
from controlplane.spec.models import CheckSpec, ModelCanary

T0 = 1_800_000_000.0
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
# The contract example (tests/support/canaries.py) with metric queries the test's own judge answers
BASE = canary_dict(
    traffic={"router": "gateway-api", "cohort": {"header": "x-tier", "values": ["t1"]}},
    metrics=[
        *ANALYSIS["metrics"][:3],
        {"name": "kpi", "query": "vector(1)"},
        {"name": "win-rate", "query": "vector(0)"},
    ],
    budget={"dailyLimit": 100, "throttleWeight": 1},
)
WITH_SHADOW = model_canary(base=BASE)
NO_SHADOW = model_canary(base=BASE, shadow=None)

HEALTHY = {"latency": 0.29, "latency-p99": 0.45, "errors": 0.0004, "kpi": 0.01, "win-rate": 0.06}

Values = Callable[[float], dict[str, float | None]]


def judge(check: CheckSpec, value: float | None) -> str:
    if value is None:
        return "inconclusive"
    above = check.above is not None and value > check.above.value
    below = check.below is not None and value < check.below.value
    return "breach" if above or below else "pass"


def synthesise(
    spec: ModelCanary, state: RolloutState, now: float, values: dict[str, float | None]
) -> Observations:
    checks = {}
    for due in due_checks(spec, state, now):
        value = values.get(due.check.metric)
        checks[due.key] = CheckResult(
            key=due.key,
            metric=due.check.metric,
            verdict=judge(due.check, value),  # type: ignore[arg-type]
            value=value,
            provider_error=value is None,
        )
    spend = values.get("spend")
    return Observations(checks=checks, spend=spend if spend is not None else 40.0)


def drive(
    spec: ModelCanary, values: Values, *, until: float = T0 + 28 * DAY, resume: bool = False
) -> tuple[RolloutState, list[Action], int]:
    """Run from T0 until an outcome or ``until``. With ``resume``, check the crash-safety property
    at every tick: a twin that continues from the serialized state (through JSON) each tick must
    stay identical to the uninterrupted run, actions included."""
    state = twin = initial_state(spec, T0)
    now: float | None = T0
    actions: list[Action] = []
    ticks = 0
    while now is not None and now <= until and not state.terminal:
        obs = synthesise(spec, state, now, values(now))
        state, done = step(spec, state, obs, now)
        if resume:
            twin = RolloutState.from_status(json.loads(json.dumps(twin.to_status())))
            twin, twin_done = step(spec, twin, obs, now)
            assert (twin, twin_done) == (state, done)
        actions += done
        ticks += 1
        now = next_evaluation(spec, state)
    return state, actions, ticks


def types(actions: list[Action]) -> list[str]:
    return [a.event.type for a in actions if isinstance(a, Notify)]


def event_time(state: RolloutState, kind: str) -> float:
    return next(e.time for e in state.history if e.type == kind)


@pytest.mark.slow
def test_contract_example_promotes_after_21_days_of_steps() -> None:
    state, actions, ticks = drive(NO_SHADOW, lambda t: dict(HEALTHY), resume=True)
    assert state.outcome == "promoted"
    assert event_time(state, "Promoted") == T0 + 21 * DAY
    assert types(actions) == ["StepStarted", "Advanced", "Advanced", "Advanced", "Promoted"]
    assert [e.weight for e in state.history] == [5, 25, 75, 100, 100]
    assert ticks == 21 * 24 * 60 + 1


@pytest.mark.slow
def test_contract_example_with_shadow_promotes_within_four_weeks() -> None:
    state, actions, _ = drive(WITH_SHADOW, lambda t: dict(HEALTHY))
    passed = event_time(state, "ShadowPassed")
    assert passed == T0 + MIN + 2 * DAY  # first evaluation one interval in, then held for 2d
    assert event_time(state, "Promoted") == passed + 21 * DAY
    assert types(actions)[:3] == ["ShadowStarted", "ShadowPassed", "StepStarted"]
    assert state.outcome == "promoted"


def test_latency_breach_at_step_1_rolls_back_within_one_interval() -> None:
    breach_from = T0 + 3 * DAY + 30

    def values(t: float) -> dict[str, float | None]:
        return {**HEALTHY, "latency": 0.41 if t >= breach_from else 0.29}

    state, actions, _ = drive(NO_SHADOW, values)
    assert state.outcome == "rolled_back"
    rolled = event_time(state, "RolledBack")
    assert breach_from <= rolled <= breach_from + MIN
    reason = next(a.reason for a in actions if isinstance(a, Rollback))
    assert (reason.metric, reason.value, reason.above, reason.step) == ("latency", 0.41, 0.3, 1)
    assert state.weight == 0


@pytest.mark.slow
def test_budget_throttle_does_not_delay_promotion() -> None:
    def values(t: float) -> dict[str, float | None]:
        over = T0 + 9 * DAY <= t < T0 + 9 * DAY + 6 * HOUR
        return {**HEALTHY, "spend": 150.0 if over else 60.0}

    state, _, _ = drive(NO_SHADOW, values)
    assert event_time(state, "Throttled") == T0 + 9 * DAY
    assert event_time(state, "Unthrottled") == T0 + 9 * DAY + 6 * HOUR
    assert [e.weight for e in state.history if e.type in ("Throttled", "Unthrottled")] == [1, 25]
    assert event_time(state, "Promoted") == T0 + 21 * DAY


@pytest.mark.slow
def test_outage_pauses_and_delays_promotion_by_the_paused_time() -> None:
    outage = (T0 + 16 * DAY, T0 + 16 * DAY + 30 * MIN)

    def values(t: float) -> dict[str, float | None]:
        if outage[0] <= t < outage[1]:
            return dict.fromkeys(HEALTHY)
        return dict(HEALTHY)

    state, _, _ = drive(NO_SHADOW, values)
    paused, resumed = event_time(state, "Paused"), event_time(state, "Resumed")
    assert paused == outage[0] + 4 * MIN  # the 5th consecutive failed evaluation
    assert resumed == outage[1]
    assert event_time(state, "Promoted") == T0 + 21 * DAY + (resumed - paused)
    assert "RolledBack" not in [e.type for e in state.history]


# --------------------------------------------------------------------------- resume property

SMALL = model_canary(
    "prop",
    "default",
    model={"name": "m"},
    stable={"name": "a", "storageUri": "hf://o/m", "gpu": "g"},
    candidate={"name": "b", "storageUri": "hf://o/m", "gpu": "g", "quantization": "fp8"},
    analysis={
        "interval": "1m",
        "errorLimit": 2,
        "metrics": [{"name": "lat", "builtin": "e2e-latency"}, {"name": "win", "query": "x"}],
    },
    steps=[
        {"weight": 10, "duration": "3m", "rollbackOn": [{"metric": "lat", "above": "1s"}]},
        {
            "weight": 50,
            "duration": "2m",
            "rollbackOn": [{"metric": "lat", "above": "1s", "for": "2m"}],
        },
        {"weight": 100, "duration": "1m", "rollbackOn": [{"metric": "lat", "above": "2s"}]},
    ],
    shadow={"duration": "8m", "promoteOn": {"metric": "win", "above": 0, "for": "2m"}},
    budget={"dailyLimit": 10, "throttleWeight": 5},
)
CODES: dict[str, tuple[Any, Any, bool]] = {
    "P": ("pass", None, False),
    "B": ("breach", None, False),
    "I": ("inconclusive", None, False),
    "E": ("inconclusive", None, True),
    "D": ("pass", "pass", False),
    "X": ("breach", "breach", False),
}

tick_strategy = st.tuples(
    st.sampled_from([0.0, 20.0, 60.0, 60.0, 60.0, 150.0, 900.0]),  # seconds since the last tick
    st.text(alphabet="PPPPBIEDX", min_size=2, max_size=2),  # codes for the due checks
    st.sampled_from([None, 5.0, 20.0]),  # spend
    st.booleans(),  # spend error
    st.sampled_from([True, True, True, False]),  # candidate ready
    st.one_of(st.none(), st.sampled_from(INTENT_VERBS)),
    st.booleans(),  # observations given at all
)


def _obs(spec: ModelCanary, state: RolloutState, now: float, tick: tuple[Any, ...]) -> Observations:
    _, codes, spend, spend_error, ready, _, _ = tick
    checks = {}
    for due, code in zip(due_checks(spec, state, now), codes * 2, strict=False):
        verdict, decided, error = CODES[code]
        checks[due.key] = CheckResult(
            due.key, due.check.metric, verdict, value=1.5, provider_error=error, decided=decided
        )
    return Observations(checks, spend=spend, spend_error=spend_error, candidate_ready=ready)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(tick_strategy, min_size=1, max_size=60))
def test_resuming_from_serialized_state_equals_the_uninterrupted_run(
    script: list[tuple[Any, ...]],
) -> None:
    spec = SMALL
    state = resumed = initial_state(spec, T0)
    now = T0
    intents: list[Intent] = []
    for tick in script:
        now += tick[0]
        if tick[5] is not None:
            intents.append(Intent(tick[5], now - 0.5))
        obs = _obs(spec, state, now, tick) if tick[6] else None
        state, actions = step(spec, state, obs, now, intents)
        resumed = RolloutState.from_status(json.loads(json.dumps(resumed.to_status())))
        again, again_actions = step(spec, resumed, obs, now, intents)
        assert (again, again_actions) == (state, actions)
        resumed = again
        # invariants
        assert (state.weight, state.mirror) == desired_weights(spec, state)
        assert step(spec, state, obs, now, intents) == (state, [])  # repeating is harmless
        if state.stage == "rolled_back":
            assert state.weight == 0
            assert state.reason is not None
        if state.stage == "promoted":
            assert state.weight == 100
