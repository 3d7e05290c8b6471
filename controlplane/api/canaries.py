"""The HTTP API's read routes: who am I, list ModelCanaries, get one, its Events and objects.

Owns :func:`canary_routes`; each answers what ``kubectl canary get`` shows, read by the same
code through the :class:`~controlplane.api.sources.CanarySource`, for whoever
:class:`~controlplane.api.access.Access` lets read. Path names are checked as Kubernetes names
first (422). Called by :func:`controlplane.api.app.create_app`; the routes are in docs/api.md.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from controlplane.api.access import Access
from controlplane.api.auth import Identity
from controlplane.api.error_responses import declared
from controlplane.api.models import (
    CanaryDetail,
    CanaryList,
    CanarySummary,
    EventList,
    Mode,
    NamePath,
    NamespacePath,
    ObjectTree,
    WhoAmI,
    detail,
    event_list,
    object_tree,
)
from controlplane.api.sources import CanarySource
from controlplane.kube.client import Obj
from controlplane.profiles.measured import Loaded
from controlplane.view.canary import summary

_NOT_WATCHED = "a namespace the controller does not watch"


def listable(
    access: Access, who: Identity, present: Callable[[], Iterable[str]] = tuple
) -> tuple[str, ...] | None:
    """The namespaces ``who`` may list canaries in (None: all), as ``GET /api/v1/canaries``
    decides: ``list`` in all namespaces; else, on a server that watches some namespaces, each of
    them the caller may list; else (it watches all) each of the namespaces ``present`` names (those
    that hold a canary) the caller may list, so a team that may list its own namespace only sees
    its canaries on the list page. 403 when none, with the API server's reasons."""
    if access.watched is None:
        whole = access.auth.authorize(who, "list", None)
        if whole.allowed:
            return None
        candidates: Iterable[str] = sorted(set(present()))
        refusal = whole.reason
    else:
        candidates, refusal = access.watched, ""
    decisions = {ns: access.auth.authorize(who, "list", ns) for ns in candidates}
    allowed = tuple(ns for ns, decision in decisions.items() if decision.allowed)
    if not allowed:
        raise HTTPException(403, refusal or "; ".join(d.reason for d in decisions.values()))
    return allowed


def canary_routes(
    source: CanarySource, access: Access, mode: Mode, measured: Sequence[Loaded] = ()
) -> APIRouter:
    """The read routes over ``source``; a canary's variants are paired with the ``measured``
    profile entries for its expected change."""
    router = APIRouter(tags=["canaries"])

    @router.get("/api/v1/whoami", response_model=WhoAmI, responses=declared(401))
    def whoami(who: Annotated[Identity, Depends(access.identity)]) -> WhoAmI:
        """The caller as authenticated, and what serves this API (``controller``: the
        controller's; ``kubeconfig``: ``kubectl canary dashboard``; ``local``: ``canaryctl
        up``)."""
        return WhoAmI(user=who.username, mode=mode)

    @router.get(
        "/api/v1/canaries",
        response_model=CanaryList,
        responses=declared(
            401, 403, 502, 503, _403="the caller may not list modelcanaries (in any namespace)"
        ),
    )
    def list_all(who: Annotated[Identity, Depends(access.identity)]) -> CanaryList:
        """Every ModelCanary the controller can see: needs ``list`` in all namespaces, or, on a
        controller that watches some namespaces, lists each of them the caller may list."""
        listed: list[Obj] = []

        def present() -> Iterable[str]:  # asked only when the caller may not list them all
            listed.extend(source.list(None))
            return (o["metadata"]["namespace"] for o in listed)

        allowed = listable(access, who, present)
        if allowed is None:
            items = source.list(None)
        elif access.watched is None:
            items = [o for o in listed if o["metadata"]["namespace"] in allowed]
        else:
            items = [o for ns in allowed for o in source.list(ns)]
        return CanaryList(items=[CanarySummary(**summary(o)) for o in items])

    @router.get(
        "/api/v1/namespaces/{namespace}/canaries",
        response_model=CanaryList,
        responses=declared(401, 403, 404, 502, 503, _404=_NOT_WATCHED),
    )
    def list_namespace(
        namespace: NamespacePath, who: Annotated[Identity, Depends(access.identity)]
    ) -> CanaryList:
        """The ModelCanaries of ``namespace``."""
        access.allow(who, "list", namespace)
        items = source.list(namespace)
        return CanaryList(items=[CanarySummary(**summary(o)) for o in items])

    @router.get(
        "/api/v1/namespaces/{namespace}/canaries/{name}",
        response_model=CanaryDetail,
        responses=declared(401, 403, 404, 502, 503),
    )
    def get_one(
        namespace: NamespacePath,
        name: NamePath,
        who: Annotated[Identity, Depends(access.identity)],
    ) -> CanaryDetail:
        """One ModelCanary with its spec and status, and the expected change beside the
        observed one (``expected``)."""
        access.allow(who, "get", namespace, name)
        return detail(source.get(namespace, name), measured)

    @router.get(
        "/api/v1/namespaces/{namespace}/canaries/{name}/events",
        response_model=EventList,
        responses=declared(401, 403, 404, 502, 503),
    )
    def events(
        namespace: NamespacePath,
        name: NamePath,
        who: Annotated[Identity, Depends(access.identity)],
    ) -> EventList:
        """The Kubernetes Events about the canary and the objects it owns, oldest first
        (``why``: why none could be read)."""
        access.allow(who, "get", namespace, name)
        obj = source.get(namespace, name)
        return event_list(source.owned(obj))

    @router.get(
        "/api/v1/namespaces/{namespace}/canaries/{name}/objects",
        response_model=ObjectTree,
        responses=declared(401, 403, 404, 502, 503),
    )
    def objects(
        namespace: NamespacePath,
        name: NamePath,
        who: Annotated[Identity, Depends(access.identity)],
    ) -> ObjectTree:
        """The objects the canary owns as a tree with their health, and the weights the status
        sets against those its route holds now."""
        access.allow(who, "get", namespace, name)
        obj = source.get(namespace, name)
        return object_tree(obj, source.owned(obj))

    return router
