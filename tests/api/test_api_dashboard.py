"""The dashboard's routes over the fake cluster: whoami, a canary's Events and objects (what
``kubectl canary get`` shows), the summary fields the list shows, the pages with their security
headers, and the API server's refusal as the caller's own under ``kubectl canary dashboard``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, STATIC, World

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.dashboard import NOT_BUILT, SECURITY_HEADERS
from controlplane.errors import Forbidden

BASE = f"/api/v1/namespaces/{NS}/canaries/{NAME}"
CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"


def test_whoami_names_the_caller_and_the_mode(
    client: TestClient, admin: dict[str, str], world: World
) -> None:
    assert client.get("/api/v1/whoami", headers=admin).json() == {
        "user": "static-token",
        "mode": "controller",
    }
    world.kube.add_token("alice-token", "alice")
    answer = client.get("/api/v1/whoami", headers={"Authorization": "Bearer alice-token"})
    assert answer.json() == {"user": "alice", "mode": "controller"}
    assert client.get("/api/v1/whoami").status_code == 401


def test_events_are_gets_events(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get(f"{BASE}/events", headers=admin)
    assert answer.status_code == 200
    body = answer.json()
    assert body["why"] == ""
    reasons = [e["reason"] for e in body["items"]]
    assert "StepStarted" in reasons
    started = body["items"][reasons.index("StepStarted")]
    assert started == {
        "type": "Normal",
        "reason": "StepStarted",
        "message": "step 1 started at weight 5%",
        "count": 1,
        "firstTimestamp": "2027-01-15T08:01:00Z",
        "lastTimestamp": "2027-01-15T08:01:00Z",
        "object": f"ModelCanary/{NAME}",
    }
    last = [e["lastTimestamp"] for e in body["items"]]
    assert last == sorted(last)  # oldest first


def test_objects_are_gets_tree_with_the_weights(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get(f"{BASE}/objects", headers=admin)
    assert answer.status_code == 200
    body = answer.json()
    kinds = [(n["kind"], n["role"], n["health"]) for n in body["items"]]
    assert kinds == [
        ("InferenceService", "stable", "Ready"),
        ("InferenceService", "candidate", "Ready"),
        ("HTTPRoute", "", "Unknown"),
    ]
    (deployment,) = body["items"][1]["children"]
    assert deployment["kind"] == "Deployment"
    assert deployment["ready"] == deployment["wanted"]
    assert body["weights"]["set"] == {"stable": 95, "candidate": 5, "mirror": False}
    assert body["weights"]["actual"] == {"stable": 95, "candidate": 5, "mirror": False}
    assert body["weights"]["source"].startswith("HTTPRoute ")
    assert body["note"] == ""


@pytest.mark.parametrize("tail", ["", "/events", "/objects"])
def test_a_missing_canary_is_404_on_every_read(
    client: TestClient, admin: dict[str, str], tail: str
) -> None:
    answer = client.get(f"/api/v1/namespaces/{NS}/canaries/nope{tail}", headers=admin)
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("modelcanary 'nope' not found")


def test_a_reader_elsewhere_may_not_read_events_or_objects(
    world: World, client: TestClient
) -> None:
    world.kube.add_token("eve-token", "eve")
    eve = {"Authorization": "Bearer eve-token"}
    for tail in ("/events", "/objects"):
        answer = client.get(BASE + tail, headers=eve)
        assert answer.status_code == 403
        assert answer.json()["detail"].startswith('user "eve" may not get modelcanaries')


def test_the_summary_has_what_the_list_page_shows(
    world: World, client: TestClient, admin: dict[str, str]
) -> None:
    client.post(f"{BASE}/pause", headers=admin)
    world.controller.run_once()
    (item,) = client.get(f"/api/v1/namespaces/{NS}/canaries", headers=admin).json()["items"]
    assert item["paused"] == "user"
    assert item["phase"] == "paused"
    assert item["lastDecision"]["type"] == "Paused"
    assert item["createdAt"] == "2027-01-15T08:00:00Z"
    assert (item["warnings"], item["simulated"], item["timeScale"]) == (0, False, None)


def built(folder: Path) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>canaries</title>")
    (folder / "assets" / "app-1a2b.js").write_text("console.log('hi')")
    (folder / "favicon.svg").write_text("<svg/>")
    return folder


@pytest.fixture
def pages(world: World, tmp_path: Path) -> TestClient:
    config = ApiConfig(
        kube=world.kube,
        auth=Authenticator(static_token=STATIC),
        dashboard_dir=built(tmp_path / "dist"),
    )
    return TestClient(create_app(config), follow_redirects=False)


def test_the_pages_are_served_with_security_headers(pages: TestClient) -> None:
    index = pages.get("/dashboard/")
    assert index.status_code == 200
    assert index.text.startswith("<!doctype html>")
    assert index.headers["content-type"].startswith("text/html")
    assert index.headers["cache-control"] == "no-cache"
    script = pages.get("/dashboard/assets/app-1a2b.js")
    assert script.status_code == 200
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in script.headers["content-type"]
    for answer in (index, script, pages.get("/dashboard/favicon.svg")):
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert SECURITY_HEADERS["Content-Security-Policy"] == CSP


def test_the_page_routes_in_the_browser_and_assets_are_exact(pages: TestClient) -> None:
    deep = pages.get(f"/dashboard/canaries/{NS}/{NAME}")
    assert deep.status_code == 200
    assert deep.text.startswith("<!doctype html>")
    assert pages.get("/dashboard/assets/missing.js").status_code == 404
    outside = pages.get("/dashboard/..%2F..%2Fetc%2Fpasswd")
    assert "root:" not in outside.text
    for path in ("/", "/dashboard"):
        answer = pages.get(path)
        assert (answer.status_code, answer.headers["location"]) == (302, "/dashboard/")


def test_the_pages_need_no_token_but_the_data_does(pages: TestClient) -> None:
    assert pages.get("/dashboard/").status_code == 200
    assert pages.get("/api/v1/canaries").status_code == 401


def test_without_a_build_the_pages_say_how_to_build_them(world: World, tmp_path: Path) -> None:
    config = ApiConfig(
        kube=world.kube, auth=Authenticator(static_token=STATIC), dashboard_dir=tmp_path / "none"
    )
    answer = TestClient(create_app(config)).get("/dashboard/")
    assert answer.status_code == 503
    assert answer.text == NOT_BUILT
    assert answer.headers["x-frame-options"] == "DENY"


def test_with_the_users_kubeconfig_a_refusal_is_the_callers_403(world: World) -> None:
    """``kubectl canary dashboard`` acts with the user's credentials: the API server's refusal
    is the caller's, answered 403 with its reason, nothing changed (the controller's API answers
    its own ServiceAccount's refusal 502)."""
    why = (
        '403 Forbidden: modelcanaries.canary.controlplane.dev "support-triage" is forbidden: '
        'User "viewer" cannot patch resource "modelcanaries"'
    )
    config = ApiConfig(kube=world.kube, auth=Authenticator(static_token=STATIC), mode="kubeconfig")
    before = world.get()["metadata"]["resourceVersion"]
    token = {"Authorization": f"Bearer {STATIC}"}
    with TestClient(create_app(config)) as api:
        world.kube.fail_next("patch", Forbidden(why))
        answer = api.post(f"{BASE}/pause", headers=token)
        assert (answer.status_code, answer.json()) == (403, {"detail": why})
        alert = api.post("/api/v1/alertmanager", json={}, headers=token)
        assert alert.status_code == 404  # the webhooks are the controller's only
    assert world.get()["metadata"]["resourceVersion"] == before
