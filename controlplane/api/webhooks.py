"""The HTTP API's webhook receivers: Alertmanager and git pushes.

Owns :func:`webhook_routes`: ``POST /api/v1/alertmanager`` (bearer token) and ``POST
/api/v1/git/webhook`` (its signature). Neither body is read before
:class:`~controlplane.api.intake.Intake` has checked the token and the size. See docs/api.md.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from controlplane.api import alertmanager, git
from controlplane.api.access import Access
from controlplane.api.auth import Identity
from controlplane.api.config import ApiConfig
from controlplane.api.error_responses import declared
from controlplane.api.intake import GIT_WEBHOOK_PATH
from controlplane.api.models import GitWebhookResult


def webhook_routes(config: ApiConfig, access: Access) -> APIRouter:
    """The two receivers of ``config``."""
    router = APIRouter(tags=["webhooks"])
    kube = config.kube
    assert kube is not None, "the webhooks act on a cluster"

    @router.post(
        "/api/v1/alertmanager",
        response_model=alertmanager.AlertmanagerResponse,
        responses={
            **declared(401, 413, 502),
            503: {
                "model": alertmanager.AlertmanagerResponse,
                "description": "the cluster failed for at least one alert (result 'error'): "
                "Alertmanager retries the notification; the alerts recorded meanwhile answer "
                "'pending' then",
            },
        },
    )
    def alertmanager_webhook(
        payload: alertmanager.AlertmanagerPayload,
        who: Annotated[Identity, Depends(access.identity)],
    ) -> alertmanager.AlertmanagerResponse | JSONResponse:
        """Alertmanager's webhook (v4): each firing alert labelled with a canary and its
        namespace rolls that canary back now. One result per alert; 503 with the same body when
        the cluster failed for one of them, so that Alertmanager sends the notification again."""
        answer = alertmanager.receive(
            payload, who, kube, access.auth, config.wake, config.alert_labels, access.watched
        )
        if any(result.result == "error" for result in answer.results):
            return JSONResponse(answer.model_dump(mode="json"), status_code=503)
        return answer

    @router.post(
        GIT_WEBHOOK_PATH,
        response_model=GitWebhookResult,
        status_code=202,
        responses=declared(
            401, 404, 413, _401="bad or missing signature", _404="no git source is configured"
        ),
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

    return router
