"""A router that refuses the weights is in ``status.warnings`` while it lasts, beside its
``WeightsNotVerified`` Event, and leaves it once the weights are verified (issue #41: trouble
shown only in ``kubectl get events``)."""

from __future__ import annotations

from typing import Any

from support.controller_world import HOUR, World, world_canary

from controlplane.errors import RouterError
from controlplane.routing.memory import MemoryRouter
from controlplane.spec.models import ModelCanary

T0 = 1_800_000_000.0
PROM = "http://prometheus.invalid:9090"
NEVER = "memory: the route never converges"


class FlakyRouter(MemoryRouter):
    broken = True

    def verify(self, canary: ModelCanary, expected: Any) -> None:
        if self.broken:
            raise RouterError(NEVER)
        super().verify(canary, expected)


def _warnings(world: World) -> list[dict[str, Any]]:
    return list((world.get("dead").get("status") or {}).get("warnings") or [])


def test_router_trouble_is_a_status_warning_while_it_lasts() -> None:
    router = FlakyRouter()
    world = World(T0, PROM, router_for=lambda _canary: router)
    world.create(world_canary("dead", PROM))
    world.run_until(lambda w: bool(_warnings(w)), limit=2 * HOUR)
    (warning,) = _warnings(world)
    assert (warning["type"], warning["message"], warning["count"]) == (
        "WeightsNotVerified",
        NEVER,
        1,
    )
    first = warning["at"]
    version = world.get("dead")["metadata"]["resourceVersion"]
    world.clock.t += 60
    world.settle(3)
    assert _warnings(world) == [warning]  # a lasting failure changes nothing
    assert first == _warnings(world)[0]["at"]
    assert world.get("dead")["metadata"]["resourceVersion"] == version
    router.broken = False
    world.run_until(lambda w: not _warnings(w), limit=4 * HOUR)
    assert "warnings" not in world.get("dead")["status"]
