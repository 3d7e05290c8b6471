"""The controller's HTTP API: a FastAPI application served on the controller's one port.

Owns :func:`create_app` and the routes:

==========================================================  =====================================
``GET /healthz``                                            the process is alive (no auth)
``GET /readyz``                                             watches synced and leader state known;
                                                            503 with the reason otherwise (no auth)
``GET /metrics``                                            Prometheus text format (no auth)
``GET /openapi.json``, ``/docs``                            the OpenAPI document and its UI
``GET /api/v1/canaries``                                    every ModelCanary (all namespaces, or
                                                            each watched one the caller may list)
``GET /api/v1/namespaces/{ns}/canaries``                    the ModelCanaries of one namespace
``GET /api/v1/namespaces/{ns}/canaries/{name}``             one, with its spec and status
``POST /api/v1/namespaces/{ns}/canaries/{name}/{verb}``     pause, resume, promote (``{"full":
                                                            true}``), abort, retry: record the
                                                            intent, wake the controller; 202
``POST /api/v1/alertmanager``                               Alertmanager webhook (v4): roll back
``POST /api/v1/git/webhook``                                GitHub / GitLab push webhook
==========================================================  =====================================

Every ``/api/v1`` route needs ``Authorization: Bearer <token>``
(:class:`~controlplane.api.auth.Authenticator`: static token or TokenReview) and is authorised
by SubjectAccessReview on ``modelcanaries`` (``list`` / ``get`` for reads, ``patch`` for verbs);
the git webhook is authenticated by its signature instead. Errors are ``{"detail": "..."}``:
401 (with ``WWW-Authenticate: Bearer``), 403, 404 (unknown canary), 409 (the verb makes no sense
in the canary's phase: the :class:`~controlplane.errors.UsageError` message), 422 (malformed
body), 502 (the API server refused the API's own ServiceAccount: its RBAC), 503 (the API server
could not be asked). A request that fails changes nothing.
Verbs go through :mod:`controlplane.operations`, exactly like ``kubectl canary``.

A controller confined to some namespaces (``--namespace``, the chart's ``rbac.scope=namespaced``)
may not list across the cluster: ``ApiConfig.namespaces`` names them, ``GET /api/v1/canaries``
then lists each of them the caller may list (403 when none), and a canary route for another
namespace answers 404 saying which namespaces are watched.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from controlplane import operations
from controlplane.api import alertmanager, git
from controlplane.api.auth import Authenticator, Identity, Unauthenticated
from controlplane.errors import Conflict, Forbidden, KubeError, NotFound, UsageError
from controlplane.kube.client import KubeClient, Obj

REALM = 'Bearer realm="canary-controller"'
VERBS: dict[str, str] = {
    "pause": "Pause the rollout where it is (no more steps; analysis goes on).",
    "resume": "Resume a paused rollout (paused time does not count towards the step).",
    "promote": "Finish the current step now, or with full=true promote to 100% at once.",
    "abort": "Roll the candidate back now.",
    "retry": "Re-run a rolled-back candidate from the start.",
}


# --------------------------------------------------------------------------- response models


class CanarySummary(BaseModel):
    """What ``kubectl canary list`` shows of one ModelCanary."""

    namespace: str
    name: str
    phase: str = Field(description="status.phase; '' before the controller has seen it")
    step: int | None = None
    weight: int | None = None
    outcome: str | None = None
    reason: str | None = Field(None, description="why it rolled back or paused")
    stable: str | None = None
    candidate: str | None = None
    generation: int | None = None
    resourceVersion: str | None = None


class CanaryDetail(CanarySummary):
    """One ModelCanary with its whole spec and status."""

    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)


class CanaryList(BaseModel):
    items: list[CanarySummary]


class ActionBody(BaseModel):
    """No fields: the verb is in the path. Unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")


class PromoteBody(BaseModel):
    """``full``: promote to 100% at once instead of finishing the current step."""

    model_config = ConfigDict(extra="forbid")

    full: bool = False


class IntentView(BaseModel):
    id: str
    verb: str
    at: float
    user: str


class ActionResult(BaseModel):
    """The recorded intent; the controller acts on it (watch ``phase``)."""

    namespace: str
    name: str
    intent: IntentView
    phase: str = Field(description="the phase when the intent was recorded")


class GitWebhookResult(BaseModel):
    forge: str
    event: str
    triggered: bool


class Health(BaseModel):
    status: Literal["ok", "not ready"]
    detail: str = ""


# --------------------------------------------------------------------------- configuration


@dataclass
class ApiConfig:
    """What the API needs from the controller process.

    ``wake(namespace, name)``: reconcile that canary now (after an intent is recorded).
    ``ready()``: (ready?, why not). ``metrics()``: the Prometheus exposition (bytes, content
    type); None serves no ``/metrics``. ``on_git_push()``: tell the git source to fetch now (None:
    the git webhook answers 404). ``git_secret``: the GitHub HMAC secret / GitLab token.
    ``namespaces``: the namespaces the controller watches (None: all of them).
    """

    kube: KubeClient
    auth: Authenticator
    wake: Callable[[str, str], None] | None = None
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "")
    metrics: Callable[[], tuple[bytes, str]] | None = None
    on_git_push: Callable[[], None] | None = None
    git_secret: str | None = None
    alert_labels: alertmanager.AlertLabels = field(default_factory=alertmanager.AlertLabels)
    namespaces: tuple[str, ...] | None = None


def summary(obj: Obj) -> dict[str, Any]:
    """The :class:`CanarySummary` fields of a ModelCanary object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    reason = status.get("reason")
    if isinstance(reason, dict):
        reason = reason.get("message")
    return {
        "namespace": meta.get("namespace") or "",
        "name": meta.get("name") or "",
        "phase": operations.phase_of(obj),
        "step": status.get("step"),
        "weight": status.get("weight"),
        "outcome": status.get("outcome"),
        "reason": reason if isinstance(reason, str) else None,
        "stable": (spec.get("stable") or {}).get("name"),
        "candidate": (spec.get("candidate") or {}).get("name"),
        "generation": meta.get("generation"),
        "resourceVersion": meta.get("resourceVersion"),
    }


def _detail(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status)


def create_app(config: ApiConfig) -> FastAPI:
    """The FastAPI application of ``config`` (module docstring lists the routes)."""
    app = FastAPI(
        title="canary controller",
        description="Read ModelCanaries and act on them; receive Alertmanager and git webhooks.",
        version="v1",
    )
    bearer = HTTPBearer(auto_error=False, description="a Kubernetes token or the static token")
    kube, auth, watched = config.kube, config.auth, config.namespaces

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

    def identity(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> Identity:
        try:
            return auth.authenticate(credentials.credentials if credentials else None)
        except Unauthenticated as exc:
            raise HTTPException(401, exc.reason, headers={"WWW-Authenticate": REALM}) from None

    Caller = Annotated[Identity, Depends(identity)]

    def allow(who: Identity, verb: str, namespace: str | None, name: str | None = None) -> None:
        decision = auth.authorize(who, verb, namespace, name)
        if not decision.allowed:
            raise HTTPException(403, decision.reason)
        if watched is not None and namespace is not None and namespace not in watched:
            raise HTTPException(404, alertmanager.unwatched(namespace, watched))

    # ----------------------------------------------------------------------- health and metrics

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """The process is alive."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    def readyz() -> Any:
        """Ready once every watch has listed its canaries and the leader state is known."""
        ok, why = config.ready()
        if ok:
            return Health(status="ok", detail=why)
        return JSONResponse(Health(status="not ready", detail=why).model_dump(), status_code=503)

    if config.metrics is not None:
        metrics = config.metrics

        @app.get("/metrics", tags=["health"], response_class=Response)
        def prometheus_metrics() -> Response:
            """The controller's metrics in the Prometheus text format (docs/metrics.md)."""
            body, content_type = metrics()
            return Response(body, media_type=content_type)

    # ----------------------------------------------------------------------- canaries

    @app.get("/api/v1/canaries", response_model=CanaryList, tags=["canaries"])
    def list_all(who: Caller) -> CanaryList:
        """Every ModelCanary the controller can see: needs ``list`` in all namespaces, or, on a
        controller that watches some namespaces, lists each of them the caller may list."""
        if watched is None:
            allow(who, "list", None)
            items = operations.list_canaries(kube, None)
        else:
            decisions = {ns: auth.authorize(who, "list", ns) for ns in watched}
            allowed = [ns for ns, decision in decisions.items() if decision.allowed]
            if not allowed:
                raise HTTPException(403, "; ".join(d.reason for d in decisions.values()))
            items = [o for ns in allowed for o in operations.list_canaries(kube, ns)]
        return CanaryList(items=[CanarySummary(**summary(o)) for o in items])

    @app.get(
        "/api/v1/namespaces/{namespace}/canaries", response_model=CanaryList, tags=["canaries"]
    )
    def list_namespace(namespace: str, who: Caller) -> CanaryList:
        """The ModelCanaries of ``namespace``."""
        allow(who, "list", namespace)
        items = operations.list_canaries(kube, namespace)
        return CanaryList(items=[CanarySummary(**summary(o)) for o in items])

    @app.get(
        "/api/v1/namespaces/{namespace}/canaries/{name}",
        response_model=CanaryDetail,
        tags=["canaries"],
        responses={404: {"description": "no such canary"}},
    )
    def get_one(namespace: str, name: str, who: Caller) -> CanaryDetail:
        """One ModelCanary with its spec and status."""
        allow(who, "get", namespace, name)
        obj = operations.get_canary(kube, namespace, name)
        return CanaryDetail(
            **summary(obj), spec=obj.get("spec") or {}, status=obj.get("status") or {}
        )

    def act(namespace: str, name: str, verb: str, who: Identity) -> ActionResult:
        allow(who, "patch", namespace, name)
        recorded = operations.record_intent(kube, namespace, name, verb, who.username)
        if config.wake is not None:
            config.wake(namespace, name)
        obj = operations.get_canary(kube, namespace, name)
        intent = recorded.intent
        return ActionResult(
            namespace=namespace,
            name=name,
            intent=IntentView(id=recorded.id, verb=intent.verb, at=intent.at, user=intent.user),
            phase=operations.phase_of(obj),
        )

    action_responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "no or invalid bearer token"},
        403: {"description": "not allowed to patch modelcanaries there"},
        404: {"description": "no such canary"},
        409: {"description": "the verb makes no sense in the canary's phase"},
    }

    def add_action(verb: str) -> None:
        path = f"/api/v1/namespaces/{{namespace}}/canaries/{{name}}/{verb}"
        if verb == "promote":

            def promote(
                namespace: str, name: str, who: Caller, body: PromoteBody | None = None
            ) -> ActionResult:
                full = body is not None and body.full
                return act(namespace, name, "promote-full" if full else "promote", who)

            endpoint: Callable[..., ActionResult] = promote
        else:

            def other(
                namespace: str, name: str, who: Caller, body: ActionBody | None = None
            ) -> ActionResult:
                return act(namespace, name, verb, who)

            endpoint = other
        app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            status_code=202,
            response_model=ActionResult,
            tags=["actions"],
            summary=verb,
            description=VERBS[verb],
            name=verb,
            responses=action_responses,
        )

    for verb in VERBS:
        add_action(verb)

    # ----------------------------------------------------------------------- webhooks

    @app.post(
        "/api/v1/alertmanager",
        response_model=alertmanager.AlertmanagerResponse,
        tags=["webhooks"],
    )
    def alertmanager_webhook(
        payload: alertmanager.AlertmanagerPayload, who: Caller
    ) -> alertmanager.AlertmanagerResponse:
        """Alertmanager's webhook (v4): each firing alert labelled with a canary and its
        namespace rolls that canary back now. One result per alert."""
        return alertmanager.receive(
            payload, who, kube, auth, config.wake, config.alert_labels, watched
        )

    @app.post(
        "/api/v1/git/webhook",
        response_model=GitWebhookResult,
        status_code=202,
        tags=["webhooks"],
        responses={401: {"description": "bad signature"}, 404: {"description": "no git source"}},
    )
    async def git_webhook(request: Request) -> GitWebhookResult:
        """A GitHub (``X-Hub-Signature-256``) or GitLab (``X-Gitlab-Token``) push: fetch now."""
        if config.on_git_push is None:
            raise HTTPException(404, "no git source is configured on this controller")
        body = await request.body()
        try:
            forge = git.verify_push(config.git_secret, request.headers, body)
        except git.BadSignature as exc:
            raise HTTPException(401, exc.reason) from None
        kind = git.event_kind(request.headers)
        if kind == "push":
            await run_in_threadpool(config.on_git_push)
        return GitWebhookResult(forge=forge, event=kind, triggered=kind == "push")

    return app
