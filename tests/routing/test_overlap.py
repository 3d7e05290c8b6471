"""Which HTTPRoutes take a canary route's requests (routing/overlap.py), and when a candidate
counts as starved (rollout/observations.py). Pure."""

from __future__ import annotations

from typing import Any

from controlplane.rollout.observations import CheckResult, candidate_starved
from controlplane.routing.overlap import no_traffic_causes, overlaps
from controlplane.status.document import NO_TRAFFIC, with_trouble

GW = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}


def route(
    name: str,
    created: str | None,
    *,
    hosts: list[str] | None = None,
    parent: dict[str, Any] | None = None,
    matches: list[dict[str, Any]] | None = None,
    namespace: str = "ml",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created is not None:
        meta["creationTimestamp"] = created
    rule: dict[str, Any] = {"backendRefs": [{"name": f"{name}-svc", "port": 80}]}
    if matches is not None:
        rule["matches"] = matches
    spec: dict[str, Any] = {"parentRefs": [parent or GW], "rules": [rule]}
    if hosts:
        spec["hostnames"] = hosts
    return {"metadata": meta, "spec": spec}


OLD, NEW = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"


def test_the_older_route_with_the_same_hosts_and_matches_takes_the_requests() -> None:
    mine, theirs = route("b", NEW), route("a", OLD)
    (found,) = overlaps(mine, [theirs, mine])
    assert found.startswith("HTTPRoute ml/a on Gateway ml/gw matches the same requests")
    assert "(every host, neither naming hostnames; PathPrefix /)" in found
    assert "Gateway API gives them to the older, ml/a (Traefik v3.6.12" in found
    # the older one is told of the newer too: an implementation may give it the requests
    (back,) = overlaps(theirs, [mine])
    assert back.startswith("HTTPRoute ml/b on Gateway ml/gw")
    assert "the older, ml/a" in back
    # not created yet (validate --cluster's would-be route): every existing one is older
    assert "the older, ml/a" in overlaps(route("b", None), [theirs])[0]
    # the same second: the first by namespace/name
    assert "the older, ml/a" in overlaps(route("b", OLD), [route("a", OLD)])[0]


def test_other_hosts_other_gateways_or_other_matches_take_nothing() -> None:
    mine = route("b", NEW, hosts=["chat.example.com"])
    assert overlaps(mine, [route("a", OLD, hosts=["search.example.com"])]) == []
    assert overlaps(mine, [route("a", OLD, hosts=["CHAT.example.com"])]) != []  # case-blind
    other_gw = {**GW, "name": "other"}
    assert overlaps(route("b", NEW), [route("a", OLD, parent=other_gw)]) == []
    other_ns = {**GW, "namespace": "gateways"}
    assert overlaps(route("b", NEW), [route("a", OLD, parent=other_ns)]) == []
    # a section of the Gateway and the whole Gateway share that listener; two sections do not
    http = {**GW, "sectionName": "http"}
    assert overlaps(route("b", NEW, parent=http), [route("a", OLD)]) != []
    assert (
        overlaps(route("b", NEW, parent=http), [route("a", OLD, parent={**GW, "sectionName": "x"})])
        == []
    )
    # an older route that matches only part of the requests leaves the rest
    v1 = [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert overlaps(route("b", NEW), [route("a", OLD, matches=v1)]) == []
    # a rule without matches is PathPrefix / (the CRD's default), spelled out or not
    slash = [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert overlaps(route("b", NEW), [route("a", OLD, matches=slash)]) != []


def test_the_causes_name_a_refusing_parent_and_missing_hostnames() -> None:
    mine = route("b", NEW, hosts=["chat.example.com"])
    mine["status"] = {
        "parents": [
            {
                "parentRef": GW,
                "controllerName": "traefik.io/gateway-controller",
                "conditions": [
                    {"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners"}
                ],
            }
        ]
    }
    assert no_traffic_causes(mine, []) == [
        "traefik.io/gateway-controller reports Accepted False: NotAllowedByListeners"
    ]
    (only,) = no_traffic_causes(route("b", NEW), [])
    assert "names no hostnames" in only


def result(samples: float | None, provider_error: bool = False) -> CheckResult:
    return CheckResult("k", "m", "inconclusive", samples=samples, provider_error=provider_error)


def test_a_candidate_is_starved_when_every_count_is_zero() -> None:
    assert candidate_starved({"a": result(0.0), "b": result(None)}) is True
    assert candidate_starved({"a": result(0.0), "b": result(12.0)}) is False
    assert candidate_starved({"a": result(None)}) is None  # nothing counted its requests
    assert candidate_starved({"a": result(0.0, provider_error=True)}) is None


def test_the_warning_is_set_and_cleared_by_evaluations_alone() -> None:
    status: dict[str, Any] = {"warnings": [{"type": "AlertDeliveryFailed", "message": "x"}]}
    starved = with_trouble(status, {NO_TRAFFIC: "why"}, 100.0, frozenset({NO_TRAFFIC}))
    assert [w["type"] for w in starved["warnings"]] == ["AlertDeliveryFailed", NO_TRAFFIC]
    # the effects' own trouble leaves it alone
    assert with_trouble(starved, {}, 200.0)["warnings"] == starved["warnings"]
    served = with_trouble(starved, {}, 300.0, frozenset({NO_TRAFFIC}))
    assert [w["type"] for w in served["warnings"]] == ["AlertDeliveryFailed"]
