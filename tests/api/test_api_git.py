"""The git push webhook, over a real socket: GitHub's HMAC signature or GitLab's token, then the
git source's callback; everything else is refused and calls nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.api import World

from controlplane.api.git import github_signature
from controlplane.api.server import ApiServer

SECRET = "hook-secret"
URL = "/api/v1/git/webhook"
BODY = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


@pytest.fixture
def pushes() -> list[int]:
    return []


@pytest.fixture
def server(world: World, tmp_path: Path, pushes: list[int]) -> Iterator[ApiServer]:
    secret = tmp_path / "git-secret"
    secret.write_text(SECRET)
    app = world.app(on_git_push=lambda: pushes.append(1), git_webhook_secret_file=str(secret))
    with ApiServer(app, "127.0.0.1", 0) as running:
        yield running


def post(server: ApiServer, headers: dict[str, str], body: bytes = BODY) -> httpx.Response:
    return httpx.post(f"{server.url}{URL}", content=body, headers=headers, timeout=5)


def test_github_push_with_a_good_signature(server: ApiServer, pushes: list[int]) -> None:
    answer = post(
        server, {"X-Hub-Signature-256": github_signature(SECRET, BODY), "X-GitHub-Event": "push"}
    )
    assert answer.status_code == 202
    assert answer.json() == {"forge": "github", "event": "push", "triggered": True}
    assert pushes == [1]


def test_github_ping_is_answered_without_a_fetch(server: ApiServer, pushes: list[int]) -> None:
    headers = {"X-Hub-Signature-256": github_signature(SECRET, BODY), "X-GitHub-Event": "ping"}
    assert post(server, headers).json()["triggered"] is False
    assert pushes == []


def test_gitlab_push_with_the_token(server: ApiServer, pushes: list[int]) -> None:
    answer = post(server, {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"})
    assert answer.json() == {"forge": "gitlab", "event": "push", "triggered": True}
    assert pushes == [1]


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, BODY, "neither X-Hub-Signature-256 (GitHub) nor X-Gitlab-Token (GitLab) is set"),
        (
            {"X-Hub-Signature-256": github_signature("wrong", BODY)},
            BODY,
            "X-Hub-Signature-256 does not match",
        ),
        (
            {"X-Hub-Signature-256": github_signature(SECRET, BODY)},
            BODY + b" ",
            "X-Hub-Signature-256 does not match",
        ),
        ({"X-Gitlab-Token": "guess"}, BODY, "X-Gitlab-Token does not match"),
    ],
    ids=["unsigned", "wrong-secret", "tampered-body", "wrong-token"],
)
def test_unverified_webhooks_are_401_and_fetch_nothing(
    server: ApiServer, pushes: list[int], headers: dict[str, str], body: bytes, reason: str
) -> None:
    answer = post(server, headers, body)
    assert answer.status_code == 401
    assert answer.json()["detail"].startswith(reason)
    assert pushes == []


def test_no_git_source_is_404(world: World) -> None:
    with ApiServer(world.app(), "127.0.0.1", 0) as running:
        answer = post(running, {"X-Gitlab-Token": SECRET})
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no git source is configured on this controller"}


def test_no_secret_refuses_everything(world: World, pushes: list[int]) -> None:
    app = world.app(on_git_push=lambda: pushes.append(1), git_webhook_secret_file=None)
    with ApiServer(app, "127.0.0.1", 0) as running:
        answer = post(running, {"X-Gitlab-Token": ""})
    assert answer.status_code == 401
    assert "no git webhook secret is configured" in answer.json()["detail"]
    assert pushes == []
