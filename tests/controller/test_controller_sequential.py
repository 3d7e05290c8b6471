"""``judge: sequential`` through the whole controller: the runner passes the step's start so
the batched analysis tests counts since then (FakeKube + fake KServe + a real Prometheus)."""

from __future__ import annotations

from typing import Any

import pytest
from support.controller_world import DAY, HOUR, Metrics, World, finished, world_canary

pytestmark = pytest.mark.binary

ERRORS_JUMP = 4 * DAY  # after metrics.t0, the "errors" candidate errs 2% (controller_scenarios)


def _steps() -> list[dict[str, Any]]:
    check = {"metric": "errors", "compare": "baseline", "above": "100%", "judge": "sequential"}
    return [{"weight": 5, "duration": "7d", "rollbackOn": [check]}, {"weight": 100}]


def test_sequential_error_check_rolls_back_a_failing_candidate(metrics: Metrics) -> None:
    start = metrics.t0 + ERRORS_JUMP  # the rollout begins as the candidate starts failing
    world = World(start, metrics.url)
    world.create(world_canary("errors", metrics.url, steps=_steps()))
    world.run_until(finished("errors"), limit=3 * DAY)
    state = world.state("errors")
    assert state.stage == "rolled_back", [(e.type, e.message) for e in state.history]
    assert state.reason is not None
    assert (state.reason.kind, state.reason.metric, state.reason.step) == ("breach", "errors", 1)
    assert state.history[-1].type == "RolledBack"
    assert "sequential judge, alpha 0.01" in state.reason.message
    assert state.history[-1].time <= start + DAY  # caught within the first day of a 7-day step


def test_sequential_error_check_passes_a_good_step_early(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("errors", metrics.url, steps=_steps()))
    world.run_until(finished("errors"), limit=10 * DAY)
    state = world.state("errors")
    assert state.stage == "promoted"
    assert state.history[-1].type == "Promoted"
    assert state.history[-1].time < metrics.t0 + ERRORS_JUMP  # decided before the 7 days were up
    assert any("decided early" in e.message for e in state.history)


def test_sequential_error_check_promotes_a_good_candidate(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("good", metrics.url, steps=_steps()))
    world.run_until(finished("good"), limit=10 * DAY)
    state = world.state("good")
    assert state.stage == "promoted", [(e.type, e.message) for e in state.history]


def test_a_stable_without_history_is_judged_from_the_first_look_that_finds_it(
    metrics: Metrics,
) -> None:
    """The stable's series begin as step 1 does (a stable deployed with the canary, or a live
    service just adopted): the shift check has no reference before the step, takes the stable's
    data up to the first look that finds it (one interval, 2h, into the step) as its reference,
    judges the requests after it, and the good candidate is promoted instead of held at
    step 1."""
    begins = metrics.t0 - DAY  # the scenarios' first sample
    check = {
        "metric": "latency",
        "compare": "baseline",
        "above": "20%",
        "judge": "sequential",
        "test": "shift",
    }
    steps = [{"weight": 25, "duration": "12h", "rollbackOn": [check]}, {"weight": 100}]
    # step 1 starts at the first evaluation (2h on), 10 minutes after the first sample
    world = World(begins - 2 * HOUR + 600.0, metrics.url)
    world.create(world_canary("good", metrics.url, steps=steps))

    def checked(w: World) -> bool:
        return "status" in w.get("good") and bool(w.state("good").checks)

    world.run_until(checked, limit=3 * HOUR)
    early = world.state("good")
    assert (early.stage, early.step_index) == ("steps", 0), early.history
    (result,) = early.checks.values()
    assert "since 7200 s into the step" in result.message, result.message
    world.run_until(finished("good"), limit=DAY)
    state = world.state("good")
    assert state.stage == "promoted", [(e.type, e.message) for e in state.history]
