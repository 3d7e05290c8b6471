"""The Gateway API objects the loopback cluster's gateways stand on: a GatewayClass and a Gateway.

Owns :func:`gateway_objects`, used by :mod:`harness.cluster.kserve` and
:mod:`harness.cluster.llmisvc` (the class of the status stand-in,
:mod:`harness.cluster.gatewaystatus`) and by :mod:`harness.cluster.traefik` (Traefik's class and
a listener on its entry point's port). The Gateway is, by default, the one the product's routers
attach to without ``spec.traffic.gateway``: KServe's ``kserve/kserve-ingress-gateway``
(:data:`controlplane.spec.models.DEFAULT_GATEWAY`). Pure.
"""

from __future__ import annotations

from typing import Any

from controlplane.spec.models import DEFAULT_GATEWAY

API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY: tuple[str, str] = (DEFAULT_GATEWAY.namespace or "kserve", DEFAULT_GATEWAY.name)
"""(namespace, name) of the product's default Gateway."""


def gateway_objects(
    gateway_class: str,
    controller: str,
    port: int,
    *,
    gateway: tuple[str, str] = GATEWAY,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The GatewayClass ``gateway_class`` of ``controller`` and the Gateway ``gateway``
    (namespace, name) of that class, one HTTP listener on ``port`` for routes of every namespace;
    ``labels`` become the Gateway's ``spec.infrastructure.labels``."""
    namespace, name = gateway
    spec: dict[str, Any] = {
        "gatewayClassName": gateway_class,
        "listeners": [
            {
                "name": "http",
                "protocol": "HTTP",
                "port": port,
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }
        ],
    }
    if labels:
        spec["infrastructure"] = {"labels": dict(labels)}
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "GatewayClass",
            "metadata": {"name": gateway_class},
            "spec": {"controllerName": controller},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        },
    ]
