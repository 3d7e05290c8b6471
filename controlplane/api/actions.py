"""The HTTP API's verbs: ``POST /api/v1/namespaces/{ns}/canaries/{name}/{verb}``.

Owns :func:`action_routes`: one route per verb of :data:`controlplane.rollout.intents.VERBS`,
recording the intent through the :class:`~controlplane.api.sources.CanarySource` as ``kubectl
canary`` does (202), for whoever :class:`~controlplane.api.access.Access` lets ``patch``
(:func:`may_act` tells the page first). Called by :func:`controlplane.api.app.create_app`.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from controlplane.api.access import Access
from controlplane.api.auth import Identity
from controlplane.api.error_responses import declared
from controlplane.api.models import (
    ActAccess,
    ActionBody,
    ActionResult,
    IntentView,
    NamePath,
    NamespacePath,
    PromoteBody,
)
from controlplane.api.sources import CanarySource
from controlplane.rollout import intents

_RESPONSES: dict[int | str, dict[str, Any]] = declared(
    401, 403, 404, 409, 413, 502, 503, _403="not allowed to patch modelcanaries there"
)


def act(
    source: CanarySource, access: Access, namespace: str, name: str, verb: str, who: Identity
) -> ActionResult:
    """Record ``verb`` by ``who`` on the canary, wake the controller, answer with the intent."""
    access.allow(who, "patch", namespace, name)
    recorded, phase = source.act(namespace, name, verb, who.username)
    intent = recorded.intent
    return ActionResult(
        namespace=namespace,
        name=name,
        intent=IntentView(id=recorded.id, verb=intent.verb, at=intent.at, user=intent.user),
        phase=phase,
    )


def _endpoint(source: CanarySource, access: Access, verb: str) -> Callable[..., ActionResult]:
    """The route function of ``verb``: promote reads ``full`` from its body; the others take an
    empty body."""
    if verb == "promote":

        def promote(
            namespace: NamespacePath,
            name: NamePath,
            who: Annotated[Identity, Depends(access.identity)],
            body: PromoteBody | None = None,
        ) -> ActionResult:
            full = body is not None and body.full
            return act(source, access, namespace, name, "promote-full" if full else "promote", who)

        return promote

    def other(
        namespace: NamespacePath,
        name: NamePath,
        who: Annotated[Identity, Depends(access.identity)],
        body: ActionBody | None = None,
    ) -> ActionResult:
        return act(source, access, namespace, name, verb, who)

    return other


def may_act(
    source: CanarySource, access: Access, namespace: str, name: str, who: Identity
) -> ActAccess:
    """What :func:`act` would meet, asked without acting: the caller's ``patch`` right (403 /
    404 as a read of the canary when it may not even ``get`` it); for the static token, the
    source's own (under ``kubectl canary dashboard`` the API server decides, with the user's
    kubeconfig)."""
    access.allow(who, "get", namespace, name)
    decision = access.auth.authorize(who, "patch", namespace, name)
    if not decision.allowed:
        return ActAccess(act=False, reason=decision.reason)
    if who.static:
        allowed, reason = source.may("patch", namespace, name)
        return ActAccess(act=allowed, reason=reason)
    return ActAccess(act=True, reason=decision.reason)


def action_routes(source: CanarySource, access: Access) -> APIRouter:
    """One ``POST`` route per verb, and ``GET .../access``: whether the caller
    may use them."""
    router = APIRouter(tags=["actions"])

    @router.get(
        "/api/v1/namespaces/{namespace}/canaries/{name}/access",
        response_model=ActAccess,
        responses=declared(401, 403, 404, 502, 503),
    )
    def access_route(
        namespace: NamespacePath,
        name: NamePath,
        who: Annotated[Identity, Depends(access.identity)],
    ) -> ActAccess:
        """Whether the caller may act on the canary (the verbs need ``patch`` on
        modelcanaries), with the authorizer's reason; nothing is changed."""
        return may_act(source, access, namespace, name, who)

    for verb, what in intents.VERBS.items():
        full = f" With full=true: {intents.FULL}." if verb == "promote" else ""
        router.add_api_route(
            f"/api/v1/namespaces/{{namespace}}/canaries/{{name}}/{verb}",
            _endpoint(source, access, verb),
            methods=["POST"],
            status_code=202,
            response_model=ActionResult,
            summary=verb,
            description=f"{what[0].upper()}{what[1:]}.{full}",
            name=verb,
            responses=_RESPONSES,
        )
    return router
