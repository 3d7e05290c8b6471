"""Sessions that stay on one variant (controlplane/routing/sessions.py and the gateway-api
router): the buckets are nested across weights, the regular expressions select exactly their
buckets under both full-match and search semantics, random keys fill the candidate's share
within binomial bounds, the HTTPRoute carries the session rules before the split, and routers
that cannot do it refuse the spec."""

from __future__ import annotations

import itertools
import math
import random
import re
import uuid
from typing import Any

import pytest
from support.canaries import canary_dict, model_canary

from controlplane.routing import gateway_api, istio
from controlplane.routing.base import CAPABILITIES, Weights
from controlplane.routing.sessions import (
    BUCKETS,
    bucket_of,
    candidate_buckets,
    key_matches,
    pinned,
)
from controlplane.spec.models import SessionSpec
from controlplane.validation import check_object

HEADER = SessionSpec(header="X-Session-Id")
COOKIE = SessionSpec(cookie="sid")
WEIGHTS = [0, 1, 5, 10, 25, 33, 50, 75, 99, 100]


def matches(match: dict[str, str] | None, value: str) -> bool:
    """Whether ``value`` matches, checked under both semantics a Gateway may use."""
    if match is None:
        return False
    full = re.fullmatch(match["value"], value) is not None
    search = re.search(match["value"], value) is not None
    assert full == search, (match["value"], value)
    return full


def test_a_higher_weight_keeps_every_session_a_lower_one_gave_the_candidate() -> None:
    for low, high in itertools.pairwise(WEIGHTS):
        assert set(candidate_buckets(low)) <= set(candidate_buckets(high))
    assert len(candidate_buckets(0)) == 0
    assert len(candidate_buckets(100)) == BUCKETS
    with pytest.raises(ValueError, match="not a percentage"):
        candidate_buckets(101)


@pytest.mark.parametrize("weight", WEIGHTS)
def test_each_key_matches_exactly_its_variant_s_rule(weight: int) -> None:
    ours, theirs = key_matches(HEADER, weight)
    mine = set(candidate_buckets(weight))
    for bucket in range(BUCKETS):
        for case in (str.lower, str.upper):
            key = case(f"9f2c1e3a-{uuid.UUID(int=bucket).hex[:4]}-{bucket:02x}")
            assert bucket_of(key) == bucket
            assert matches(ours, key) == (bucket in mine), (weight, key)
            assert matches(theirs, key) == (bucket not in mine), (weight, key)
    for odd in ("session-zz", "x", "", "ab-cg"):
        assert not matches(ours, odd)
        assert not matches(theirs, odd)  # split by the weights, as without a session
    assert (ours is None) == (weight == 0)
    assert (theirs is None) == (weight == 100)


def test_random_keys_give_the_candidate_its_share() -> None:
    rng = random.Random(11)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(20_000)]
    for weight in (5, 25, 50):
        ours, _ = key_matches(HEADER, weight)
        got = sum(matches(ours, k) for k in keys) / len(keys)
        share = len(candidate_buckets(weight)) / BUCKETS
        assert abs(got - share) <= 4 * math.sqrt(share * (1 - share) / len(keys)), (weight, got)


def test_a_cookie_key_is_read_from_the_cookie_header() -> None:
    ours, theirs = key_matches(COOKIE, 50)
    assert ours is not None
    assert ours["name"] == "cookie"
    assert matches(ours, "sid=9f2c00")
    assert matches(ours, "theme=dark; sid=9f2c7f; lang=en")
    assert matches(theirs, "theme=dark;sid=9f2c80")
    assert not matches(ours, "xsid=9f2c00")  # another cookie whose name ends the same
    assert not matches(theirs, "xsid=9f2c80")
    assert not matches(ours, "theme=dark")


def session_traffic() -> dict[str, Any]:
    """``spec.traffic`` on the gateway-api router with a session header."""
    return {
        "router": "gateway-api",
        "gateway": {"name": "inference-gateway", "namespace": "gateways"},
        "hosts": ["llm.example.com"],
        "session": {"header": "x-session-id"},
    }


def names(rule: dict[str, Any]) -> list[str]:
    return [ref["name"] for ref in rule["backendRefs"]]


def test_the_route_pins_sessions_before_it_splits_the_rest() -> None:
    canary = model_canary(traffic=session_traffic())
    stable, candidate = gateway_api._services(canary)
    route = gateway_api.build_httproute(canary, 25, False)
    pinned, rest, split = route["spec"]["rules"]
    # every rule lists both variants in one order, the other one at weight 0: a variant's
    # position is the same in every rule (Envoy Gateway names a backend's cluster by it)
    weights = [(ref["name"], ref["weight"]) for ref in pinned["backendRefs"] + rest["backendRefs"]]
    assert weights == [(stable, 0), (candidate, 1), (stable, 1), (candidate, 0)]
    assert names(split) == [stable, candidate]
    assert pinned["matches"][0]["headers"][0] == key_matches(HEADER, 25)[0] | {
        "name": "x-session-id"
    }
    assert "matches" not in split
    # a pinned session's answers name its variant (a rule's filter: Traefik loads those)
    told = [
        f["responseHeaderModifier"]["set"]
        for f in pinned["filters"] + rest["filters"]
        if f["type"] == "ResponseHeaderModifier"
    ]
    assert told == [
        [{"name": "x-canary-variant", "value": canary.spec.candidate.name}],
        [{"name": "x-canary-variant", "value": canary.spec.stable.name}],
    ]
    assert "filters" not in split
    shadow = gateway_api.build_httproute(canary, 0, True)["spec"]["rules"]
    assert [f["type"] for f in shadow[0]["filters"]] == [
        "RequestMirror",
        "ResponseHeaderModifier",
    ]
    # the weights read back are the split's, not a session rule's 100 %
    assert gateway_api.weights_of(canary, route).candidate == 25
    # before the first step every session is the stable's; after an outcome, one rule
    pending = gateway_api.build_httproute(canary, 0, False)["spec"]["rules"]
    assert [names(r) for r in pending] == [[stable, candidate], [stable, candidate]]
    assert gateway_api.weights_of(canary, {"spec": {"rules": pending}}).candidate == 0
    done = gateway_api.build_httproute(canary, 100, False, "promoted")["spec"]["rules"]
    assert [names(r) for r in done] == [[candidate]]
    back = gateway_api.build_httproute(canary, 0, False, "rolled_back")["spec"]["rules"]
    assert [names(r) for r in back] == [[stable]]


def test_without_a_session_the_route_is_as_before() -> None:
    plain = model_canary(
        traffic={
            "router": "gateway-api",
            "gateway": {"name": "inference-gateway", "namespace": "gateways"},
            "hosts": ["llm.example.com"],
        }
    )
    assert len(gateway_api.build_httproute(plain, 25, False)["spec"]["rules"]) == 1


@pytest.mark.parametrize(
    ("traffic", "problem"),
    [
        ({"router": "llmisvc", "session": {"header": "x-s"}},
         "router 'llmisvc' cannot keep a session on one variant; use gateway-api or istio"),
        ({"router": "kserve-knative", "session": {"header": "x-s"}},
         "router 'kserve-knative' cannot keep a session on one variant"),
        ({"session": {"header": "x-s", "cookie": "sid"}},
         "exactly one of 'header' or 'cookie', got header and cookie"),
        ({"session": {}}, "exactly one of 'header' or 'cookie', got neither"),
        ({"session": {"header": "x-s"}, "cohort": {"header": "x-tier", "values": ["1"]}},
         "a session key and a cohort cannot be combined"),
    ],
)  # fmt: skip
def test_what_cannot_be_done_is_refused_with_the_reason(
    traffic: dict[str, Any], problem: str
) -> None:
    data = canary_dict(traffic=traffic)
    got = [p for p in check_object(data) if p.path == "spec.traffic.session"]
    assert any(problem in p.message for p in got), got


def test_the_gateway_api_and_istio_routers_pin_sessions() -> None:
    assert [r for r, caps in CAPABILITIES.items() if caps.sessions] == ["gateway-api", "istio"]


ISTIO = {"router": "istio", "hosts": ["llm.example.com"], "session": {"header": "X-Session-Id"}}


def vs_matches(route: dict[str, Any]) -> list[str]:
    return [m["headers"]["x-session-id"]["regex"] for m in route.get("match", [])]


@pytest.mark.parametrize("weight", [0, 5, 25, 100])
def test_the_virtualservice_pins_sessions_before_it_splits_the_rest(weight: int) -> None:
    canary = model_canary(traffic=ISTIO)
    assert not check_object(canary_dict(traffic=ISTIO))
    vs = istio.build_virtualservice(canary, weight, False)
    http = vs["spec"]["http"]
    ours, theirs = key_matches(SessionSpec(header="X-Session-Id"), weight)
    expected = [
        (name, match)
        for name, match in (("session-candidate", ours), ("session-stable", theirs))
        if match is not None
    ]
    assert [r["name"] for r in http] == [name for name, _ in expected] + ["split"]
    hosts = {r["name"]: [d["destination"]["host"] for d in r["route"]] for r in http}
    stable, candidate = hosts["split"]
    for (name, match), route in zip(expected, http, strict=False):
        assert vs_matches(route) == [match["value"]]
        assert hosts[name] == [candidate if name == "session-candidate" else stable]
        variant = canary.spec.candidate if name == "session-candidate" else canary.spec.stable
        assert route["headers"] == {"response": {"set": {"x-canary-variant": variant.name}}}
    assert istio.weights_of(canary, vs) == Weights(weight)


def test_the_virtualservice_mirrors_the_stable_s_sessions_and_drops_them_at_the_outcome() -> None:
    canary = model_canary(traffic=ISTIO)
    shadow = istio.build_virtualservice(canary, 0, True)["spec"]["http"]
    assert [r["name"] for r in shadow] == ["session-stable", "split"]
    assert shadow[0]["mirror"] == shadow[1]["mirror"]
    for outcome in ("promoted", "rolled_back"):
        done = istio.build_virtualservice(canary, 0, False, outcome)["spec"]["http"]
        assert [r["name"] for r in done] == ["split"]


def test_a_router_in_code_decides_as_the_rules_do() -> None:
    """:func:`pinned` (the local stack's router) agrees with the rendered expressions."""
    for weight in WEIGHTS:
        ours, theirs = key_matches(HEADER, weight)
        for bucket in range(0, BUCKETS, 7):
            key = f"s-{bucket:02X}"
            got = pinned(HEADER, weight, {"X-SESSION-ID": key})
            assert got == matches(ours, key)
            assert (got is False) == matches(theirs, key)
        assert pinned(HEADER, weight, {"x-session-id": "s-zz"}) is None
        assert pinned(HEADER, weight, {}) is None
    cookies = {"Cookie": "theme=dark; sid=abc0ff"}
    assert pinned(COOKIE, 100, cookies) is True
    assert pinned(COOKIE, 0, cookies) is False
    assert pinned(COOKIE, 50, {"Cookie": "theme=dark"}) is None
    assert pinned(COOKIE, 50, {"Cookie": 'sid="unterminated'}) is None
