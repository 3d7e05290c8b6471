"""Leader election on a ``coordination.k8s.io/v1`` Lease, over the KubeClient protocol only.

Owns :class:`LeaderElector`, called once per loop so that exactly one replica acts, with
client-go's ``leaderelection`` algorithm (expiry judged on the candidate's own clock, writes
carrying the read ``resourceVersion``). A bad lease name fails at start-up. See
docs/kube-adapter.md, "LeaderElector".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.errors import Conflict, NotFound
from controlplane.kube.client import KubeClient, Obj, Ref
from controlplane.spec.name_checks import check_ref_names
from controlplane.status.times import format_time

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"


@dataclass(frozen=True)
class _Observed:
    record: tuple[Any, ...]
    at: float


class LeaderElector:
    """One candidate for the lease ``namespace/name``; ``identity`` must be unique per replica."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_s: float,
        now: Callable[[], float],
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")  # a programming error, not input
        if lease_duration_s <= 0:
            raise ValueError("lease_duration_s must be positive")
        check_ref_names(namespace, name)
        self._kube = kube
        self._ref = Ref(API_VERSION, KIND, namespace, name)
        self.identity = identity
        # leaseDurationSeconds is whole seconds on the wire; use what the others will see.
        self.lease_duration_s = float(_seconds(lease_duration_s))
        self._now = now
        self._observed: _Observed | None = None
        self._renewed_at: float | None = None

    @property
    def ref(self) -> Ref:
        return self._ref

    def is_leader(self) -> bool:
        """True while our last successful acquire/renew is younger than the lease duration."""
        return self._renewed_at is not None and self._now() < (
            self._renewed_at + self.lease_duration_s
        )

    def try_acquire_or_renew(self) -> bool:
        """One round: acquire the lease if free or expired, renew it if ours. True if leader."""
        now = self._now()
        try:
            lease = self._kube.get(self._ref)
        except NotFound:
            return self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (
            holder,
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseDurationSeconds"),
            spec.get("leaseTransitions"),
        )
        if self._observed is None or self._observed.record != record:
            self._observed = _Observed(record, now)
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_s)
        expired = now >= self._observed.at + duration
        if holder and holder != self.identity and not expired:
            self._renewed_at = None
            return False
        new_spec: dict[str, Any] = dict(spec)
        stamp = format_time(now, micro=True)
        if holder != self.identity:
            new_spec["holderIdentity"] = self.identity
            new_spec["acquireTime"] = stamp
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if holder else 0
            )
        new_spec["renewTime"] = stamp
        new_spec["leaseDurationSeconds"] = _seconds(self.lease_duration_s)
        updated = dict(lease)
        updated["spec"] = new_spec
        return self._write(updated, now)

    def release(self) -> bool:
        """Give the lease up if we hold it (client-go ``ReleaseOnCancel``). True if released."""
        if self._renewed_at is None:
            return False
        self._renewed_at = None
        try:
            lease = self._kube.get(self._ref)
        except NotFound:
            return False
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return False
        stamp = format_time(self._now(), micro=True)
        spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": stamp})
        try:
            self._kube.replace({**lease, "spec": spec})
        except (Conflict, NotFound):
            return False
        return True

    def _create(self, now: float) -> bool:
        stamp = format_time(now, micro=True)
        lease: Obj = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": self._ref.name, "namespace": self._ref.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": _seconds(self.lease_duration_s),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }
        try:
            self._kube.create(lease)
        except Conflict:
            self._renewed_at = None
            return False
        self._renewed_at = now
        return True

    def _write(self, lease: Obj, now: float) -> bool:
        try:
            self._kube.replace(lease)
        except (Conflict, NotFound):
            self._renewed_at = None
            return False
        self._renewed_at = now
        return True


def _seconds(value: float) -> int:
    """``leaseDurationSeconds`` is an int32 on the wire; round up."""
    return max(1, math.ceil(value))
