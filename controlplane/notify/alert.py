"""What an alert says, independent of where it goes: the pure half of notification.

Owns the event kinds users subscribe to (:data:`EVENT_KINDS`), the channel-agnostic
:class:`Alert` (:func:`build_alert`), the breach details in the check's units and the dashboard
link. The channels render an :class:`Alert`; :mod:`.notifier` delivers it. See docs/alerts.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from controlplane.rollout import events
from controlplane.rollout.state import Event, EventType, Reason, RolloutState
from controlplane.spec import check_keys
from controlplane.spec.models import AlertEvent, CheckSpec, ModelCanary
from controlplane.spec.units import BUILTIN_UNITS, Unit, display_value

EVENT_KINDS: Mapping[EventType, AlertEvent] = {
    "RolledBack": "rollback",
    "Promoted": "promotion",
    "Paused": "pause",
    "Resumed": "pause",
    "Throttled": "throttle",
    "Unthrottled": "throttle",
    "StepStarted": "step",
    "Advanced": "step",
    "ShadowStarted": "step",
    "ShadowPassed": "step",
}
"""Rollout event type -> ``spec.alerts[].events`` kind. ``Breached``, ``Held`` and ``Restarted``
alert nobody: a breach that matters is followed by ``RolledBack`` in the same evaluation, and the
Kubernetes Events the reconciler emits already record every history entry."""

RESOLVING: frozenset[EventType] = frozenset({"Resumed", "Unthrottled"})
"""Events that end an open condition (a pause, a throttle) instead of starting one."""

Severity = Literal["critical", "warning", "info"]

ALERT_NAMES: Mapping[AlertEvent, tuple[str, Severity]] = {
    "rollback": ("ModelCanaryRolledBack", "critical"),
    "promotion": ("ModelCanaryPromoted", "info"),
    "pause": ("ModelCanaryPaused", "warning"),
    "throttle": ("ModelCanaryThrottled", "warning"),
    "step": ("ModelCanaryStep", "info"),
}
"""Alertmanager ``alertname`` and ``severity`` of each kind."""

TITLES: Mapping[EventType, str] = {
    "RolledBack": "Rolled back",
    "Promoted": "Promoted",
    "Paused": "Paused",
    "Resumed": "Resumed",
    "Throttled": "Throttled (over budget)",
    "Unthrottled": "Back from throttling",
    "StepStarted": "Step started",
    "Advanced": "Advanced",
    "ShadowStarted": "Shadow started",
    "ShadowPassed": "Shadow passed",
}

DEFAULT_DASHBOARD_UID = "modelcanary"
"""The ``uid`` of ``manifests/grafana/modelcanary-dashboard.json``."""


@dataclass(frozen=True)
class Breach:
    """The check behind a rollback or pause, numbers in base units and as display text.

    ``value`` is what was compared with the thresholds (the drift for ``compare: baseline``);
    ``candidate`` / ``stable`` are the raw per-variant values when the state recorded them
    (None: not recorded, rendered as such).
    """

    metric: str
    key: str | None
    value: float | None
    candidate: float | None
    stable: float | None
    above: float | None
    below: float | None
    window: str | None
    baseline: bool
    value_text: str
    candidate_text: str
    stable_text: str
    threshold_text: str


@dataclass(frozen=True)
class Alert:
    """One rollout event worth telling a channel about, with everything the channels render.

    ``fingerprint`` identifies the event (not the delivery;
    :func:`controlplane.rollout.events.fingerprint`): the same history entry notified again after
    a controller restart has the same one. ``resolved`` is True for the events that
    end an open pause or throttle.
    """

    kind: AlertEvent
    event_type: EventType
    fingerprint: str
    alertname: str
    severity: Severity
    resolved: bool
    namespace: str
    name: str
    uid: str | None
    spec_hash: str
    phase: str
    time: float
    step: int
    steps: int
    step_weight: int | None
    weight: int
    message: str
    title: str
    stable_variant: str
    candidate_variant: str
    reason_kind: str | None
    breach: Breach | None
    dashboard_url: str | None

    @property
    def canary(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def summary(self) -> str:
        """One line: ``Rolled back: ml-serving/support-triage at step 1 (latency ...)``."""
        where = f" at step {self.step}" if self.step > 0 else " in shadow"
        text = f"{self.title}: {self.canary}{where}"
        if self.breach is not None:
            text += (
                f" ({self.breach.metric} {self.breach.value_text}, "
                f"threshold {self.breach.threshold_text})"
            )
        return text

    def to_json(self) -> dict[str, Any]:
        """The generic webhook's payload (stable, documented in docs/alerts.md)."""
        breach = self.breach
        return {
            "version": "v1",
            "id": self.fingerprint,
            "event": self.kind,
            "type": self.event_type,
            "resolved": self.resolved,
            "severity": self.severity,
            "time": rfc3339(self.time),
            "canary": {
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "specHash": self.spec_hash,
            },
            "phase": self.phase,
            "step": self.step,
            "steps": self.steps,
            "stepWeight": self.step_weight,
            "weight": self.weight,
            "variants": {"stable": self.stable_variant, "candidate": self.candidate_variant},
            "message": self.message,
            "summary": self.summary,
            "reason": None
            if self.reason_kind is None
            else {
                "kind": self.reason_kind,
                "metric": breach.metric if breach else None,
                "check": breach.key if breach else None,
                "value": breach.value if breach else None,
                "candidate": breach.candidate if breach else None,
                "stable": breach.stable if breach else None,
                "above": breach.above if breach else None,
                "below": breach.below if breach else None,
                "window": breach.window if breach else None,
            },
            "dashboard": self.dashboard_url,
        }


def rfc3339(t: float) -> str:
    """Unix seconds as RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def dashboard_url(
    base: str | None,
    namespace: str,
    name: str,
    at: float,
    *,
    uid: str = DEFAULT_DASHBOARD_UID,
    before_s: float = 6 * 3600,
    after_s: float = 3600,
) -> str | None:
    """The Grafana dashboard of one canary around ``at``; None without a ``base`` URL."""
    if not base:
        return None
    query = urlencode(
        {
            "var-namespace": namespace,
            "var-canary": name,
            "from": int((at - before_s) * 1000),
            "to": int((at + after_s) * 1000),
        }
    )
    return f"{base.rstrip('/')}/d/{uid}/modelcanary?{query}"


def find_check(canary: ModelCanary, key: str | None) -> CheckSpec | None:
    """The ``rollbackOn`` check named by a state key (``steps[0].rollbackOn[1]``), or None;
    read with the one decoder of the keys the machine writes
    (:func:`controlplane.spec.check_keys.decode`)."""
    decoded = check_keys.decode(key or "")
    if decoded is None or decoded.index is None:  # not a key, or shadow.promoteOn
        return None
    try:
        if decoded.step is not None:
            return canary.spec.steps[decoded.step].rollback_on[decoded.index]
        shadow = canary.spec.shadow
        return None if shadow is None else shadow.rollback_on[decoded.index]
    except IndexError:
        return None


def _raw_unit(canary: ModelCanary, metric: str, check: CheckSpec | None) -> Unit:
    spec = canary.metric(metric)
    if spec is not None and spec.unit is not None:
        return Unit(spec.unit)
    if spec is not None and spec.builtin is not None:
        return BUILTIN_UNITS[spec.builtin]
    if check is not None and check.compare != "baseline":
        threshold = check.above or check.below
        if threshold is not None:
            return threshold.unit
    return Unit.NUMBER


def _text(value: float | None, unit: Unit) -> str:
    return "not recorded" if value is None else display_value(value, unit)


def build_breach(canary: ModelCanary, reason: Reason) -> Breach | None:
    """The breach details of ``reason`` (None when it names no metric)."""
    if reason.metric is None:
        return None
    check = find_check(canary, reason.key)
    baseline = check is not None and check.compare == "baseline"
    raw_unit = _raw_unit(canary, reason.metric, check)
    compared_unit = Unit.RATIO if baseline else raw_unit
    parts = []
    if reason.below is not None and reason.above is not None:
        low = display_value(reason.below, compared_unit)
        high = display_value(reason.above, compared_unit)
        parts.append(f"outside [{low}, {high}]")
    elif reason.above is not None:
        parts.append(f"> {display_value(reason.above, compared_unit)}")
    elif reason.below is not None:
        parts.append(f"< {display_value(reason.below, compared_unit)}")
    threshold_text = " ".join(parts) or "n/a"
    if baseline:
        threshold_text += " vs stable"
    if reason.window:
        threshold_text += f" over {reason.window}"
    value_text = _text(reason.value, compared_unit)
    if baseline and reason.value is not None:
        value_text = ("+" if reason.value >= 0 else "") + value_text
    return Breach(
        metric=reason.metric,
        key=reason.key,
        value=reason.value,
        candidate=reason.candidate,
        stable=reason.stable,
        above=reason.above,
        below=reason.below,
        window=reason.window,
        baseline=baseline,
        value_text=value_text,
        candidate_text=_text(reason.candidate, raw_unit),
        stable_text=_text(reason.stable, raw_unit),
        threshold_text=threshold_text,
    )


def _reason_of(state: RolloutState, event: Event) -> Reason | None:
    """The state's reason when it belongs to ``event`` (a rollback or pause recorded at the
    event's time); the reconciler passes the latest state, which may be past older events."""
    reason = state.reason
    if reason is None or event.type not in ("RolledBack", "Paused"):
        return None
    return reason if reason.at == event.time else None


def build_alert(
    obj: Mapping[str, Any],
    canary: ModelCanary,
    state: RolloutState,
    event: Event,
    *,
    grafana_url: str | None = None,
    dashboard_uid: str = DEFAULT_DASHBOARD_UID,
) -> Alert | None:
    """The alert for ``event``, or None when its type alerts nobody (:data:`EVENT_KINDS`)."""
    kind = EVENT_KINDS.get(event.type)
    if kind is None:
        return None
    meta = obj.get("metadata") or {}
    namespace = canary.metadata.namespace
    name = canary.metadata.name
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
    alertname, severity = ALERT_NAMES[kind]
    reason = _reason_of(state, event)
    steps = canary.spec.steps
    step_weight = steps[event.step - 1].weight if 0 < event.step <= len(steps) else None
    return Alert(
        kind=kind,
        event_type=event.type,
        fingerprint=events.fingerprint(events.owner_id(namespace, name, uid), event),
        alertname=alertname,
        severity=severity,
        resolved=event.type in RESOLVING,
        namespace=namespace,
        name=name,
        uid=uid,
        spec_hash=state.spec_hash,
        phase=state.phase,
        time=event.time,
        step=event.step,
        steps=len(steps),
        step_weight=step_weight,
        weight=event.weight,
        message=event.message or event.type,
        title=TITLES.get(event.type, event.type),
        stable_variant=canary.spec.stable.name,
        candidate_variant=canary.spec.candidate.name,
        reason_kind=reason.kind if reason is not None else None,
        breach=build_breach(canary, reason) if reason is not None else None,
        dashboard_url=dashboard_url(grafana_url, namespace, name, event.time, uid=dashboard_uid),
    )
