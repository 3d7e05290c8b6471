"""A candidate its route sends traffic to that gets no request says so, and why.

Two canaries on one Gateway, neither naming hostnames: their HTTPRoutes both match every request
on the listener, and only one gets them (Gateway API: the older route). The newer canary's
checks count no request of its candidate, so its status carries a ``NoTraffic`` warning (and an
Event) naming the older route; the older canary, whose candidate is served, has none. The warning
goes once an evaluation counts the candidate's requests again (tests/routing/test_overlap.py).
On FakeKube and on the real kube-apiserver (the controller lists the HTTPRoutes through the real
API).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support.controller_world import (
    DAY,
    NS,
    World,
    world_canary,
)
from support.real_world import RealWorld

from controlplane.status.document import NO_TRAFFIC
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = [pytest.mark.binary, pytest.mark.timeout(600)]

Make = Callable[..., World]


@pytest.fixture(params=["fake", "real"])
def make(request: pytest.FixtureRequest, metrics: Any) -> Make:
    if request.param == "fake":
        return lambda **kw: World(metrics.t0, metrics.url, **kw)
    loopback: LoopbackCluster = request.getfixturevalue("loopback")
    config = str(loopback.kubeconfig)
    return lambda **kw: RealWorld(metrics.t0, metrics.url, kubeconfig=config, **kw)


def warning(world: World, name: str) -> str | None:
    status = world.get(name).get("status") or {}
    found = [w["message"] for w in status.get("warnings") or [] if w.get("type") == NO_TRAFFIC]
    return found[0] if found else None


def evaluated(name: str, after: float) -> Callable[[World], bool]:
    def check(world: World) -> bool:
        last = world.state(name).last_evaluation
        return last is not None and float(last) > after

    return check


def test_a_route_that_another_takes_over_says_which(make: Make, metrics: Any) -> None:
    world = make()
    # "good" has metrics (its candidate is served); "quiet" none: nothing reaches its candidate
    world.create(world_canary("good", metrics.url))
    world.run_until(lambda w: (w.get("good").get("status") or {}).get("step") == 1, limit=DAY)
    world.create(world_canary("quiet", metrics.url))
    world.run_until(lambda w: warning(w, "quiet") is not None and w.step("good") == 1, limit=DAY)
    text = warning(world, "quiet")
    assert text is not None
    assert "finished no request at this evaluation while its route sends it 5% of the traffic" in (
        text
    )
    assert f"HTTPRoute {NS}/good on Gateway {NS}/gw matches the same requests" in text
    assert f"Gateway API gives them to the older, {NS}/good" in text
    assert "names no hostnames" in text
    # the older canary's candidate is served (its checks count requests): no warning
    assert warning(world, "good") is None
    assert (NO_TRAFFIC, text) in world.events("quiet")
    # one Event however many evaluations find the same
    at = world.clock.t
    world.run_until(evaluated("quiet", at), limit=DAY)
    assert warning(world, "quiet") == text
    assert world.events("quiet").count((NO_TRAFFIC, text)) == 1
