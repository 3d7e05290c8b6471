"""The ``llmisvc`` router against KServe's real LLMInferenceService controller v0.20.0.

``llmisvc_loopback`` runs KServe's ``cmd/llmisvc`` (built from its Go module, the version whose
CRDs are installed) with its defaulting, validating and conversion webhooks and the well-known
``LLMInferenceServiceConfig`` presets, plus kube-controller-manager, kube-scheduler and kwok (the
members' Deployments become Ready pods on fake GPU nodes) and a Gateway status stand-in. The
assertions are what ``kubectl get llminferenceservice,deploy,httproute`` shows.

What it showed (docs/routing.md "LLMInferenceService as observed"):

- each member gets an HTTPRoute ``<member>-kserve-route`` whose shared rules carry every Ready
  member's workload Service with its weight, and whose per-participant ``/{ns}/{member}/...``
  rules reach the member alone, whatever its weight;
- a member at weight 0 that keeps its route stays in the split at weight 0 and keeps those
  per-participant paths: the router now removes its route (KServe deletes the HTTPRoute, the
  other member's route drops its backend) while its pods keep running;
- the two routes converge one after the other (a rewritten route is not Ready until the gateway
  accepts it, and its member leaves the other's split meanwhile): ``verify`` now reads the
  routes and fails until the split is in effect in every member route.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from support.canaries import model_canary
from support.realkube import LLMISVC_GROUP, new_namespace

from controlplane.errors import NotFound, RouterError
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import llmisvc
from controlplane.routing.base import Weights
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.xdist_group(LLMISVC_GROUP),
]

ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")


def eventually(check: Callable[[], Any], timeout: float = 120.0) -> Any:
    """``check()``'s result once it stops raising RouterError / AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (RouterError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def routes(kube: RealKube, namespace: str) -> dict[str, dict[str, list[tuple[str, int]]]]:
    """Each HTTPRoute's rules: rule name -> [(backend, weight)]."""
    out = {}
    for route in kube.list(*ROUTE, namespace):
        out[route["metadata"]["name"]] = {
            rule.get("name", ""): [
                (b["name"].removesuffix("-kserve-workload-svc"), int(b.get("weight", 1)))
                for b in rule.get("backendRefs") or []
            ]
            for rule in route["spec"]["rules"]
        }
    return out


def ready_deployments(kube: RealKube, namespace: str) -> dict[str, int]:
    return {
        d["metadata"]["name"]: int((d.get("status") or {}).get("readyReplicas") or 0)
        for d in kube.list("apps/v1", "Deployment", namespace)
    }


def test_llmisvc_router_on_the_real_controller(llmisvc_loopback: LoopbackCluster) -> None:
    kube = RealKube.connect(kubeconfig=str(llmisvc_loopback.kubeconfig))
    ns = new_namespace(kube, "llm")
    c = model_canary(namespace=ns, router="llmisvc", shadow=None)
    catalog = load_catalog()
    stable, candidate = (llmisvc.isvc_name(c, r) for r in llmisvc.ROLES)
    router = llmisvc.LLMISvcRouter(kube)

    # deployed before the first step: candidate at 0 has no route, its pods run
    for obj in llmisvc.build_llminferenceservices(c, catalog, 0, False):
        kube.apply(obj, field_manager="test")
    eventually(lambda: router.verify(c, Weights(0)))
    seen = routes(kube, ns)
    assert set(seen) == {f"{stable}-kserve-route"}
    shared = seen[f"{stable}-kserve-route"]["v1-model-routing"]
    assert shared == [(stable, 100)]
    # per-participant rules reach the member alone
    assert seen[f"{stable}-kserve-route"]["v1-catch-all-path"] == [(stable, 1)]
    assert eventually(lambda: _assert_ready(kube, ns, stable, candidate)) is None

    # the first step: both members in the group; verify waits for both routes to converge
    router.set_weights(c, 5, False)

    def at_five() -> None:
        # one settled state: KServe may rewrite a route again after verify first holds (a
        # member leaves the other's split while its own route's new generation is accepted),
        # so verify, the routes and get_weights are asserted together and retried together
        router.verify(c, Weights(5))
        seen = routes(kube, ns)
        assert set(seen) == {f"{stable}-kserve-route", f"{candidate}-kserve-route"}
        for name in seen:
            assert sorted(seen[name]["v1-model-routing"]) == [(stable, 95), (candidate, 5)]
        assert seen[f"{candidate}-kserve-route"]["v1-catch-all-path"] == [(candidate, 1)]
        assert router.get_weights(c) == Weights(5)

    eventually(at_five, timeout=180)
    # KServe's group status agrees
    status = kube.get(Ref(llmisvc.LLMISVC_API_VERSION, "LLMInferenceService", ns, stable))
    members = status["status"]["router"]["group"]["members"]
    asked = sorted((m["name"], m["weight"]) for m in members)
    assert asked == sorted([(stable, 95), (candidate, 5)])

    # rollback: the candidate's route goes, the stable's drops its backend, its pods still run
    router.finalize(c, "rolled_back")

    def rolled_back() -> None:
        router.verify(c, Weights(0))
        seen = routes(kube, ns)
        assert set(seen) == {f"{stable}-kserve-route"}
        assert seen[f"{stable}-kserve-route"]["v1-model-routing"] == [(stable, 100)]

    eventually(rolled_back, timeout=180)
    assert ready_deployments(kube, ns) == {
        f"{stable}-kserve": c.spec.stable.replicas,
        f"{candidate}-kserve": c.spec.candidate.replicas,
    }

    # a member at weight 0 that keeps its route (what the router wrote before) stays in the
    # split at weight 0 and keeps its per-participant paths: verify refuses it
    kube.patch(
        Ref(llmisvc.LLMISVC_API_VERSION, "LLMInferenceService", ns, candidate),
        {"spec": {"router": {"route": {"group": c.metadata.name, "weight": 0}}}},
    )

    def kept() -> None:
        got = routes(kube, ns)
        assert f"{candidate}-kserve-route" in got
        assert got[f"{candidate}-kserve-route"]["v1-catch-all-path"] == [(candidate, 1)]

    eventually(kept)
    with pytest.raises(RouterError, match="still routes to the candidate at weight 0"):
        router.verify(c, Weights(0))


def _assert_ready(kube: RealKube, ns: str, *members: str) -> None:
    for member in members:
        try:
            obj = kube.get(Ref(llmisvc.LLMISVC_API_VERSION, "LLMInferenceService", ns, member))
        except NotFound as exc:
            raise AssertionError(member) from exc
        conditions = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
        assert conditions.get("Ready") == "True", (member, conditions)
