"""The Alertmanager webhook receiver: a firing alert about a canary rolls it back at once.

Owns the webhook payload models and :func:`receive`, which gives each alert one
:class:`AlertResult` and never raises for a bad one. Labels are checked as Kubernetes names before
any review or lookup (a label once addressed another namespace's object); a permitted alert
records an ``abort`` intent as ``alertmanager:<alertname>``; re-sent alerts are ``pending``, not
recorded twice. Called by the webhook routes. The results: docs/api.md, "Alertmanager receiver".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controlplane import operations
from controlplane.api.auth import Authenticator, Identity
from controlplane.errors import Forbidden, InvalidName, KubeError, NotFound, UsageError
from controlplane.kube.client import KubeClient, Obj
from controlplane.rollout import intents
from controlplane.spec.name_checks import check_label, check_subdomain

ResultKind = Literal[
    "aborted", "pending", "ignored", "invalid", "not-found", "forbidden", "refused", "error"
]


class Alert(BaseModel):
    """One alert of the webhook payload (fields Alertmanager sends; extra ones are kept)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook JSON, version 4."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert]
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = 0
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""


class AlertResult(BaseModel):
    """What the receiver did with one alert."""

    alertname: str
    fingerprint: str | None
    namespace: str | None
    canary: str | None
    result: ResultKind
    detail: str
    intent: str | None = None


class AlertmanagerResponse(BaseModel):
    """One result per alert, in the payload's order."""

    results: list[AlertResult]


@dataclass(frozen=True)
class AlertLabels:
    """Which alert labels name the canary and its namespace."""

    canary: str = "canary"
    namespace: str = "namespace"


def receive(
    payload: AlertmanagerPayload,
    identity: Identity,
    kube: KubeClient,
    auth: Authenticator,
    wake: Callable[[str, str], None] | None,
    labels: AlertLabels,
    namespaces: Sequence[str] | None = None,
) -> AlertmanagerResponse:
    """Handle every alert of ``payload`` for ``identity`` (module docstring). ``namespaces``:
    the namespaces the controller watches (None: all)."""
    done: dict[tuple[str, str], str] = {}
    results = [
        _one(alert, identity, kube, auth, wake, labels, done, namespaces)
        for alert in payload.alerts
    ]
    return AlertmanagerResponse(results=results)


def _one(
    alert: Alert,
    identity: Identity,
    kube: KubeClient,
    auth: Authenticator,
    wake: Callable[[str, str], None] | None,
    labels: AlertLabels,
    done: dict[tuple[str, str], str],
    namespaces: Sequence[str] | None = None,
) -> AlertResult:
    alertname = alert.labels.get("alertname", "")
    name = alert.labels.get(labels.canary) or None
    namespace = alert.labels.get(labels.namespace) or None

    def result(kind: ResultKind, detail: str, intent: str | None = None) -> AlertResult:
        return AlertResult(
            alertname=alertname,
            fingerprint=alert.fingerprint,
            namespace=namespace,
            canary=name,
            result=kind,
            detail=detail,
            intent=intent,
        )

    if alert.status != "firing":
        return result("ignored", "resolved alerts change nothing")
    if name is None or namespace is None:
        missing = [
            lbl for lbl, v in ((labels.canary, name), (labels.namespace, namespace)) if not v
        ]
        return result("ignored", f"the alert has no label {' or '.join(missing)}")
    try:
        check_label(namespace, f"label {labels.namespace}")
        check_subdomain(name, f"label {labels.canary}")
    except InvalidName as exc:
        return result("invalid", str(exc))
    decision = auth.authorize(identity, "patch", namespace, name)
    if not decision.allowed:
        return result("forbidden", decision.reason)
    if namespaces is not None and namespace not in namespaces:
        return result("not-found", unwatched(namespace, namespaces))
    key = (namespace, name)
    if key in done:
        return result("pending", "an earlier alert of this notification aborted it", done[key])
    try:
        obj = operations.get_canary(kube, namespace, name)
        waiting = _waiting_abort(obj)
        if waiting is not None:
            done[key] = waiting
            return result("pending", "an abort is already waiting for the controller", waiting)
        user = f"alertmanager:{alertname or 'alert'}"
        recorded = operations.record_intent(kube, namespace, name, "abort", user)
    except NotFound as exc:
        return result("not-found", str(exc))
    except UsageError as exc:
        return result("refused", str(exc))
    except InvalidName as exc:  # the names were checked above; the adapter's fence, again
        return result("invalid", str(exc))
    except Forbidden:
        return result("error", REFUSED_DETAIL)
    except KubeError:
        return result("error", UNANSWERED_DETAIL)
    done[key] = recorded.id
    if wake is not None:
        wake(namespace, name)
    return result(
        "aborted", f"abort recorded by {user}; the controller rolls it back now", recorded.id
    )


REFUSED_DETAIL = (
    "the Kubernetes API server refused the API's own ServiceAccount (its RBAC is the chart's); "
    "nothing was recorded"
)
UNANSWERED_DETAIL = (
    "the Kubernetes API server could not be asked: the abort is not confirmed (Alertmanager's "
    "next notification of this alert tries again)"
)


def unwatched(namespace: str, namespaces: Sequence[str]) -> str:
    """Why a canary in ``namespace`` is out of reach of a controller watching ``namespaces``."""
    return (
        f"namespace {namespace!r} is not watched by this controller (it watches "
        f"{', '.join(namespaces)})"
    )


def _waiting_abort(obj: Obj) -> str | None:
    """The id of an abort intent the controller has not consumed yet, if any."""
    for item in intents.pending(obj):
        if item.intent.verb == "abort":
            return item.id
    return None
