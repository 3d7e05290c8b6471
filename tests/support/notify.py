"""Real parts for the notifier tests: a scripted HTTP receiver and a real Alertmanager.

:class:`Receiver` is a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` standing in for Slack and for a
webhook endpoint: it records every request (path, headers, raw body, arrival time) and answers
from a script of :class:`Reply` (status, headers, delay), then 200. :func:`start_alertmanager`
runs the ``prometheus-alertmanager`` binary on a free loopback port with a temporary config and
storage dir and clustering disabled. The builders make the contract example's rollback (and
other events) the way the reconciler hands them to a notifier.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A real HTTP server on 127.0.0.1:0 answering POSTs from a script."""

    def __init__(self, script: list[Reply] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                    receiver._arrived.notify_all()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} requests arrived, not {count}")
                self._arrived.wait(left)
            return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


@contextmanager
def receiving(script: list[Reply] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script)
    try:
        yield receiver
    finally:
        receiver.stop()


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
