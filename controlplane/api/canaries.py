"""The HTTP API's read routes: list ModelCanaries, get one.

Owns :func:`canary_routes` (``GET /api/v1/canaries``, ``GET /api/v1/namespaces/{ns}/canaries``
and ``.../canaries/{name}``). Reads go through :mod:`controlplane.operations`, as
``kubectl canary list`` / ``get`` do; who may read is :class:`~controlplane.api.access.Access`'s.
``{namespace}`` and ``{name}`` are checked as Kubernetes names before anything else
(:data:`~controlplane.api.models.NamespacePath`, :data:`~controlplane.api.models.NamePath`: 422),
so a name can never reach the Kubernetes client as a query or another path. Every answer a route
can give is declared in the OpenAPI document. Called by :func:`controlplane.api.app.create_app`.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from controlplane import operations
from controlplane.api.access import Access
from controlplane.api.auth import Identity
from controlplane.api.config import ApiConfig
from controlplane.api.error_responses import declared
from controlplane.api.models import (
    CanaryDetail,
    CanaryList,
    CanarySummary,
    NamePath,
    NamespacePath,
    summary,
)

_NOT_WATCHED = "a namespace the controller does not watch"


def canary_routes(config: ApiConfig, access: Access) -> APIRouter:
    """The read routes over ``config.kube``."""
    router = APIRouter(tags=["canaries"])
    kube, watched = config.kube, access.watched

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
        if watched is None:
            access.allow(who, "list", None)
            items = operations.list_canaries(kube, None)
        else:
            decisions = {ns: access.auth.authorize(who, "list", ns) for ns in watched}
            allowed = [ns for ns, decision in decisions.items() if decision.allowed]
            if not allowed:
                raise HTTPException(403, "; ".join(d.reason for d in decisions.values()))
            items = [o for ns in allowed for o in operations.list_canaries(kube, ns)]
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
        items = operations.list_canaries(kube, namespace)
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
        """One ModelCanary with its spec and status."""
        access.allow(who, "get", namespace, name)
        obj = operations.get_canary(kube, namespace, name)
        return CanaryDetail(
            **summary(obj), spec=obj.get("spec") or {}, status=obj.get("status") or {}
        )

    return router
