"""Capacity follows traffic: the controller sizes each variant to its share, in the plan's order.

With ``spec.capacity`` the candidate is scaled up and Ready before its weight rises, the stable
is scaled down only once traffic has left it, and a rollback restores the stable before traffic
returns (:mod:`controlplane.controller.capacity`). Here the fake cluster runs pods as a GPU pool
of a given size would (:class:`Pods`: a Deployment's ready replicas grow only while GPUs are
free), and every pass records what the HTTPRoute sends where beside how many replicas are ready:
no moment of a rollout may put a variant's share on fewer ready replicas than the plan gives that
share, and no moment may ask for more GPUs than the budget. On a cluster short of GPUs a step
waits, says so, and is rolled back at the progress deadline rather than run overloaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.controller_world import DAY, NS, Metrics, World, finished, world_canary

from controlplane.capacity import plan
from controlplane.controller import capacity as capacity_effect
from controlplane.controller.reconcile import Settings
from controlplane.kube.client import Ref
from controlplane.routing.gateway_api import API_VERSION, KIND
from controlplane.serving.object_names import predictor_service
from controlplane.spec.models import CapacitySpec

pytestmark = pytest.mark.binary

RATES = {"stable": 10.0, "candidate": 8.0}
"""Requests/s of one replica: a slower 4-bit candidate needs more replicas than the stable."""
CAPACITY = {"maxGPUs": 4, "requestsPerReplica": RATES}
DEMAND = 2 * RATES["stable"] * (1 - CapacitySpec().headroom)
"""The traffic the stable's two replicas were sized for, at the default headroom."""
ROLES = ("stable", "candidate")


@dataclass(frozen=True)
class Moment:
    """What one pass left behind: the candidate's weight on the route, each variant's ready
    replicas and the replicas its Deployment asks for."""

    t: float
    weight: int | None
    ready: dict[str, int]
    asked: dict[str, int]


@dataclass
class Pods:
    """Each variant's pods on a cluster of ``gpus`` GPUs (one a replica; None: enough): a
    Deployment's ready replicas follow its ``spec.replicas`` down at once and up while GPUs are
    free; written over what the fake KServe reports."""

    world: World
    name: str
    gpus: int | None = None
    ready: dict[str, int] = field(default_factory=dict)
    timeline: list[Moment] = field(default_factory=list)
    conditions: list[tuple[str, str, str]] = field(default_factory=list)
    """Each tick's ``CapacityReady`` condition of the canary: (status, reason, message)."""

    def deployment(self, role: str) -> Ref:
        variant = "bf16" if role == "stable" else "nf4"
        return Ref("apps/v1", "Deployment", NS, predictor_service(f"{self.name}-llm-{variant}"))

    def tick(self) -> None:
        asked = {}
        for role in ROLES:
            live = self.world.kube.peek(self.deployment(role))
            asked[role] = 0 if live is None else int(live["spec"].get("replicas", 0))
            self.ready[role] = min(self.ready.get(role, 0), asked[role])
        for role in ROLES:
            free = None if self.gpus is None else self.gpus - sum(self.ready.values())
            grow = asked[role] - self.ready[role]
            if free is not None:
                grow = min(grow, free)
            self.ready[role] += max(grow, 0)
        for role in ROLES:
            ref = self.deployment(role)
            live = self.world.kube.peek(ref)
            if live is not None:
                status = {**(live.get("status") or {}), "readyReplicas": self.ready[role]}
                status["availableReplicas"] = self.ready[role]
                self.world.kube.system_replace_status(ref, status)
        self.timeline.append(Moment(self.world.clock.t, self.weight(), dict(self.ready), asked))
        status = self.world.get(self.name).get("status") or {}
        for cond in status.get("conditions") or []:
            if cond["type"] == "CapacityReady":
                self.conditions.append((cond["status"], cond["reason"], cond.get("message", "")))

    def weight(self) -> int | None:
        route = self.world.kube.peek(Ref(API_VERSION, KIND, NS, self.name))
        if route is None:
            return None
        weights: dict[str, int] = {}
        for ref in route["spec"]["rules"][-1]["backendRefs"]:
            weights[ref["name"]] = int(ref.get("weight", 1))
        total = sum(weights.values())
        candidate = predictor_service(f"{self.name}-llm-nf4")
        return 0 if total == 0 else round(100 * weights.get(candidate, 0) / total)


def drive(world: World, pods: Pods, name: str, limit: float) -> None:
    """Run the controller over the pods until ``name`` ended and was finalized, or ``limit``."""
    end = world.start + limit
    while world.clock.t <= end:
        world.kserve.tick()
        pods.tick()
        wake = world.pass_once()
        pods.tick()
        book = (world.get(name).get("status") or {}).get("controller") or {}
        if finished(name)(world) and book.get("finishedAt") is not None:
            return
        world.clock.t = max(world.clock.t + 0.001, wake if wake is not None else end)


def needed(role: str, weight: int) -> int:
    percent = weight if role == "candidate" else 100 - weight
    capacity = plan.ReplicaCapacity(RATES[role], 1, "test")
    return plan.needed(DEMAND, percent, capacity, CapacitySpec())


def overloaded(timeline: list[Moment]) -> list[Moment]:
    """Moments, from the first with traffic on the candidate, where a variant's share of the
    route ran on fewer ready replicas than the plan gives that share."""
    start = next((i for i, m in enumerate(timeline) if m.weight), len(timeline))
    return [
        m
        for m in timeline[start:]
        if m.weight is not None and any(m.ready[r] < needed(r, m.weight) for r in ROLES)
    ]


STABLE_2 = {"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s", "replicas": 2}
"""The controller tests' stable with two replicas."""


def test_the_candidate_is_scaled_up_before_its_weight_and_the_stable_down_after(
    metrics: Metrics,
) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("good", metrics.url, stable=STABLE_2, capacity=CAPACITY))
    pods = Pods(world, "good")
    drive(world, pods, "good", limit=30 * DAY)

    assert world.state("good").stage == "promoted", world.state("good")
    assert overloaded(pods.timeline) == [], overloaded(pods.timeline)[:3]
    assert max(sum(m.asked.values()) for m in pods.timeline) <= 4
    weights = [m.weight for m in pods.timeline]
    assert {5, 25, 75, 100} <= set(weights), weights
    # the candidate had two ready replicas before 75 % reached it, three before 100 %
    first_75 = next(m for m in pods.timeline if m.weight == 75)
    first_100 = next(m for m in pods.timeline if m.weight == 100)
    assert first_75.ready["candidate"] >= 2
    assert first_100.ready["candidate"] >= 3
    # ... and the stable kept two until 75 % had left it
    before_75 = [m for m in pods.timeline if m.t < first_75.t and m.weight]
    assert all(m.ready["stable"] == 2 for m in before_75)
    assert min(m.asked["stable"] for m in pods.timeline if m.weight == 75) == 1
    reasons = [r for r, _ in world.events("good")]
    assert "Scaled" in reasons
    assert "CapacityPending" in reasons
    # promoted: the candidate is sized for all the traffic
    candidate = world.kube.get(
        Ref("serving.kserve.io/v1beta1", "InferenceService", NS, "good-llm-nf4")
    )
    assert candidate["spec"]["predictor"]["minReplicas"] == 3


def test_without_a_plan_the_fixed_candidate_takes_75_percent_on_one_replica(
    metrics: Metrics,
) -> None:
    """The same rollout with fixed replicas: what the test above would see without the plan."""
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("good", metrics.url, stable=STABLE_2))
    pods = Pods(world, "good")
    drive(world, pods, "good", limit=30 * DAY)
    assert world.state("good").stage == "promoted"
    worst = overloaded(pods.timeline)
    assert worst
    assert {m.weight for m in worst} >= {75, 100}, worst[:3]


def test_a_rollback_restores_the_stable_before_traffic_returns(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(
        world_canary("tail", metrics.url, stable=STABLE_2, capacity=CAPACITY)
    )  # breaches at step 3
    pods = Pods(world, "tail")
    drive(world, pods, "tail", limit=30 * DAY)

    state = world.state("tail")
    assert state.stage == "rolled_back", state
    assert state.step == 3
    assert overloaded(pods.timeline) == [], overloaded(pods.timeline)[:3]
    back = next(
        i
        for i, m in enumerate(pods.timeline)
        if m.weight == 0 and i > 0 and pods.timeline[i - 1].weight == 75
    )
    assert pods.timeline[back].ready["stable"] == 2
    assert any(m.asked["stable"] == 1 for m in pods.timeline[:back])


def test_a_cluster_short_of_gpus_holds_the_step_then_rolls_it_back(metrics: Metrics) -> None:
    deadline = 1200.0  # retried every second while it waits: a short one keeps it short
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=deadline))
    world.create(world_canary("good", metrics.url, stable=STABLE_2, capacity=CAPACITY))
    pods = Pods(world, "good", gpus=3)  # the budget says 4; the cluster has 3
    drive(world, pods, "good", limit=30 * DAY)

    state = world.state("good")
    assert state.stage == "rolled_back", state
    assert state.reason is not None
    assert state.reason.kind == "not-routed", state.reason
    assert "waiting for capacity" in state.reason.message, state.reason
    assert state.step == 3
    assert overloaded(pods.timeline) == [], overloaded(pods.timeline)[:3]
    assert 75 not in {m.weight for m in pods.timeline}
    pending = [m for r, m in world.events("good") if r == "CapacityPending"]
    assert any("candidate 1/2 ready" in m for m in pending), pending
    # ... and the status said so while it waited, in a condition of its own
    waiting = [c for c in pods.conditions if c[0] == "False"]
    assert waiting, pods.conditions[-3:]
    assert waiting[-1][1] == "WaitingForCapacity"
    assert "candidate 1/2 ready" in waiting[-1][2]
    assert ("True", "PlannedReplicasReady", "") in pods.conditions  # before step 3


def test_the_plan_follows_the_traffic_users_send(metrics: Metrics) -> None:
    """The scenario's users send 10 requests/s; at 4 a replica, kept at 80 %, the stable's two
    were sized for 6.4: from the first evaluation the plan sizes for what it reads."""
    world = World(metrics.t0, metrics.url)
    rates = {"stable": 4.0, "candidate": 4.0}
    world.create(
        world_canary("good", metrics.url, stable=STABLE_2, capacity={"requestsPerReplica": rates})
    )
    pods = Pods(world, "good")
    drive(world, pods, "good", limit=30 * DAY)

    assert world.state("good").stage == "promoted"
    record = world.get("good")["status"]["capacity"]
    assert record["demandRps"] == pytest.approx(10.0, rel=0.05)
    assert record["planned"] == {"stable": 0, "candidate": 4}  # ceil(10 / 3.2)
    # at 5 % the stable carried 9.5 of them on three replicas, more than its two
    at_5 = [m for m in pods.timeline if m.weight == 5]
    assert max(m.asked["stable"] for m in at_5) == 3, at_5[-1]


def test_traffic_beyond_the_budget_keeps_the_plan_validation_checked(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    rates = {"stable": 4.0, "candidate": 4.0}
    spec = {"maxGPUs": 4, "requestsPerReplica": rates}  # 10 requests/s would need 5 at 75 %
    world.create(world_canary("good", metrics.url, stable=STABLE_2, capacity=spec))
    pods = Pods(world, "good")
    drive(world, pods, "good", limit=30 * DAY)

    assert world.state("good").stage == "promoted"
    assert max(sum(m.asked.values()) for m in pods.timeline) <= 4
    record = world.get("good")["status"]["capacity"]
    assert record["demandRps"] == pytest.approx(10.0, rel=0.05)
    assert record["planned"] == {"stable": 0, "candidate": 2}  # ceil(6.4 / 3.2)


def test_a_reconcile_reads_each_variants_deployment_once(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a step waits for capacity, each reconcile needs the ready pods twice (the wait and
    ``status.capacity``): one read of each Deployment serves both, until a scale (then read
    again)."""
    reads: list[Counter[str]] = [Counter()]
    real = capacity_effect.ready_replicas

    def counting(kube: Any, canary: Any, role: str) -> int:
        reads[-1][role] += 1
        return real(kube, canary, role)

    def scaling(*args: Any) -> list[str]:
        changed = real_scale(*args)
        if changed:
            reads.append(Counter())  # what it scaled is read again
        return changed

    real_scale = capacity_effect.scale
    monkeypatch.setattr(capacity_effect, "ready_replicas", counting)
    monkeypatch.setattr(capacity_effect, "scale", scaling)
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=1200.0))
    world.create(world_canary("good", metrics.url, stable=STABLE_2, capacity=CAPACITY))
    pods = Pods(world, "good", gpus=3)
    once = world.pass_once

    def counted() -> float | None:
        reads.append(Counter())
        return once()

    monkeypatch.setattr(world, "pass_once", counted)
    drive(world, pods, "good", limit=30 * DAY)
    assert world.state("good").stage == "rolled_back"
    waited = [c for c in reads if c["candidate"]]
    assert len(waited) > 10  # it waited, reading the candidate's pods at every pass
    most = max(reads, key=lambda c: max(c.values(), default=0))
    assert max(most.values()) == 1, most
