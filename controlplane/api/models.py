"""The HTTP API's wire shapes: the pydantic models of requests and responses (its OpenAPI
schemas) and the checked path parameters :data:`NamespacePath` / :data:`NamePath` (422
``invalid_name``). The values come from the view model (:mod:`controlplane.view`); the
functions here only put them in these shapes. Used by the routes of :mod:`controlplane.api`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from controlplane.errors import InvalidName
from controlplane.kube.client import Obj
from controlplane.spec import name_checks
from controlplane.status.times import format_time
from controlplane.view.canary import snapshot, summary

if TYPE_CHECKING:
    from controlplane.profiles.measured import Loaded
    from controlplane.view.owned import Node, Owned


def _name_check(check: Callable[[object, str], str], what: str) -> BeforeValidator:
    """``check`` (:mod:`controlplane.spec.name_checks`) as a validator: its reason as the 422's."""

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
        pattern=name_checks.LABEL_PATTERN,
        max_length=name_checks.LABEL_MAX,
    ),
    _name_check(name_checks.check_label, "namespace"),
]
NamePath = Annotated[
    str,
    Path(
        description="a ModelCanary's name: a DNS-1123 subdomain",
        pattern=name_checks.SUBDOMAIN_PATTERN,
        max_length=name_checks.SUBDOMAIN_MAX,
    ),
    _name_check(name_checks.check_subdomain, "name"),
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
    createdAt: str | None = Field(None, description="metadata.creationTimestamp (RFC 3339)")
    lastDecision: dict[str, Any] | None = Field(
        None,
        description="the last rollout event, status.history[-1]: type, time (RFC 3339), step, "
        "weight, message",
    )
    warnings: int = Field(0, description="how many warnings status.warnings holds")
    paused: str | None = Field(None, description="status.paused: why it is paused, if it is")
    simulated: bool = Field(
        False,
        description="a canary of `canaryctl up`: its spec is the time-scaled one run on this "
        "machine and its times are wall-clock; spec time is wall time x timeScale",
    )
    timeScale: float | None = Field(None, description="with simulated: the --time-scale")


class ExpectedRow(BaseModel):
    """One quantity of the candidate against the stable: the change its measured profile
    expects and the change the checks observed (ratios; ``observed`` None with ``how`` saying
    why)."""

    quantity: str
    expected: float
    observed: float | None = None
    how: str


class Expected(BaseModel):
    """What the measured profiles expected of the candidate beside what the canary observed
    (:func:`controlplane.profiles.expected.compare`, the same rows as ``kubectl canary get``'s
    "Expected vs observed"), and where the expectation comes from."""

    rows: list[ExpectedRow]
    sources: str


class CanaryDetail(CanarySummary):
    """One ModelCanary with its whole spec and status, the expected change beside the observed
    one when both variants have a measured profile, and the quality judge's reading in words."""

    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)
    expected: Expected | None = Field(
        None,
        description="the measured profiles' expected change of the candidate against the "
        "stable, beside what the checks observed; null when a variant has no measured profile",
    )
    quality: str | None = Field(
        None,
        description="what the quality judge has read of the pairer (spec.quality), in the "
        "words of `kubectl canary get`; null without spec.quality",
    )


@cache
def packaged_measured() -> tuple[Loaded, ...]:
    """The measured profile entries beside the packaged catalogue (read once): what the API
    pairs the variants with unless told otherwise (:attr:`ApiConfig.measured`)."""
    from controlplane.profiles.catalog import load_catalog
    from controlplane.profiles.measured import measured_for

    return tuple(measured_for(load_catalog(None)))


def detail(obj: Obj, measured: Sequence[Loaded] = ()) -> CanaryDetail:
    """``obj`` as a :class:`CanaryDetail`: its summary, spec and status, the expected change
    from the ``measured`` entries beside the observed one and the quality judge's line, as
    ``kubectl canary get`` shows them."""
    from controlplane.profiles.expected import sources_line

    view = snapshot(obj, measured)
    rows = view.expected_rows()
    expected = None
    if view.expected is not None and rows:
        expected = Expected(
            rows=[ExpectedRow(**vars(row)) for row in rows], sources=sources_line(view.expected)
        )
    return CanaryDetail(
        **summary(obj),
        spec=obj.get("spec") or {},
        status=obj.get("status") or {},
        expected=expected,
        quality=view.quality,
    )


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


class ActAccess(BaseModel):
    """Whether the caller may act on the canary (pause, resume, promote, abort, retry: ``patch``
    on modelcanaries), and why; the page offers the verbs only when it may."""

    act: bool
    reason: str = Field(description="the authorizer's reason (why not, when ``act`` is false)")


class GitWebhookResult(BaseModel):
    forge: str
    event: str
    triggered: bool


class Health(BaseModel):
    status: Literal["ok", "not ready"]
    detail: str = ""


Mode = Literal["controller", "kubeconfig", "local"]
"""Who serves the API: the controller (its ServiceAccount reads; SubjectAccessReview decides),
``kubectl canary dashboard`` (the user's kubeconfig: the API server decides) or ``canaryctl up``
(the one canary of a run on this machine)."""


class WhoAmI(BaseModel):
    """The caller as the API authenticated it, and what serves the API."""

    user: str
    mode: Mode


class EventItem(BaseModel):
    """A Kubernetes Event about the canary or one of its objects (``kubectl canary get``'s)."""

    type: str = Field(description="Normal or Warning")
    reason: str
    message: str
    count: int
    firstTimestamp: str | None = None
    lastTimestamp: str | None = None
    object: str = Field(description="Kind/name of the object it is about")


class EventList(BaseModel):
    """The Events, oldest first; ``why``: why none could be read (RBAC, say), else ''."""

    items: list[EventItem]
    why: str = ""


class ObjectNode(BaseModel):
    """One object the canary owns, with its health and why (``detail``)."""

    kind: str
    name: str
    health: str = Field(description="Ready, Progressing, Degraded, Missing, Forbidden, Unknown")
    detail: str = ""
    role: str = Field("", description="the variant it serves (stable, candidate, both)")
    ready: int | None = None
    wanted: int | None = None
    children: list[ObjectNode] = Field(default_factory=list)


class WeightView(BaseModel):
    stable: int
    candidate: int
    mirror: bool = False


class ObjectWeights(BaseModel):
    """The weights the status sets, and those the route holds now (None: unknown, ``why``)."""

    set: WeightView
    actual: WeightView | None = None
    source: str = ""
    why: str = ""


class ObjectTree(BaseModel):
    """``kubectl canary get``'s tree: ``note`` says why there is none (an invalid spec)."""

    items: list[ObjectNode]
    weights: ObjectWeights
    note: str = ""


def _stamp(t: float | None) -> str | None:
    return None if t is None else format_time(t)


def event_list(owned: Owned) -> EventList:
    """The Events of ``owned`` as the API answers them."""
    return EventList(
        items=[
            EventItem(
                type=e.type,
                reason=e.reason,
                message=e.message,
                count=e.count,
                firstTimestamp=_stamp(e.first if e.first is not None else e.last),
                lastTimestamp=_stamp(e.last),
                object=e.object,
            )
            for e in owned.events
        ],
        why=owned.events_why,
    )


def _node(node: Node) -> ObjectNode:
    return ObjectNode(
        kind=node.kind,
        name=node.name,
        health=node.health,
        detail=node.why,
        role=node.role,
        ready=node.ready,
        wanted=node.wanted,
        children=[_node(c) for c in node.children],
    )


def _weights(candidate: int, mirror: bool) -> WeightView:
    return WeightView(stable=100 - candidate, candidate=candidate, mirror=mirror)


def object_tree(obj: Obj, owned: Owned) -> ObjectTree:
    """The tree of ``owned`` under the canary ``obj``, with the weights set and held."""
    actual = owned.actual
    got = actual.weights if actual is not None else None
    return ObjectTree(
        items=[_node(n) for n in owned.nodes],
        weights=ObjectWeights(
            set=_weights(*snapshot(obj).set_weight()),
            actual=None if got is None else _weights(got.candidate, got.mirror),
            source=actual.source if actual is not None else "",
            why=actual.why if actual is not None else "",
        ),
        note=owned.note,
    )
