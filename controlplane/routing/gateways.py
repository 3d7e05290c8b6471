"""Which HTTP source ``error-rate`` reads, from the Gateway API implementation in the way.

Owns the decision (pure): from a canary and the ``spec.controllerName`` of its Gateway's
GatewayClass (None: not read), the :data:`~controlplane.promql.http_errors.HttpSource` of its
``error-rate`` and why (:func:`decide`), and which Gateway a canary's traffic passes
(:func:`gateway_of`, :func:`needs_gateway_class`). In order: a router that passes no Gateway
reads its own source; ``spec.traffic.gateway.implementation`` wins; a known ``controllerName``
(:data:`CONTROLLERS`, each implementation's default) gives its source; an unknown one the engine
alone; an unread class the router's default.

The reading itself (Gateway, then GatewayClass, through the kube layer) and what the controller
does when it cannot read them are :mod:`controlplane.controller.gateway_source`'s, which calls
this module. The rules and the controller names, with where each was read: docs/analysis.md,
"Which source" and "What was read, and where".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.promql import http_errors
from controlplane.promql.http_errors import HttpSource
from controlplane.routing.gateway_api import DEFAULT_GATEWAY
from controlplane.spec.models import GatewayImplementation, ModelCanary

CONTROLLERS: Mapping[str, GatewayImplementation] = {
    "gateway.envoyproxy.io/gatewayclass-controller": "envoy-gateway",
    "istio.io/gateway-controller": "istio",
    "traefik.io/gateway-controller": "traefik",
}
"""GatewayClass ``spec.controllerName`` -> the implementation (module docstring: where read)."""

NAMES: Mapping[GatewayImplementation, str] = {
    "envoy-gateway": "Envoy Gateway",
    "istio": "Istio",
    "traefik": "Traefik",
}


@dataclass(frozen=True)
class Decision:
    """``source``: where ``error-rate`` reads HTTP answers; ``reason``: why, in words (logged,
    and in the controller's Event when the GatewayClass could not be read)."""

    source: HttpSource
    reason: str


def gateway_of(canary: ModelCanary) -> tuple[str, str] | None:
    """(namespace, name) of the Gateway API Gateway the canary's traffic passes: for
    ``gateway-api``, the parentRef of our HTTPRoute (``spec.traffic.gateway``, its namespace
    defaulting to the canary's, or KServe's :data:`DEFAULT_GATEWAY`); for ``kserve``, KServe's
    ingress Gateway, which its HTTPRoute attaches to: ``spec.traffic.gateway`` names it when it
    is not the default. None for the routers that pass none."""
    if canary.spec.traffic.router not in http_errors.GATEWAY_ROUTERS:
        return None
    gateway = canary.spec.traffic.gateway or DEFAULT_GATEWAY
    return (gateway.namespace or canary.metadata.namespace, gateway.name)


def needs_gateway_class(canary: ModelCanary) -> bool:
    """Whether :func:`decide` needs the GatewayClass: a Gateway is in the way, the spec names no
    implementation and the canary has an ``error-rate`` metric (nothing else reads the
    source)."""
    gateway = canary.spec.traffic.gateway
    return (
        gateway_of(canary) is not None
        and (gateway is None or gateway.implementation is None)
        and any(m.builtin == "error-rate" for m in canary.spec.analysis.metrics)
    )


def decide(canary: ModelCanary, controller_name: str | None) -> Decision:
    """The HTTP source of ``canary``'s ``error-rate`` (the module docstring's rules), given the
    ``spec.controllerName`` of its Gateway's GatewayClass (None: not read)."""
    router = canary.spec.traffic.router
    spec_source = http_errors.http_source(canary)
    where = gateway_of(canary)
    if where is None:
        return Decision(spec_source, f"router {router!r} passes no Gateway API Gateway")
    gateway = canary.spec.traffic.gateway
    if gateway is not None and gateway.implementation is not None:
        return Decision(
            spec_source, f"spec.traffic.gateway.implementation is {gateway.implementation!r}"
        )
    named = f"Gateway {where[0]}/{where[1]}"
    if controller_name is None:
        return Decision(
            spec_source,
            f"the GatewayClass of {named} was not read: router {router!r}'s default",
        )
    implementation = CONTROLLERS.get(controller_name)
    if implementation is None:
        return Decision(
            "engine",
            f"{named} is run by {controller_name!r}, no implementation known here (known: "
            f"{', '.join(sorted(CONTROLLERS))}): the engine alone; name it in "
            "spec.traffic.gateway.implementation",
        )
    return Decision(
        http_errors.IMPLEMENTATION_SOURCES[implementation],
        f"{named} is run by {NAMES[implementation]} ({controller_name})",
    )
