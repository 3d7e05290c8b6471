"""Reading canaries and acting on them through the HTTP API (FastAPI TestClient)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, World, canary

from controlplane.kube.client import Ref
from controlplane.rollout.intents import read_intents

BASE = f"/api/v1/namespaces/{NS}/canaries"


def test_list_all_and_per_namespace(world: World, admin: dict[str, str]) -> None:
    world.create(canary("other", namespace="team-b"))
    with TestClient(world.app(namespace=[])) as client:  # a controller of every namespace
        everything = client.get("/api/v1/canaries", headers=admin)
        assert everything.status_code == 200
        assert [(c["namespace"], c["name"]) for c in everything.json()["items"]] == [
            (NS, NAME),
            ("team-b", "other"),
        ]
        mine = client.get(BASE, headers=admin).json()["items"]
        nobody = client.get("/api/v1/namespaces/nobody/canaries", headers=admin).json()
    assert len(mine) == 1
    assert mine[0] | {"resourceVersion": None, "createdAt": None} == {
        "namespace": NS,
        "name": NAME,
        "phase": "progressing",
        "step": 1,
        "weight": 5,
        "outcome": "in_progress",
        "reason": None,
        "stable": "bf16",
        "candidate": "nf4",
        "generation": 1,
        "resourceVersion": None,
        "createdAt": None,
        "lastDecision": {
            "type": "StepStarted",
            "time": "2027-01-15T08:01:00Z",  # the fixture starts at 1_800_000_000, waits a minute
            "step": 1,
            "weight": 5,
            "message": "step 1 started at weight 5%",
        },
        "warnings": 0,
        "paused": None,
        "simulated": False,
        "timeScale": None,
    }
    assert mine[0]["createdAt"].endswith("Z")
    assert nobody == {"items": []}


def test_a_namespaced_controller_serves_its_namespaces_only(
    world: World, client: TestClient, admin: dict[str, str]
) -> None:
    """The controller watches ml-serving only (``--namespace``, the chart's namespaced scope,
    where a cluster-wide list is refused): the API lists there and nowhere else."""
    other = canary("other", namespace="team-b")
    world.create(other)
    everything = client.get("/api/v1/canaries", headers=admin)
    assert [(c["namespace"], c["name"]) for c in everything.json()["items"]] == [(NS, NAME)]
    why = "namespace 'team-b' is not watched by this controller (it watches ml-serving)"
    for answer in (
        client.get("/api/v1/namespaces/team-b/canaries", headers=admin),
        client.get("/api/v1/namespaces/team-b/canaries/other", headers=admin),
        client.post("/api/v1/namespaces/team-b/canaries/other/abort", headers=admin),
    ):
        assert (answer.status_code, answer.json()) == (404, {"detail": why})
    labels = {"alertname": "CanaryErrors", "canary": "other", "namespace": "team-b"}
    alert = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": labels}]}
    (result,) = client.post("/api/v1/alertmanager", json=alert, headers=admin).json()["results"]
    assert (result["result"], result["detail"]) == ("not-found", why)
    assert world.kube.get(Ref.of(other)).get("metadata", {}).get("annotations") is None


def test_get_one_has_spec_and_status(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get(f"{BASE}/{NAME}", headers=admin)
    assert answer.status_code == 200
    body = answer.json()
    assert body["phase"] == "progressing"
    assert body["spec"]["candidate"]["name"] == "nf4"
    assert body["status"]["stage"] == "steps"
    assert [e["type"] for e in body["status"]["history"]] == ["StepStarted"]


def test_unknown_canary_is_404_with_the_reason(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get(f"{BASE}/nope", headers=admin)
    assert answer.status_code == 404
    assert answer.json() == {
        "detail": "modelcanary 'nope' not found in namespace 'ml-serving' "
        "(list them with: kubectl canary list -n ml-serving)"
    }
    assert client.post(f"{BASE}/nope/pause", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "verb", "phase"),
    [
        ("pause", None, "pause", "paused"),
        ("abort", None, "abort", "rolled_back"),
        ("promote", None, "promote", "progressing"),
        ("promote", {"full": False}, "promote", "progressing"),
        ("promote", {"full": True}, "promote-full", "promoted"),
    ],
)
def test_action_records_the_intent_wakes_the_controller_and_it_acts(
    world: World,
    client: TestClient,
    admin: dict[str, str],
    path: str,
    body: dict[str, bool] | None,
    verb: str,
    phase: str,
) -> None:
    answer = client.post(f"{BASE}/{NAME}/{path}", headers=admin, json=body)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["intent"]["verb"] == verb
    assert result["intent"]["user"] == "static-token"
    assert result["phase"] == "progressing"
    recorded, _ = read_intents(world.get()["metadata"]["annotations"])
    assert [(r.id, r.intent.verb) for r in recorded] == [(result["intent"]["id"], verb)]
    assert world.woken == [(NS, NAME)]
    # the controller acts on the next pass, at the same instant: no timer had to fire
    assert world.controller.next_wake() == world.clock.t
    world.controller.run_once()
    assert world.phase() == phase
    if verb == "promote":
        assert world.status()["step"] == 2


def test_resume_and_retry(world: World, client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(f"{BASE}/{NAME}/pause", headers=admin).status_code == 202
    world.controller.run_once()
    assert client.post(f"{BASE}/{NAME}/resume", headers=admin).status_code == 202
    world.controller.run_once()
    assert world.phase() == "progressing"
    assert client.post(f"{BASE}/{NAME}/abort", headers=admin).status_code == 202
    world.controller.run_once()
    assert world.phase() == "rolled_back"
    assert client.post(f"{BASE}/{NAME}/retry", headers=admin).status_code == 202
    world.controller.run_once()
    assert world.status()["stage"] == "pending"


def test_wrong_phase_is_409_with_the_usage_message_and_changes_nothing(
    world: World, client: TestClient, admin: dict[str, str]
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    answer = client.post(f"{BASE}/{NAME}/retry", headers=admin)
    assert answer.status_code == 409
    assert answer.json() == {
        "detail": "modelcanary 'support-triage' is progressing, not rolled back: retry only "
        "re-runs a rolled-back candidate"
    }
    assert world.get()["metadata"]["resourceVersion"] == before
    assert world.woken == []


@pytest.mark.parametrize(
    ("path", "content", "problem"),
    [
        ("promote", '{"full": "very"}', "bool_parsing"),
        ("promote", '{"fully": true}', "extra_forbidden"),
        ("pause", '{"full": true}', "extra_forbidden"),
        ("promote", "{not json", "json_invalid"),
        ("abort", "[1, 2]", "model_attributes_type"),
    ],
)
def test_malformed_body_is_422_and_changes_nothing(
    world: World, client: TestClient, admin: dict[str, str], path: str, content: str, problem: str
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    answer = client.post(
        f"{BASE}/{NAME}/{path}",
        headers={**admin, "Content-Type": "application/json"},
        content=content,
    )
    assert answer.status_code == 422
    assert problem in [d["type"] for d in answer.json()["detail"]]
    assert world.get()["metadata"]["resourceVersion"] == before


def test_unknown_verb_is_404(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(f"{BASE}/{NAME}/undo", headers=admin).status_code == 404


def test_openapi_lists_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {f"{BASE.replace(NS, '{namespace}')}/{{name}}/{v}" for v in ("pause", "resume")} <= set(
        paths
    )
    assert {"/api/v1/canaries", "/api/v1/alertmanager", "/api/v1/git/webhook"} <= set(paths)
    assert client.get("/docs").status_code == 200
