"""Issue 33: the git host's API (its host comes from the spec's repository URL) is read like any
server a tenant may name: a refusal's ``GitError`` (which reaches the canary's status and Events)
names the status code and reason phrase, never the answer's body; a huge answer is read no
further than 16 MiB; a redirect is not followed. Real HTTP servers on loopback ports."""

from __future__ import annotations

import contextlib
import http.server
import json
import tracemalloc
from typing import ClassVar

import pytest

from controlplane.errors import GitError
from controlplane.gitops.hosting import PullRequest, open_pull_request
from harness.servers.hostile_prometheus import SECRET, huge_answer, secret_page
from harness.servers.loopback import serving

MiB = 1 << 20


class _Host(http.server.BaseHTTPRequestHandler):
    status = 403
    body = secret_page().encode()
    extra: ClassVar[dict[str, str]] = {}
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.hits.append(self.path)
        self.send_response(self.status)
        for key, value in self.extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def open_one(api: str) -> object:
    return open_pull_request(
        "github",
        api,
        "https://github.example/team/models.git",
        "ghp_token",
        head="rollback-1",
        base="main",
        title="t",
        body="b",
        timeout_s=5,
    )


@pytest.mark.parametrize("body", [secret_page().encode(), json.dumps({"message": SECRET}).encode()])
def test_a_refusal_names_the_status_not_the_body(body: bytes) -> None:
    handler = type("Handler", (_Host,), {"body": body, "hits": []})
    with serving(handler) as api, pytest.raises(GitError) as caught:
        open_one(api)
    text = str(caught.value)
    assert text.endswith("answered 403 Forbidden")
    assert SECRET not in text
    assert "ghp_token" not in text


def test_a_huge_answer_is_read_no_further_than_the_cap() -> None:
    handler = type("Handler", (_Host,), {"status": 201, "body": huge_answer(), "hits": []})
    with serving(handler) as api:
        tracemalloc.start()
        try:
            found = open_one(api)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert found == PullRequest(url=None, created=True)
    assert peak < 24 * MiB


def test_a_redirect_is_not_followed() -> None:
    target: type[_Host] = type("Target", (_Host,), {"status": 201, "body": b"{}", "hits": []})
    with serving(target) as elsewhere:
        extra = {"Location": f"{elsewhere}/repos/x/y/pulls"}
        redirect = type("Redirect", (_Host,), {"status": 307, "body": b"", "extra": extra})
        with serving(redirect) as api, pytest.raises(GitError, match="answered 307"):
            open_one(api)
    assert target.hits == []
