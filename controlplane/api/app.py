"""The controller's HTTP API: a FastAPI application served on the controller's one port.

Owns :func:`create_app`, which assembles the route groups, the error responses and the access
checks; reads and verbs go through a :class:`~controlplane.api.sources.CanarySource`, so the API
does what ``kubectl canary`` does. Called by ``canaryctl controller``, ``kubectl canary
dashboard`` and ``canaryctl up --dashboard``. The routes and their errors: docs/api.md.
"""

from fastapi import FastAPI

from controlplane.api.access import Access
from controlplane.api.actions import action_routes
from controlplane.api.canaries import canary_routes
from controlplane.api.config import ApiConfig
from controlplane.api.dashboard import dashboard_routes
from controlplane.api.error_responses import add_error_handlers
from controlplane.api.health import health_routes
from controlplane.api.hub import Hub
from controlplane.api.intake import Intake
from controlplane.api.models import detail, packaged_measured
from controlplane.api.sources import CanarySource, KubeSource
from controlplane.api.watch import watch_routes
from controlplane.api.webhooks import webhook_routes
from controlplane.errors import UsageError


def create_app(config: ApiConfig) -> FastAPI:
    """The FastAPI application of ``config`` (module docstring lists the routes)."""
    app = FastAPI(
        title="canary controller",
        description="Read ModelCanaries and act on them; watch them live; receive Alertmanager "
        "and git webhooks.",
        version="v1",
    )
    add_error_handlers(app, callers=config.mode == "kubeconfig")
    app.add_middleware(Intake, auth=config.auth, max_body_bytes=config.max_body_bytes)
    access = Access(config.auth, config.namespaces)
    source: CanarySource
    if config.source is not None:
        source = config.source
    elif config.kube is not None:
        source = KubeSource(config.kube, config.wake)
    else:
        raise UsageError("the API needs a Kubernetes client or a canary source")
    measured = config.measured if config.measured is not None else packaged_measured()
    hub = Hub(
        config.namespaces or (None,),
        queue_size=config.watch_queue,
        detail=lambda obj: detail(obj, measured).model_dump(mode="json"),
    )
    stop_hooks = [hub.close]
    if isinstance(source, KubeSource):
        stop_hooks.append(source.stop)
    app.state.stop_hooks = stop_hooks
    app.include_router(health_routes(config))
    app.include_router(canary_routes(source, access, config.mode, measured))
    app.include_router(action_routes(source, access))
    app.include_router(watch_routes(source, hub, access, config.keepalive_s))
    if config.kube is not None and config.mode == "controller":
        app.include_router(webhook_routes(config, access))
    app.include_router(dashboard_routes(config.dashboard_dir))
    return app
