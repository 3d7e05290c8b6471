"""How the HTTP API answers the errors of the operations behind it, and what it declares of them.

Owns :func:`add_error_handlers` (the product's exceptions as ``{"detail": ...}`` with their
statuses; an unparsable body as 422 ``json_invalid``) and the OpenAPI declarations
(:func:`declared`). Called by :func:`~controlplane.api.app.create_app`, the route groups and
:mod:`~controlplane.api.intake`. The statuses: docs/api.md.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.errors import (
    Conflict,
    ControlPlaneError,
    Forbidden,
    InvalidName,
    KubeError,
    NotFound,
    UsageError,
)

BODY_PARSE_FAILED = "There was an error parsing the body"
"""FastAPI's ``detail`` of the 400 it raises when a body is not even JSON text (fastapi.routing)."""


class ErrorDetail(BaseModel):
    """Every error but a validation error: why, in words."""

    detail: str


_WHY: dict[int, str] = {
    401: "no or invalid bearer token (WWW-Authenticate: Bearer)",
    403: "the caller may not do this (SubjectAccessReview on modelcanaries; under kubectl "
    "canary dashboard, the API server's RBAC for the user's kubeconfig)",
    404: "no such canary, or a namespace the controller does not watch",
    409: "the verb makes no sense in the canary's phase",
    413: "the request body is larger than the API's limit",
    502: "the Kubernetes API server refused the API's own ServiceAccount (its RBAC)",
    503: "the Kubernetes API server could not be asked",
}


def declared(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route for ``statuses`` (422 is FastAPI's own, declared by
    it for every route with parameters or a body); ``why`` (``_404="..."``) rewords one."""
    return {
        status: {"model": ErrorDetail, "description": why.get(f"_{status}", _WHY[status])}
        for status in statuses
    }


def _detail(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status)


def invalid(kind: str, message: str, loc: tuple[str | int, ...] = ()) -> JSONResponse:
    """A 422 in the shape of FastAPI's validation errors (``{"detail": [{"type", "loc", "msg",
    "input"}]}``), so that every 422 of the API reads alike."""
    error = {"type": kind, "loc": list(loc), "msg": message, "input": None}
    return JSONResponse({"detail": [error]}, status_code=422)


def product_error(exc: ControlPlaneError, *, callers: bool = False) -> JSONResponse | None:
    """The answer to one of the product's exceptions (module docstring); None for one the API
    does not translate (a bug: the server answers 500). ``callers``: the Kubernetes client holds
    the caller's own credentials, so the API server's refusal is the caller's (403)."""
    if isinstance(exc, NotFound):
        return _detail(404, exc)
    if isinstance(exc, (UsageError, Conflict)):
        return _detail(409, exc)
    if isinstance(exc, InvalidName):
        return invalid("invalid_name", str(exc))
    if isinstance(exc, Forbidden) and callers:
        return _detail(403, exc)
    if isinstance(exc, Forbidden):
        # the caller was allowed (SubjectAccessReview); the API's own ServiceAccount was not
        return JSONResponse(
            {
                "detail": "the API's ServiceAccount may not do this (its RBAC is the chart's: "
                f"charts/controlplane, rbac.*): {exc}"
            },
            status_code=502,
        )
    if isinstance(exc, KubeError):
        return JSONResponse(
            {"detail": f"the Kubernetes API server could not be asked: {exc}"}, status_code=503
        )
    return None


TRANSLATED: tuple[type[ControlPlaneError], ...] = (UsageError, KubeError)
"""The exception classes :func:`product_error` answers (with their subclasses)."""


def add_error_handlers(app: FastAPI, *, callers: bool = False) -> None:
    """Register the handlers on ``app`` (``callers``: see :func:`product_error`)."""

    async def product(_request: Request, exc: Exception) -> Response:
        answer = product_error(exc, callers=callers) if isinstance(exc, ControlPlaneError) else None
        if answer is None:  # unreachable: registered for what product_error answers
            raise exc
        return answer

    for kind in TRANSLATED:
        app.add_exception_handler(kind, product)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == BODY_PARSE_FAILED:
            cause = exc.__cause__
            why = f": {cause}" if cause is not None else ""
            return invalid("json_invalid", f"the body is not JSON{why}", ("body",))
        return await http_exception_handler(request, exc)
