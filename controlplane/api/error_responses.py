"""How the HTTP API answers the errors of the operations behind it.

Owns :func:`add_error_handlers`: the product's exceptions as ``{"detail": "..."}`` responses:
404 :class:`~controlplane.errors.NotFound`, 409 :class:`~controlplane.errors.UsageError` and
:class:`~controlplane.errors.Conflict`, 502 :class:`~controlplane.errors.Forbidden` (the API's
own ServiceAccount was refused: its RBAC), 503 any other
:class:`~controlplane.errors.KubeError`. Called by :func:`controlplane.api.app.create_app`.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controlplane.errors import Conflict, Forbidden, KubeError, NotFound, UsageError


def _detail(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(NotFound)
    def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return _detail(404, exc)

    @app.exception_handler(UsageError)
    def usage(_request: Request, exc: UsageError) -> JSONResponse:
        return _detail(409, exc)

    @app.exception_handler(Conflict)
    def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return _detail(409, exc)

    @app.exception_handler(Forbidden)
    def forbidden(_request: Request, exc: Forbidden) -> JSONResponse:
        # the caller was allowed (SubjectAccessReview); the API's own ServiceAccount was not
        return JSONResponse(
            {
                "detail": "the API's ServiceAccount may not do this (its RBAC is the chart's: "
                f"charts/controlplane, rbac.*): {exc}"
            },
            status_code=502,
        )

    @app.exception_handler(KubeError)
    def kube_error(_request: Request, exc: KubeError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the Kubernetes API server could not be asked: {exc}"}, status_code=503
        )
