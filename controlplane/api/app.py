"""The controller's HTTP API: a FastAPI application served on the controller's one port.

Owns :func:`create_app`, which assembles the application from its route groups
(:mod:`~controlplane.api.health`, :mod:`~controlplane.api.canaries`,
:mod:`~controlplane.api.actions`, :mod:`~controlplane.api.watch`,
:mod:`~controlplane.api.webhooks`, :mod:`~controlplane.api.dashboard`), the error responses
(:mod:`~controlplane.api.error_responses`) and who may call what
(:mod:`~controlplane.api.access`); bodies are :mod:`~controlplane.api.models`'. The routes:

==========================================================  =====================================
``GET /healthz``                                            the process is alive (no auth)
``GET /readyz``                                             watches synced and leader state known;
                                                            503 with the reason otherwise (no auth)
``GET /metrics``                                            Prometheus text format (no auth)
``GET /openapi.json``, ``/docs``                            the OpenAPI document and its UI
``GET /``, ``/dashboard/``, ``/dashboard/assets/...``       the dashboard's pages (no auth)
``GET /api/v1/whoami``                                      the caller, and who serves (``mode``)
``GET /api/v1/canaries``                                    every ModelCanary (all namespaces, or
                                                            each watched one the caller may list,
                                                            or each holding a canary it may list)
``GET /api/v1/namespaces/{ns}/canaries``                    the ModelCanaries of one namespace
``GET /api/v1/namespaces/{ns}/canaries/{name}``             one, with its spec and status
``GET .../canaries/{name}/events``                          its Kubernetes Events
``GET .../canaries/{name}/objects``                         the objects it owns, with health
``GET .../canaries/{name}/access``                          whether the caller may act on it, why
``GET /api/v1/watch/canaries[?namespace=NS]``               server-sent events: a snapshot, then
                                                            every change (one watch per process)
``POST /api/v1/namespaces/{ns}/canaries/{name}/{verb}``     pause, resume, promote (``{"full":
                                                            true}``), abort, retry: record the
                                                            intent, wake the controller; 202
``POST /api/v1/alertmanager``                               Alertmanager webhook (v4): roll back
``POST /api/v1/git/webhook``                                GitHub / GitLab push webhook
==========================================================  =====================================

Every ``/api/v1`` route needs ``Authorization: Bearer <token>``
(:class:`~controlplane.api.auth.Authenticator`: static token or TokenReview), checked by
:class:`~controlplane.api.intake.Intake` before a byte of the body is read, and is authorised
by SubjectAccessReview on ``modelcanaries`` (``list`` / ``get`` for reads, ``patch`` for verbs);
the git webhook is authenticated by its signature instead. No body over
``ApiConfig.max_body_bytes`` is read (413). ``{namespace}`` must be a DNS-1123 label and
``{name}`` a DNS-1123 subdomain (422 otherwise). Errors are ``{"detail": "..."}``:
401 (with ``WWW-Authenticate: Bearer``), 403, 404 (unknown canary), 409 (the verb makes no sense
in the canary's phase: the :class:`~controlplane.errors.UsageError` message), 413 (body too
large), 502 (the API server refused the API's own ServiceAccount: its RBAC), 503 (the API server
could not be asked); a 422 (malformed body or name) is a list of FastAPI's validation errors. A
request that fails changes nothing.
Reads and verbs go through a :class:`~controlplane.api.sources.CanarySource`: in a cluster
:mod:`controlplane.operations`, exactly like ``kubectl canary``. Called with an
:class:`~controlplane.api.config.ApiConfig` by ``canaryctl controller``
(:mod:`controlplane.cli.controller`: the controller's ServiceAccount reads, SubjectAccessReview
decides), ``kubectl canary dashboard`` (:mod:`controlplane.cli.dashboard`: the user's own
kubeconfig reads and writes, so the API server's RBAC decides and its refusal is a 403 with its
reason; a random static token guards the local port) and ``canaryctl up --dashboard``
(:mod:`controlplane.cli.up`: the one canary of a local run); the webhooks are the controller's
only.
The application's ``state.stop_hooks`` are called by :class:`~controlplane.api.server.ApiServer`
when it stops (they end the live streams and the watches).

A controller confined to some namespaces (``--namespace``, the chart's ``rbac.scope=namespaced``)
may not list across the cluster: ``ApiConfig.namespaces`` names them, ``GET /api/v1/canaries``
then lists each of them the caller may list (403 when none), and a canary route for another
namespace answers 404 saying which namespaces are watched.
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
