"""The decision of ``error-rate``'s HTTP source from the Gateway in the way (pure).

From a canary and its Gateway's GatewayClass ``controllerName`` (None: not read): the routers
that pass no Gateway API Gateway keep their own source; a spec naming the implementation wins;
a known controller gives its implementation's source, an unknown one the engine alone, none the
router's default. Each decision says why.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.canaries import ANALYSIS, model_canary

from controlplane.errors import Problem
from controlplane.promql import http_errors
from controlplane.promql.http_errors import (
    CONTROLLERS,
    Decision,
    decide,
    gateway_of,
    needs_gateway_class,
)
from controlplane.routing.base import capability_problems

ENVOY = "gateway.envoyproxy.io/gatewayclass-controller"
ISTIO = "istio.io/gateway-controller"
TRAEFIK = "traefik.io/gateway-controller"


def traffic(
    router: str = "gateway-api",
    gateway: dict[str, Any] | None = None,
    implementation: str | None = None,
) -> dict[str, Any]:
    """``spec.traffic``: ``router``, through ``gateway`` (``gw`` when only ``implementation`` is
    given), of ``implementation`` if named."""
    found: dict[str, Any] = {"router": router}
    if gateway is not None or implementation is not None:
        found["gateway"] = {**(gateway or {"name": "gw"})}
        if implementation is not None:
            found["gateway"]["implementation"] = implementation
    return found


def test_the_known_controllers_are_the_three_implementations() -> None:
    assert dict(CONTROLLERS) == {ENVOY: "envoy-gateway", ISTIO: "istio", TRAEFIK: "traefik"}
    assert set(CONTROLLERS.values()) == set(http_errors.IMPLEMENTATION_SOURCES)


@pytest.mark.parametrize("router", ["gateway-api", "kserve"])
@pytest.mark.parametrize(
    ("controller", "source"),
    [(ENVOY, "envoy"), (ISTIO, "istio"), (TRAEFIK, "traefik")],
)
def test_a_known_controller_gives_its_implementations_source(
    router: str, controller: str, source: str
) -> None:
    decision = decide(model_canary("c", "ml", traffic=traffic(router, {"name": "gw"})), controller)
    assert decision.source == source
    assert controller in decision.reason
    assert "Gateway ml/gw" in decision.reason


def test_an_unknown_controller_is_the_engine_alone_and_says_what_to_do() -> None:
    decision = decide(
        model_canary("c", "ml", traffic=traffic(gateway={"name": "gw"})),
        "example.com/other-gateway",
    )
    assert decision.source == "engine"
    assert "'example.com/other-gateway'" in decision.reason
    assert "spec.traffic.gateway.implementation" in decision.reason


@pytest.mark.parametrize("router", ["gateway-api", "kserve"])
def test_a_class_not_read_is_the_routers_default(router: str) -> None:
    decision = decide(model_canary("c", "ml", traffic=traffic(router, {"name": "gw"})), None)
    assert decision == Decision(
        "envoy", f"the GatewayClass of Gateway ml/gw was not read: router {router!r}'s default"
    )


@pytest.mark.parametrize("controller", [None, ENVOY, "example.com/other-gateway"])
@pytest.mark.parametrize(
    ("implementation", "source"),
    [("envoy-gateway", "envoy"), ("istio", "istio"), ("traefik", "traefik")],
)
def test_the_spec_wins(controller: str | None, implementation: str, source: str) -> None:
    c = model_canary("c", "ml", traffic=traffic(implementation=implementation))
    decision = decide(c, controller)
    assert decision.source == source
    assert decision.reason == f"spec.traffic.gateway.implementation is {implementation!r}"
    assert not needs_gateway_class(c)


@pytest.mark.parametrize(
    ("router", "source"),
    [("istio", "istio"), ("llmisvc", "vllm-http"), ("kserve-knative", "engine")],
)
def test_routers_without_a_gateway_keep_their_source(router: str, source: str) -> None:
    c = model_canary(
        "c", "ml", traffic=traffic(router, {"name": "gw"} if router == "istio" else None)
    )
    for controller in (None, TRAEFIK):
        assert decide(c, controller).source == source
    assert gateway_of(c) is None
    assert not needs_gateway_class(c)


def test_the_gateway_is_the_routes_parent_or_kserves_default() -> None:
    def gateway(*args: Any) -> tuple[str, str] | None:
        return gateway_of(model_canary("c", "ml", traffic=traffic(*args)))

    assert gateway("gateway-api", {"name": "gw"}) == ("ml", "gw")  # the canary's namespace
    assert gateway("gateway-api", {"name": "gw", "namespace": "edge"}) == ("edge", "gw")
    default = ("kserve", "kserve-ingress-gateway")
    assert gateway("gateway-api") == default
    assert gateway("kserve") == default
    assert gateway("kserve", {"name": "ingress", "namespace": "kserve"}) == ("kserve", "ingress")


def test_the_class_is_read_only_for_an_error_rate() -> None:
    assert needs_gateway_class(model_canary("c", "ml", traffic=traffic(gateway={"name": "gw"})))
    latency_only = {**ANALYSIS, "metrics": [{"name": "latency", "builtin": "e2e-latency"}]}
    assert not needs_gateway_class(
        model_canary("c", "ml", traffic=traffic(gateway={"name": "gw"}), analysis=latency_only)
    )


def test_an_implementation_for_a_router_without_a_gateway_is_a_problem() -> None:
    def problems(router: str, implementation: str) -> list[Problem]:
        spec = traffic(router, implementation=implementation)
        return capability_problems(model_canary("c", "ml", traffic=spec, shadow=None))

    assert problems("kserve", "traefik") == []
    assert problems("gateway-api", "istio") == []
    (problem,) = problems("istio", "traefik")
    assert problem == Problem(
        "spec.traffic.gateway.implementation",
        "router 'istio' passes no Gateway API Gateway: its error-rate reads 'istio' whatever "
        "implementation is named; the implementation applies to gateway-api and kserve",
    )


def test_a_shadow_phase_on_a_gateway_that_cannot_mirror_is_a_problem() -> None:
    """Traefik v3.6.12 loads no RequestMirror filter: a named Traefik Gateway with a shadow
    phase is refused; Envoy Gateway and Istio mirror, and an unnamed implementation is not
    judged (the class is read only at run time)."""

    def problems(implementation: str | None, **spec: Any) -> list[Problem]:
        found = traffic("gateway-api", implementation=implementation)
        return capability_problems(model_canary("c", "ml", traffic=found, **spec))

    (problem,) = problems("traefik")
    assert problem.path == "spec.shadow"
    assert "Traefik" in problem.message
    assert "RequestMirror" in problem.message
    assert problems("envoy-gateway") == []
    assert problems("istio") == []
    assert problems(None) == []
    assert problems("traefik", shadow=None) == []
