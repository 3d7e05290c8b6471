"""Real parts for the notifier tests: a real Alertmanager, and the events a notifier is handed.

:func:`start_alertmanager` runs the ``prometheus-alertmanager`` binary on a free loopback port with
a temporary config and storage dir and clustering disabled; the scripted HTTP receiver standing in
for Slack and webhooks is the harness's (:mod:`harness.servers.receiver`). The builders make the
contract example's rollback (and other events) the way the reconciler hands them to a notifier.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from controlplane.rollout.state import (
    Event,
    EventType,
    PauseKind,
    Reason,
    RolloutState,
    spec_hash,
)
from controlplane.spec.models import ModelCanary
from harness.kube.fake import FakeKube
from support.canaries import canary_dict
from support.prometheus import PrometheusServer
from support.prometheus import start_alertmanager as launch_alertmanager

T0 = float(int(time.time()) // 60 * 60 - 3 * 3600)
"""Three hours ago, on the minute: events are recent enough to be sent."""
NS = "ml-serving"
NAME = "support-triage"


Alertmanager = PrometheusServer
"""A running Alertmanager (the shared loopback launcher's server type)."""


AM_CONFIG = """\
route:
  receiver: blackhole
  group_by: [alertname, namespace, canary]
  group_wait: 1s
receivers:
  - name: blackhole
"""


def start_alertmanager(workdir: Path, timeout: float = 30.0) -> Alertmanager:
    """``prometheus-alertmanager`` on a free loopback port, routing to nowhere (tests read the
    alerts back through its API); raises with its log on failure."""
    return launch_alertmanager(workdir, AM_CONFIG, timeout=timeout)


# --------------------------------------------------------------------------- builders


def canary_obj(
    alerts: list[dict[str, Any]], uid: str = "0f1e2d3c-uid", name: str = NAME
) -> dict[str, Any]:
    """The contract example as read from the cluster (``uid``, resourceVersion 42), alerting
    ``alerts``."""
    return canary_dict(name, alerts=alerts, metadata={"uid": uid, "resourceVersion": "42"})


def canary_of(obj: dict[str, Any]) -> ModelCanary:
    return ModelCanary.model_validate(obj)


LATENCY_REASON = Reason(
    kind="breach",
    message="latency 412.3ms > 300ms at step 1 (steps[0].rollbackOn[0])",
    at=T0 + 600,
    step=1,
    key="steps[0].rollbackOn[0]",
    metric="latency",
    value=0.4123,
    candidate=0.4123,
    stable=0.2917,
    above=0.3,
    window="5m",
)


def rollback(canary: ModelCanary, reason: Reason = LATENCY_REASON) -> tuple[RolloutState, Event]:
    """The state and history entry of a rollback at step ``reason.step``."""
    event = Event("RolledBack", reason.at, reason.step, 0, reason.message)
    state = RolloutState(
        spec_hash=spec_hash(canary),
        stage="rolled_back",
        started_at=T0,
        stage_started_at=T0 + 60,
        step_index=reason.step - 1,
        weight=0,
        reason=reason,
        history=(Event("StepStarted", T0 + 60, 1, 5, "step 1 started at weight 5%"), event),
    )
    return state, event


def plain_event(
    canary: ModelCanary, type_: EventType, at: float, step: int = 1, weight: int = 5
) -> tuple[RolloutState, Event]:
    """A state in steps with one history entry of ``type_``."""
    event = Event(type_, at, step, weight, f"{type_} at step {step}")
    paused: PauseKind | None = "errors" if type_ == "Paused" else None
    state = RolloutState(
        spec_hash=spec_hash(canary),
        stage="steps",
        started_at=T0,
        stage_started_at=T0 + 60,
        step_index=step - 1,
        weight=weight,
        paused=paused,
        history=(event,),
    )
    return state, event


def secret(kube: FakeKube, name: str, key: str, value: str | bytes, ns: str = NS) -> None:
    raw = value.encode() if isinstance(value, str) else value
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "type": "Opaque",
            "data": {key: base64.b64encode(raw).decode()},
        }
    )


def events_of(kube: FakeKube, reason: str, ns: str = NS) -> list[dict[str, Any]]:
    return [e for e in kube.list("v1", "Event", ns) if e.get("reason") == reason]
