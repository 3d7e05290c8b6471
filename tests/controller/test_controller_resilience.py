"""Crash safety, HA, spec changes, deletion and GitOps re-applies, on the fake cluster with a real
Prometheus: every run is compared with what an uninterrupted controller does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.controller_world import (
    DAY,
    HOUR,
    ISVC,
    Crash,
    Metrics,
    World,
    delete_cleans_up_through_the_finalizer,
    finished,
    reapply_as_gitops,
    retry_restarts_once,
    spec_change_restarts,
    stage_of,
    world_canary,
)

from controlplane.kube.client import Obj, Ref
from controlplane.kube.lease import LeaderElector
from harness.kube.fake import FakeKube

pytestmark = pytest.mark.binary


def full_history(world: World, name: str) -> list[tuple[str, float, int, int, str]]:
    return [(e.type, e.time, e.step, e.weight, e.message) for e in world.state(name).history]


class CrashingKube:
    """Kills the controller once at every phase boundary (a status write that adds history).

    ``after-decision``: right after the decision is persisted, before any of its effects.
    ``before-bookkeeping``: after the effects, instead of the write that records them.
    """

    def __init__(self, inner: FakeKube, mode: str, crashed: set[str]) -> None:
        self.inner = inner
        self.mode = mode
        self.crashed = crashed
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_") or name in ("peek", "count"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.armed:
                self.armed = False
                raise Crash(name)
            return attr(*args, **kwargs)

        return call

    def replace_status(self, obj: Obj) -> Obj:
        if self.armed:
            self.armed = False
            raise Crash("replace_status")
        before = (self.inner.peek(Ref.of(obj)) or {}).get("status") or {}
        after = obj.get("status") or {}
        old, new = before.get("history") or [], after.get("history") or []
        boundary = json.dumps(new[-1], sort_keys=True) if new else ""
        decision = len(new) > len(old)
        bookkeeping = new == old and before.get("controller") != after.get("controller")
        if self.mode == "before-bookkeeping" and bookkeeping and new:
            tag = f"book:{boundary}"
            if tag not in self.crashed:
                self.crashed.add(tag)
                raise Crash("before bookkeeping")
        result = self.inner.replace_status(obj)
        if self.mode == "after-decision" and decision and boundary not in self.crashed:
            self.crashed.add(boundary)
            self.armed = True
        return result


@pytest.mark.parametrize("mode", ["after-decision", "before-bookkeeping"])
@pytest.mark.parametrize("name", ["good", "tail"], ids=["promotion", "rollback-step3"])
def test_killed_at_every_phase_boundary_matches_uninterrupted_run(
    metrics: Metrics, name: str, mode: str
) -> None:
    calm = World(metrics.t0, metrics.url)
    calm.create(world_canary(name, metrics.url))
    calm.run_until(finished(name), limit=25 * DAY)

    crashed: set[str] = set()
    world = World(metrics.t0, metrics.url, wrap=lambda kube: CrashingKube(kube, mode, crashed))
    world.create(world_canary(name, metrics.url))
    world.run_until(finished(name), limit=25 * DAY)
    world.settle()  # the last decision's effects, after the last crash

    boundaries = {e[1] for e in calm.history(name)}  # one decision write per transition time
    assert world.restarts >= len(boundaries) >= 3
    assert full_history(world, name) == full_history(calm, name)
    assert world.get(name)["status"]["phase"] == calm.get(name)["status"]["phase"]
    # every transition was announced at least once (at-least-once Events)
    reasons = {r for r, _ in world.events(name)}
    assert {e[0] for e in calm.history(name)} <= reasons


@pytest.mark.parametrize("mode", ["after-decision", "before-bookkeeping"])
def test_killed_around_the_not_ready_rollback_matches_uninterrupted_run(
    metrics: Metrics, mode: str
) -> None:
    """The machine's progress-deadline rollback (``not-ready``) is persisted before its effects:
    a controller killed right after writing it, or instead of recording the effects, ends where an
    uninterrupted one does, with the decision taken once."""

    def run(world: World) -> World:
        world.kserve.never_ready("good-llm-nf4")
        world.create(world_canary("good", metrics.url))
        world.run_until(finished("good"), limit=2 * DAY)
        world.settle()
        return world

    calm = run(World(metrics.t0, metrics.url))
    crashed: set[str] = set()
    world = run(World(metrics.t0, metrics.url, wrap=lambda kube: CrashingKube(kube, mode, crashed)))
    assert world.restarts >= 1
    assert full_history(world, "good") == full_history(calm, "good")
    assert [e[0] for e in full_history(world, "good")] == ["RolledBack"]
    reason = world.state("good").reason
    assert reason is not None
    assert reason.kind == "not-ready"
    assert world.get("good")["status"]["phase"] == "rolled_back"


class WriterLog:
    """A KubeClient view that remembers which controller wrote canary statuses."""

    def __init__(self, inner: FakeKube, who: str, writes: list[tuple[str, float]]) -> None:
        self.inner, self.who, self.writes = inner, who, writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def replace_status(self, obj: Obj) -> Obj:
        if obj["kind"] == "ModelCanary":
            self.writes.append((self.who, self.inner._now()))
        return self.inner.replace_status(obj)


def test_two_controllers_only_the_leader_drives(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    writes: list[tuple[str, float]] = []
    lease = 3 * HOUR

    def replica(who: str) -> Any:
        view = WriterLog(world.kube, who, writes)
        elector = LeaderElector(view, "canary-system", "canary-controller", who, lease, world.clock)
        return world.new_controller(kube=view, elector=elector)

    a, b = replica("a"), replica("b")
    world.create(world_canary("good", metrics.url))
    world.run_until(lambda w: w.step("good") == 2, limit=25 * DAY, controllers=lambda: [a, b])
    assert {who for who, _ in writes} == {"a"}
    assert b.stats.reconciles == 0
    killed_at = world.clock.t

    # a dies: b takes over once the lease has expired on its own clock, and finishes the job
    world.run_until(finished("good"), limit=25 * DAY, controllers=lambda: [b])
    takeover = min(t for who, t in writes if who == "b")
    assert killed_at < takeover <= killed_at + 2 * lease
    assert max(t for who, t in writes if who == "a") <= killed_at
    assert [e[0] for e in world.history("good")] == [
        "StepStarted",
        "Advanced",
        "Advanced",
        "Advanced",
        "Promoted",
    ]


def test_spec_change_mid_rollout_restarts_with_the_new_candidate(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    spec_change_restarts(world, metrics.url)
    assert world.state("good").spec_hash != world.state("good").history[0].message


def test_delete_mid_rollout_cleans_up_through_the_finalizer(metrics: Metrics) -> None:
    delete_cleans_up_through_the_finalizer(World(metrics.t0, metrics.url), metrics.url)


def test_gitops_reapply_of_a_rolled_back_spec_does_not_retry(metrics: Metrics) -> None:
    world = World(metrics.t0, metrics.url)
    data = world_canary("slow", metrics.url)
    world.create(data)
    world.run_until(finished("slow"), limit=25 * DAY)
    history = full_history(world, "slow")
    assert history[-1][0] == "RolledBack"

    # Argo CD / Flux re-apply the failed spec over and over (a new label each time, same spec)
    reapply_as_gitops(world, data)
    assert full_history(world, "slow") == history
    assert world.state("slow").stage == "rolled_back"
    assert stage_of("slow")(world) == "rolled_back"
    assert [o["metadata"]["name"] for o in world.objects(*ISVC, "slow")] == ["slow-llm-bf16"]

    # a recorded `retry` intent restarts it, exactly once
    retry_restarts_once(world, "slow")
