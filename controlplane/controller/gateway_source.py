"""Which HTTP source a canary's ``error-rate`` reads, from the class of its Gateway.

Owns :class:`GatewaySources`, asked by the reconciler for every canary it hands to analysis:
for a canary whose traffic passes a Gateway API Gateway and whose spec names no implementation
(:func:`controlplane.routing.gateways.needs_gateway_class`), it reads the Gateway
(``spec.gatewayClassName``), then its cluster-scoped GatewayClass (``spec.controllerName``),
with two GETs through the KubeClient (RBAC: get on ``gateways`` and ``gatewayclasses``, the
chart's ``<release>-gateways`` ClusterRole), and returns the source
:func:`~controlplane.routing.gateways.decide` makes of it. What was read is kept per Gateway
for :data:`READ_EVERY_S` (a GatewayClass seldom changes; a fleet's canaries share a few
Gateways), so a tick asks the API server at most twice per Gateway.

When either object cannot be read (403 Forbidden: the chart's ``rbac.readGateways`` is off;
404: no such Gateway or class, or no Gateway API CRDs; any other API error) the analysis goes
on with the source the spec names (the router's default: Envoy Gateway's for ``gateway-api``
and ``kserve``), and the canary gets ONE Warning Event, reason :data:`UNREADABLE_REASON`,
naming what could not be read, why, and the source used instead; it is told again only after a
read has worked in between. The chosen source is logged once per canary, and again when it
changes. Nothing here fails a reconcile: an Event the API server refuses is logged.

Called by :class:`controlplane.controller.reconcile.Reconciler` (``prepare``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from controlplane.controller.context import event
from controlplane.errors import KubeError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.promql.http_errors import HttpSource
from controlplane.routing import gateways
from controlplane.spec.models import ModelCanary

log = logging.getLogger(__name__)

API_VERSION = "gateway.networking.k8s.io/v1"
GATEWAY_KINDS = ("Gateway", "GatewayClass")
"""The kinds read here (the Gateway namespaced, its class cluster-scoped)."""

UNREADABLE_REASON = "GatewayUnreadable"
READ_EVERY_S = 300.0
"""How long what was read of a Gateway (or why it could not be) is used before it is read again."""


@dataclass(frozen=True)
class _Read:
    """What was read of one Gateway at ``at``: its class's ``controller`` name, or ``problem``,
    what could not be read and why."""

    controller: str | None
    problem: str | None
    at: float


class GatewaySources:
    """The HTTP source of each canary's ``error-rate`` (module docstring). Thread-safe."""

    def __init__(self, kube: KubeClient, *, read_every_s: float = READ_EVERY_S) -> None:
        self.kube = kube
        self.read_every_s = read_every_s
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, str], _Read] = {}
        self._told: set[tuple[str, str]] = set()  # canaries told the Gateway is unreadable
        self._logged: dict[tuple[str, str], HttpSource] = {}

    def source(self, obj: Obj, canary: ModelCanary, now: float) -> HttpSource:
        """The source of ``canary`` (``obj``: its object, for the Event) at ``now``."""
        key = (canary.metadata.namespace, canary.metadata.name)
        where = gateways.gateway_of(canary)
        read = None
        if where is not None and gateways.needs_gateway_class(canary):
            read = self._read(where, now)
        decision = gateways.decide(canary, read.controller if read is not None else None)
        if read is not None and read.problem is not None:
            message = (
                f"{read.problem}; error-rate reads router {canary.spec.traffic.router!r}'s "
                f"default HTTP source ({decision.source}) until it can: let the controller get "
                "gateways and gatewayclasses (chart value rbac.readGateways), or name the "
                "implementation in spec.traffic.gateway.implementation"
            )
            self._tell(obj, key, message)
        elif read is not None:
            with self._lock:
                self._told.discard(key)
        with self._lock:
            changed = self._logged.get(key) != decision.source
            self._logged[key] = decision.source
        if changed:
            log.info("%s/%s: error-rate reads %s (%s)", *key, decision.source, decision.reason)
        return decision.source

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is kept for a canary that is gone."""
        with self._lock:
            self._told.discard((namespace, name))
            self._logged.pop((namespace, name), None)

    def _read(self, where: tuple[str, str], now: float) -> _Read:
        with self._lock:
            kept = self._reads.get(where)
        if kept is not None and now - kept.at < self.read_every_s:
            return kept
        read = self._get(where, now)
        with self._lock:
            self._reads[where] = read
        return read

    def _get(self, where: tuple[str, str], now: float) -> _Read:
        namespace, name = where
        try:
            gateway = self.kube.get(Ref(API_VERSION, "Gateway", namespace, name))
        except KubeError as exc:
            return _Read(None, f"cannot read Gateway {namespace}/{name} ({exc})", now)
        class_name = (gateway.get("spec") or {}).get("gatewayClassName")
        if not isinstance(class_name, str) or not class_name:
            return _Read(None, f"Gateway {namespace}/{name} names no gatewayClassName", now)
        try:
            found = self.kube.get(Ref(API_VERSION, "GatewayClass", None, class_name))
        except KubeError as exc:
            return _Read(
                None,
                f"cannot read GatewayClass {class_name} of Gateway {namespace}/{name} ({exc})",
                now,
            )
        controller = (found.get("spec") or {}).get("controllerName")
        if not isinstance(controller, str) or not controller:
            return _Read(None, f"GatewayClass {class_name} names no controllerName", now)
        return _Read(controller, None, now)

    def _tell(self, obj: Obj, key: tuple[str, str], message: str) -> None:
        with self._lock:
            if key in self._told:
                return
        try:
            event(self.kube, obj, UNREADABLE_REASON, message, "Warning")
        except KubeError as exc:  # told again at the next analysis
            log.warning("%s/%s: could not record %s (%s)", *key, UNREADABLE_REASON, exc)
            return
        with self._lock:
            self._told.add(key)
