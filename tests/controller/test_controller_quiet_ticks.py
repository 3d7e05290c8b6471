"""What a tick costs when nothing changed, on FakeKube and on the real API server alike.

A fleet of canaries (support/kube_fleet.py) is driven into its first step; then a tick with
nothing due sends no request at all, a full resync (a restarted controller reconciling every
canary) writes no status and reads each canary once (and, under the capacity plan, its serving
objects and Deployments once), and neither grows but by those reads with the number of unchanged
canaries: 10 more canaries that nothing happens to cost a resync 10 times those reads and a
quiet tick nothing. bench/kube_scale.py measures the same ticks at 1,000 and 10,000 canaries.
"""

from __future__ import annotations

import time

import pytest
from support.kube_fleet import Fleet, Tick

from controlplane.status.document import same_status
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = [pytest.mark.binary, pytest.mark.timeout(300)]

START = float(int(time.time()) // 3600 * 3600)


def into_first_step(fleet: Fleet) -> list[Tick]:
    """Create the canaries and drive them (tick by tick) until all are in step 1."""
    fleet.create_all()
    ticks = [fleet.tick()]
    while fleet.stages() != {"steps": fleet.size}:
        wake = fleet.next_wake()
        assert wake is not None, fleet.stages()
        assert wake < START + 86400, fleet.stages()
        fleet.clock.t = max(fleet.clock.t, wake)
        ticks.append(fleet.tick())
    return ticks


@pytest.fixture(params=["fake", "real"])
def make(request: pytest.FixtureRequest) -> object:
    if request.param == "fake":
        return lambda size, ns, capacity: Fleet(size, START, namespace=ns, capacity=capacity)
    loopback: LoopbackCluster = request.getfixturevalue("loopback")
    config = str(loopback.kubeconfig)
    return lambda size, ns, capacity: Fleet(
        size, START, kubeconfig=config, namespace=ns, capacity=capacity
    )


# What a restarted controller reads of each canary: the canary; under the capacity plan (the
# default) also its two serving objects (the replicas they ask for) and their two Deployments
# (the replicas ready, for status.capacity), each once.
READS = {"plan": 5, "fixed": 1}


@pytest.mark.parametrize("mode", ["plan", "fixed"])
def test_quiet_ticks_write_nothing_and_do_not_grow_with_the_fleet(make: object, mode: str) -> None:
    costs = {}
    capacity = None if mode == "plan" else {"mode": "fixed"}
    for size in (10, 20):
        ns = f"quiet-{mode}-{size}-{time.time_ns() % 10**9}"
        fleet = make(size, ns, capacity)  # type: ignore[operator]
        busy = into_first_step(fleet)
        # getting there did write: one status write per canary and decision at least
        assert sum(t.status_writes for t in busy) >= 2 * size
        assert busy[0].calls["apply"] > 0

        # nothing is due until the first evaluation (2h after the step began): a pass now
        # reconciles nothing and sends nothing, however many canaries there are
        wake = fleet.next_wake()
        assert wake is not None
        assert wake > fleet.clock.t + 3600
        fleet.clock.t = wake - 60
        quiet = fleet.tick()
        assert (quiet.reconciles, quiet.requests, quiet.status_writes) == (0, 0, 0)

        # a restarted controller reconciles every canary once: reads, writes nothing (the
        # GPU-hours of status.capacity are those up to its time, not rewritten as time passes)
        resync = fleet.restart()
        assert resync.reconciles == size
        assert resync.status_writes == 0
        assert resync.calls == {"list_with_version": 1, "get": READS[mode] * size}
        # and its next pass is quiet again
        again = fleet.tick()
        assert (again.requests, again.status_writes) == (0, 0)

        # the evaluation tick does change every status (the analysis result), once each
        fleet.clock.t = wake
        evaluated = fleet.tick()
        assert evaluated.status_writes == size
        costs[size] = evaluated.requests

    # an evaluation costs the same per canary at 10 and 20
    assert costs[20] * 10 == costs[10] * 20


def test_an_integral_time_read_back_from_the_server_is_the_same_status() -> None:
    # the API server writes float64 1795370400.0 back as 1795370400
    written = {"controller": {"verified": {"at": 1795370400.0, "weight": 10}}}
    read = {"controller": {"verified": {"at": 1795370400, "weight": 10}}}
    assert same_status(written, read)
    assert not same_status(written, {"controller": {"verified": {"at": 1795370400.5}}})
    assert not same_status({"paused": True}, {"paused": 1})
