"""Whole rollouts through the controller: FakeKube + fake KServe + a real, backfilled Prometheus,
four weeks on an injected clock."""

from __future__ import annotations

import itertools

import pytest
from support.controller_world import (
    DAY,
    HOUR,
    ISVC,
    ROLLBACK_CASES,
    Metrics,
    World,
    a_pod_replaced_mid_step_is_judged_not_rolled_back,
    certain_crash_loop_mid_step_rolls_back_at_once,
    certain_crash_loop_rolls_back_at_once,
    crash_loop_rolls_back_with_the_engine_s_words,
    finished,
    lost_readiness_rolls_back,
    never_ready_rolls_back_at_the_deadline,
    old_defaults_are_kept_until_the_spec_changes,
    world_canary,
)

from controlplane.controller.reconcile import Settings

pytestmark = pytest.mark.binary

GATEWAY = ("gateway.networking.k8s.io/v1", "HTTPRoute")


def route_weights(world: World, name: str) -> dict[str, int]:
    (route,) = world.objects(*GATEWAY, name)
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: ref["weight"] for ref in refs}


def test_full_promotion_four_weeks(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("good", metrics.url))
    world.run_until(finished("good"), limit=25 * DAY)

    state = world.state("good")
    assert state.stage == "promoted"
    kinds = [e[0] for e in world.history("good")]
    assert kinds == ["StepStarted", "Advanced", "Advanced", "Advanced", "Promoted"]
    starts = [e[1] for e in world.history("good")]
    # each step lasted its 7 days (to the evaluation interval of 2 hours)
    for before, after in itertools.pairwise(starts[:4]):
        assert 7 * DAY <= after - before <= 7 * DAY + 2 * HOUR
    assert world.history("good")[-1][3] == 100
    # the released stable's Service is no longer named
    assert route_weights(world, "good") == {"good-llm-nf4-predictor": 100}
    status = world.get("good")["status"]
    assert (status["phase"], status["step"], status["weight"]) == ("promoted", 4, 100)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "True", "Reconciling": "False", "Stalled": "False"}
    assert status["observedGeneration"] == world.get("good")["metadata"]["generation"]
    reasons = [r for r, _ in world.events("good")]
    for kind in ("StepStarted", "Advanced", "Promoted", "Deployed", "WeightsVerified"):
        assert kind in reasons
    # the old stable is released after the promotion cleanup delay
    world.clock.t += Settings().promote_cleanup_s + 1
    world.pass_once()
    names = [o["metadata"]["name"] for o in world.objects(*ISVC, "good")]
    assert names == ["good-llm-nf4"]


@pytest.mark.parametrize(("name", "step", "metric"), ROLLBACK_CASES)
def test_rollback_on_each_kind_of_check(
    metrics: Metrics, name: str, step: int, metric: str
) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary(name, metrics.url))
    world.run_until(finished(name), limit=25 * DAY)

    state = world.state(name)
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert (state.reason.kind, state.reason.metric, state.reason.step) == ("breach", metric, step)
    assert route_weights(world, name) == {f"{name}-llm-bf16-predictor": 100}
    status = world.get(name)["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert ("RolledBack", state.reason.message) in world.events(name)
    # the candidate keeps running for the rollback delay, then it is released
    assert len(world.objects(*ISVC, name)) == 2
    world.clock.t += Settings().rollback_cleanup_s + 1
    world.pass_once()
    assert [o["metadata"]["name"] for o in world.objects(*ISVC, name)] == [f"{name}-llm-bf16"]


def test_candidate_never_ready_is_rolled_back_at_the_deadline(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=3 * HOUR))
    never_ready_rolls_back_at_the_deadline(world, metrics.url, metrics.t0)


def test_a_rollout_keeps_the_defaults_it_began_under(metrics: Metrics) -> None:
    old_defaults_are_kept_until_the_spec_changes(World(metrics.t0, metrics.url), metrics.url)


def test_a_candidate_that_stops_being_ready_mid_step_is_rolled_back(metrics: Metrics) -> None:
    # a deadline longer than two analysis intervals (4 h): the shorter limit decides
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=6 * HOUR))
    lost_readiness_rolls_back(world, metrics.url)


def test_a_candidate_one_pod_short_mid_step_is_judged_not_rolled_back(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=6 * HOUR))
    a_pod_replaced_mid_step_is_judged_not_rolled_back(world, metrics.url)


def test_a_crash_looping_candidate_is_rolled_back_with_the_engine_s_words(
    metrics: Metrics,
) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=3 * HOUR))
    crash_loop_rolls_back_with_the_engine_s_words(world, metrics.url)


def test_a_certain_crash_loop_is_rolled_back_before_the_deadline(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=6 * HOUR))
    certain_crash_loop_rolls_back_at_once(world, metrics.url)


def test_a_certain_crash_loop_mid_step_is_rolled_back_at_once(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=6 * HOUR))
    certain_crash_loop_mid_step_rolls_back_at_once(world, metrics.url)
