"""The controller end to end on a real kube-apiserver (loopback, through RealKube).

The scenarios of test_controller_rollouts.py and test_controller_resilience.py, on
:class:`~support.real_world.RealWorld`: the loopback API server with the pinned CRDs (schema
validation, resourceVersions, the status subresource, finalizers, server-side apply, Leases, a
real watch), KServe played by :class:`~harness.kube.isvc_standin.IsvcStandin`, the same backfilled
Prometheus and the same injected clock. Each real run is compared with the same scenario on the
fake cluster: the same rollout history, event for event, and the same end state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.controller_world import (
    DAY,
    HOUR,
    ISVC,
    NS,
    ROLLBACK_CASES,
    ROUTE,
    Metrics,
    World,
    delete_cleans_up_through_the_finalizer,
    finished,
    never_ready_rolls_back_at_the_deadline,
    old_defaults_are_kept_until_the_spec_changes,
    reapply_as_gitops,
    retry_restarts_once,
    spec_change_restarts,
    stage_of,
    world_canary,
)
from support.kube_fleet import CountingKube
from support.real_world import RealWorld
from test_controller_resilience import CrashingKube, WriterLog

from controlplane.controller.reconcile import Settings
from controlplane.errors import NotFound
from controlplane.kube.client import canary_ref
from controlplane.kube.lease import LeaderElector
from controlplane.status.document import FINALIZER
from harness.cluster.kubeapi import LoopbackCluster, start_cluster
from harness.cluster.upstream_crds import serving_crds

pytestmark = [pytest.mark.binary, pytest.mark.slow, pytest.mark.timeout(900)]

History = list[tuple[str, float, int, int, str]]
Make = Callable[..., World]


def full_history(world: World, name: str) -> History:
    return [(e.type, e.time, e.step, e.weight, e.message) for e in world.state(name).history]


def route_weights(world: World, name: str) -> dict[str, int]:
    (route,) = world.objects(*ROUTE, name)
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: ref["weight"] for ref in refs}


def isvc_names(world: World, name: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in world.objects(*ISVC, name))


@pytest.fixture
def real(loopback: LoopbackCluster, metrics: Metrics) -> Make:
    def make(**kwargs: Any) -> World:
        return RealWorld(metrics.t0, metrics.url, kubeconfig=str(loopback.kubeconfig), **kwargs)

    return make


@pytest.fixture
def fake(metrics: Metrics) -> Make:
    def make(**kwargs: Any) -> World:
        return World(metrics.t0, metrics.url, **kwargs)

    return make


def run_to_end(world: World, name: str, metrics: Metrics) -> World:
    world.create(world_canary(name, metrics.url))
    world.run_until(finished(name), limit=25 * DAY)
    return world


def conditions(world: World, name: str) -> dict[str, str]:
    return {c["type"]: c["status"] for c in world.get(name)["status"]["conditions"]}


# ------------------------------------------------------------------------------ rollouts


def test_full_promotion_matches_the_fake(real: Make, fake: Make, metrics: Metrics) -> None:
    counted: dict[str, CountingKube] = {}

    def counting(who: str) -> Callable[[Any], CountingKube]:
        return lambda kube: counted.setdefault(who, CountingKube(kube))

    reference = run_to_end(fake(wrap=counting("fake")), "good", metrics)
    world = run_to_end(real(wrap=counting("real")), "good", metrics)

    assert full_history(world, "good") == full_history(reference, "good")
    # the same decisions took the same status writes: none for a status read back unchanged
    writes = {who: kube.calls["status:ModelCanary"] for who, kube in counted.items()}
    assert writes["real"] == writes["fake"] > 5
    # every change reached the controller through the real watch, none through a failure
    assert world.controller.stats.watch_errors == 0
    assert [e[0] for e in full_history(world, "good")] == [
        "StepStarted",
        "Advanced",
        "Advanced",
        "Advanced",
        "Promoted",
    ]
    # the released stable's Service is no longer named
    assert route_weights(world, "good") == {"good-llm-nf4-predictor": 100}
    status = world.get("good")["status"]
    assert (status["phase"], status["step"], status["weight"]) == ("promoted", 4, 100)
    assert conditions(world, "good") == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    assert status["observedGeneration"] == world.get("good")["metadata"]["generation"]
    # the serving objects carry the canary as their controlling owner (the server kept the uid)
    owner = world.get("good")["metadata"]["uid"]
    for obj in world.objects(*ISVC, "good"):
        assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [owner]
    reasons = {r for r, _ in world.events("good")}
    assert {"StepStarted", "Advanced", "Promoted", "Deployed", "WeightsVerified"} <= reasons
    # the old stable is released after the promotion cleanup delay
    world.clock.t += Settings().promote_cleanup_s + 1
    world.pass_once()
    assert isvc_names(world, "good") == ["good-llm-nf4"]


@pytest.mark.parametrize(("name", "step", "metric"), ROLLBACK_CASES)
def test_rollback_on_each_kind_of_check_matches_the_fake(
    real: Make, fake: Make, metrics: Metrics, name: str, step: int, metric: str
) -> None:
    reference = run_to_end(fake(), name, metrics)
    world = run_to_end(real(), name, metrics)

    assert full_history(world, name) == full_history(reference, name)
    state = world.state(name)
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert (state.reason.kind, state.reason.metric, state.reason.step) == ("breach", metric, step)
    assert route_weights(world, name) == {f"{name}-llm-bf16-predictor": 100}
    assert conditions(world, name) == {"Ready": "False", "Reconciling": "False", "Stalled": "True"}
    assert ("RolledBack", state.reason.message) in world.events(name)
    assert len(world.objects(*ISVC, name)) == 2
    world.clock.t += Settings().rollback_cleanup_s + 1
    world.pass_once()
    assert isvc_names(world, name) == [f"{name}-llm-bf16"]


def test_candidate_never_ready_is_rolled_back_at_the_deadline(real: Make, metrics: Metrics) -> None:
    world = real(settings=Settings(progress_deadline_s=3 * HOUR))
    never_ready_rolls_back_at_the_deadline(world, metrics.url, metrics.t0)
    # the stable was marked Ready by the stand-in, the candidate never was
    ready = {
        o["metadata"]["name"]: (o.get("status") or {}).get("observedGeneration")
        for o in world.objects(*ISVC, "good")
    }
    assert ready == {"good-llm-bf16": 1, "good-llm-nf4": None}


# ------------------------------------------------------------------------------ resilience


@pytest.mark.parametrize("mode", ["after-decision", "before-bookkeeping"])
@pytest.mark.parametrize("name", ["good", "tail"], ids=["promotion", "rollback-step3"])
def test_killed_at_every_phase_boundary_matches_uninterrupted_run(
    real: Make, fake: Make, metrics: Metrics, name: str, mode: str
) -> None:
    calm = run_to_end(fake(), name, metrics)

    crashed: set[str] = set()
    world = real(wrap=lambda kube: CrashingKube(kube, mode, crashed))
    assert isinstance(world, RealWorld)
    world.create(world_canary(name, metrics.url))
    world.run_until(finished(name), limit=25 * DAY)
    world.settle()

    boundaries = {e[1] for e in calm.history(name)}
    assert world.restarts >= len(boundaries) >= 3
    # every restart was a new client on the server: nothing carried over but the cluster
    assert len({id(v.inner) for v in world.views}) == len(world.views) > world.restarts
    assert full_history(world, name) == full_history(calm, name)
    assert world.get(name)["status"]["phase"] == calm.get(name)["status"]["phase"]
    reasons = {r for r, _ in world.events(name)}
    assert {e[0] for e in calm.history(name)} <= reasons


def test_two_controllers_only_the_leader_drives(real: Make, metrics: Metrics) -> None:
    world = real()
    assert isinstance(world, RealWorld)
    writes: list[tuple[str, float]] = []
    lease = 3 * HOUR

    def replica(who: str) -> Any:
        view = WriterLog(world.view(), who, writes)  # type: ignore[arg-type]
        elector = LeaderElector(view, "canary-system", "canary-controller", who, lease, world.clock)
        return world.new_controller(kube=view, elector=elector)

    a, b = replica("a"), replica("b")
    world.create(world_canary("good", metrics.url))
    world.run_until(lambda w: w.step("good") == 2, limit=25 * DAY, controllers=lambda: [a, b])
    assert {who for who, _ in writes} == {"a"}
    assert b.stats.reconciles == 0
    lease_obj = world.admin.get(a.elector.ref)
    assert lease_obj["spec"]["holderIdentity"] == "a"
    killed_at = world.clock.t

    world.run_until(finished("good"), limit=25 * DAY, controllers=lambda: [b])
    takeover = min(t for who, t in writes if who == "b")
    assert killed_at < takeover <= killed_at + 2 * lease
    assert max(t for who, t in writes if who == "a") <= killed_at
    assert world.admin.get(a.elector.ref)["spec"]["holderIdentity"] == "b"
    assert [e[0] for e in world.history("good")] == [
        "StepStarted",
        "Advanced",
        "Advanced",
        "Advanced",
        "Promoted",
    ]


def test_spec_change_mid_rollout_restarts_with_the_new_candidate(
    real: Make, metrics: Metrics
) -> None:
    world = real()
    _, after = spec_change_restarts(world, metrics.url)
    assert world.controller.stats.watch_errors == 0  # the edit arrived through the watch
    # the stand-in marked the new generation Ready again
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]


def test_a_rollout_keeps_the_defaults_it_began_under_on_the_real_server(
    real: Make, metrics: Metrics
) -> None:
    old_defaults_are_kept_until_the_spec_changes(real(), metrics.url)


def test_delete_mid_rollout_cleans_up_through_the_finalizer(real: Make, metrics: Metrics) -> None:
    delete_cleans_up_through_the_finalizer(real(), metrics.url)  # the server kept it until then


def test_gitops_reapply_of_a_rolled_back_spec_does_not_retry(
    real: Make, fake: Make, metrics: Metrics
) -> None:
    reference = run_to_end(fake(), "slow", metrics)
    world = real()
    data = world_canary("slow", metrics.url)
    world.create(data)
    world.run_until(finished("slow"), limit=25 * DAY)
    history = full_history(world, "slow")
    assert history == full_history(reference, "slow")
    assert history[-1][0] == "RolledBack"

    # Argo CD / Flux re-apply the failed spec (server-side apply, their own field manager)
    reapply_as_gitops(world, data)
    assert full_history(world, "slow") == history
    assert stage_of("slow")(world) == "rolled_back"
    assert isvc_names(world, "slow") == ["slow-llm-bf16"]

    # a changed spec does restart it (GitOps pushes a fix)
    fixed = copy.deepcopy(data)
    fixed["spec"]["candidate"]["args"] = ["--max-num-seqs=64"]
    world.kube.apply(fixed, field_manager="argocd")
    world.pass_once()
    kinds = [e.type for e in world.state("slow").history]
    assert kinds[len(history) :] == ["Restarted"]
    assert any(o["metadata"]["name"] == "slow-llm-nf4" for o in world.objects(*ISVC, "slow"))


def test_gitops_retry_intent_restarts_exactly_once(real: Make, metrics: Metrics) -> None:
    world = real()
    world.create(world_canary("slow", metrics.url))
    world.run_until(finished("slow"), limit=25 * DAY)
    retry_restarts_once(world, "slow")


# ------------------------------------------------------------------------------ unserved router


@pytest.fixture(scope="module")
def no_istio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    """A second API server: every CRD but Istio's (VirtualService is not served) and the
    LLMInferenceService ones (:func:`serving_crds`)."""
    crds = [c for c in serving_crds() if c["spec"]["group"] != "networking.istio.io"]
    cluster = start_cluster(tmp_path_factory.mktemp("kube-no-istio"), crds=crds)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_delete_of_a_canary_whose_router_kind_is_not_served(
    no_istio: LoopbackCluster, metrics: Metrics
) -> None:
    world = RealWorld(metrics.t0, metrics.url, kubeconfig=str(no_istio.kubeconfig))
    data = world_canary(
        "good", metrics.url, traffic={"router": "istio", "hosts": ["a.example.com"]}
    )
    world.create(data)
    world.settle(3)
    # it could not route (no VirtualService here), but it holds its finalizer and said why
    obj = world.get("good")
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert world.controller.stats.errors > 0

    world.kube.delete(canary_ref(NS, "good"))
    world.clock.t += 600  # past any backoff
    world.settle(3)
    with pytest.raises(NotFound):
        world.get("good")
    assert world.objects(*ISVC, "good") == []
