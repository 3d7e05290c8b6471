"""A quality canary driven by the whole controller on the fake cluster (:class:`World`): step 1
waits for the pairer's rollout, the route sends the sample through it from step 1, each
evaluation folds the pairs read into ``status.quality``, the step before the last holds for a
pass, a breach rolls back with the judge's words, and the outcome's cleanup deletes the pairer.
The pairs come from a scripted reader in place of the pairer's HTTP page."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from support.controller_world import DAY, HOUR, NS, Metrics, World, finished, world_canary
from support.pairs import rolled_out

from controlplane.controller.children import rollout_waiting
from controlplane.kube.client import Ref
from controlplane.serving.pairer import PORTS
from controlplane.spec.models import ModelCanary

pytestmark = pytest.mark.binary  # the scenarios' Prometheus

QUALITY = {"sample": "5%", "metric": "agreement", "tolerance": 0.1, "alpha": 0.05}
ROUTE = Ref("gateway.networking.k8s.io/v1", "HTTPRoute", NS, "good")


@dataclass
class Pairs:
    """A pairer's pages: ``per_read`` new pairs of ``agreement`` each time it is read, from the
    world's time ``from_t`` on (none before); the reads it answered."""

    world: World | None = None
    agreement: float = 1.0
    per_read: int = 20
    from_t: float = 0.0
    made: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        self.reads += 1
        if self.world is not None and self.world.clock.t >= self.from_t:
            first = len(self.made) + 1
            self.made += [
                {"seq": n, "agreement": self.agreement, "kl": 0.0}
                for n in range(first, first + self.per_read)
            ]
        pairs = [p for p in self.made if p["seq"] > after]
        return {"epoch": "e1", "after": after, "last": len(self.made), "lost": 0, "pairs": pairs}


def quality_world(metrics: Metrics, pairs: Pairs, **spec: Any) -> World:
    world = World(metrics.t0, metrics.url, pairs=pairs)
    world.settings = replace(world.settings, pairer_image="controlplane:test")
    world.controller = world.new_controller()
    pairs.world = world
    world.create(world_canary("good", metrics.url, quality=QUALITY, **spec))
    return world


def roll_out_the_pairer(world: World, canary: str = "good") -> None:
    """What the Deployment controller writes once ``canary``'s pairer's pod is available (after
    the controller has made it)."""
    ref = Ref("apps/v1", "Deployment", NS, f"{canary}-pairer")
    world.run_until(lambda w: w.kube.peek(ref) is not None, limit=HOUR)
    live = world.kube.get(ref)
    world.kube.system_replace_status(ref, rolled_out(live["metadata"].get("generation", 1)))
    assert rollout_waiting(world.kube.get(ref)) is None


def pairer_ports(world: World) -> list[int]:
    rules = world.kube.get(ROUTE)["spec"]["rules"]
    return [b["port"] for r in rules for b in r["backendRefs"] if b["name"] == "good-pairer"]


def pairer_left(world: World) -> bool:
    return any(
        world.kube.peek(Ref(v, k, NS, "good-pairer")) is not None
        for v, k in (("apps/v1", "Deployment"), ("v1", "Service"))
    )


def test_step_one_waits_for_the_pairer_and_the_cleanup_deletes_it(metrics: Metrics) -> None:
    pairs = Pairs()
    world = quality_world(metrics, pairs)
    # the candidate is ready within minutes; the progress deadline is hours off
    world.run_until(lambda w: False, limit=HOUR)
    assert world.state("good").stage == "pending", world.state("good")
    assert "good-pairer" in str(world.get("good")["status"]), world.get("good")["status"]
    assert pairer_ports(world) == []

    roll_out_the_pairer(world)
    world.run_until(lambda w: w.step("good") >= 1, limit=2 * DAY)
    assert world.state("good").stage == "steps"
    assert sorted(pairer_ports(world)) == sorted(PORTS.values())

    world.run_until(finished("good"), limit=40 * DAY)
    state = world.state("good")
    assert state.stage == "promoted", state.history
    assert state.quality is not None
    assert state.quality.decided == "pass", state.quality
    assert not [e for e in state.history if e.type == "Held"], state.history
    assert pairer_ports(world) == []
    world.run_until(lambda w: not pairer_left(w), limit=41 * DAY)
    assert not pairer_left(world)


def test_the_step_before_the_last_holds_until_the_pairs_pass(metrics: Metrics) -> None:
    pairs = Pairs()
    world = quality_world(metrics, pairs)
    roll_out_the_pairer(world)
    # a day past the 75 % step's end (3 x 7 days from step 1), inside the scenario's metrics
    # (its checks pass until they end, at 25 days)
    pairs.from_t = metrics.t0 + 22 * DAY
    world.run_until(finished("good"), limit=40 * DAY)
    state = world.state("good")
    assert state.stage == "promoted", state.history
    held = [e for e in state.history if e.type == "Held"]
    assert len(held) == 1, state.history
    assert held[0].weight == 75, held
    assert "waits for quality: no pair scored yet" in held[0].message, held
    promoted = state.history[-1]
    assert promoted.time >= pairs.from_t


def test_a_candidate_that_answers_otherwise_is_rolled_back_on_quality(metrics: Metrics) -> None:
    pairs = Pairs(agreement=0.0)
    world = quality_world(metrics, pairs)
    roll_out_the_pairer(world)
    world.run_until(finished("good"), limit=40 * DAY)
    state = world.state("good")
    assert state.stage == "rolled_back", state.history
    assert state.reason is not None
    assert state.reason.kind == "quality", state.reason
    assert "mean disagreement 1 over" in state.reason.message, state.reason
    assert state.history[-1].weight == 0
    world.run_until(lambda w: not pairer_left(w), limit=41 * DAY)
    assert not pairer_left(world)


SHADOW = {"duration": "2d", "promoteOn": {"metric": "kpi", "above": "0", "for": "4h"}}


def test_a_breach_in_the_shadow_phase_rolls_back_before_any_user_meets_the_candidate(
    metrics: Metrics,
) -> None:
    pairs = Pairs(agreement=0.0)
    world = quality_world(metrics, pairs, shadow=SHADOW)
    roll_out_the_pairer(world)
    world.run_until(lambda w: w.state("good").stage != "pending", limit=DAY)
    assert world.state("good").stage == "shadow"
    # every request is the stable's, its sample through the pairer's stable port
    assert pairer_ports(world) == [PORTS["stable"], PORTS["candidate"]]
    world.run_until(finished("good"), limit=10 * DAY)
    state = world.state("good")
    assert state.stage == "rolled_back", state.history
    assert state.reason is not None
    assert state.reason.kind == "quality", state.reason
    assert not any(h.type == "StepStarted" for h in state.history), state.history


class Meeting:
    """A pairer reader whose every read waits, up to :data:`MEETING_S`, for another read to be
    in flight at the same time; it counts the reads that met one."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.in_flight = 0
        self.met = 0

    def page(self, canary: ModelCanary, after: int) -> Mapping[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.lock.notify_all()
            if self.lock.wait_for(lambda: self.in_flight >= 2, timeout=MEETING_S):
                self.met += 1
        with self.lock:
            self.in_flight -= 1
        return {"epoch": "e1", "after": after, "last": 0, "lost": 0, "pairs": []}


MEETING_S = 10.0
"""How long a read waits for the other: read one after the other, neither ever meets one."""


def test_the_pairers_of_one_tick_are_read_at_the_same_time(metrics: Metrics) -> None:
    """Two quality canaries evaluated in one tick: their pairers are read beside each other
    (and the batch's queries), not one after the other, so one slow pairer does not add its
    timeout to every canary's."""
    meeting = Meeting()
    world = World(metrics.t0, metrics.url, pairs=meeting)
    world.settings = replace(world.settings, pairer_image="controlplane:test")
    world.controller = world.new_controller()
    for name in ("one", "two"):
        world.create(world_canary(name, metrics.url, quality=QUALITY))
    for name in ("one", "two"):
        roll_out_the_pairer(world, name)
    world.run_until(lambda w: w.step("one") >= 1 and w.step("two") >= 1, limit=2 * DAY)
    world.run_until(lambda w: meeting.met >= 2, limit=3 * DAY)
    assert meeting.met >= 2
