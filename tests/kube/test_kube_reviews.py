"""TokenReview and SubjectAccessReview: answered by FakeKube like kube-apiserver, and sent by
RealKube as the real client would (to a recording API server on loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from controlplane.errors import KubeError
from controlplane.kube.real import RealKube
from harness.kube.fake import FakeKube
from harness.servers.loopback import serving

GROUP = "canary.controlplane.dev"


def sar(user: str, verb: str, namespace: str, groups: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": groups or [],
            "resourceAttributes": {
                "group": GROUP,
                "resource": "modelcanaries",
                "verb": verb,
                "namespace": namespace,
            },
        },
    }


def token_review(token: str) -> dict[str, Any]:
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


@pytest.fixture
def kube() -> FakeKube:
    k = FakeKube()
    k.add_token("t-alice", "alice", uid="u1", groups=["ml-ops"])
    k.grant(
        "ops",
        verbs=["get", "patch"],
        resources=["modelcanaries"],
        api_groups=[GROUP],
        namespace="ml",
        groups=["ml-ops"],
    )
    k.grant("viewer", verbs=["list"], resources=["*"], api_groups=["*"], users=["carol"])
    return k


def test_token_review(kube: FakeKube) -> None:
    answer = kube.create(token_review("t-alice"))
    assert answer["status"] == {
        "authenticated": True,
        "user": {"username": "alice", "uid": "u1", "groups": ["ml-ops", "system:authenticated"]},
        "audiences": [],
    }
    bad = kube.create(token_review("nope"))["status"]
    assert bad["authenticated"] is False
    assert bad["error"]
    assert kube.list("authentication.k8s.io/v1", "TokenReview") == []  # never stored


@pytest.mark.parametrize(
    ("user", "groups", "verb", "namespace", "allowed", "reason"),
    [
        ("alice", ["ml-ops"], "patch", "ml", True, 'RoleBinding "ops/ml" of Role "ops" to Group'),
        ("alice", ["ml-ops"], "delete", "ml", False, 'user "alice" cannot delete'),
        ("alice", ["ml-ops"], "patch", "other", False, 'in namespace "other"'),
        ("bob", [], "get", "ml", False, "no rule allows it"),
        ("carol", [], "list", "", True, 'ClusterRoleBinding "viewer" of ClusterRole "viewer"'),
        ("carol", [], "list", "any", True, "ClusterRoleBinding"),
        ("root", ["system:masters"], "delete", "x", True, "system:masters"),
    ],
)
def test_subject_access_review(
    kube: FakeKube,
    user: str,
    groups: list[str],
    verb: str,
    namespace: str,
    allowed: bool,
    reason: str,
) -> None:
    status = kube.create(sar(user, verb, namespace, groups))["status"]
    assert status["allowed"] is allowed
    assert reason in status["reason"]


def test_service_account_subjects(kube: FakeKube) -> None:
    kube.grant(
        "am",
        verbs=["patch"],
        resources=["modelcanaries"],
        api_groups=[GROUP],
        namespace="ml",
        service_accounts=[("monitoring", "alertmanager")],
    )
    user = "system:serviceaccount:monitoring:alertmanager"
    assert kube.create(sar(user, "patch", "ml"))["status"]["allowed"] is True
    assert kube.create(sar(user, "get", "ml"))["status"]["allowed"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (token_review(""), "spec.token: Required"),
        ({**sar("a", "get", "ml"), "spec": {"user": "a"}}, "exactly one of"),
        (
            {**sar("a", "get", "ml"), "spec": {"resourceAttributes": {"verb": "get"}}},
            "at least one of user or group",
        ),
    ],
)
def test_malformed_reviews_are_422(kube: FakeKube, body: dict[str, Any], message: str) -> None:
    with pytest.raises(KubeError, match=f"422 Invalid: .*{message}"):
        kube.create(body)


# --------------------------------------------------------------------------- RealKube

DISCOVERY: dict[str, Any] = {
    "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"]},
    "/apis": {
        "kind": "APIGroupList",
        "groups": [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{group}/v1", "version": "v1"},
            }
            for group in ("authentication.k8s.io", "authorization.k8s.io")
        ],
    },
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
    "/apis/authentication.k8s.io/v1": {
        "kind": "APIResourceList",
        "groupVersion": "authentication.k8s.io/v1",
        "resources": [
            {
                "name": "tokenreviews",
                "namespaced": False,
                "kind": "TokenReview",
                "verbs": ["create"],
            }
        ],
    },
    "/apis/authorization.k8s.io/v1": {
        "kind": "APIResourceList",
        "groupVersion": "authorization.k8s.io/v1",
        "resources": [
            {
                "name": "subjectaccessreviews",
                "namespaced": False,
                "kind": "SubjectAccessReview",
                "verbs": ["create"],
            }
        ],
    },
}


@pytest.fixture
def recording() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    seen: list[tuple[str, str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, DISCOVERY.get(self.path.split("?")[0], {}))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(("POST", self.path, body))
            if body["kind"] == "TokenReview":
                status = {"authenticated": True, "user": {"username": "alice"}}
            else:
                status = {"allowed": False, "reason": "nope"}
            self._send(201, {**body, "status": status})

    with serving(Handler) as url:
        yield url, seen


def test_real_kube_creates_cluster_scoped_reviews(
    recording: tuple[str, list[tuple[str, str, Any]]], tmp_path: Any
) -> None:
    url, seen = recording
    configuration = Configuration()
    configuration.host = url
    with ApiClient(configuration) as api_client:
        kube = RealKube(api_client, discovery_cache=str(tmp_path / "discovery.json"))
        answer = kube.create(token_review("abc"))
        assert answer["status"]["user"]["username"] == "alice"
        denied = kube.create(sar("alice", "patch", "ml"))
        assert denied["status"] == {"allowed": False, "reason": "nope"}
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews"),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews"),
    ]
    assert seen[0][2]["spec"] == {"token": "abc"}
