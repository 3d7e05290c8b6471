"""Secret values for the alert channels, read through the Kubernetes adapter and cached briefly.

Owns :class:`SecretReader`: one key of a Secret in the canary's namespace, decoded and stripped,
cached for ``ttl_s`` (misses are not). A missing Secret, key or value raises
:class:`~controlplane.errors.AlertDeliveryError`; other API failures are transient
:class:`~controlplane.errors.KubeError`. See docs/alerts.md, "Secrets".
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable

from controlplane.errors import AlertDeliveryError, NotFound
from controlplane.kube.client import KubeClient, Ref
from controlplane.spec.models import SecretKeyRef


class SecretReader:
    """Reads ``SecretKeyRef``s of a namespace; thread-safe; ``clock`` in seconds."""

    def __init__(
        self, kube: KubeClient, *, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kube = kube
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[float, bytes]] = {}

    def read(self, namespace: str, ref: SecretKeyRef) -> bytes:
        key = (namespace, ref.name, ref.key)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        value = self._fetch(namespace, ref)
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def forget(self) -> None:
        """Drop every cached value."""
        with self._lock:
            self._cache.clear()

    def _fetch(self, namespace: str, ref: SecretKeyRef) -> bytes:
        where = f"Secret {namespace}/{ref.name}"
        try:
            secret = self._kube.get(Ref("v1", "Secret", namespace, ref.name))
        except NotFound:
            raise AlertDeliveryError(f"{where} not found") from None
        data = secret.get("data") or {}
        if ref.key in data:
            try:
                value = base64.b64decode(str(data[ref.key]), validate=True)
            except (binascii.Error, ValueError):
                raise AlertDeliveryError(f"{where}: key {ref.key!r} is not base64") from None
        elif ref.key in (secret.get("stringData") or {}):
            value = str(secret["stringData"][ref.key]).encode()
        else:
            raise AlertDeliveryError(f"{where} has no key {ref.key!r}")
        value = value.strip()
        if not value:
            raise AlertDeliveryError(f"{where}: key {ref.key!r} is empty")
        return value
