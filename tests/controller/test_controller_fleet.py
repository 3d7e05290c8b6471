"""Fifty canaries at once: batched analysis (queries per tick independent of N), one canary
failing its checks and one with a broken router, neither slowing the others down; and the batch
evaluator gives exactly the per-canary evaluator's answers."""

from __future__ import annotations

from typing import Any

import pytest
from support.controller_scenarios import FLEET, FLEET_BAD, fleet_name
from support.controller_world import DAY, HOUR, Metrics, World, finished, world_canary

from controlplane.analysis.evaluator import evaluate
from controlplane.controller.batch import BatchEvaluator, Request
from controlplane.errors import RouterError
from controlplane.providers.prometheus import from_url
from controlplane.providers.source import PrometheusSource
from controlplane.rollout.observations import DueCheck
from controlplane.rollout.schedule import stage_checks
from controlplane.rollout.state import RolloutState
from controlplane.routing.memory import MemoryRouter
from controlplane.spec.models import ModelCanary

pytestmark = pytest.mark.binary

BROKEN = 3


# A short rollout: 50 % for 6 hours checking latency and errors hourly, then 100 %.
SHORT: dict[str, Any] = {
    "analysis": {
        "interval": "1h",
        "window": "1h",
        "metrics": [
            {"name": "latency", "builtin": "e2e-latency"},
            {"name": "errors", "builtin": "error-rate"},
        ],
    },
    "steps": [
        {
            "weight": 50,
            "duration": "6h",
            "rollbackOn": [
                {"metric": "latency", "above": "300ms"},
                {"metric": "errors", "above": "0.1%"},
            ],
        },
        {"weight": 100},
    ],
}


class BrokenRouter(MemoryRouter):
    def verify(self, canary: ModelCanary, expected: Any) -> None:
        raise RouterError("memory: the route never converges")


@pytest.mark.parametrize("size", [FLEET_BAD + 1, FLEET], ids=["8-canaries", "50-canaries"])
def test_fleet_one_failing_one_broken_queries_independent_of_n(metrics: Metrics, size: int) -> None:
    broken, healthy = BrokenRouter(), MemoryRouter()
    names = [fleet_name(i) for i in range(size)]
    bad, dead = fleet_name(FLEET_BAD), fleet_name(BROKEN)

    def router_for(canary: ModelCanary) -> Any:
        return broken if canary.metadata.name == dead else healthy

    world = World(metrics.fleet_t0, metrics.url, router_for=router_for)
    for name in names:
        world.create(world_canary(name, metrics.url, **SHORT))
    others = [n for n in names if n != dead]
    world.run_until(finished(*others), limit=DAY)

    assert world.state(bad).stage == "rolled_back"
    assert world.state(bad).reason.metric == "errors"  # type: ignore[union-attr]
    promoted = [n for n in others if n != bad]
    assert all(world.state(n).stage == "promoted" for n in promoted)
    # every healthy canary ran on the same schedule as if it had been alone
    assert {tuple(world.history(n)) for n in promoted} == {tuple(world.history(promoted[0]))}
    # the broken canary never got its weights verified, so its step never began
    assert world.state(dead).stage == "pending"
    assert ("WeightsNotVerified", "memory: the route never converges") in world.events(dead)

    ticks = world.controller.stats.per_tick
    busy = [(canaries, queries) for canaries, queries in ticks if canaries > 1]
    assert busy
    assert max(c for c, _ in busy) >= size - 2
    # e2e-latency@0.95, error-rate and the request count: three queries whatever the fleet size
    assert {q for _, q in busy} == {3}
    assert world.clock.t < metrics.fleet_t0 + 12 * HOUR


def test_batch_evaluator_matches_the_per_canary_evaluator(metrics: Metrics) -> None:
    names = ["good", "slow", "errors", "drift", "tail"]
    canaries = [ModelCanary.model_validate(world_canary(n, metrics.url)) for n in names]
    source = PrometheusSource(from_url(metrics.url, timeout_s=30))
    batch = BatchEvaluator(source)
    for day in (2, 9, 17):
        at = metrics.t0 + day * DAY
        requests = []
        for canary in canaries:
            due: list[DueCheck] = []
            for index in range(3):
                state = RolloutState(
                    spec_hash="x", stage="steps", started_at=0, stage_started_at=0, step_index=index
                )
                due += stage_checks(canary, state)
            requests.append(Request(canary.metadata.name, canary, due))
        found = batch.evaluate(requests, at)
        for request in requests:
            alone = evaluate(request.canary, request.due, source, at)
            assert found[request.key].checks.keys() == alone.checks.keys()
            for key, result in alone.checks.items():
                got = found[request.key].checks[key]
                assert (got.verdict, got.provider_error) == (result.verdict, result.provider_error)
                assert got.value == pytest.approx(result.value, rel=1e-9), (request.key, key)
                assert (got.load_candidate, got.load_stable) == (
                    result.load_candidate,
                    result.load_stable,
                )
        # built-ins: p95, p99, error rate, request count; the KPI is custom: 2 queries per
        # canary; a breached comparison (the KPI drift, not grouped) reads both loads, 2 more
        breached = sum(
            1
            for request in requests
            for result in found[request.key].checks.values()
            if result.verdict == "breach" and result.metric == "kpi"
        )
        assert batch.last.queries == 4 + 2 * len(canaries) + 2 * breached
