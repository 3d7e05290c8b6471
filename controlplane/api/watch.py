"""The dashboard's live feed: ``GET /api/v1/watch/canaries[?namespace=NS]`` as server-sent events.

Owns :func:`watch_routes`: a snapshot, then each change from the process's one
:class:`~controlplane.api.hub.Hub` (one watch per scope, not per browser), with keepalives. Who
may watch is decided as for the list routes and asked again at each keepalive, so a revoked
caller's stream ends. See docs/api.md, "The live watch".
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from controlplane.api.access import Access
from controlplane.api.auth import Identity
from controlplane.api.canaries import listable
from controlplane.api.error_responses import declared
from controlplane.api.hub import Hub, Subscription
from controlplane.api.sources import CanarySource
from controlplane.errors import ControlPlaneError
from controlplane.spec import name_checks

SYNC_TIMEOUT_S = 10.0
"""The longest a first watcher waits for the first list of the canaries."""
KEEPALIVE = b": keepalive\n\n"


def watch_routes(source: CanarySource, hub: Hub, access: Access, keepalive_s: float) -> APIRouter:
    """The watch route over ``hub``, fed by ``source``."""
    router = APIRouter(tags=["canaries"])

    def allowed_now(who: Identity, namespace: str | None) -> frozenset[str] | None:
        if namespace is not None:
            access.allow(who, "list", namespace)
            return frozenset({namespace})
        listed = listable(access, who, hub.namespaces)
        return None if listed is None else frozenset(listed)

    def still_allowed(
        who: Identity, namespace: str | None, subscribed: frozenset[str] | None
    ) -> bool:
        """The caller may still watch what it subscribed to, and no more: a namespace it may
        list that got its first canary since ends the stream too, and the page, reconnecting,
        gets a snapshot with it."""
        try:
            return allowed_now(who, namespace) == subscribed
        except (HTTPException, ControlPlaneError):
            return False

    @router.get(
        "/api/v1/watch/canaries",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "server-sent events: snapshot, then upsert / delete",
            },
            **declared(401, 403, 404, 502, 503),
        },
    )
    async def watch(
        who: Annotated[Identity, Depends(access.identity)],
        namespace: Annotated[
            str | None,
            Query(
                description="only this namespace's canaries (a DNS-1123 label)",
                max_length=name_checks.LABEL_MAX,
            ),
        ] = None,
    ) -> StreamingResponse:
        """Every change of the ModelCanaries the caller may list, as it happens."""
        if namespace is not None:
            name_checks.check_label(namespace, "namespace")  # InvalidName: 422
        if namespace is not None or access.watched is not None:
            allowed = await run_in_threadpool(allowed_now, who, namespace)
            await _synced(hub, source, _scopes(hub, allowed))
        else:  # who may not list every namespace is told the namespaces the cache holds
            await _synced(hub, source, _scopes(hub, None))
            allowed = await run_in_threadpool(allowed_now, who, namespace)
        snapshot, sub = hub.subscribe(allowed, asyncio.get_running_loop())
        stream = _events(
            hub, sub, snapshot, keepalive_s, lambda: still_allowed(who, namespace, allowed)
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _synced(hub: Hub, source: CanarySource, scopes: list[str | None]) -> None:
    """Start the feed and wait until ``scopes`` were listed once: the error of a scope that
    could not be, or 503."""
    source.feed(hub)
    await run_in_threadpool(hub.wait_synced, scopes, SYNC_TIMEOUT_S)
    for scope in scopes:
        error = hub.failed(scope)
        if error is not None:
            raise error
        if not hub.synced(scope):
            raise HTTPException(503, "the watch has not listed the modelcanaries yet")


def _scopes(hub: Hub, allowed: frozenset[str] | None) -> list[str | None]:
    """The hub's scopes a watcher of ``allowed`` (None: all) reads from."""
    if None in hub.scopes:
        return [None]
    return [s for s in hub.scopes if allowed is None or s in allowed]


async def _events(
    hub: Hub,
    sub: Subscription,
    snapshot: bytes,
    keepalive_s: float,
    still_allowed: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """The stream of one subscriber: its snapshot, then its queue, keepalives in between."""
    try:
        yield snapshot
        while True:
            try:
                data = await asyncio.wait_for(sub.queue.get(), keepalive_s)
            except TimeoutError:
                if not await run_in_threadpool(still_allowed):
                    return
                yield KEEPALIVE
                continue
            if data is None:
                return
            yield data
    finally:
        hub.unsubscribe(sub)
