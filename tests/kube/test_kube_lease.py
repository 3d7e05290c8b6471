"""Leader election on a Lease: one leader at a time, takeover after expiry, races lose cleanly."""

from __future__ import annotations

import pytest

from controlplane.errors import Conflict, NotFound
from controlplane.kube.client import Ref
from controlplane.kube.lease import LeaderElector
from controlplane.status.times import parse_time
from harness.kube.fake import FakeKube

LEASE = Ref("coordination.k8s.io/v1", "Lease", "canary-system", "canary-controller")


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def kube(clock: Clock) -> FakeKube:
    return FakeKube(now=clock)


def elector(kube: FakeKube, clock: Clock, identity: str, duration: float = 15) -> LeaderElector:
    return LeaderElector(kube, "canary-system", "canary-controller", identity, duration, clock)


def test_first_candidate_creates_the_lease(kube: FakeKube, clock: Clock) -> None:
    a = elector(kube, clock, "pod-a")
    assert a.try_acquire_or_renew()
    assert a.is_leader()
    spec = kube.get(LEASE)["spec"]
    assert spec["holderIdentity"] == "pod-a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == "2027-01-15T08:00:00.000000Z"
    assert parse_time(spec["renewTime"]) == clock.t


def test_renew_moves_renew_time_only(kube: FakeKube, clock: Clock) -> None:
    a = elector(kube, clock, "pod-a")
    a.try_acquire_or_renew()
    clock.t += 5.25
    assert a.try_acquire_or_renew()
    spec = kube.get(LEASE)["spec"]
    assert spec["renewTime"] == "2027-01-15T08:00:05.250000Z"
    assert spec["acquireTime"] == "2027-01-15T08:00:00.000000Z"
    assert spec["leaseTransitions"] == 0


@pytest.mark.parametrize(
    ("wait", "b_leads"),
    [
        pytest.param(0, False, id="fresh-lease"),
        pytest.param(14.9, False, id="just-before-expiry"),
        pytest.param(15, True, id="at-expiry"),
        pytest.param(60, True, id="long-expired"),
    ],
)
def test_takeover_only_after_expiry(
    kube: FakeKube, clock: Clock, wait: float, b_leads: bool
) -> None:
    a, b = elector(kube, clock, "pod-a"), elector(kube, clock, "pod-b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b observes a's record now
    clock.t += wait  # a stops renewing (crashed)
    assert b.try_acquire_or_renew() is b_leads
    assert kube.get(LEASE)["spec"]["holderIdentity"] == ("pod-b" if b_leads else "pod-a")
    if b_leads:
        assert kube.get(LEASE)["spec"]["leaseTransitions"] == 1
        assert not a.is_leader()  # a's own lease ran out at the same moment
        assert not a.try_acquire_or_renew()  # and a cannot renew a lease it lost


def test_only_one_leader_at_a_time_while_time_passes(kube: FakeKube, clock: Clock) -> None:
    candidates = [elector(kube, clock, f"pod-{i}", duration=10) for i in range(3)]
    holders: list[str] = []
    for step in range(200):
        # pod-0 renews for a while, then dies; the others keep trying every 2 s
        alive = candidates if step < 50 else candidates[1:]
        for candidate in alive:
            candidate.try_acquire_or_renew()
        leaders = [c.identity for c in candidates if c.is_leader()]
        assert len(leaders) <= 1, f"split brain at step {step}: {leaders}"
        if leaders:
            holders.append(leaders[0])
        clock.t += 2
    assert holders[0] == "pod-0"
    assert holders[-1] in ("pod-1", "pod-2")
    assert set(holders) == {"pod-0", holders[-1]}  # exactly one handover


def test_a_renew_that_loses_the_race_is_not_leader(kube: FakeKube, clock: Clock) -> None:
    a = elector(kube, clock, "pod-a")
    a.try_acquire_or_renew()
    kube.fail_next("replace", Conflict("409 Conflict: the object has been modified"))
    clock.t += 1
    assert not a.try_acquire_or_renew()
    assert not a.is_leader()
    assert a.try_acquire_or_renew()  # next round, with a fresh read, it renews


def test_two_candidates_racing_for_an_expired_lease(kube: FakeKube, clock: Clock) -> None:
    a, b, c = (elector(kube, clock, n) for n in ("pod-a", "pod-b", "pod-c"))
    assert a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    clock.t += 20
    # b and c both read the expired lease; b writes first, c's write carries a stale version.
    stale = kube.get(LEASE)
    assert b.try_acquire_or_renew()
    stale["spec"]["holderIdentity"] = "pod-c"
    with pytest.raises(Conflict):
        kube.replace(stale)
    assert not c.try_acquire_or_renew()  # fresh read: held by b and not expired
    assert kube.get(LEASE)["spec"]["holderIdentity"] == "pod-b"


def test_creating_race_loses_with_already_exists(kube: FakeKube, clock: Clock) -> None:
    a, b = elector(kube, clock, "pod-a"), elector(kube, clock, "pod-b")
    kube.fail_next("get", NotFound("404"))
    assert a.try_acquire_or_renew()
    kube.fail_next("get", NotFound("404"))
    assert not b.try_acquire_or_renew()  # its create hits AlreadyExists


def test_release_hands_over_at_once(kube: FakeKube, clock: Clock) -> None:
    a, b = elector(kube, clock, "pod-a"), elector(kube, clock, "pod-b")
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert not a.is_leader()
    assert b.try_acquire_or_renew()
    assert kube.get(LEASE)["spec"]["holderIdentity"] == "pod-b"
    assert not a.release()  # not ours any more


def test_duration_is_whole_seconds_on_the_wire(kube: FakeKube, clock: Clock) -> None:
    a = elector(kube, clock, "pod-a", duration=10.2)
    a.try_acquire_or_renew()
    assert kube.get(LEASE)["spec"]["leaseDurationSeconds"] == 11
    assert a.lease_duration_s == 11
