"""Real requests through a real gateway, split by the weights the ``gateway-api`` router writes.

On the loopback control plane with a real node (:mod:`harness.node`) and Traefik v3.6.12 as the
Gateway API data plane (:mod:`harness.cluster.traefik`), the product's ``gateway-api`` router
writes the canary's HTTPRoute at each step of the four-week example (5, 25, 75, 100 %); OpenAI
requests sent to the gateway reach the stable and candidate engine pods (the Services KServe
would create, ``<model>-<variant>-predictor``), and each variant's own ``/metrics`` counts what
it served. The share matches the weight within binomial bounds, and a rollback sends everything
back to the stable variant. Traefik's per-backend counters, read under the ``service`` label the
error rate's Traefik source computes for each variant (``http_errors.traefik_services``), agree
with the pods' counts: the names are the real Traefik's.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from support.canaries import model_canary
from support.realnode import MARKS, deployment, pods, ready, service, until
from support.traffic_report import within_bounds

from controlplane.errors import RouterPending
from controlplane.kube.real import RealKube
from controlplane.promql import http_errors
from controlplane.routing import gateway_api
from controlplane.routing.base import Weights
from controlplane.serving import object_names
from controlplane.serving.render import isvc_name
from controlplane.spec.models import ModelCanary
from harness.cluster.kubeapi import LoopbackCluster, start_cluster
from harness.cluster.traefik import Traefik, start_traefik, traefik_service
from harness.cluster.upstream_crds import GATEWAY_API, crds
from harness.cluster.workloads import start_workloads
from harness.node.node import RealNode, start_node

pytestmark = MARKS

NS = "traffic"
REQUESTS = 200


@dataclass
class Stack:
    cluster: LoopbackCluster
    node: RealNode
    gateway: Traefik
    kube: RealKube
    canary: ModelCanary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("traffic-cluster")
    with start_cluster(folder, crds=crds(GATEWAY_API)) as cluster:
        start_workloads(cluster, nodes=[])
        cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        real = start_node(cluster, cluster.workdir / "node")
        try:
            gateway = start_traefik(cluster)
            canary = model_canary(namespace=NS, router="gateway-api", shadow=None)
            model = canary.spec.model.name
            for role in ("stable", "candidate"):
                name = isvc_name(canary, role)
                cluster.request(
                    "POST",
                    f"/apis/apps/v1/namespaces/{NS}/deployments",
                    deployment(NS, name, real.images["engine"], 1, model=model),
                )
                cluster.request(
                    "POST",
                    f"/api/v1/namespaces/{NS}/services",
                    service(NS, object_names.predictor_service(name), app=name),
                )
            for role in ("stable", "candidate"):
                app = isvc_name(canary, role)
                until(lambda a=app: all(map(ready, pods(cluster, NS, a))), f"{app} Ready")
            kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
            yield Stack(cluster, real, gateway, kube, canary)
        finally:
            real.stop()


def served(stack: Stack) -> dict[str, int]:
    """Completions each variant's pods have answered, from their own ``/metrics``."""
    out = {}
    for role in ("stable", "candidate"):
        total = 0
        for pod in pods(stack.cluster, NS, isvc_name(stack.canary, role)):
            url = f"http://{pod['status']['podIP']}:8000/metrics"
            with urllib.request.urlopen(url, timeout=10) as got:
                for line in got.read().decode().splitlines():
                    if (
                        line.startswith("http_requests_total{")
                        and 'handler="/v1/completions"' in line
                    ):
                        total += int(float(line.rsplit(" ", 1)[1]))
        out[role] = total
    return out


def gateway_served(stack: Stack) -> dict[str, int]:
    """What Traefik counted per variant: ``traefik_service_requests_total`` of the ``service``
    the error rate's Traefik source selects for it."""
    with urllib.request.urlopen(stack.gateway.metrics_url, timeout=10) as got:
        lines = got.read().decode().splitlines()
    out = {}
    spec = stack.canary.spec
    for role, variant in (("stable", spec.stable.name), ("candidate", spec.candidate.name)):
        (service,) = http_errors.traefik_services(stack.canary, variant)
        label = f'service="{service}"'
        out[role] = sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in lines
            if line.startswith(f"{http_errors.TRAEFIK_REQUESTS}{{") and label in line
        )
    return out


def send(stack: Stack, count: int, headers: dict[str, str] | None = None) -> None:
    """``count`` OpenAI completions through the gateway, 16 at a time, with ``headers`` too;
    every one must succeed."""
    body = (
        b'{"model": "' + stack.canary.spec.model.name.encode() + b'", "prompt": "hi", '
        b'"max_tokens": 1}'
    )

    def one(_: int) -> int:
        request = urllib.request.Request(
            f"{stack.gateway.url}/v1/completions",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        with urllib.request.urlopen(request, timeout=30) as got:
            return int(got.status)

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(count)))
    assert codes == [200] * count


def in_effect(stack: Stack, weight: int) -> bool:
    """Traefik runs the HTTPRoute's weights now (its API), and has said so in its status."""
    route: dict[str, Any] = stack.kube.get(gateway_api.route_ref(stack.canary))
    generation = route["metadata"]["generation"]
    accepted = any(
        c["type"] == "Accepted"
        and c["status"] == "True"
        and c.get("observedGeneration") == generation
        for parent in (route.get("status") or {}).get("parents") or []
        for c in parent.get("conditions") or []
    )
    running = stack.gateway.weights()
    want = {}
    for role, share in (("stable", 100 - weight), ("candidate", weight)):
        service = object_names.predictor_service(isvc_name(stack.canary, role))
        # a variant the route no longer names (after an outcome) gets nothing: no weight
        want[role] = (running.get(traefik_service(NS, service, 80), 0), share)
    return accepted and all(got == share for got, share in want.values())


def verify(stack: Stack, canary: ModelCanary, weights: Weights) -> None:
    """The router's ``verify`` as the controller calls it: again, while it says Traefik has not
    taken up the HTTPRoute's generation yet (:class:`RouterPending`); then Traefik's status
    says it has (:func:`in_effect`'s first half)."""
    router = gateway_api.router(stack.kube)

    def verified() -> bool:
        try:
            router.verify(canary, weights)
        except RouterPending:
            return False
        return True

    until(verified, f"the router verifying {weights}")


@pytest.mark.parametrize("weight", [5, 25, 75, 100])
def test_each_step_sends_the_candidate_its_weight(stack: Stack, weight: int) -> None:
    router = gateway_api.router(stack.kube)
    router.set_weights(stack.canary, weight, False)
    verify(stack, stack.canary, Weights(weight))
    until(lambda: in_effect(stack, weight), f"Traefik serving the HTTPRoute at {weight} %")
    before, counted_before = served(stack), gateway_served(stack)
    send(stack, REQUESTS)
    after, counted = served(stack), gateway_served(stack)
    got = {role: after[role] - before[role] for role in after}
    assert sum(got.values()) == REQUESTS, got
    assert within_bounds(got["candidate"], REQUESTS, weight), (weight, got)
    # the gateway's per-backend counters, under the names the error rate's Traefik source
    # computes, agree (a name Traefik does not use would count 0)
    assert {role: counted[role] - counted_before[role] for role in counted} == got
    assert sum(counted.values()) >= REQUESTS


def test_a_rollback_sends_everything_to_the_stable(stack: Stack) -> None:
    router = gateway_api.router(stack.kube)
    router.set_weights(stack.canary, 25, False)
    until(lambda: in_effect(stack, 25), "Traefik serving the HTTPRoute at 25 %")
    router.finalize(stack.canary, "rolled_back")
    verify(stack, stack.canary, Weights(0))
    until(lambda: in_effect(stack, 0), "Traefik serving the rolled-back HTTPRoute")
    before = served(stack)
    send(stack, REQUESTS)
    after = served(stack)
    assert after["candidate"] == before["candidate"]
    assert after["stable"] - before["stable"] == REQUESTS


def test_a_cohort_header_match_keeps_everyone_else_on_the_stable(stack: Stack) -> None:
    """With ``spec.traffic.cohort``, the router's HTTPRoute matches the cohort's header values
    in a rule of their own that splits by the weight; every other request meets the rule that
    holds the stable alone. Through the real Traefik: the cohort's requests split at 50 %, the
    rest all reach the stable."""
    data = stack.canary.model_dump(by_alias=True, mode="json", exclude_none=True)
    data["spec"]["traffic"]["cohort"] = {"header": "x-cohort", "values": ["beta"]}
    cohort = ModelCanary.model_validate(data)
    router = gateway_api.router(stack.kube)
    try:
        router.set_weights(cohort, 50, False)
        verify(stack, cohort, Weights(50))
        route = gateway_api.route_ref(cohort)
        assert len(stack.kube.get(route)["spec"]["rules"]) == 2
        # Traefik v3.6.12 names a router per rule "httproute-<ns>-<route>-gw-...-ep-<ep>-<rule>"
        # (routeKey, pkg/provider/kubernetes/gateway/httproute.go)
        key = f"httproute-{NS}-{route.name}-gw-"
        until(
            lambda: len([r for r in stack.gateway.routers() if key in r]) == 2,
            "Traefik serving both rules of the cohort's HTTPRoute",
        )
        before = served(stack)
        send(stack, REQUESTS, {"x-cohort": "beta"})
        inside = {role: n - before[role] for role, n in served(stack).items()}
        before = served(stack)
        send(stack, REQUESTS, {"x-cohort": "gamma"})
        send(stack, REQUESTS)
        outside = {role: n - before[role] for role, n in served(stack).items()}
    finally:
        router.set_weights(stack.canary, 0, False)  # the next test writes its own weights
    assert sum(inside.values()) == REQUESTS, inside
    assert within_bounds(inside["candidate"], REQUESTS, 50), inside
    assert outside == {"stable": 2 * REQUESTS, "candidate": 0}, outside
