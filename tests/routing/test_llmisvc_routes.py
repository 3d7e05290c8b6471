"""The ``llmisvc`` router's pure parts and its read-back, on routes shaped as KServe v0.20.0's
LLMInferenceService controller writes them (observed in tests/controller/
test_controller_llmisvc.py; ``config/llmisvcconfig/config-llm-router-route.yaml``,
``rewriteRulesForGroup`` in ``pkg/controller/v1alpha2/llmisvc/router_group_routing.go``)."""

from __future__ import annotations

from typing import Any

import pytest
from support.canaries import model_canary

from controlplane.errors import RouterError
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import llmisvc
from controlplane.routing.base import Weights
from controlplane.serving import object_names
from controlplane.serving.render import llm_inference_service
from harness.kube.fake import FakeKube

CATALOG = load_catalog()
NS = "prod"


C = model_canary(namespace=NS, router="llmisvc", shadow=None)
STABLE, CANDIDATE = (llmisvc.isvc_name(C, r) for r in llmisvc.ROLES)


def svc(member: str, weight: int) -> dict[str, Any]:
    return {
        "kind": "Service",
        "name": f"{member}-kserve-workload-svc",
        "port": 8000,
        "weight": weight,
    }


def route(owner: str, split: list[tuple[str, int]], created: str) -> dict[str, Any]:
    """A member's route: a per-participant rule to itself, the shared rules with ``split``."""
    shared = [svc(m, w) for m, w in split]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": f"{owner}-kserve-route",
            "namespace": NS,
            "creationTimestamp": created,
        },
        "spec": {
            "rules": [
                {
                    "name": "v1-completions-path",
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": f"/{NS}/{owner}/v1/completions"}}
                    ],
                    "backendRefs": [svc(owner, 1)],
                },
                {
                    "name": "v1-model-routing",
                    "matches": [{"path": {"type": "Exact", "value": "/v1/completions"}}],
                    "backendRefs": shared,
                },
                {
                    "name": "v1-completions-publisher-path",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/publishers/x"}}],
                    "backendRefs": shared,
                },
                {
                    "name": "v1-catch-all-path",
                    "matches": [{"path": {"type": "PathPrefix", "value": f"/{NS}/{owner}"}}],
                    "backendRefs": [svc(owner, 1)],
                },
            ]
        },
    }


@pytest.mark.parametrize(
    ("weight", "stable", "candidate"), [(0, 100, None), (5, 95, 5), (100, None, 100)]
)
def test_a_member_at_weight_0_has_no_route(weight: int, stable: Any, candidate: Any) -> None:
    objs = llmisvc.build_llminferenceservices(C, CATALOG, weight, False)
    got = [(o["spec"].get("router") or {}).get("route") for o in objs]
    want = [
        None if w is None else {"group": C.metadata.name, "weight": w} for w in (stable, candidate)
    ]
    assert got == want
    patches = [llmisvc.build_route_patch(C, r, Weights(weight)) for r in llmisvc.ROLES]
    assert [p["spec"]["router"]["route"] for p in patches] == want
    assert llmisvc.weights_of(C, *objs) == Weights(weight)


@pytest.mark.parametrize(
    ("parent", "suffix", "want"),
    [
        ("asdf", "-deployment", "asdf-deployment"),
        (
            "f" * 63,
            "-deployment",
            "ffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deployment",
        ),
        ("f" * 63, "-deploy", "f" * 24 + "105d7597f637e83cc711605ac3ea4957-deploy"),
    ],
)
def test_child_name_is_knatives(parent: str, suffix: str, want: str) -> None:
    # the cases of kmeta/names_test.go in knative.dev/pkg (the version KServe v0.20.0 pins)
    assert object_names.child_name(parent, suffix) == want


def test_split_skips_the_per_participant_rules() -> None:
    r = route(STABLE, [(STABLE, 95), (CANDIDATE, 5)], "2026-01-01T00:00:00Z")
    assert llmisvc.route_split(C, "stable", r) == {"stable": 95, "candidate": 5}


def test_split_to_a_stranger_or_disagreeing_rules_is_an_error() -> None:
    r = route(STABLE, [("someone", 1)], "2026-01-01T00:00:00Z")
    with pytest.raises(RouterError, match="someone-kserve-workload-svc"):
        llmisvc.route_split(C, "stable", r)
    r = route(STABLE, [(STABLE, 95), (CANDIDATE, 5)], "2026-01-01T00:00:00Z")
    r["spec"]["rules"][2]["backendRefs"] = [svc(STABLE, 1)]
    with pytest.raises(RouterError, match="differently"):
        llmisvc.route_split(C, "stable", r)


def test_the_oldest_route_is_in_effect() -> None:
    old = route(CANDIDATE, [(CANDIDATE, 0), (STABLE, 100)], "2026-01-01T00:00:00Z")
    new = route(STABLE, [(STABLE, 95), (CANDIDATE, 5)], "2026-01-01T00:00:01Z")
    assert llmisvc.routes_in_effect({"stable": new, "candidate": old}) == ["candidate", "stable"]
    same = route(STABLE, [(STABLE, 95)], "2026-01-01T00:00:00Z")
    # a tie goes to "{namespace}/{name}" alphabetically
    assert llmisvc.routes_in_effect({"stable": same, "candidate": old}) == ["stable", "candidate"]


def seeded() -> tuple[FakeKube, llmisvc.LLMISvcRouter]:
    kube = FakeKube(now=lambda: 1_700_000_000.0)
    for role in llmisvc.ROLES:
        kube.create(llm_inference_service(C, role, CATALOG))
    return kube, llmisvc.LLMISvcRouter(kube)


def test_weights_are_read_from_the_routes_not_the_spec() -> None:
    kube, router = seeded()
    router.set_weights(C, 5, False)
    with pytest.raises(RouterError, match="not written an HTTPRoute"):
        router.get_weights(C)
    # KServe has written the stable's route, but the candidate is not Ready yet: not in it
    kube.create(route(STABLE, [(STABLE, 95)], "2026-01-01T00:00:00Z"))
    assert router.get_weights(C) == Weights(0)
    with pytest.raises(RouterError, match=r"expected stable 95% / candidate 5%.*Ready members"):
        router.verify(C, Weights(5))
    # the stable's route has converged, the candidate's not yet
    kube.apply(route(STABLE, [(STABLE, 95), (CANDIDATE, 5)], "2026-01-01T00:00:00Z"))
    kube.create(route(CANDIDATE, [(CANDIDATE, 5)], "2026-01-01T00:00:05Z"))
    assert router.get_weights(C) == Weights(5)
    with pytest.raises(RouterError, match="not yet"):
        router.verify(C, Weights(5))
    kube.apply(route(CANDIDATE, [(STABLE, 95), (CANDIDATE, 5)], "2026-01-01T00:00:05Z"))
    router.verify(C, Weights(5))


def test_a_route_left_to_a_member_at_weight_0_fails_verify() -> None:
    kube, router = seeded()
    router.finalize(C, "rolled_back")
    live = kube.get(router._ref(C, "candidate"))
    assert "route" not in (live["spec"].get("router") or {})
    kube.create(route(STABLE, [(STABLE, 100), (CANDIDATE, 0)], "2026-01-01T00:00:00Z"))
    kube.create(route(CANDIDATE, [(STABLE, 100), (CANDIDATE, 0)], "2026-01-01T00:00:01Z"))
    assert router.get_weights(C) == Weights(0)
    with pytest.raises(RouterError, match="still routes to the candidate at weight 0"):
        router.verify(C, Weights(0))
