"""The controller against the real KServe v0.20.0 controller (loopback, fake GPU nodes).

``kserve_loopback`` runs KServe's own controller manager (built from its Go module, the version
whose CRDs are installed) in Standard mode with Gateway API ingress and its webhooks, plus
kube-controller-manager, kube-scheduler and kwok: InferenceServices become Deployments, pods are
scheduled onto GPU nodes by ``nvidia.com/gpu.product`` and GPU count, and KServe writes its
HTTPRoutes. The controller decides on the injected clock (:class:`~support.kserve_world.
KServeWorld` waits for KServe to settle before each pass); the assertions are what a user sees
with ``kubectl get deploy,pods,httproute``: :func:`~support.kserve_world.snapshot`.

What these tests found, and what changed on our side (docs/routing.md "KServe as observed"):

- KServe v0.20.0 accepts ``spec.canary[].trafficPercent`` and reports it in ``canaryStatuses``,
  but its HTTPRoute sends everything to the stable predictor: the ``kserve`` router now reads the
  weights from that route and rolls back (reason ``not-routed``) when the step's weights never
  take effect, instead of judging a candidate that gets no traffic;
- an InferenceService's ``observedGeneration`` is its Deployment's, so readiness no longer
  compares it with the InferenceService's generation (the rollout would never start);
- a canary entry's replicas and the stable's are derived by KServe unless set: both now are;
- without KEDA's ScaledObject CRD KServe never reconciles a ``keda``-class predictor
  (``autoscaling.queue``): the cluster installs the CRD (:mod:`harness.cluster.kserve`), and
  the ScaledObject KServe writes is checked at every step (KEDA's HPA from
  :class:`~support.kserve_world.KedaConverged`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.canaries import CANDIDATE, STABLE, model_canary
from support.controller_world import DAY, NS, Metrics, finished, world_canary
from support.kserve_world import DEPLOYMENT, ISVC, KServeWorld, release, snapshot
from support.realkube import KSERVE_GROUP

from controlplane.errors import NotFound, RouterPending
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import kserve as kserve_router
from controlplane.routing.base import Weights
from controlplane.serving.object_names import predictor_service
from controlplane.spec.models import ModelCanary
from harness.cluster.kubeapi import LoopbackCluster
from harness.kube.keda_standin import HPA, SCALED_OBJECT

pytestmark = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group(KSERVE_GROUP),
]

Snapshots = dict[tuple[str, int, int], dict[str, Any]]


@pytest.fixture(autouse=True)
def _gpus_freed(kserve_loopback: LoopbackCluster) -> Iterator[None]:
    """Each test leaves the shared cluster's GPUs free for the next one on it."""
    yield
    release(RealKube.connect(kubeconfig=str(kserve_loopback.kubeconfig)), NS)


def world_on(cluster: LoopbackCluster, metrics: Metrics) -> KServeWorld:
    return KServeWorld(metrics.t0, metrics.url, kubeconfig=str(cluster.kubeconfig))


def recorder(name: str, seen: Snapshots) -> Callable[[KServeWorld], bool]:
    """A ``done`` for run_until that snapshots the cluster at every new (phase, step, weight)."""

    def done(world: KServeWorld) -> bool:
        status = world.get(name).get("status") or {}
        key = (str(status.get("phase")), int(status.get("step", 0)), int(status.get("weight", 0)))
        if key not in seen:
            world.kserve.tick()
            seen[key] = snapshot(world.admin)
        return finished(name)(world)

    return done


def labels(variant: str, role: str, name: str = "good") -> tuple[str, str, str]:
    return (name, variant, role)


# ------------------------------------------------------------------------- the kserve router


def test_kserve_router_on_v0_20_never_routes_the_canary_and_rolls_back(
    kserve_loopback: LoopbackCluster, metrics: Metrics
) -> None:
    world = world_on(kserve_loopback, metrics)
    data = world_canary(
        "good",
        metrics.url,
        traffic={"router": "kserve"},
        stable=STABLE,  # two replicas
        candidate={**CANDIDATE, "replicas": 2},
    )
    world.create(data)
    seen: Snapshots = {}
    world.run_until(recorder("good", seen), limit=2 * DAY)

    # deployed: two Deployments with the replicas the canary names (KServe alone would run
    # ceil(2 x 5%) = 1 candidate and lower the stable to 1), pods labelled per variant
    deployed = seen[("progressing", 1, 5)]
    assert deployed["deployments"] == {"good-llm-predictor": 2, "good-llm-nf4-predictor": 2}
    assert deployed["pods"] == {
        # no role on the pods of one InferenceService: a renamed candidate serves on as stable
        "good-llm-predictor": [labels("bf16", "")] * 2,
        "good-llm-nf4-predictor": [labels("nf4", "")] * 2,
    }
    # KServe was told 5% and says the canary is Ready at 5% ...
    assert deployed["canaries"] == {
        "good-llm": {"asked": {"nf4": 5}, "reported": {"nf4": (True, 5)}}
    }
    # ... while its routes send everything to the stable predictor
    assert deployed["routes"] == {
        "good-llm": {"good-llm-predictor": 1},
        "good-llm-predictor": {"good-llm-predictor": 1},
    }
    # autoscalerClass none: no HPA (KServe v0.20.0 creates a canary's HPA without an owner
    # reference, so it would outlive the InferenceService)
    assert world.admin.list("autoscaling/v2", "HorizontalPodAutoscaler", NS) == []
    refused = [m for r, m in world.events("good") if r == "WeightsNotVerified"]
    assert any("routes stable 100% / candidate 0%" in m for m in refused), refused

    # the step never started; at the progress deadline (6h) it is rolled back, saying why
    state = world.state("good")
    assert state.stage == "rolled_back"
    assert state.reason is not None
    assert state.reason.kind == "not-routed"
    assert "did not put candidate 5% in effect within 6h" in state.reason.message
    assert "KServe v0.20.0 routes none" in state.reason.message
    assert [e.type for e in state.history] == ["StepStarted", "RolledBack"]
    # no candidate Deployment, Service or pod is left; the stable is untouched
    after = snapshot(world.admin)
    assert after["deployments"] == {"good-llm-predictor": 2}
    assert set(after["pods"]) == {"good-llm-predictor"}
    services = {s["metadata"]["name"] for s in world.admin.list("v1", "Service", NS)}
    assert "good-llm-nf4-predictor" not in services


def pod_names(world: KServeWorld, deployment: str) -> set[str]:
    return {
        p["metadata"]["name"]
        for p in world.admin.list("v1", "Pod", NS)
        if (p["metadata"].get("labels") or {}).get("app") == f"isvc.{deployment}"
    }


def test_kserve_router_promotes_a_same_checkpoint_candidate_under_a_full_canary(
    kserve_loopback: LoopbackCluster, metrics: Metrics
) -> None:
    # NF4 in flight keeps the stable's storage URI: KServe's webhook refuses the rename, so the
    # promotion rolls the stable pods while the canary entry serves 100%, then drops the entry
    world = world_on(kserve_loopback, metrics)
    data = world_canary("promo", metrics.url, traffic={"router": "kserve"})
    canary = ModelCanary.model_validate(data)
    router = kserve_router.router(world.admin, load_catalog())
    router.set_weights(canary, 25, False)
    world.kserve.tick()
    serving = pod_names(world, "promo-llm-nf4-predictor")
    stable_before = pod_names(world, "promo-llm-predictor")
    assert serving
    assert stable_before

    with pytest.raises(RouterPending, match="canary serves 100%"):
        router.finalize(canary, "promoted")
    world.kserve.tick()
    rolling = snapshot(world.admin)
    # phase 1: the canary's pods untouched and asked for 100%; the stable Deployment rolled
    # to the candidate's spec (new pods) with no traffic asked of it
    assert rolling["canaries"]["promo-llm"]["asked"] == {"nf4": 100}
    assert rolling["canaries"]["promo-llm"]["reported"] == {"nf4": (True, 100)}
    assert pod_names(world, "promo-llm-nf4-predictor") == serving
    assert rolling["deployments"] == {"promo-llm-predictor": 1, "promo-llm-nf4-predictor": 1}
    assert rolling["pods"]["promo-llm-predictor"] == [labels("nf4", "", "promo")]
    assert not pod_names(world, "promo-llm-predictor") & stable_before
    # ... on v0.20.0 its route still sends everything to the stable Service (no split there)
    assert rolling["routes"]["promo-llm"] == {"promo-llm-predictor": 1}

    router.finalize(canary, "promoted")  # phase 2: the rollout is complete
    world.kserve.tick()
    after = snapshot(world.admin)
    assert after["deployments"] == {"promo-llm-predictor": 1}
    assert after["pods"] == {"promo-llm-predictor": [labels("nf4", "", "promo")]}
    deployment = world.admin.get(Ref(*DEPLOYMENT, NS, "promo-llm-predictor"))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--quantization=bitsandbytes" in args, json.dumps(args)
    assert after["routes"]["promo-llm"] == {"promo-llm-predictor": 1}
    router.verify(canary, Weights(100))


def test_kserve_router_promotes_another_checkpoint_by_kserves_rename(
    kserve_loopback: LoopbackCluster, metrics: Metrics
) -> None:
    # an AWQ checkpoint has its own storage URI: KServe's own promotion, predictor.name pointed
    # at the canary, adopts the candidate's Deployment and Service: no pod restarts
    world = world_on(kserve_loopback, metrics)
    awq = {**CANDIDATE, "name": "awq", "storageUri": "hf://m/x-awq", "quantization": "awq"}
    data = world_canary("rename", metrics.url, traffic={"router": "kserve"}, candidate=awq)
    canary = ModelCanary.model_validate(data)
    router = kserve_router.router(world.admin, load_catalog())
    router.set_weights(canary, 25, False)
    world.kserve.tick()
    serving = pod_names(world, "rename-llm-awq-predictor")
    template = world.admin.get(Ref(*DEPLOYMENT, NS, "rename-llm-awq-predictor"))["spec"]["template"]

    router.finalize(canary, "promoted")  # one phase
    world.kserve.tick()
    after = snapshot(world.admin)
    assert after["deployments"] == {"rename-llm-awq-predictor": 1}
    assert pod_names(world, "rename-llm-awq-predictor") == serving  # the same pods serve on
    adopted = world.admin.get(Ref(*DEPLOYMENT, NS, "rename-llm-awq-predictor"))
    assert adopted["spec"]["template"] == template
    assert after["routes"]["rename-llm"] == {"rename-llm-awq-predictor": 1}
    router.verify(canary, Weights(100))

    # the next rollout starts from the promoted variant: the webhook refuses a rename without a
    # model change, so the name KServe serves under is kept and its pods stay
    fp8 = {"name": "fp8", "storageUri": "hf://m/x", "quantization": "fp8", "gpu": "nvidia-l40s"}
    following = model_canary(base=data, stable=awq, candidate=fp8)
    router.set_weights(following, 5, False)
    world.kserve.tick()
    assert pod_names(world, "rename-llm-awq-predictor") == serving
    assert snapshot(world.admin)["deployments"] == {
        "rename-llm-awq-predictor": 1,
        "rename-llm-fp8-predictor": 1,
    }
    assert router.get_weights(following) == Weights(0)  # v0.20.0: no split, as ever


# ------------------------------------------------------------------- the gateway-api router


@pytest.mark.parametrize(
    ("name", "outcome"),
    [("good", "promoted"), ("slow", "rolled_back")],
    ids=["promotion", "rollback"],
)
def test_gateway_api_router_rolls_out_on_real_kserve(
    kserve_loopback: LoopbackCluster, metrics: Metrics, name: str, outcome: str
) -> None:
    world = world_on(kserve_loopback, metrics)
    world.create(world_canary(name, metrics.url))
    seen: Snapshots = {}
    world.run_until(recorder(name, seen), limit=30 * DAY)
    stable, candidate = f"{name}-llm-bf16-predictor", f"{name}-llm-nf4-predictor"

    steps = {k: v for k, v in seen.items() if k[0] == "progressing"}
    assert steps, seen.keys()
    for (_, _, weight), view in steps.items():
        # one InferenceService per variant, each a Deployment KServe owns, both Ready
        assert view["deployments"] == {stable: 1, candidate: 1}
        assert view["pods"] == {
            stable: [labels("bf16", "stable", name)],
            candidate: [labels("nf4", "candidate", name)],
        }
        # our HTTPRoute splits at the step's weight; KServe's own routes serve one variant each
        assert view["routes"][name] == {stable: 100 - weight, candidate: weight}
        assert view["routes"][f"{name}-llm-bf16"] == {stable: 1}
        assert view["routes"][f"{name}-llm-nf4"] == {candidate: 1}
    weights = sorted({k[2] for k in steps})
    assert weights == ([5, 25, 75] if outcome == "promoted" else [5])

    state = world.state(name)
    assert state.stage == outcome
    world.clock.t += 700  # past the cleanup delay: the losing variant is released
    world.settle()
    world.kserve.tick()
    end = snapshot(world.admin)
    # garbage collection removes the released InferenceService's Deployment and pods
    winner = candidate if outcome == "promoted" else stable
    assert end["deployments"] == {winner: 1}
    assert set(end["pods"]) == {winner}
    # the route names the winner alone: the loser's Service is gone with its InferenceService
    assert end["routes"][name] == {winner: 100}


# ------------------------------------------------------------------- capacity follows traffic

RATES = {"stable": 10.0, "candidate": 8.0}


def hpa(world: KServeWorld) -> tuple[int, int] | None:
    """(minReplicas, maxReplicas) of the HorizontalPodAutoscaler KServe keeps for the
    candidate's predictor (``<isvc>-predictor``), or None before it exists."""
    for obj in world.admin.list("autoscaling/v2", "HorizontalPodAutoscaler", NS):
        if obj["metadata"]["name"].endswith("-nf4-predictor"):
            spec = obj["spec"]
            return int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
    return None


"""Requests/s of one replica (spec.capacity.requestsPerReplica): the 4-bit candidate is slower."""
PLANNED = {0: (2, 1), 5: (2, 1), 25: (2, 1), 75: (1, 2), 100: (0, 3)}
"""(stable, candidate) replicas the plan gives each weight: 16 req/s, 20 % headroom."""


@pytest.mark.parametrize(
    ("name", "outcome"),
    [("good", "promoted"), ("tail", "rolled_back")],
    ids=["promotion", "rollback-at-75"],
)
def test_capacity_follows_traffic_on_real_kserve(
    kserve_loopback: LoopbackCluster, metrics: Metrics, name: str, outcome: str
) -> None:
    """KServe's Deployments follow the plan, scaled up before the weights move and down after:
    at no pass does the HTTPRoute send a variant's share to fewer ready pods than the plan
    gives it, and the GPUs asked never pass the budget; promoted, the candidate runs three."""
    world = world_on(kserve_loopback, metrics)
    # the candidate autoscales up to 4 at all the traffic: KServe's HPA gets each step's bounds
    capacity = {"maxGPUs": 5, "requestsPerReplica": RATES}
    candidate_spec = {**CANDIDATE, "replicas": 1, "autoscaling": {"maxReplicas": 4}}
    data = world_canary(
        name, metrics.url, stable=STABLE, candidate=candidate_spec, capacity=capacity
    )
    world.create(data)
    bounds: list[tuple[int, tuple[int, int] | None]] = []
    stable, candidate = f"{name}-llm-bf16-predictor", f"{name}-llm-nf4-predictor"
    views: list[dict[str, Any]] = []

    def every_pass(w: KServeWorld) -> bool:
        """Snapshot each settled pass; done once the outcome is in effect on the route."""
        w.kserve.tick()
        views.append(snapshot(w.admin))
        bounds.append((int((w.get(name).get("status") or {}).get("weight", 0)), hpa(w)))
        book = (w.get(name).get("status") or {}).get("controller") or {}
        return finished(name)(w) and book.get("finishedAt") is not None

    world.run_until(every_pass, limit=30 * DAY)
    assert world.state(name).stage == outcome

    weights: list[int] = []
    for view in views:
        route = view["routes"].get(name)
        if not route or not sum(route.values()):
            continue
        weight = round(100 * route.get(candidate, 0) / sum(route.values()))
        if not weights and weight == 0:
            continue  # deploying: nothing is on the candidate yet
        weights.append(weight)
        ready = view["deployments"]
        want_stable, want_candidate = PLANNED[weight]
        assert ready.get(stable, 0) >= want_stable, (weight, ready)
        if weight:
            assert ready.get(candidate, 0) >= want_candidate, (weight, ready)
        assert sum(ready.values()) <= 5, ready  # one GPU a replica
    if outcome == "promoted":
        assert {5, 25, 75, 100} <= set(weights), weights
        assert views[-1]["deployments"][candidate] == 3
    else:
        assert 75 in weights, weights
        assert weights[-1] == 0
        assert views[-1]["deployments"][stable] == 2
    reasons = {r for r, _ in world.events(name)}
    assert {"Scaled", "CapacityPending"} <= reasons, reasons
    # the candidate's HPA, as KServe keeps it, held each step's bounds: (1, 1) up to 25 %,
    # (2, 3) from 75 % (4 x 75 %), (3, 4) at all the traffic
    seen = {b for _, b in bounds if b is not None}
    assert (2, 3) in seen, bounds
    if outcome == "promoted":
        assert bounds[-1][1] == (3, 4), bounds[-1]


# ------------------------------------------------- capacity follows traffic, KEDA on the queue

QUEUE = {"serverAddress": "http://prometheus.monitoring:9090", "waitingPerReplica": 2.5}
"""``autoscaling.queue``: a fractional target, which KServe must hand KEDA as written."""
KEDA_BOUNDS = {5: (1, 1), 25: (1, 1), 75: (2, 3), 100: (3, 4)}
"""The candidate's (minReplicas, maxReplicas) the plan gives each weight once it is in effect:
its replicas of :data:`PLANNED`, at most ``ceil(4 x share)`` (the HPA test's bounds)."""


def scaled_object(world: KServeWorld, isvc: str, timeout_s: float = 30.0) -> dict[str, Any] | None:
    """The ScaledObject KServe keeps for ``isvc``'s predictor (``<isvc>-predictor``), read once
    it asks for the bounds the InferenceService now asks for (KServe writes it in the reconcile
    after the change; fails after ``timeout_s``); None while the InferenceService or the
    ScaledObject do not exist (not yet, or released)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            live = world.admin.get(Ref(*ISVC, NS, isvc))
        except NotFound:
            return None
        if live["metadata"].get("deletionTimestamp"):
            return None
        predictor = live["spec"]["predictor"]
        want = (predictor.get("minReplicas"), predictor.get("maxReplicas"))
        try:
            scaled = world.admin.get(Ref(*SCALED_OBJECT, NS, predictor_service(isvc)))
        except NotFound:
            scaled = None
        if scaled is not None:
            got = (scaled["spec"].get("minReplicaCount"), scaled["spec"].get("maxReplicaCount"))
            if got == want:
                return scaled
        if time.monotonic() > deadline:
            raise AssertionError(
                f"KServe's ScaledObject of {isvc} is {scaled and scaled['spec']}, "
                f"while the InferenceService asks for {want}"
            )
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("name", "outcome"),
    [("good", "promoted"), ("tail", "rolled_back")],
    ids=["promotion", "rollback-at-75"],
)
def test_capacity_follows_traffic_through_kserves_scaledobject(
    kserve_loopback: LoopbackCluster, metrics: Metrics, name: str, outcome: str
) -> None:
    """With ``autoscaling.queue`` the candidate is KServe's ``keda`` autoscaler class: at every
    settled pass the ScaledObject the real KServe v0.20.0 keeps for its predictor holds the
    plan's bounds for the weight on the route, scales the candidate's Deployment on its waiting
    requests in Prometheus at the spec's target, and KServe keeps no HPA for it (the stable's,
    of the default class, it does). KEDA's operator is not run: its HPA is the stand-in's
    (:class:`~support.kserve_world.KedaConverged`), so the rollout can finish."""
    world = KServeWorld(
        metrics.t0, metrics.url, kubeconfig=str(kserve_loopback.kubeconfig), keda=True
    )
    capacity = {"maxGPUs": 5, "requestsPerReplica": RATES}
    autoscaling = {"maxReplicas": 4, "queue": QUEUE}
    candidate_spec = {**CANDIDATE, "replicas": 1, "autoscaling": autoscaling}
    data = world_canary(
        name, metrics.url, stable=STABLE, candidate=candidate_spec, capacity=capacity
    )
    world.create(data)
    stable, candidate = f"{name}-llm-bf16-predictor", f"{name}-llm-nf4-predictor"
    passes: list[tuple[str, int, int | None, dict[str, Any] | None, set[str]]] = []

    def every_pass(w: KServeWorld) -> bool:
        """Each settled pass: (phase, status weight, route weight, ScaledObject, HPA names)."""
        w.kserve.tick()
        status = w.get(name).get("status") or {}
        route = snapshot(w.admin)["routes"].get(name) or {}
        on_route = round(100 * route.get(candidate, 0) / sum(route.values())) if route else None
        hpas = {o["metadata"]["name"] for o in w.admin.list(*HPA, NS)}
        scaled = scaled_object(w, f"{name}-llm-nf4")
        passes.append(
            (str(status.get("phase")), int(status.get("weight", 0)), on_route, scaled, hpas)
        )
        book = status.get("controller") or {}
        return finished(name)(w) and book.get("finishedAt") is not None

    world.run_until(every_pass, limit=30 * DAY)
    assert world.state(name).stage == outcome

    found = [(phase, weight, routed, so, hpas) for phase, weight, routed, so, hpas in passes if so]
    assert found, passes
    # what KServe made of the candidate's autoScaling: one Prometheus trigger on the variant's
    # waiting requests, the target as written, and no metricType (KEDA then takes the threshold
    # as an AverageValue: KEDA v2.18.0 pkg/scalers/scaler.go, GetMetricTargetType)
    query = f'sum(vllm:num_requests_waiting{{namespace="{NS}",canary="{name}",variant="nf4"}})'
    for _, _, _, so, _ in found:
        assert so is not None
        assert so["spec"]["scaleTargetRef"] == {"name": candidate}
        assert so["spec"]["triggers"] == [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": QUEUE["serverAddress"],
                    "query": query,
                    "threshold": "2.5",
                },
            }
        ], so["spec"]["triggers"]
        (owner,) = so["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "InferenceService",
            f"{name}-llm-nf4",
            True,
        )
    # keda class: KServe keeps no HPA of its own for the candidate (only KEDA's would be there);
    # the stable, of the default class, has KServe's
    for _, _, _, _, hpas in found:
        assert candidate not in hpas, hpas
        assert stable in hpas, hpas
    # at every pass with the step's weights in effect, the plan's bounds for that weight
    bounds = [
        (weight, (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]))
        for phase, weight, routed, so, _ in found
        if so is not None and phase == "progressing" and routed == weight
    ]
    settled = {weight for weight, _ in bounds}
    assert settled == {5, 25, 75}, bounds
    for weight, got in bounds:
        assert got == KEDA_BOUNDS[weight], (weight, got)
    # and the order they came in: up before 75 %, all the traffic's once promoted
    seen = [
        (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"])
        for _, _, _, so, _ in found
        if so is not None
    ]
    distinct = [b for i, b in enumerate(seen) if i == 0 or seen[i - 1] != b]
    if outcome == "promoted":
        assert distinct == [(1, 1), (2, 3), (3, 4)], seen
        assert snapshot(world.admin)["deployments"][candidate] == 3
    else:  # the loser keeps its bounds through the rollback, until it is released
        assert distinct == [(1, 1), (2, 3)], seen
