"""What a request must show before the API reads its body: a bearer token, and a small body.

Owns :class:`Intake`, an ASGI middleware before every route, and :func:`bearer_token`. FastAPI
parses a body before a route's dependencies run, so without it a caller with no token could make
the process hold any body before its 401. It authenticates first (except the git webhook, signed
by its body), then refuses a body over the cap (413) by ``Content-Length`` or by counting.
Authorization stays with the routes. See docs/api.md, "Authentication and authorisation".
"""

from __future__ import annotations

from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.api.auth import Authenticator, Identity, Unauthenticated
from controlplane.api.error_responses import product_error
from controlplane.errors import ControlPlaneError

API_PREFIX = "/api/v1"
GIT_WEBHOOK_PATH = "/api/v1/git/webhook"
REALM = 'Bearer realm="canary-controller"'
IDENTITY_KEY = "controlplane.identity"
"""The ASGI scope key under which :class:`Intake` leaves the caller it authenticated."""
DEFAULT_MAX_BODY_BYTES = 1 << 20


def needs_bearer(path: str) -> bool:
    """Whether the route at ``path`` (root path removed) is authenticated by a bearer token."""
    under_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
    return under_api and path != GIT_WEBHOOK_PATH


def bearer_token(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without one (or another scheme), as
    FastAPI's ``HTTPBearer(auto_error=False)`` reads it."""
    scheme, credentials = get_authorization_scheme_param(headers.get("authorization"))
    if not scheme or not credentials or scheme.lower() != "bearer":
        return None
    return credentials


def unauthorized(reason: str) -> JSONResponse:
    """The 401 of every bearer-authenticated route."""
    return JSONResponse({"detail": reason}, status_code=401, headers={"WWW-Authenticate": REALM})


def too_large(limit: int, declared: int | None = None) -> JSONResponse:
    """The 413 of a body over ``limit`` bytes."""
    said = f" (Content-Length: {declared})" if declared is not None else ""
    return JSONResponse(
        {"detail": f"the request body is larger than the API's limit of {limit} bytes{said}"},
        status_code=413,
    )


def _route_path(scope: Scope) -> str:
    """The path the router matches (Starlette's: the root path removed)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class Intake:
    """The ASGI middleware of the module docstring over ``app``: bearer tokens checked by
    ``auth``; bodies over ``max_body_bytes`` refused."""

    def __init__(self, app: ASGIApp, *, auth: Authenticator, max_body_bytes: int) -> None:
        self.app, self.auth, self.max_body_bytes = app, auth, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if needs_bearer(_route_path(scope)):
            refused = await self._authenticate(scope, headers)
            if refused is not None:
                await refused(scope, receive, send)
                return
        declared = _content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            await too_large(self.max_body_bytes, declared)(scope, receive, send)
            return
        body = await self._read(receive)
        if isinstance(body, _TooLarge):
            await too_large(self.max_body_bytes)(scope, receive, send)
        elif body is not None:  # None: the client went away; nobody to answer
            await self.app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope, headers: Headers) -> JSONResponse | None:
        """None when the token is good (the identity is then in the scope), else the answer."""
        token = bearer_token(headers)
        try:
            if token is None:  # nothing to look up: no thread needed
                identity: Identity = self.auth.authenticate(None)
            else:
                identity = await run_in_threadpool(self.auth.authenticate, token)
        except Unauthenticated as exc:
            return unauthorized(exc.reason)
        except ControlPlaneError as exc:  # the TokenReview could not be made
            answer = product_error(exc)
            if answer is None:
                raise
            return answer
        scope[IDENTITY_KEY] = identity
        return None

    async def _read(self, receive: Receive) -> bytes | _TooLarge | None:
        """The whole body; a :class:`_TooLarge` as soon as it is over the cap (the rest is never
        read); None when the client went away first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _TooLarge:
    """What :meth:`Intake._read` returns for a body over the cap."""


def _content_length(headers: Headers) -> int | None:
    """The declared length; None when absent or not a number (the server's parser refuses such a
    request before it gets here; the count still applies)."""
    text = (headers.get("content-length") or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= 18 else 10**18  # no int() of 5,000 digits


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands ``body`` over once, then the server's messages (disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
