"""Reads the class of a canary's Gateway for its ``error-rate``'s HTTP source (the shell).

Owns :class:`GatewaySources`, asked by the reconciler (``prepare``) for every canary it hands to
analysis: two GETs (the Gateway's ``spec.gatewayClassName``, then the GatewayClass's
``spec.controllerName``; RBAC: the chart's ``rbac.readGateways``), kept per Gateway for
:data:`READ_EVERY_S`, handed to :func:`controlplane.promql.http_errors.decide`. A read that
fails leaves the spec's source and ONE Warning Event (:data:`UNREADABLE_REASON`) until a read
works again; the source is logged when it changes. Nothing here fails a reconcile.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from controlplane.controller.context import event
from controlplane.errors import KubeError
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.promql import http_errors
from controlplane.promql.http_errors import HttpSource
from controlplane.spec.models import ModelCanary

log = logging.getLogger(__name__)

API_VERSION = "gateway.networking.k8s.io/v1"

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
        where = http_errors.gateway_of(canary)
        read = None
        if where is not None and http_errors.needs_gateway_class(canary):
            read = self._read(where, now)
        decision = http_errors.decide(
            canary,
            read.controller if read is not None else None,
            read.problem if read is not None else None,
        )
        if decision.warning is not None:
            self._tell(obj, key, decision.warning)
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
