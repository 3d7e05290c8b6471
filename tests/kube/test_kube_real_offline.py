"""RealKube without a cluster: error mapping, and the requests it sends to a recording API server.

The server is a real HTTP server on loopback that answers discovery like kube-apiserver and
replies to every other request from a script, recording what it received. Behaviour that needs a
real API server (admission, SSA field ownership, watch bookmarks, 410, unserved kinds) is in
tests/kube/test_kube_contract.py, against the loopback kube-apiserver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException

from controlplane.errors import Conflict, Expired, Forbidden, KubeError, NotFound, Unserved
from controlplane.kube.api_conventions import selector_string, to_kube_error
from controlplane.kube.client import KubeClient, Obj, Ref, is_expired
from controlplane.kube.real import CONNECT_ATTEMPTS, RealKube
from harness.servers.loopback import PROC_NET_TCP, first_syn_dropped, serving

CANARY_API = "canary.controlplane.dev/v1alpha1"

DISCOVERY: dict[str, Obj] = {
    "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/apis": {
        "kind": "APIGroupList",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
            }
            for group, version in [("canary.controlplane.dev", "v1alpha1")]
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "configmaps", "namespaced": True, "kind": "ConfigMap", "verbs": ["get"]},
            {"name": "events", "namespaced": True, "kind": "Event", "verbs": ["create"]},
        ],
    },
    "/apis/canary.controlplane.dev/v1alpha1": {
        "kind": "APIResourceList",
        "groupVersion": CANARY_API,
        "resources": [
            {"name": "modelcanaries", "namespaced": True, "kind": "ModelCanary", "verbs": ["get"]},
            {
                "name": "modelcanaries/status",
                "namespaced": True,
                "kind": "ModelCanary",
                "verbs": ["get", "update"],
            },
        ],
    },
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any


@dataclass
class ApiServer:
    """Answers discovery; pops scripted (status, body) replies for everything else."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    replies: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.replies.append((status, body, headers or {}))

    @property
    def last(self) -> Request:
        return self.requests[-1]


def status_body(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@pytest.fixture
def server() -> Iterator[ApiServer]:
    state = ApiServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.command == "GET" and parts.path in DISCOVERY:
                self._send(200, DISCOVERY[parts.path])
                return
            state.requests.append(
                Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    self.headers.get("Content-Type"),
                    json.loads(raw) if raw else None,
                )
            )
            code, body, headers = (
                state.replies.pop(0)
                if state.replies
                else (
                    404,
                    status_body(
                        404, "NotFound", "the server could not find the requested resource"
                    ),
                    {},
                )
            )
            self._send(code, body, headers)

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    with serving(Handler) as url:
        state.url = url
        yield state


@pytest.fixture
def kube(server: ApiServer, tmp_path: Path) -> Iterator[RealKube]:
    api = ApiClient(Configuration(host=server.url))
    yield RealKube(api, discovery_cache=str(tmp_path / "discovery.json"), now=lambda: 1.8e9)
    api.close()


def canary(name: str = "c1", ns: str = "ml") -> Obj:
    return {
        "apiVersion": CANARY_API,
        "kind": "ModelCanary",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "7"},
        "spec": {"weight": 5},
        "status": {"phase": "Progressing"},
    }


C1 = Ref(CANARY_API, "ModelCanary", "ml", "c1")
BASE = "/apis/canary.controlplane.dev/v1alpha1/namespaces/ml/modelcanaries"


def test_is_a_kube_client(kube: RealKube) -> None:
    client: KubeClient = kube
    assert client is kube


# --- error mapping (pure) ------------------------------------------------------------------------


def _api_exception(status: int, reason: str, body: Any) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(body) if isinstance(body, dict) else body
    return exc


@pytest.mark.parametrize(
    ("status", "reason", "body", "expected", "text"),
    [
        pytest.param(
            404,
            "Not Found",
            status_body(404, "NotFound", 'x "c1" not found'),
            NotFound,
            'x "c1" not found',
            id="404",
        ),
        pytest.param(
            409,
            "Conflict",
            status_body(409, "AlreadyExists", 'x "c1" already exists'),
            Conflict,
            "already exists",
            id="409-already-exists",
        ),
        pytest.param(
            409,
            "Conflict",
            status_body(409, "Conflict", "the object has been modified"),
            Conflict,
            "has been modified",
            id="409-conflict",
        ),
        pytest.param(
            410,
            "Gone",
            status_body(410, "Expired", "too old resource version: 1 (50)"),
            Expired,
            "410 Gone: Expired: too old",
            id="410",
        ),
        pytest.param(
            422,
            "Unprocessable Entity",
            status_body(422, "Invalid", "spec.weight: Invalid"),
            KubeError,
            "422 Unprocessable Entity: spec.weight: Invalid",
            id="422",
        ),
        pytest.param(
            403,
            "Forbidden",
            status_body(403, "Forbidden", "cannot patch"),
            Forbidden,
            "403 Forbidden: cannot patch",
            id="403",
        ),
        pytest.param(500, "Internal Server Error", "oops", KubeError, "500", id="500-text-body"),
        pytest.param(503, "", None, KubeError, "503", id="503-no-body"),
    ],
)
def test_api_exceptions_map_to_the_error_tree(
    status: int, reason: str, body: Any, expected: type[KubeError], text: str
) -> None:
    error = to_kube_error(_api_exception(status, reason, body))
    assert type(error) is expected
    assert text in str(error)
    assert is_expired(error) is (status == 410)


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        pytest.param("<html>secret admin page</html>", None, id="html"),
        pytest.param('{"password": "secret"}', None, id="json-not-a-status"),
        pytest.param("[" * 200_000 + "]" * 200_000, None, id="deep"),
        pytest.param("404 page not found", "404 page not found", id="unserved-path"),
        pytest.param(
            json.dumps({"kind": "Status", "message": "x" * 5000}), "x" * 300, id="long-status"
        ),
    ],
)
def test_no_body_but_the_api_servers_own_words_is_kept(body: str, kept: str | None) -> None:
    """A proxy's page or another service's answer never reaches a status, Event or alert."""
    error = to_kube_error(_api_exception(502, "Bad Gateway", body))
    assert "secret" not in str(error)
    assert str(error) == (f"502 Bad Gateway: {kept}" if kept else "502 Bad Gateway")


def test_transport_errors_become_kube_errors() -> None:
    error = to_kube_error(ConnectionRefusedError("refused"))
    assert type(error) is KubeError
    assert "unreachable" in str(error)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param({}, None, id="empty"),
        pytest.param({"b": "2", "a": "1"}, "a=1,b=2", id="sorted"),
    ],
)
def test_selector_string(selector: dict[str, str] | None, expected: str | None) -> None:
    assert selector_string(selector) == expected


# --- requests against the recording server -------------------------------------------------------


def test_get(server: ApiServer, kube: RealKube) -> None:
    server.reply(200, canary())
    assert kube.get(C1)["spec"] == {"weight": 5}
    assert (server.last.method, server.last.path) == ("GET", f"{BASE}/c1")


@pytest.mark.parametrize(
    ("namespace", "selector", "path", "query"),
    [
        pytest.param("ml", None, BASE, {"limit": ["500"]}, id="namespace"),
        pytest.param(
            None,
            {"canary.controlplane.dev/canary": "c1"},
            "/apis/canary.controlplane.dev/v1alpha1/modelcanaries",
            {"labelSelector": ["canary.controlplane.dev/canary=c1"], "limit": ["500"]},
            id="all-namespaces-selector",
        ),
    ],
)
def test_list_fills_in_item_kinds(
    server: ApiServer,
    kube: RealKube,
    namespace: str | None,
    selector: dict[str, str] | None,
    path: str,
    query: dict[str, list[str]],
) -> None:
    item = {"metadata": {"name": "c1", "namespace": "ml"}, "spec": {}}
    server.reply(200, {"kind": "ModelCanaryList", "apiVersion": CANARY_API, "items": [item]})
    found = kube.list(CANARY_API, "ModelCanary", namespace, selector)
    assert found == [{"apiVersion": CANARY_API, "kind": "ModelCanary", **item}]
    assert (server.last.method, server.last.path, server.last.query) == ("GET", path, query)


def test_writes_build_the_right_requests(server: ApiServer, kube: RealKube) -> None:
    for _ in range(7):
        server.reply(200, canary())
    kube.create(canary())
    kube.replace(canary())
    kube.replace_status(canary())
    kube.patch(C1, {"spec": {"weight": 10}})
    kube.patch(C1, [{"op": "replace", "path": "/spec/weight", "value": 9}], kind="json")  # type: ignore[arg-type]
    kube.apply(canary(), field_manager="ctl")
    kube.delete(C1)
    got = [(r.method, r.path, r.content_type, r.query) for r in server.requests]
    assert got == [
        ("POST", BASE, "application/json", {}),
        ("PUT", f"{BASE}/c1", "application/json", {}),
        ("PUT", f"{BASE}/c1/status", "application/json", {}),
        ("PATCH", f"{BASE}/c1", "application/merge-patch+json", {}),
        ("PATCH", f"{BASE}/c1", "application/json-patch+json", {}),
        (
            "PATCH",
            f"{BASE}/c1",
            "application/apply-patch+yaml",
            {"fieldManager": ["ctl"], "force": ["true"]},
        ),
        ("DELETE", f"{BASE}/c1", "application/json", {"propagationPolicy": ["Background"]}),
    ]
    bodies = [r.body for r in server.requests]
    assert bodies[0] == canary()
    assert bodies[3] == {"spec": {"weight": 10}}
    assert bodies[4] == [{"op": "replace", "path": "/spec/weight", "value": 9}]
    assert bodies[5] == canary()


def test_event_is_a_core_v1_event(server: ApiServer, kube: RealKube) -> None:
    server.reply(201, {"kind": "Event", "apiVersion": "v1", "metadata": {"name": "x"}})
    kube.event(canary(), "Advanced", "weight 5 -> 25")
    req = server.last
    assert (req.method, req.path) == ("POST", "/api/v1/namespaces/ml/events")
    assert req.body["reason"] == "Advanced"
    assert req.body["type"] == "Normal"
    assert req.body["involvedObject"]["name"] == "c1"
    assert req.body["metadata"]["name"].startswith("c1.")
    assert req.body["firstTimestamp"] == "2027-01-15T08:00:00Z"


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        pytest.param(404, "NotFound", NotFound, id="404"),
        pytest.param(409, "Conflict", Conflict, id="409"),
        pytest.param(422, "Invalid", KubeError, id="422"),
        pytest.param(500, "InternalError", KubeError, id="500"),
    ],
)
def test_server_errors_are_translated(
    server: ApiServer, kube: RealKube, code: int, reason: str, expected: type[KubeError]
) -> None:
    server.reply(code, status_body(code, reason, f"server says {reason}"))
    with pytest.raises(KubeError, match=f"server says {reason}") as caught:
        kube.replace(canary())
    assert type(caught.value) is expected


STORAGE_INITIALIZING = status_body(429, "TooManyRequests", "storage is (re)initializing")


def test_a_request_the_server_asks_to_retry_is_retried_after_retry_after(
    server: ApiServer, tmp_path: Path
) -> None:
    """kube-apiserver answers 429 + Retry-After while a new CRD's watch cache fills (the
    loopback server did, right after install): wait as asked and retry, as client-go does."""
    slept: list[float] = []
    configuration = Configuration(host=server.url)
    configuration.retries = 0  # as RealKube.connect sets it: urllib3 would retry on its own
    api = ApiClient(configuration)
    kube = RealKube(api, discovery_cache=str(tmp_path / "d.json"), sleep=slept.append)
    server.reply(429, STORAGE_INITIALIZING, {"Retry-After": "1"})
    server.reply(503, status_body(503, "ServiceUnavailable", "busy"), {"Retry-After": "2"})
    server.reply(200, canary())
    assert kube.get(Ref(CANARY_API, "ModelCanary", "ml", "c1"))["metadata"]["name"] == "c1"
    assert slept == [1.0, 2.0]
    assert len(server.requests) == 3
    # without Retry-After, or once the retries are spent, the error is the caller's
    server.reply(429, STORAGE_INITIALIZING)
    with pytest.raises(KubeError, match=r"429.*storage is"):
        kube.get(Ref(CANARY_API, "ModelCanary", "ml", "c1"))
    for _ in range(11):
        server.reply(429, STORAGE_INITIALIZING, {"Retry-After": "0"})
    with pytest.raises(KubeError, match="429"):
        kube.get(Ref(CANARY_API, "ModelCanary", "ml", "c1"))
    assert slept == [1.0, 2.0, *[0.0] * 10]
    api.close()


def test_unknown_kind_is_unserved(kube: RealKube) -> None:
    with pytest.raises(Unserved, match="does not serve"):
        kube.get(Ref("example.com/v1", "Widget", "ml", "w"))


def test_unreachable_server_is_a_kube_error(tmp_path: Path) -> None:
    config = Configuration(host="http://127.0.0.1:9")  # discard port: nothing listens
    config.retries = 0
    api = ApiClient(config)
    kube = RealKube(api, discovery_cache=str(tmp_path / "d.json"))
    with pytest.raises(KubeError, match="unreachable"):
        kube.get(C1)
    api.close()


@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="reads Linux's /proc/net/tcp")
def test_a_connection_never_made_is_tried_again_on_a_new_one(tmp_path: Path) -> None:
    """No byte of the request reached the server, so RealKube sends it again on a new connection
    (a new source port) and the call succeeds; with one connection allowed, a dropped SYN is the
    error "the API server is unreachable"."""
    assert CONNECT_ATTEMPTS >= 2

    def answer(path: str) -> Obj:
        return DISCOVERY.get(path) or canary()

    for attempts in (CONNECT_ATTEMPTS, 1):
        with first_syn_dropped(answer, drain=attempts > 1) as url:
            config = Configuration(host=url)
            config.retries = 0  # as RealKube.connect sets it
            api = ApiClient(config)
            kube = RealKube(
                api,
                discovery_cache=str(tmp_path / f"{attempts}.json"),
                connect_timeout_s=0.5,
                connect_attempts=attempts,
            )
            if attempts > 1:
                assert kube.get(C1)["metadata"]["name"] == "c1"
            else:
                with pytest.raises(KubeError, match=r"unreachable.*timed out"):
                    kube.get(C1)
            api.close()


def test_replace_status_needs_a_status_subresource(kube: RealKube) -> None:
    with pytest.raises(NotFound, match="status subresource"):
        kube.replace_status({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})


def _stream(*events: Obj) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def test_watch_yields_events(server: ApiServer, kube: RealKube) -> None:
    obj = canary()
    server.reply(200, _stream({"type": "ADDED", "object": obj}, {"type": "DELETED", "object": obj}))
    events = list(kube.watch(CANARY_API, "ModelCanary", "ml", resource_version="5", timeout_s=3))
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "c1"),
        ("DELETED", "c1"),
    ]
    assert server.last.query == {
        "watch": ["true"],
        "resourceVersion": ["5"],
        "timeoutSeconds": ["3"],
    }


def test_watch_expired_is_410_gone(server: ApiServer, kube: RealKube) -> None:
    server.reply(
        200,
        _stream(
            {"type": "ERROR", "object": status_body(410, "Expired", "too old resource version")}
        ),
    )
    with pytest.raises(KubeError) as caught:
        list(kube.watch(CANARY_API, "ModelCanary", "ml", resource_version="1", timeout_s=3))
    assert is_expired(caught.value)


def test_an_unserved_kind_is_remembered_until_rediscover_after_s(tmp_path: Path) -> None:
    config = Configuration(host="http://127.0.0.1:9")
    config.retries = 0
    now = [0.0]
    kube = RealKube(
        ApiClient(config),
        discovery_cache=str(tmp_path / "d.json"),
        monotonic=lambda: now[0],
        rediscover_after_s=10.0,
    )
    kube._unserved[("example.com/v1", "Widget")] = 10.0  # as after a first miss at t=0
    for _ in range(3):
        with pytest.raises(Unserved):
            kube.get(Ref("example.com/v1", "Widget", "ml", "w"))
    assert kube.discoveries == 0  # no request: nothing listens on that port anyway
    now[0] = 10.0
    with pytest.raises(KubeError, match="unreachable"):
        kube.get(Ref("example.com/v1", "Widget", "ml", "w"))  # discovery is tried again
    assert kube.discoveries == 1


def test_list_follows_continue_tokens(server: ApiServer, kube: RealKube) -> None:
    page = {"kind": "ModelCanaryList", "apiVersion": CANARY_API}
    item = {"metadata": {"name": "c1", "namespace": "ml"}}
    server.reply(
        200, {**page, "metadata": {"resourceVersion": "9", "continue": "t1"}, "items": [item]}
    )
    server.reply(200, {**page, "metadata": {"resourceVersion": "9"}, "items": [item]})
    items, version = kube.list_with_version(CANARY_API, "ModelCanary", "ml", limit=1)
    assert (len(items), version) == (2, "9")
    assert [r.query for r in server.requests] == [
        {"limit": ["1"]},
        {"limit": ["1"], "continue": ["t1"]},
    ]


def test_watch_asks_for_bookmarks_and_passes_them_on(server: ApiServer, kube: RealKube) -> None:
    mark = {"kind": "ModelCanary", "apiVersion": CANARY_API, "metadata": {"resourceVersion": "12"}}
    server.reply(200, _stream({"type": "BOOKMARK", "object": mark}))
    events = list(kube.watch(CANARY_API, "ModelCanary", "ml", "5", timeout_s=3, bookmarks=True))
    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in events] == [
        ("BOOKMARK", "12")
    ]
    assert server.last.query["allowWatchBookmarks"] == ["true"]
