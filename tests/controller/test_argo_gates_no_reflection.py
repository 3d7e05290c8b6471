"""Issue 33: what an Argo Server answers reaches a canary's status only as its status code and
reason phrase, plus Argo's own error message (its ``{"code": N, "message": ...}`` shape, cut to
200 characters); an answer that is too big, too deep or no Workflow is "unavailable" (retried,
counted towards errorLimit), never an exception out of the gate client. hera quotes an error
answer's whole body in its exceptions; the controller's session hands it a body reduced to
Argo's message first. Real HTTP servers on loopback ports."""

from __future__ import annotations

import contextlib
import http.server
import json
from pathlib import Path
from typing import ClassVar

import pytest

from controlplane.controller.argo_gates import ArgoGates
from controlplane.rollout.gate_runs import GateRun, pending_runs
from controlplane.rollout.machine import step
from controlplane.rollout.observations import Observations
from controlplane.rollout.schedule import initial_state
from controlplane.spec.models import ModelCanary
from controlplane.validation import validated_file
from harness.servers.hostile_prometheus import SECRET, deep_answer, huge_answer, secret_page
from harness.servers.loopback import serving

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
ENDPOINTS = {"candidate": "http://c.ml-serving.svc", "stable": "http://s.ml-serving.svc"}


def gated() -> tuple[ModelCanary, GateRun]:
    (canary,) = validated_file(ROOT / "canary" / "gated.yml")
    state, _ = step(canary, initial_state(canary, T0), Observations(candidate_ready=True), T0)
    (run,) = pending_runs(canary, state)
    return canary, run


class _Argo(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"{}"
    hits: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.hits.append(f"{self.command} {self.path}")
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading
            self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def argo_answering(status: int, body: bytes) -> type[_Argo]:
    return type("Handler", (_Argo,), {"status": status, "body": body, "hits": []})


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        pytest.param(403, secret_page().encode(), "not allowed: HTTP 403 Forbidden", id="403"),
        pytest.param(
            500,
            secret_page().encode(),
            "unavailable: HTTP 500 Internal Server Error",
            id="500-text",
        ),
        pytest.param(
            502,
            json.dumps({"error": secret_page()}).encode(),
            "unavailable: HTTP 502 Bad Gateway",
            id="502-json-no-message",
        ),
        pytest.param(200, deep_answer(), "nested deeper than 64: refused", id="200-deep"),
        pytest.param(200, huge_answer(), "over 16 MiB: refused", id="200-55MB"),
        pytest.param(200, b"[1, 2]", "not Argo API JSON (TypeError)", id="200-not-an-object"),
        pytest.param(200, b"<html>" + SECRET.encode(), "not Argo API JSON", id="200-html"),
    ],
)
def test_a_poll_says_the_status_never_the_body(status: int, body: bytes, said: str) -> None:
    canary, run = gated()
    with serving(argo_answering(status, body)) as url:
        polled = ArgoGates(url, token="t").poll(canary, run)
    assert polled.phase is None
    assert polled.error is not None
    assert said in polled.error
    assert SECRET not in polled.error
    assert "hunter2" not in polled.error


def test_argo_own_refusal_is_kept_and_cut() -> None:
    """ "workflowtemplates.argoproj.io "x" not found" is how a user learns a gate is wrong."""
    message = 'workflowtemplates.argoproj.io "quantized-model-profile" not found ' + "x" * 400
    canary, run = gated()
    answer = json.dumps({"code": 5, "message": message}).encode()
    with serving(argo_answering(400, answer)) as url:
        refused = ArgoGates(url, token="t").submit(canary, run, ENDPOINTS, "h")
    assert refused is not None
    assert refused.phase == "Error"
    assert "HTTP 400 Bad Request: workflowtemplates.argoproj.io" in refused.message
    kept = refused.message.split("HTTP 400 Bad Request: ", 1)[1]
    assert len(kept) == 200
    assert kept.endswith("...")


def test_a_workflow_message_is_cut() -> None:
    canary, run = gated()
    workflow = {"metadata": {"name": run.workflow}, "spec": {}, "status": {"phase": "Failed"}}
    workflow["status"]["message"] = "m" * 5000
    with serving(argo_answering(200, json.dumps(workflow).encode())) as url:
        polled = ArgoGates(url, token="t").poll(canary, run)
    assert polled.phase == "Failed"
    assert len(polled.message) == 300


def test_a_redirect_is_not_followed() -> None:
    canary, run = gated()
    target = argo_answering(200, b"{}")
    with serving(target) as elsewhere:

        class Redirect(_Argo):
            status = 307
            body = b""
            hits: ClassVar[list[str]] = []

            def end_headers(self) -> None:
                self.send_header("Location", elsewhere + self.path)
                super().end_headers()

        with serving(Redirect) as url:
            polled = ArgoGates(url, token="t").poll(canary, run)
    assert polled.phase is None
    assert polled.error is not None
    assert "HTTP 307" in polled.error
    assert target.hits == []
