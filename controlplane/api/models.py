"""The bodies and path parameters the controller's HTTP API takes and answers with (its OpenAPI
schemas).

Owns the pydantic models of requests and responses, the path parameters :data:`NamespacePath`
(a DNS-1123 label) and :data:`NamePath` (a DNS-1123 subdomain), checked with
:mod:`controlplane.spec.names` before a route runs (422 ``invalid_name`` with the reason; the
OpenAPI document carries the patterns), and :func:`summary` (a ModelCanary object as a
:class:`CanarySummary`'s fields). Called by the routes of :mod:`controlplane.api.canaries`,
:mod:`controlplane.api.actions`, :mod:`controlplane.api.health` and
:mod:`controlplane.api.webhooks`. Pure.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from controlplane import operations
from controlplane.errors import InvalidName
from controlplane.kube.client import Obj
from controlplane.spec import names


def _name_check(check: Callable[[object, str], str], what: str) -> BeforeValidator:
    """``check`` (:mod:`controlplane.spec.names`) as a validator: its reason as the 422's."""

    def validate(value: object) -> str:
        try:
            return check(value, what)
        except InvalidName as exc:
            raise PydanticCustomError("invalid_name", str(exc)) from None

    return BeforeValidator(validate)


# The patterns stay as a backstop (and tell the OpenAPI document); the names check runs first.
NamespacePath = Annotated[
    str,
    Path(
        description="a namespace: a DNS-1123 label",
        pattern=names.LABEL_PATTERN,
        max_length=names.LABEL_MAX,
    ),
    _name_check(names.check_label, "namespace"),
]
NamePath = Annotated[
    str,
    Path(
        description="a ModelCanary's name: a DNS-1123 subdomain",
        pattern=names.SUBDOMAIN_PATTERN,
        max_length=names.SUBDOMAIN_MAX,
    ),
    _name_check(names.check_subdomain, "name"),
]


class CanarySummary(BaseModel):
    """What ``kubectl canary list`` shows of one ModelCanary."""

    namespace: str
    name: str
    phase: str = Field(description="status.phase; '' before the controller has seen it")
    step: int | None = None
    weight: int | None = None
    outcome: str | None = None
    reason: str | None = Field(
        None,
        description="why it rolled back or paused, or (pending) why it has not started "
        "(status.waiting)",
    )
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


def summary(obj: Obj) -> dict[str, Any]:
    """The :class:`CanarySummary` fields of a ModelCanary object."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    reason = status.get("reason")
    if isinstance(reason, dict):
        reason = reason.get("message")
    if not reason and isinstance(status.get("waiting"), str):
        reason = status["waiting"]
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
