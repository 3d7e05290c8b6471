"""``judge: sequential`` through the whole controller: the runner passes the step's start so
the batched analysis tests counts since then (FakeKube + fake KServe + a real Prometheus)."""

from __future__ import annotations

from typing import Any

import pytest
from support.controller_world import DAY, Metrics, World, finished, world_canary

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
