"""Which alerts were already delivered: deduplication that survives a controller restart.

Owns :class:`Ledger`, keyed by the event's fingerprint and the channel, kept in memory and, with a
``kube`` client, in a ConfigMap per canary so a restarted controller does not page twice.
ConfigMap failures are logged, never raised (memory only then). Called by
:mod:`controlplane.notify.notifier`. See docs/alerts.md, "Delivery, retries, deduplication".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.errors import Conflict, KubeError, NotFound
from controlplane.kube.client import KubeClient, Ref
from controlplane.rollout.events import Delivered
from controlplane.spec.models import API_VERSION

log = logging.getLogger(__name__)

LEDGER_LABEL = "canary.controlplane.dev/alert-ledger"
MAX_ENTRIES = 500
CONFLICT_RETRIES = 3


def ledger_name(canary: str) -> str:
    return f"modelcanary-{canary}-alerts"[:253]


@dataclass(frozen=True)
class Owner:
    """The canary a delivery is about: where its ledger ConfigMap lives, and its owner."""

    namespace: str
    name: str
    uid: str | None
    api_version: str = API_VERSION
    kind: str = "ModelCanary"


class Ledger:
    """Delivered / in-flight deliveries within ``window_s`` (wall-clock seconds)."""

    def __init__(
        self,
        window_s: float,
        kube: KubeClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self._kube = kube
        self._clock = clock
        self._lock = threading.Lock()
        self._claimed = Delivered(window_s=window_s)

    # ------------------------------------------------------------------- in memory (any thread)

    def claim(self, key: str) -> bool:
        """Mark ``key`` as in flight; False when it is already claimed or delivered."""
        now = self._clock()
        with self._lock:
            if self._claimed.has(key, now):
                return False
            self._claimed = self._claimed.with_key(key, now)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._claimed = self._claimed.without(key)

    # ------------------------------------------------------------- persisted (worker thread)

    def delivered(self, owner: Owner, key: str) -> bool:
        """True when the ConfigMap records ``key`` within the window."""
        if self._kube is None:
            return False
        try:
            cm = self._kube.get(Ref("v1", "ConfigMap", owner.namespace, ledger_name(owner.name)))
        except NotFound:
            return False
        except KubeError as exc:
            log.warning("alert ledger of %s/%s unreadable: %s", owner.namespace, owner.name, exc)
            return False
        record = Delivered.from_data(cm.get("data"), window_s=self.window_s)
        return record.has(key, self._clock())

    def record(self, owner: Owner, key: str) -> None:
        """Remember a successful delivery (memory, then the ConfigMap)."""
        now = self._clock()
        with self._lock:
            self._claimed = self._claimed.with_key(key, now)
        if self._kube is None:
            return
        for _ in range(CONFLICT_RETRIES):
            try:
                self._write(owner, key, now)
                return
            except Conflict:
                continue
            except KubeError as exc:
                log.warning(
                    "alert ledger of %s/%s not written: %s", owner.namespace, owner.name, exc
                )
                return
        log.warning("alert ledger of %s/%s: too many conflicts", owner.namespace, owner.name)

    def _write(self, owner: Owner, key: str, now: float) -> None:
        assert self._kube is not None
        ref = Ref("v1", "ConfigMap", owner.namespace, ledger_name(owner.name))
        empty = Delivered(window_s=self.window_s, limit=MAX_ENTRIES)
        try:
            cm = self._kube.get(ref)
        except NotFound:
            self._kube.create(self._new(owner, empty.with_key(key, now).to_data()))
            return
        record = Delivered.from_data(cm.get("data"), window_s=self.window_s, limit=MAX_ENTRIES)
        cm["data"] = record.with_key(key, now).to_data()
        self._kube.replace(cm)

    def _new(self, owner: Owner, data: dict[str, str]) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": ledger_name(owner.name),
            "namespace": owner.namespace,
            "labels": {
                LEDGER_LABEL: owner.name,
                "app.kubernetes.io/managed-by": "canary-controller",
            },
        }
        if owner.uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": owner.api_version,
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                }
            ]
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
