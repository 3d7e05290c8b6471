"""The Alertmanager receiver: a firing alert rolls its canary back at once.

The end-to-end test runs the real ``prometheus-alertmanager`` binary on loopback with a
``webhook_config`` pointing at the API served by uvicorn on a real socket (bearer token through
``http_config.authorization``); an alert posted to Alertmanager reaches the receiver, which
records an abort and wakes the controller, which rolls the canary back at the same instant of its
clock: no analysis interval passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, STATIC, World, canary
from support.canaries import MODEL
from support.prometheus import start_alertmanager

from controlplane.api.server import ApiServer
from controlplane.spec.models import API_GROUP

URL = "/api/v1/alertmanager"


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "CandidateLatencyHigh", **labels},
        "annotations": {"summary": "p95 latency over 200ms"},
        "startsAt": "2027-01-15T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "a1b2c3",
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "canary",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": list(alerts),
    }


def test_firing_alert_rolls_back_at_once(
    world: World, client: TestClient, admin: dict[str, str]
) -> None:
    now = world.clock.t
    answer = client.post(URL, headers=admin, json=payload(alert(canary=NAME, namespace=NS)))
    assert answer.status_code == 200
    (result,) = answer.json()["results"]
    assert result["result"] == "aborted"
    assert result["alertname"] == "CandidateLatencyHigh"
    assert world.woken == [(NS, NAME)]
    world.controller.run_once()
    status = world.status()
    assert world.clock.t == now
    assert status["phase"] == "rolled_back"
    assert status["reason"]["message"] == "aborted by alertmanager:CandidateLatencyHigh"
    assert status["reason"]["kind"] == "aborted"


def test_every_alert_gets_a_result_and_nothing_is_recorded_twice(
    world: World, client: TestClient, admin: dict[str, str]
) -> None:
    other = canary("done", model={**MODEL, "name": "other-model"})  # its own InferenceServices
    world.create(other)
    world.run_until(lambda: world.phase("done") == "progressing", limit_s=3600)
    client.post(f"/api/v1/namespaces/{NS}/canaries/done/abort", headers=admin)
    world.controller.run_once()
    assert world.phase("done") == "rolled_back"
    answer = client.post(
        URL,
        headers=admin,
        json=payload(
            alert(canary=NAME, namespace=NS),
            alert(canary=NAME, namespace=NS),  # the same canary twice in one notification
            alert("resolved", canary=NAME, namespace=NS),
            alert(canary="ghost", namespace=NS),
            alert(canary="done", namespace=NS),
            alert(namespace=NS),
        ),
    )
    assert answer.status_code == 200
    results = [(r["canary"], r["result"]) for r in answer.json()["results"]]
    assert results == [
        (NAME, "aborted"),
        (NAME, "pending"),
        (NAME, "ignored"),
        ("ghost", "not-found"),
        ("done", "refused"),
        (None, "ignored"),
    ]
    details = [r["detail"] for r in answer.json()["results"]]
    assert "not found in namespace 'ml-serving'" in details[3]
    assert "already rolled_back" in details[4]
    assert details[5] == "the alert has no label canary"
    # Alertmanager re-sends the notification before the controller ran: no second abort
    again = client.post(URL, headers=admin, json=payload(alert(canary=NAME, namespace=NS)))
    assert again.json()["results"][0]["result"] == "pending"
    intents = world.get()["metadata"]["annotations"]["canary.controlplane.dev/intent"]
    assert intents.count('"abort"') == 1


def test_configured_label_names(world: World, admin: dict[str, str]) -> None:
    app = world.app(alert_canary_label="model_canary", alert_namespace_label="kubernetes_namespace")
    with TestClient(app) as client:
        answer = client.post(
            URL,
            headers=admin,
            json=payload(alert(model_canary=NAME, kubernetes_namespace=NS)),
        )
    assert answer.json()["results"][0]["result"] == "aborted"


def test_alert_needs_patch_rights_in_the_namespace(world: World, client: TestClient) -> None:
    world.kube.add_token("am-token", "system:serviceaccount:monitoring:alertmanager")
    before = world.get()["metadata"]["resourceVersion"]
    body = payload(alert(canary=NAME, namespace=NS))
    denied = client.post(URL, headers={"Authorization": "Bearer am-token"}, json=body)
    assert denied.status_code == 200
    assert denied.json()["results"][0]["result"] == "forbidden"
    assert world.get()["metadata"]["resourceVersion"] == before
    world.kube.grant(
        "alertmanager-aborts",
        verbs=["patch"],
        resources=["modelcanaries"],
        api_groups=[API_GROUP],
        namespace=NS,
        service_accounts=[("monitoring", "alertmanager")],
    )
    world.kube.revoke_token("unused")
    # a fresh app: the denial above is cached for 10 s in the first one
    with TestClient(world.app()) as fresh:
        allowed = fresh.post(URL, headers={"Authorization": "Bearer am-token"}, json=body)
    assert allowed.json()["results"][0]["result"] == "aborted"


@pytest.mark.parametrize(
    "body",
    [
        {"version": "3", "status": "firing", "alerts": []},
        {"version": "4", "status": "firing"},
        {"version": "4", "status": "burning", "alerts": []},
        {"version": "4", "status": "firing", "alerts": [{"labels": {"canary": "x"}}]},
    ],
    ids=["version", "no-alerts", "status", "alert-status"],
)
def test_malformed_payload_is_422(
    world: World, client: TestClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    assert client.post(URL, headers=admin, json=body).status_code == 422
    assert world.get()["metadata"]["resourceVersion"] == before


def test_receiver_needs_a_token(world: World, client: TestClient) -> None:
    answer = client.post(URL, json=payload(alert(canary=NAME, namespace=NS)))
    assert answer.status_code == 401
    assert "annotations" not in world.get()["metadata"]


# --------------------------------------------------------------------------- real Alertmanager


@pytest.fixture
def served(world: World) -> Iterator[ApiServer]:
    with ApiServer(world.app(), "127.0.0.1", 0) as server:
        yield server


def alertmanager_config(receiver_url: str) -> str:
    """Route every alert to the controller's receiver at once, with the static bearer token."""
    return f"""
route:
  receiver: canary-controller
  group_by: [alertname, namespace, canary]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: canary-controller
  webhook_configs:
  - url: {receiver_url}
    send_resolved: false
    http_config:
      authorization:
        type: Bearer
        credentials: {STATIC}
"""


@pytest.mark.binary
def test_real_alertmanager_rolls_the_canary_back(
    world: World, served: ApiServer, tmp_path: Path
) -> None:
    now = world.clock.t
    alertmanager = start_alertmanager(tmp_path, alertmanager_config(f"{served.url}{URL}"))
    url = alertmanager.url
    try:
        posted = httpx.post(
            f"{url}/api/v2/alerts",
            json=[
                {
                    "labels": {
                        "alertname": "CandidateErrorsHigh",
                        "canary": NAME,
                        "namespace": NS,
                        "severity": "critical",
                    },
                    "annotations": {"summary": "candidate errors over 1%"},
                }
            ],
            timeout=5,
        )
        assert posted.status_code == 200, posted.text
        deadline = time.monotonic() + 20
        while not world.woken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert world.woken == [(NS, NAME)]
    finally:
        alertmanager.stop()
    world.controller.run_once()
    assert world.clock.t == now  # no analysis interval had to pass
    status = world.status()
    assert status["phase"] == "rolled_back"
    assert status["reason"]["message"] == "aborted by alertmanager:CandidateErrorsHigh"
    assert status["history"][-1]["type"] == "RolledBack"
