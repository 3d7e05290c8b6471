"""The direct lister without a cluster: what it takes from a kubeconfig, what it leaves to the
Kubernetes client, and how it reads a scripted API server on loopback (paging, retries, errors).

The same users against the real kube-apiserver, compared with the client's answers, are in
tests/cli/test_cli_list_direct_real.py.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from support.http import PROC_NET_TCP, first_syn_dropped, serving

from controlplane.errors import Forbidden, KubeError, NotFound, Unserved
from controlplane.kube import direct
from controlplane.kube.client import unserved
from controlplane.kube.direct import DirectLister, Endpoint, endpoint, lister
from controlplane.spec.constants import API_VERSION, KIND

PATH = "/apis/canary.controlplane.dev/v1alpha1/namespaces/team-a/modelcanaries"


def _config(tmp_path: Path, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "users": [{"name": "u", "user": user}],
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("user", "cluster"),
    [
        ({"auth-provider": {"name": "oidc", "config": {}}}, {}),
        ({"token": "t"}, {"proxy-url": "http://proxy:3128"}),
        ({"token": "t"}, {"tls-server-name": "api.example"}),
    ],
    ids=["auth-provider", "proxy-url", "tls-server-name"],
)
def test_what_it_does_not_handle_is_left_to_the_client(
    tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any]
) -> None:
    assert endpoint([_config(tmp_path, "https://127.0.0.1:6443", user, **cluster)], None) is None


def test_several_files_no_file_an_unknown_context_or_an_env_proxy_go_to_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "https://127.0.0.1:6443", {"token": "t"})
    assert endpoint([config], None) is not None
    assert endpoint([config, config], None) is None  # KUBECONFIG merging is the client's
    assert endpoint([tmp_path / "absent"], None) is None  # the client tries in-cluster, or says
    assert endpoint([config], "other") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert endpoint([config], None) is None


def test_token_basic_and_token_file_headers(tmp_path: Path) -> None:
    def authorization(user: dict[str, Any]) -> str:
        found = endpoint([_config(tmp_path, "http://127.0.0.1:1/prefix/", user)], None)
        assert found is not None
        assert (found.scheme, found.port, found.prefix, found.tls) == ("http", 1, "/prefix", None)
        return found.authorization

    (tmp_path / "token").write_text("from-file\n", encoding="utf-8")  # as `echo` writes it
    assert authorization({"token": "abc"}) == "Bearer abc"
    assert authorization({"tokenFile": "token"}) == "Bearer from-file"  # beside the kubeconfig
    basic = base64.b64encode(b"me:secret").decode()
    assert authorization({"username": "me", "password": "secret"}) == f"Basic {basic}"
    assert authorization({}) == ""


@pytest.mark.binary
def test_a_failing_exec_plugin_is_an_error(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write('no credentials here')\nsys.exit(3)\n"
    )
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}}
    with pytest.raises(
        KubeError,
        match=r"^no usable Kubernetes configuration: exec: process returned 3\. no credentials\b",
    ):
        endpoint([_config(tmp_path, "https://127.0.0.1:6443", user)], None)


def test_an_unreadable_certificate_file_is_an_error(tmp_path: Path) -> None:
    user = {"client-certificate": "absent.crt", "client-key": "absent.key"}
    with pytest.raises(KubeError, match="no usable Kubernetes configuration"):
        endpoint([_config(tmp_path, "https://127.0.0.1:6443", user)], None)


class Script:
    """Answers, in order, to each request; records each request's path, query and headers."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    holder = Script([])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            holder.seen.append((url.path, parse_qs(url.query), dict(self.headers)))
            code, headers, body = holder.answers.pop(0)
            self.send_response(code)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield holder, url


def _lister(url: str, slept: list[float]) -> DirectLister:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host is not None
    assert port is not None
    where = Endpoint("http", host, port, "", authorization="Bearer t")
    return DirectLister(where, page_size=1, sleep=slept.append)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_pages_are_followed_and_items_get_their_kind(script: tuple[Script, str]) -> None:
    holder, url = script
    page = {"metadata": {"continue": "next"}, "items": [{"metadata": {"name": "a"}}]}
    last = {"metadata": {}, "items": [{"metadata": {"name": "b"}}]}
    holder.answers = [(200, {}, _json(page)), (200, {}, _json(last))]
    items = _lister(url, []).list(API_VERSION, KIND, "team-a", {"app": "x"})
    assert [i["metadata"]["name"] for i in items] == ["a", "b"]
    assert all(i["apiVersion"] == API_VERSION and i["kind"] == KIND for i in items)
    (first, query1, headers), (_, query2, _) = holder.seen
    assert first == PATH
    assert query1 == {"limit": ["1"], "labelSelector": ["app=x"]}
    assert query2 == {"limit": ["1"], "labelSelector": ["app=x"], "continue": ["next"]}
    assert headers["Authorization"] == "Bearer t"


def test_a_retry_after_is_waited_out(script: tuple[Script, str]) -> None:
    holder, url = script
    status = {"kind": "Status", "message": "storage is (re)initializing"}
    holder.answers = [(429, {"Retry-After": "2"}, _json(status)), (200, {}, _json({"items": []}))]
    slept: list[float] = []
    assert _lister(url, slept).list(API_VERSION, KIND) == []
    assert slept == [2.0]
    assert holder.seen[0][0] == "/apis/canary.controlplane.dev/v1alpha1/modelcanaries"


def test_errors_read_as_the_client_reads_them(script: tuple[Script, str]) -> None:
    holder, url = script
    forbidden = {"kind": "Status", "message": 'modelcanaries is forbidden: User "x"'}
    holder.answers = [
        (403, {}, _json(forbidden)),
        (404, {"Content-Type": "text/plain"}, b"404 page not found\n"),
        (404, {}, _json({"kind": "Status", "message": "namespaces not found"})),
        (200, {}, b"<html>a proxy</html>"),
    ]
    kube = _lister(url, [])
    with pytest.raises(Forbidden, match=r'^403 Forbidden: modelcanaries is forbidden: User "x"$'):
        kube.list(API_VERSION, KIND, "team-a")
    with pytest.raises(Unserved) as gone:
        kube.list(API_VERSION, KIND, "team-a")
    assert str(gone.value) == str(unserved(API_VERSION, KIND))
    with pytest.raises(NotFound, match=r"^404 Not Found: namespaces not found$"):
        kube.list(API_VERSION, KIND, "team-a")
    with pytest.raises(KubeError, match="non-object"):
        kube.list(API_VERSION, KIND, "team-a")


def test_an_unreachable_server_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, never listened on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    found = lister([_config(tmp_path, f"https://127.0.0.1:{port}", {"token": "t"})], None)
    assert found is not None
    with pytest.raises(KubeError, match=r"^the API server is unreachable: ConnectionRefusedError"):
        found.list(API_VERSION, KIND, "team-a")


@pytest.mark.skipif(not PROC_NET_TCP.exists(), reason="reads Linux's /proc/net/tcp")
def test_a_connection_never_made_is_tried_again_on_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As RealKube's: no byte reached the server, so a new connection (a new source port) is
    opened and the list succeeds; with one attempt a dropped SYN is the error."""
    answer = {"metadata": {}, "items": [{"metadata": {"name": "a"}}]}
    for attempts in (direct.CONNECT_ATTEMPTS, 1):
        monkeypatch.setattr(direct, "CONNECT_ATTEMPTS", attempts)
        with first_syn_dropped(lambda path: answer, drain=attempts > 1) as url:
            port = int(url.rsplit(":", 1)[1])
            kube = DirectLister(Endpoint("http", "127.0.0.1", port, ""), connect_timeout_s=0.5)
            if attempts > 1:
                assert [i["metadata"]["name"] for i in kube.list(API_VERSION, KIND)] == ["a"]
            else:
                with pytest.raises(KubeError, match="unreachable: TimeoutError"):
                    kube.list(API_VERSION, KIND)
