"""The protocol every Kubernetes call goes through, and the object reference type.

Owns the seam between the product and the API server. Objects are plain ``dict``s in the API's
camelCase JSON form (what ``kubectl get -o json`` prints). Implementations: the real one over the
``kubernetes`` client (:mod:`controlplane.kube.real`) and a faithful in-memory fake
(:mod:`controlplane.kube.fake`) with resourceVersion conflicts, watches, the status subresource
and a fake KServe. Errors are :class:`controlplane.errors.KubeError` subclasses
(``NotFound``, ``Conflict``), never the client's own exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """Names one object: ``api_version`` (``group/version`` or ``v1``), ``kind``, namespace, name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


@dataclass(frozen=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Obj


class KubeClient(Protocol):
    """What the product needs from the API server; nothing more."""

    def get(self, ref: Ref) -> Obj:
        """The object, or raise NotFound."""
        ...

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> list[Obj]:
        """Objects of a kind (all namespaces when ``namespace`` is None)."""
        ...

    def create(self, obj: Obj) -> Obj:
        """Create; raise Conflict if it exists. Returns the stored object."""
        ...

    def replace(self, obj: Obj) -> Obj:
        """Replace the whole object (not status). ``metadata.resourceVersion``, when given, must
        match the stored one, else Conflict."""
        ...

    def patch(self, ref: Ref, patch: Obj, *, kind: Literal["merge", "json"] = "merge") -> Obj:
        """JSON merge patch (RFC 7386) or JSON patch (RFC 6902) of the main resource."""
        ...

    def apply(self, obj: Obj, *, field_manager: str = "canary-controller") -> Obj:
        """Create or update so the object holds ``obj``'s fields (server-side apply semantics)."""
        ...

    def replace_status(self, obj: Obj) -> Obj:
        """Write ``obj['status']`` through the status subresource, with the same resourceVersion
        check as ``replace``; other fields of ``obj`` are ignored."""
        ...

    def delete(self, ref: Ref) -> None:
        """Delete (finalizers respected: marks deletionTimestamp while any remain)."""
        ...

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        resource_version: str | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[WatchEvent]:
        """Events after ``resource_version``; ends after ``timeout_s`` (or when dropped)."""
        ...

    def event(self, involved: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        """Record a Kubernetes Event about ``involved``."""
        ...
