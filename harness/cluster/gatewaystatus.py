"""The status half of a Gateway API controller, for the loopback control plane.

Owns one thing a Gateway controller (Envoy Gateway, Istio, ...) does that KServe waits for:
writing ``status.parents`` on every HTTPRoute attached to a Gateway of its GatewayClass. KServe
v0.20.0 marks an InferenceService's ``IngressReady`` only when each of its HTTPRoutes has a parent
status and no condition there is False (``isHTTPRouteReady`` in
``pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/httproute_reconciler.go``).

Per the Gateway API spec (``HTTPRouteStatus`` / ``RouteParentStatus`` in
``apis/v1/shared_types.go``, v1.5.1) each parent gets ``Accepted`` (the parent Gateway exists
and is of our class) and ``ResolvedRefs`` (every ``backendRef`` names a Service that exists;
reason ``BackendNotFound`` otherwise), with ``observedGeneration`` and our ``controllerName``.
No data plane runs: the route is accepted, nothing is proxied.

Run as ``python -m harness.cluster.gatewaystatus --kubeconfig K --gateway-class C`` by
:func:`harness.cluster.kserve.start_kserve`; it polls twice a second until terminated.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from controlplane.errors import ControlPlaneError, NotFound
from controlplane.kube.client import KubeClient, Obj

CONTROLLER = "controlplane.dev/loopback-gateway"
ROUTE = ("gateway.networking.k8s.io/v1", "HTTPRoute")
GATEWAY = ("gateway.networking.k8s.io/v1", "Gateway")


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def parent_statuses(
    route: Obj,
    gateway_classes: dict[tuple[str, str], str],
    services: set[tuple[str, str]],
    ours: str,
) -> list[dict[str, Any]]:
    """The ``status.parents`` our controller owes ``route`` (pure): one entry per parentRef to a
    Gateway of class ``ours`` (``gateway_classes`` maps (namespace, name) of each Gateway to its
    class; ``services`` is every existing (namespace, name) Service)."""
    namespace = route["metadata"]["namespace"]
    generation = int(route["metadata"].get("generation") or 0)
    missing = []
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                continue
            key = (ref.get("namespace") or namespace, ref["name"])
            if key not in services:
                missing.append(f"{key[0]}/{key[1]}")
    parents = []
    for parent in (route.get("spec") or {}).get("parentRefs") or []:
        if parent.get("kind", "Gateway") != "Gateway":
            continue
        key = (parent.get("namespace") or namespace, parent["name"])
        if gateway_classes.get(key) != ours:
            continue
        resolved = not missing
        parents.append(
            {
                "parentRef": parent,
                "controllerName": CONTROLLER,
                "conditions": [
                    _condition("Accepted", True, "Accepted", "Route is accepted", generation),
                    _condition(
                        "ResolvedRefs",
                        resolved,
                        "ResolvedRefs" if resolved else "BackendNotFound",
                        "Resolved all the Object references for the Route"
                        if resolved
                        else "Service(s) not found: " + ", ".join(sorted(missing)),
                        generation,
                    ),
                ],
            }
        )
    return parents


def _same(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def strip(parents: list[dict[str, Any]]) -> list[Any]:
        return [
            (
                p.get("parentRef"),
                [
                    (c["type"], c["status"], c["reason"], c.get("observedGeneration"))
                    for c in p.get("conditions") or []
                ],
            )
            for p in parents
        ]

    return strip(old) == strip(new)


def sync_once(kube: KubeClient, gateway_class: str) -> int:
    """Write the parent statuses that changed; returns how many routes were written."""
    classes = {
        (g["metadata"]["namespace"], g["metadata"]["name"]): g["spec"]["gatewayClassName"]
        for g in kube.list(*GATEWAY)
    }
    services = {
        (s["metadata"]["namespace"], s["metadata"]["name"]) for s in kube.list("v1", "Service")
    }
    written = 0
    for route in kube.list(*ROUTE):
        wanted = parent_statuses(route, classes, services, gateway_class)
        current = [
            p
            for p in (route.get("status") or {}).get("parents") or []
            if p.get("controllerName") != CONTROLLER
        ]
        ours = [
            p
            for p in (route.get("status") or {}).get("parents") or []
            if p.get("controllerName") == CONTROLLER
        ]
        if _same(ours, wanted):
            continue
        route["status"] = {"parents": current + wanted}
        try:
            kube.replace_status(route)
            written += 1
        except (NotFound, ControlPlaneError):
            continue  # deleted or changed meanwhile: the next pass sees it again
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.cluster.gatewaystatus")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--gateway-class", required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    from controlplane.kube.real import RealKube

    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    kube = RealKube.connect(kubeconfig=args.kubeconfig)
    while not stop:
        try:
            sync_once(kube, args.gateway_class)
        except ControlPlaneError as exc:
            print(f"gatewaystatus: {exc}", file=sys.stderr, flush=True)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
