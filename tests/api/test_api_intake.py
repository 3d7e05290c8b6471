"""Bodies capped and authenticated before they are parsed (issue 33): the bearer token is checked
before a byte of the body is read, and no body over ``max_body_bytes`` is held, declared or
chunked. In the ASGI calls themselves, through the application, and on the real process: a
100 MB body leaves the server's peak RSS where it was."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from support.api import NAME, NS, STATIC, World, canary

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator, Identity
from controlplane.api.config import ApiConfig
from controlplane.api.intake import Intake, needs_bearer
from controlplane.errors import KubeError
from controlplane.spec.models import API_GROUP

BASE = f"/api/v1/namespaces/{NS}/canaries/{NAME}"
MIB = 1 << 20
ADMIN = {"Authorization": f"Bearer {STATIC}"}
REALM = 'Bearer realm="canary-controller"'


# -- the middleware alone: what it reads, and when ----------------------------------------------


class Probe:
    """An ASGI conversation: the request's messages, what was read of them, and the answer."""

    def __init__(self, chunks: list[bytes], headers: dict[str, str]) -> None:
        self.chunks = chunks
        self.read = 0
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.sent: list[dict[str, Any]] = []
        self.app_saw: bytes | None = None

    async def receive(self) -> dict[str, Any]:
        if self.read >= len(self.chunks):
            return {"type": "http.disconnect"}
        self.read += 1
        more = self.read < len(self.chunks)
        return {"type": "http.request", "body": self.chunks[self.read - 1], "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        """The application behind the middleware: reads the body, answers 200."""
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.app_saw = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def run(self, intake_of: Any, path: str, method: str = "POST") -> int:
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "root_path": "",
            "headers": self.headers,
            "query_string": b"",
        }
        anyio.run(intake_of(self.app), scope, self.receive, self.send)
        status: int = self.sent[0]["status"]
        return status

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))

    def header(self, name: str) -> str | None:
        for key, value in self.sent[0]["headers"]:
            if key.decode().lower() == name.lower():
                return str(value.decode())
        return None


def static_auth() -> Authenticator:
    return Authenticator(static_token=STATIC)


def intake(limit: int = MIB, auth: Authenticator | None = None) -> Any:
    return lambda app: Intake(app, auth=auth or static_auth(), max_body_bytes=limit)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no bearer token: send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "no bearer token"),
        ({"Authorization": "Bearer forged"}, "invalid bearer token"),
    ],
    ids=["none", "basic", "unknown"],
)
@pytest.mark.parametrize("path", ["/api/v1/alertmanager", f"{BASE}/abort", "/api/v1/canaries"])
def test_no_token_is_401_before_a_byte_of_the_body_is_read(
    headers: dict[str, str], reason: str, path: str
) -> None:
    probe = Probe([b"x" * 1000] * 5, {"Content-Type": "application/json", **headers})
    assert probe.run(intake(), path) == 401
    assert probe.read == 0
    assert probe.app_saw is None
    assert probe.json()["detail"].startswith(reason)
    assert probe.header("WWW-Authenticate") == REALM


def test_a_declared_length_over_the_cap_is_413_before_reading() -> None:
    probe = Probe([b"x" * 100], {**ADMIN, "Content-Length": str(MIB + 1)})
    assert probe.run(intake(), f"{BASE}/abort") == 413
    assert probe.read == 0
    assert probe.json() == {
        "detail": f"the request body is larger than the API's limit of {MIB} bytes "
        f"(Content-Length: {MIB + 1})"
    }


@pytest.mark.parametrize("length", ["9" * 5000, "1e9", "-1", ""])
def test_a_declared_length_that_is_no_number_is_counted_instead(length: str) -> None:
    huge = Probe([b"x" * 600] * 3, {**ADMIN, "Content-Length": length})
    assert huge.run(intake(limit=1000), f"{BASE}/abort") == 413
    assert huge.read == (0 if length.isdigit() else 2)


def test_a_chunked_body_is_counted_and_refused_once_over_the_cap() -> None:
    probe = Probe([b"x" * 400] * 100, ADMIN)  # 40,000 bytes, no Content-Length
    assert probe.run(intake(limit=1000), f"{BASE}/abort") == 413
    assert probe.read == 3  # 1,200 bytes > 1,000: the other 97 chunks are never read
    assert probe.app_saw is None


def test_a_body_within_the_cap_reaches_the_application_whole() -> None:
    probe = Probe([b"ab"] * 500, ADMIN)
    assert probe.run(intake(limit=1000), f"{BASE}/abort") == 200
    assert probe.app_saw == b"ab" * 500


def test_the_git_webhook_is_capped_but_not_asked_for_a_token() -> None:
    small = Probe([b"{}"], {})
    assert small.run(intake(), "/api/v1/git/webhook") == 200  # its signature is the route's
    big = Probe([b"x" * 600] * 3, {})
    assert big.run(intake(limit=1000), "/api/v1/git/webhook") == 413


def test_unauthenticated_routes_are_capped_only() -> None:
    assert Probe([b""], {}).run(intake(), "/healthz", "GET") == 200
    assert Probe([b"x" * 2000], {}).run(intake(limit=1000), "/healthz", "GET") == 413


@pytest.mark.parametrize(
    ("path", "bearer"),
    [
        ("/api/v1/canaries", True),
        ("/api/v1", True),
        (f"{BASE}/promote", True),
        ("/api/v1/unknown", True),
        ("/api/v1/git/webhook", False),
        ("/api/v1/git/webhook/", True),
        ("/healthz", False),
        ("/metrics", False),
        ("/openapi.json", False),
        ("/api/v10", False),
    ],
)
def test_which_paths_need_a_bearer_token(path: str, bearer: bool) -> None:
    assert needs_bearer(path) is bearer


def test_a_token_review_runs_off_the_event_loop_and_once_per_request(world: World) -> None:
    world.kube.add_token("alice-token", "alice")
    threads: list[str] = []
    auth = Authenticator(kube=world.kube, ttl_s=0)  # no cache: every review reaches the server
    real = auth.authenticate

    def spy(token: str | None) -> Identity:
        threads.append(threading.current_thread().name)
        return real(token)

    auth.authenticate = spy  # type: ignore[method-assign]
    probe = Probe([b"{}"], {"Authorization": "Bearer alice-token"})
    assert probe.run(intake(auth=auth), "/api/v1/alertmanager") == 200
    assert threads
    assert threads[0] != threading.current_thread().name

    with TestClient(world.app(api_auth_cache="0s")) as client:
        world.kube.grant(
            "reader",
            verbs=["get"],
            resources=["modelcanaries"],
            api_groups=[API_GROUP],
            namespace=NS,
            users=["alice"],
        )
        world.kube.reset_calls()
        answer = client.get(BASE, headers={"Authorization": "Bearer alice-token"})
    assert answer.status_code == 200, answer.text
    assert world.kube.count("create") == 2  # one TokenReview (the middleware's), one access review


def test_a_token_review_the_api_server_cannot_answer_is_503(world: World) -> None:
    class Down(Authenticator):
        def authenticate(self, token: str | None) -> Identity:
            raise KubeError("connection refused")

    probe = Probe([b"{}"], {"Authorization": "Bearer t"})
    assert probe.run(intake(auth=Down(static_token="x")), f"{BASE}/abort") == 503
    assert probe.json() == {
        "detail": "the Kubernetes API server could not be asked: connection refused"
    }


# -- through the application ----------------------------------------------------------------------


def test_over_the_cap_with_a_valid_token_is_413_and_changes_nothing(
    world: World, client: TestClient
) -> None:
    before = world.get()["metadata"]["resourceVersion"]
    body = json.dumps({"full": True, "pad": "x" * MIB}).encode()
    answer = client.post(f"{BASE}/promote", headers=ADMIN, content=body)
    assert answer.status_code == 413
    assert answer.json()["detail"].startswith("the request body is larger than the API's limit")
    assert world.get()["metadata"]["resourceVersion"] == before


def test_the_cap_is_the_configs(world: World) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    with TestClient(world.app()) as client:  # the default: 1 MiB
        at_the_cap = client.post(f"{BASE}/pause", headers=headers, content=b"{}" + b" " * (MIB - 2))
    assert at_the_cap.status_code == 202, at_the_cap.text[:200]
    config = ApiConfig(kube=world.kube, auth=static_auth(), max_body_bytes=10)
    with TestClient(create_app(config)) as client:
        within = client.post(f"{BASE}/resume", headers=headers, content=b"{}" + b" " * 8)
        over = client.post(f"{BASE}/pause", headers=headers, content=b"{}" + b" " * 9)
    assert within.status_code == 202, within.text
    assert over.status_code == 413
    assert over.json()["detail"].endswith("limit of 10 bytes (Content-Length: 11)")


# -- the real process -----------------------------------------------------------------------------

SERVE = """
import sys
from pathlib import Path

from support.api import World, canary
from controlplane.api.server import ApiServer

world = World(1_800_000_000.0, Path(sys.argv[1]))
world.create(canary())
with ApiServer(world.app(), "127.0.0.1", 0) as server:
    print(server.port, flush=True)
    sys.stdin.read()
"""


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc, self.port = proc, port

    def peak_kib(self) -> int:
        """The process's peak resident set (VmHWM), KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    tests = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        yield Served(proc, int(proc.stdout.readline()))
    finally:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def send(
    port: int, path: str, headers: dict[str, str], size: int, *, chunked: bool = False
) -> tuple[int, Any]:
    """POST ``size`` bytes of JSON-ish filler to ``path`` over a raw socket, 1 MiB at a time
    (declared with Content-Length, or chunked); the status and JSON body of the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    head = {"Host": "127.0.0.1", "Content-Type": "application/json", **headers, **framing}
    lines = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
    chunk = b"[" + b"1," * (MIB // 2 - 1) + b"1"  # a MiB of a JSON array, never closed
    try:
        sock.sendall("\r\n".join(lines).encode())
        left = size
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            left -= len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: read its answer
    response = http.client.HTTPResponse(sock, method="POST")
    response.begin()
    body = json.loads(response.read())
    sock.close()
    return response.status, body


@pytest.mark.binary
def test_a_100_mb_body_does_not_reach_the_memory_of_the_real_process(served: Served) -> None:
    size = 100 * 1000 * 1000
    for _ in range(2):  # warm up every path first: the peak after is the baseline
        assert send(served.port, "/api/v1/alertmanager", {}, 1000)[0] == 401
        assert send(served.port, f"{BASE}/abort", ADMIN, 2 * MIB, chunked=True)[0] == 413
        assert send(served.port, "/api/v1/git/webhook", {}, 2 * MIB)[0] == 413
    baseline = served.peak_kib()
    cases = [
        ("/api/v1/alertmanager", {}, False, 401),  # no token: refused before the body is read
        ("/api/v1/alertmanager", {}, True, 401),
        (f"{BASE}/promote", ADMIN, False, 413),  # a valid token, a declared length over the cap
        (f"{BASE}/promote", ADMIN, True, 413),  # a valid token, chunked: counted
        ("/api/v1/git/webhook", {}, True, 413),  # signed by its body: capped only
    ]
    for path, headers, chunked, status in cases:
        answer, body = send(served.port, path, headers, size, chunked=chunked)
        assert (path, chunked, answer) == (path, chunked, status), body
        grown_mib = (served.peak_kib() - baseline) / 1024
        print(f"{path} chunked={chunked}: {status}, peak RSS {baseline} KiB + {grown_mib:.1f} MiB")
        assert grown_mib < 20, f"{path} (chunked={chunked}): peak RSS grew {grown_mib:.0f} MiB"
    assert send(served.port, f"{BASE}/pause", ADMIN, 2)[0] == 422  # and it still serves


def test_the_controller_flag_sets_the_cap(world: World, tmp_path: Path) -> None:
    """``canaryctl controller --api-max-body`` reaches the application's intake."""
    small = World(world.clock(), tmp_path, flags=("--api-max-body", "2048"))
    small.create(canary())
    headers = {**ADMIN, "Content-Type": "application/json"}
    with TestClient(small.app()) as client:
        over = client.post(f"{BASE}/pause", headers=headers, content=b"{}" + b" " * 2047)
    assert over.status_code == 413
    assert "limit of 2048 bytes" in over.json()["detail"]
