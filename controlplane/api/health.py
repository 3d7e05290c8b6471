"""The HTTP API's unauthenticated routes: ``/healthz``, ``/readyz`` and ``/metrics``.

Owns :func:`health_routes`. Called by :func:`controlplane.api.app.create_app`; what ready means
and the metrics exposition come from the controller process through
:class:`~controlplane.api.config.ApiConfig`.
"""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from controlplane.api.config import ApiConfig
from controlplane.api.models import Health


def health_routes(config: ApiConfig) -> APIRouter:
    """Liveness, readiness and (when ``config.metrics`` is set) the Prometheus exposition."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok")

    @router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
    def readyz() -> Any:
        """Ready once every watch has listed its canaries and the leader state is known."""
        ok, why = config.ready()
        if ok:
            return Health(status="ok", detail=why)
        return JSONResponse(Health(status="not ready", detail=why).model_dump(), status_code=503)

    if config.metrics is not None:
        metrics = config.metrics

        @router.get("/metrics", response_class=Response)
        def prometheus_metrics() -> Response:
            """The controller's metrics in the Prometheus text format (docs/metrics.md)."""
            body, content_type = metrics()
            return Response(body, media_type=content_type)

    return router
