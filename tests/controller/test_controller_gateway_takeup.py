"""A step's weights count as verified only once the Gateway's controller has taken them up.

The gateway-api router reads its HTTPRoute back and, where a Gateway controller reports on the
canary's parent (``status.parents[].conditions[Accepted].observedGeneration``, Gateway API
v1.5.1), waits for it to report the route's current generation
(:func:`controlplane.routing.gateway_api.taken_up`). Here a stand-in Gateway controller on the
fake cluster reports each generation :data:`LAG_S` seconds after it was written, as Traefik does
after an API server outage (its informers back off): the step's clock starts at the take-up, the
promotion's cleanup delay counts from it, and a gateway that never takes the route up rolls the
canary back as ``not-routed`` at the progress deadline, while a person's ``abort`` or ``promote
--full`` is acted on at once. The same on the real Traefik:
``tests/routing/test_real_resilience.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from support.controller_world import DAY, NS, Metrics, World, finished, world_canary

from controlplane.controller.reconcile import Settings
from controlplane.kube.client import Ref, canary_ref
from controlplane.rollout.intents import INTENT_ANNOTATION
from controlplane.routing.gateway_api import API_VERSION, KIND
from controlplane.spec.units import time_value

pytestmark = pytest.mark.binary

TRAEFIK = "traefik.io/gateway-controller"
LAG_S = 90.0
DEADLINE_S = 900.0
"""The progress deadline of the gateway that never takes the route up (the weights are asked
again every second meanwhile: a short one keeps the test short)."""


@dataclass
class LaggingGateway:
    """Reports each generation of the canary's HTTPRoute ``lag_s`` after it first saw it
    (``None``: never reports the new ones, only the first); with ``refuse``, reports every
    generation after the first at once, not accepted."""

    world: World
    name: str
    lag_s: float | None = LAG_S
    refuse: bool = False
    seen: dict[int, float] = field(default_factory=dict)
    reported: list[tuple[int, float]] = field(default_factory=list)

    def tick(self) -> None:
        now = self.world.clock.t
        ref = Ref(API_VERSION, KIND, NS, self.name)
        route = self.world.kube.peek(ref)
        if route is None:
            return
        generation = int(route["metadata"]["generation"])
        self.seen.setdefault(generation, now)
        due = [
            g
            for g, at in self.seen.items()
            if g == min(self.seen)
            or self.refuse
            or (self.lag_s is not None and at + self.lag_s <= now)
        ]
        latest = max(due)
        if self.reported and self.reported[-1][0] == latest:
            return
        self.reported.append((latest, now))
        accepted = not self.refuse or latest == min(self.seen)
        self.world.kube.system_replace_status(ref, status(route, latest, accepted))


def status(route: dict[str, Any], generation: int, accepted: bool = True) -> dict[str, Any]:
    parent = route["spec"]["parentRefs"][0]
    condition = {
        "type": "Accepted",
        "status": "True" if accepted else "False",
        "reason": "Accepted" if accepted else "NotAllowedByListeners",
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "message": "",
    }
    entry = {"parentRef": parent, "controllerName": TRAEFIK, "conditions": [condition]}
    return {"parents": [entry]}


def finalized(world: World, name: str) -> bool:
    """``name`` ended and its outcome is in effect on the router (the book's ``finishedAt``)."""
    book = (world.get(name).get("status") or {}).get("controller") or {}
    return finished(name)(world) and book.get("finishedAt") is not None


def step_asked(world: World, name: str) -> bool:
    """Step 1 was asked for (its weights need not be in effect)."""
    history = (world.get(name).get("status") or {}).get("history") or []
    return "StepStarted" in [h["type"] for h in history]


def drive(
    world: World, gateway: LaggingGateway, name: str, limit: float, until: Any = finalized
) -> None:
    """Run the controller and the gateway together until ``until(world, name)`` (``name``'s
    outcome in effect) or ``limit`` passes."""
    end = world.start + limit
    while not until(world, name) and world.clock.t <= end:
        wake = world.pass_once()
        gateway.tick()
        world.clock.t = max(world.clock.t + 0.001, wake if wake is not None else end)


def test_each_step_starts_when_the_gateway_has_taken_up_its_weights(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    world.create(world_canary("good", metrics.url))
    gateway = LaggingGateway(world, "good")
    drive(world, gateway, "good", limit=25 * DAY)

    state = world.state("good")
    assert state.stage == "promoted", state
    history = world.history("good")
    kinds = [h[0] for h in history]
    assert kinds == ["StepStarted", "Advanced", "Advanced", "Advanced", "Promoted"], kinds
    # every weight (5, 25, 75, 100 %) was taken up LAG_S after it was written ...
    generations = sorted(gateway.seen.items())
    assert [g for g, _ in gateway.reported] == [g for g, _ in generations], gateway.reported
    assert len(generations) == 5, generations
    for (g, at), (_, written) in zip(gateway.reported[1:], generations[1:], strict=True):
        assert at - written >= LAG_S, (g, at, written)
    # ... and each timed step lasted its 7 days from there, not from the write: its clock
    # started at the take-up (without the check it would end LAG_S early)
    taken = [at for _, at in gateway.reported[1:4]]
    ends = [h[1] for h in history[1:4]]
    for at, end in zip(taken, ends, strict=True):
        assert end - at >= 7 * DAY, (at, end, gateway.reported)
    reasons = [r for r, _ in world.events("good")]
    assert "WeightsPending" in reasons
    messages = {m for r, m in world.events("good") if r == "WeightsPending"}
    assert any(TRAEFIK in m and "has not taken up generation" in m for m in messages), messages
    # the promotion counts as done (and its cleanup delay runs) from the take-up of 100 %
    finished_at = time_value(world.get("good")["status"]["controller"]["finishedAt"])
    assert finished_at >= gateway.reported[-1][1], (finished_at, gateway.reported)


def test_a_gateway_that_never_takes_up_the_weights_rolls_back_as_not_routed(
    metrics: Metrics,
) -> None:
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=DEADLINE_S))
    world.create(world_canary("good", metrics.url))
    gateway = LaggingGateway(world, "good", lag_s=None)
    drive(world, gateway, "good", limit=DAY, until=lambda w, n: finished(n)(w))

    state = world.state("good")
    assert state.stage == "rolled_back", state
    assert state.reason is not None
    assert state.reason.kind == "not-routed", state.reason
    assert "has not taken up generation" in state.reason.message, state.reason
    # step 1 was asked for and never began: nothing advanced, nothing was judged
    assert [h[0] for h in world.history("good")] == ["StepStarted", "RolledBack"]


@pytest.mark.parametrize("refuse", [True, False], ids=["refused", "not-taken-up"])
@pytest.mark.parametrize(
    ("verb", "stage", "kind"),
    [("abort", "rolled_back", "RolledBack"), ("promote-full", "promoted", "Promoted")],
)
def test_a_person_s_intent_is_heard_while_the_step_s_weights_are_not_in_effect(
    metrics: Metrics, verb: str, stage: str, kind: str, refuse: bool
) -> None:
    """A refused weight (a RouterError) used to be raised before the machine saw the intents,
    so neither ``abort`` nor ``promote --full`` did anything until the progress deadline (found
    by the ``kserve``-router promotion on real traffic, where KServe v0.20.0 never puts the
    weights in effect); weights not yet taken up (RouterPending) never were."""
    world = World(metrics.t0, metrics.url, settings=Settings(progress_deadline_s=DEADLINE_S))
    world.create(world_canary("good", metrics.url))
    gateway = LaggingGateway(world, "good", lag_s=None, refuse=refuse)
    drive(world, gateway, "good", limit=DAY, until=step_asked)
    assert world.state("good").stage == "steps"
    at = world.clock.t
    intent = {"id": "by-hand", "verb": verb, "at": at, "user": "alice"}
    annotations = {INTENT_ANNOTATION: json.dumps(intent)}
    world.kube.patch(canary_ref(NS, "good"), {"metadata": {"annotations": annotations}})
    world.pass_once()

    state = world.state("good")
    assert state.stage == stage, state
    assert state.history[-1].type == kind, state.history
    assert state.history[-1].time < at + DEADLINE_S / 2, (state.history[-1], at)
    assert world.get("good")["status"]["controller"]["lastIntentId"] == "by-hand"
