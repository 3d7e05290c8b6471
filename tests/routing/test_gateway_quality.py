"""The ``gateway-api`` route with a quality section: each variant's sample through the pairer."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.promql.http_errors import traefik_service, traefik_services
from controlplane.routing.base import VARIANT_HEADER
from controlplane.routing.gateway_api import build_httproute, weights_of
from controlplane.serving.pairer import PORTS, pairer_name


def quality(sample: str = "5%") -> dict[str, object]:
    return {"sample": sample, "tolerance": 0.1}


SESSION = {"router": "gateway-api", "session": {"header": "x-session-id"}}


def refs(route: dict) -> list[tuple[str, int, int]]:
    return [(r["name"], r["port"], r["weight"]) for r in route["spec"]["rules"][-1]["backendRefs"]]


def test_each_variant_sends_its_sample_to_the_pairers_port_for_it() -> None:
    c = model_canary("chat", "ml", router="gateway-api", quality=quality())
    route = build_httproute(c, 5, False)
    stable, candidate, _, _ = (r[0] for r in refs(route))
    pairer = pairer_name(c)
    # the variants keep their positions, the pairer's ports follow in the same order
    assert refs(route) == [
        (stable, 80, 9025),
        (candidate, 80, 475),
        (pairer, PORTS["stable"], 475),
        (pairer, PORTS["candidate"], 25),
    ]
    told = [
        r["filters"][0]["requestHeaderModifier"]["set"][0]
        for r in route["spec"]["rules"][-1]["backendRefs"]
    ]
    names = [c.spec.stable.name, c.spec.candidate.name, c.spec.stable.name, c.spec.candidate.name]
    assert told == [{"name": VARIANT_HEADER, "value": n} for n in names]


@pytest.mark.parametrize("sample", ["1%", "5%", "50%"])
@pytest.mark.parametrize("weight", [0, 5, 25, 75, 100])
def test_the_weights_read_back_count_the_pairers_ports_as_their_variants(
    sample: str, weight: int
) -> None:
    c = model_canary("chat", "ml", router="gateway-api", quality=quality(sample))
    assert weights_of(c, build_httproute(c, weight, False)).candidate == weight


def test_no_share_an_outcome_and_no_quality_leave_the_pairer_out() -> None:
    c = model_canary("chat", "ml", router="gateway-api", quality=quality())
    pairer = pairer_name(c)
    session = model_canary("chat", "ml", traffic=SESSION, quality=quality())
    for route in (
        build_httproute(c, 0, False),
        build_httproute(session, 0, False),
        build_httproute(c, 25, False, "promoted"),
        build_httproute(c, 25, False, "rolled_back"),
        build_httproute(model_canary("chat", "ml", router="gateway-api"), 25, False),
    ):
        every = [r["name"] for rule in route["spec"]["rules"] for r in rule["backendRefs"]]
        assert pairer not in every, route


def test_a_session_rule_sends_its_sample_through_the_pairer_on_its_own_variant() -> None:
    c = model_canary("chat", "ml", traffic=SESSION, quality=quality())
    rules = build_httproute(c, 25, False)["spec"]["rules"]
    ours, theirs = rules[0]["backendRefs"], rules[1]["backendRefs"]
    assert [(r["port"], r["weight"]) for r in ours] == [
        (80, 0), (80, 95), (PORTS["stable"], 0), (PORTS["candidate"], 5)
    ]  # fmt: skip
    assert [(r["port"], r["weight"]) for r in theirs] == [
        (80, 95), (80, 0), (PORTS["stable"], 5), (PORTS["candidate"], 0)
    ]  # fmt: skip
    assert weights_of(c, build_httproute(c, 25, False)).candidate == 25


def test_traefik_counts_the_pairers_port_as_its_variants_requests() -> None:
    c = model_canary("chat", "ml", router="gateway-api", quality=quality())
    stable, candidate = c.spec.stable.name, c.spec.candidate.name
    pairer = pairer_name(c)
    assert traefik_services(c, stable)[1] == traefik_service("ml", pairer, PORTS["stable"])
    assert traefik_services(c, candidate)[1] == traefik_service("ml", pairer, PORTS["candidate"])
    plain = model_canary("chat", "ml", router="gateway-api")
    assert len(traefik_services(plain, stable)) == 1


@pytest.mark.parametrize("traffic", [{"router": "gateway-api"}, SESSION], ids=["split", "session"])
def test_in_the_shadow_phase_the_stables_sample_goes_through_the_pairer(
    traffic: dict[str, object],
) -> None:
    c = model_canary("chat", "ml", traffic=traffic, quality=quality("5%"))
    route = build_httproute(c, 0, True)
    rule = route["spec"]["rules"][-1]
    # every request is the stable's: 5 % of them answered through the pairer's stable port,
    # which pairs each with the candidate; the candidate keeps its mirror and its position
    assert refs(route) == [
        (refs(route)[0][0], 80, 9500),
        (refs(route)[1][0], 80, 0),
        (pairer_name(c), PORTS["stable"], 500),
        (pairer_name(c), PORTS["candidate"], 0),
    ]
    assert [f["type"] for f in rule["filters"]] == ["RequestMirror"]
    assert weights_of(c, route).candidate == 0
    assert weights_of(c, route).mirror is True
