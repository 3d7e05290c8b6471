"""The protocol every Kubernetes call goes through, and the object reference type.

Owns the seam between the product and the API server: objects are camelCase ``dict``s, errors
are :class:`~controlplane.errors.KubeError` subclasses, and every name is fenced before a request
is built (the client joins names into the path unescaped). Implemented by
:mod:`controlplane.kube.real` and the harness' fake, held to one contract suite. See
docs/kube-adapter.md.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from controlplane.errors import Expired, KubeError, Unserved
from controlplane.spec.constants import API_VERSION, KIND
from controlplane.spec.name_checks import check_path_segment, check_ref_names
from controlplane.status.times import format_time

Obj = dict[str, Any]
JsonPatch = list[Obj]
"""An RFC 6902 JSON patch: a list of operations."""


@dataclass(frozen=True)
class Ref:
    """Names one object: ``api_version`` (``group/version`` or ``v1``), kind, namespace, name."""

    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])


def canary_ref(namespace: str, name: str) -> Ref:
    """The reference of the ModelCanary ``namespace/name`` (the controller's, the CLI's and the
    API's one spelling of it)."""
    return Ref(API_VERSION, KIND, namespace, name)


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
        """Objects of a kind (all namespaces when ``namespace`` is None); every page of it."""
        ...

    def list_with_version(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
        *,
        limit: int | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """The objects and the list's ``metadata.resourceVersion`` (where a watch that must miss
        nothing starts). ``limit``: page size; pages are followed with their ``continue`` token
        until the list is complete, all at the first page's version (an expired token is
        ``Expired``: list again)."""
        ...

    def create(self, obj: Obj) -> Obj:
        """Create; raise Conflict if it exists. Returns the stored object."""
        ...

    def replace(self, obj: Obj) -> Obj:
        """Replace the whole object (not status). ``metadata.resourceVersion``, when given, must
        match the stored one, else Conflict."""
        ...

    def patch(
        self, ref: Ref, patch: Obj | JsonPatch, *, kind: Literal["merge", "json"] = "merge"
    ) -> Obj:
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
        *,
        bookmarks: bool = False,
    ) -> Iterator[WatchEvent]:
        """Events after ``resource_version`` (None or ``"0"``: ADDED for every current object
        first); ends after ``timeout_s`` (or when dropped). With ``bookmarks``, also BOOKMARK
        events whose object carries only ``metadata.resourceVersion`` (the version to resume
        from), as the server sends them: periodically and shortly before the watch times out."""
        ...

    def event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        name: str | None = None,
    ) -> bool:
        """Record a Kubernetes Event about ``involved``. With ``name`` (a deterministic one,
        e.g. from the event's fingerprint) the Event is created under it, and an Event of that
        name that exists already is left as it is: False, told before (the API server's
        AlreadyExists), so a second controller telling the same event writes nothing. Without
        ``name`` the Event is aggregated as client-go's ``EventCorrelator`` does: under
        :func:`aggregate_name`, a repeat of the same event about the same object raises the
        stored one's ``count`` and ``lastTimestamp`` instead of adding an object (a failing git
        poll every 30 s is one Event, not one a poll), across controller restarts too."""
        ...

    def service_get(
        self,
        namespace: str,
        service: str,
        port: int,
        path: str,
        params: Mapping[str, str],
        timeout_s: float,
    ) -> bytes:
        """The body of ``GET path?params`` on ``service``'s ``port``, through the API server's
        Service proxy (``services/proxy``, verb ``get``): it reaches a pod wherever the caller
        runs, with nothing but the API server to talk to. A Service that does not exist is
        NotFound; no ready endpoint, an unreachable pod or an answer that is not 2xx raise
        KubeError with the server's status and words; ``timeout_s`` bounds each wait for the
        answer's bytes (a read timeout, as every other verb's)."""
        ...

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves ``api_version``/``kind`` (its CRD is installed), by
        discovery alone: no object is read, so no RBAC rule is needed."""
        ...


# --- helpers shared by the implementations (fake, real, lease) -----------------------------------


def check_ref(ref: Ref) -> None:
    """The fence of get / patch / delete: ``ref``'s namespace (when given) a DNS-1123 label,
    its name a safe path segment; else :class:`~controlplane.errors.InvalidName`."""
    check_ref_names(ref.namespace, None)
    check_path_segment(ref.name, "name")  # never None or empty: the client would list


def check_object(obj: object, *, creating: bool = False) -> None:
    """The fence of create / replace / apply / replace_status: ``metadata.namespace`` (when
    present, even empty) a DNS-1123 label and ``metadata.name`` a safe path segment. On create
    the name may be absent (``generateName``; the POST goes to the collection); every other
    write puts the name in the path, so it must be there. A body that is not an object is left
    to the adapter."""
    if not isinstance(obj, Mapping):
        return
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    namespace = meta.get("namespace")
    name = meta.get("name")
    check_ref_names(namespace, None)
    if not (creating and name in (None, "")):
        check_path_segment(name, "name")


def check_event(event: Mapping[str, Any], name: str | None) -> str:
    """The fence of ``event``: the name the Event from :func:`event_object` is recorded under
    (``name``, or :func:`aggregate_name`, made of the involved object's name), checked with its
    namespace; the involved object's name, when it has one, is a safe path segment too.
    Returns the name."""
    involved = event.get("involvedObject") or {}
    if "name" in involved:
        check_path_segment(involved["name"], "involvedObject.name")
    chosen = name if name is not None else aggregate_name(event)
    check_ref_names(event["metadata"]["namespace"], chosen)
    return chosen


GONE = "410 Gone"
"""Prefix of the :class:`~controlplane.errors.KubeError` message raised when a watch asks for a
``resourceVersion`` the server no longer remembers (HTTP 410 ``Expired``): relist, then watch from
the list's version. Test for it with :func:`is_expired`."""


def expired(detail: str) -> Expired:
    """The error a watch raises for a too-old ``resourceVersion`` (real server: 410 Expired)."""
    return Expired(f"{GONE}: Expired: {detail}")


def unserved(api_version: str, kind: str) -> Unserved:
    """The error for a kind the API server does not serve (no CRD installed for it)."""
    return Unserved(f"404 NotFound: the API server does not serve {api_version}/{kind}")


def bookmark(kind: str, api_version: str, resource_version: str) -> WatchEvent:
    """A BOOKMARK event as the API server sends it: the kind and only the resourceVersion."""
    return WatchEvent(
        "BOOKMARK",
        {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": resource_version},
        },
    )


def event_version(event: WatchEvent) -> str | None:
    """The resourceVersion a watch event carries (where the next watch resumes), if any."""
    version = event.object.get("metadata", {}).get("resourceVersion")
    return None if version in (None, "") else str(version)


def is_expired(exc: BaseException) -> bool:
    """True for the 410 Gone / Expired error of a watch (the caller must relist)."""
    return isinstance(exc, Expired)


def aggregate_name(event: Mapping[str, Any]) -> str:
    """The name an unnamed Event is recorded under (:meth:`KubeClient.event`): the involved
    object's name and a digest of what makes two events the same one for client-go's
    ``EventCorrelator`` (the involved object, type, reason, message and reporting component),
    so a repeat finds the first by name."""
    involved = event.get("involvedObject", {})
    same = "\x00".join(
        str(x)
        for x in (
            involved.get("apiVersion"),
            involved.get("kind"),
            involved.get("namespace"),
            involved.get("name"),
            involved.get("uid"),
            event.get("type"),
            event.get("reason"),
            event.get("message"),
            event.get("reportingComponent"),
        )
    )
    base = str(involved.get("name") or "event")[:200]
    return f"{base}.{hashlib.sha256(same.encode()).hexdigest()[:16]}"


def event_object(
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    type_: str,
    *,
    now: float,
    component: str,
) -> Obj:
    """A core/v1 Event about ``involved`` (what ``record.EventRecorder`` writes), unnamed.

    The caller picks ``metadata.name``; the Event lives in the involved object's namespace
    (``default`` for cluster-scoped objects).
    """
    if type_ not in ("Normal", "Warning"):
        raise KubeError(f"422 Invalid: Event type must be Normal or Warning, not {type_!r}")
    meta = involved.get("metadata", {})
    namespace = meta.get("namespace") or "default"
    ref: Obj = {
        "apiVersion": involved.get("apiVersion"),
        "kind": involved.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": namespace},
        "involvedObject": {k: v for k, v in ref.items() if v is not None},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": component},
        "reportingComponent": component,
    }
