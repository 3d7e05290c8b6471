"""The dashboard's server side on the real kube-apiserver: the live watch delivers a status
change as the API server tells it, a viewer's token may read and watch but its promote is
refused (403) with nothing changed, and ``kubectl canary dashboard`` run with a viewer's
kubeconfig answers the API server's own refusal, in its words.

The viewer is a ServiceAccount with a Role of ``get`` / ``list`` / ``watch`` on ModelCanaries in
its namespace (its token minted by the TokenRequest API); the controller-mode API checks it with
a real TokenReview and SubjectAccessReview, the dashboard verb makes every call with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from support.api import STATIC
from support.api import canary as api_canary
from support.realkube import new_namespace
from support.sse import EventStream

from controlplane.api.app import create_app
from controlplane.api.auth import Authenticator
from controlplane.api.config import ApiConfig
from controlplane.api.server import ApiServer
from controlplane.cli import dashboard
from controlplane.cli.cluster import Runtime
from controlplane.cli.main import build_parser
from controlplane.kube.client import Obj, canary_ref
from controlplane.kube.real import RealKube
from controlplane.spec.models import API_GROUP
from harness.cluster.kubeapi import LoopbackCluster, kubeconfig

pytestmark = pytest.mark.binary

VIEWER = "viewer"
ADMIN = {"Authorization": f"Bearer {STATIC}"}


@dataclass
class Viewer:
    """A namespace with a rolling-out canary, and a viewer of it (its token, its user name)."""

    namespace: str
    token: str
    user: str
    kube: RealKube

    def canary(self) -> Obj:
        return self.kube.get(canary_ref(self.namespace, "mine"))


def token_of(loopback: LoopbackCluster, namespace: str, name: str) -> str:
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    token: str = loopback.request("POST", path, body)["status"]["token"]
    return token


def set_status(kube: RealKube, namespace: str, status: dict[str, object]) -> Obj:
    obj = kube.get(canary_ref(namespace, "mine"))
    return kube.replace_status({**obj, "status": status})


@pytest.fixture
def viewer(loopback: LoopbackCluster, real_kube: RealKube, real_ns: str) -> Viewer:
    real_kube.create(api_canary("mine", namespace=real_ns))
    set_status(real_kube, real_ns, {"phase": "progressing", "stage": "steps", "weight": 5})
    meta = {"name": VIEWER, "namespace": real_ns}
    real_kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    rules = [
        {
            "apiGroups": [API_GROUP],
            "resources": ["modelcanaries"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    real_kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": rules,
        }
    )
    real_kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": VIEWER},
            "subjects": [{"kind": "ServiceAccount", "name": VIEWER, "namespace": real_ns}],
        }
    )
    user = f"system:serviceaccount:{real_ns}:{VIEWER}"
    return Viewer(real_ns, token_of(loopback, real_ns, VIEWER), user, real_kube)


@pytest.fixture
def controller_api(real_kube: RealKube) -> Iterator[ApiServer]:
    """The controller's API (cluster-admin client: its ServiceAccount) on a real socket."""
    config = ApiConfig(kube=real_kube, auth=Authenticator(static_token=STATIC, kube=real_kube))
    with ApiServer(create_app(config)) as server:
        yield server


def test_the_watch_delivers_a_status_change_as_the_api_server_tells_it(
    viewer: Viewer, controller_api: ApiServer
) -> None:
    url = f"{controller_api.url}/api/v1/watch/canaries?namespace={viewer.namespace}"
    with EventStream(url, ADMIN) as stream:
        event, data = stream.next()
        assert event == "snapshot"
        assert [(i["name"], i["phase"], i["weight"]) for i in data["items"]] == [
            ("mine", "progressing", 5)
        ]
        written = set_status(
            viewer.kube, viewer.namespace, {"phase": "progressing", "stage": "steps", "weight": 25}
        )
        event, data = stream.next(timeout_s=30)
        assert event == "upsert"
        assert (data["name"], data["weight"], data["status"]["weight"]) == ("mine", 25, 25)
        assert data["resourceVersion"] == written["metadata"]["resourceVersion"]


def test_a_viewers_token_reads_and_watches_but_may_not_promote(
    viewer: Viewer, controller_api: ApiServer
) -> None:
    token = {"Authorization": f"Bearer {viewer.token}"}
    base = f"{controller_api.url}/api/v1/namespaces/{viewer.namespace}/canaries/mine"
    assert httpx.get(base, headers=token).status_code == 200
    url = f"{controller_api.url}/api/v1/watch/canaries?namespace={viewer.namespace}"
    with EventStream(url, token) as stream:
        assert stream.next()[0] == "snapshot"
    before = viewer.canary()
    answer = httpx.post(f"{base}/promote", headers=token)
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith(
        f"user \"{viewer.user}\" may not patch modelcanaries.{API_GROUP} 'mine'"
    )
    assert viewer.canary() == before
    access = httpx.get(f"{base}/access", headers=token)
    assert (access.status_code, access.json()["act"]) == (200, False)
    assert access.json()["reason"].startswith(f'user "{viewer.user}" may not patch')


def test_a_namespace_viewer_lists_its_namespace_on_a_cluster_wide_controller(
    viewer: Viewer, controller_api: ApiServer, real_kube: RealKube
) -> None:
    """The viewer may list in its namespace only (a Role, no ClusterRole): the controller's
    cluster-wide list and watch carry its namespace's canaries, nothing of another's."""
    other = new_namespace(real_kube, "other")
    real_kube.create(api_canary("theirs", namespace=other))
    token = {"Authorization": f"Bearer {viewer.token}"}
    listed = httpx.get(f"{controller_api.url}/api/v1/canaries", headers=token)
    assert listed.status_code == 200, listed.text
    assert [(c["namespace"], c["name"]) for c in listed.json()["items"]] == [
        (viewer.namespace, "mine")
    ]
    with EventStream(f"{controller_api.url}/api/v1/watch/canaries", token) as stream:
        event, data = stream.next()
    assert event == "snapshot"
    assert {i["namespace"] for i in data["items"]} == {viewer.namespace}


def test_kubectl_canary_dashboard_answers_the_api_servers_refusal(
    viewer: Viewer, loopback: LoopbackCluster, tmp_path: Path
) -> None:
    config = tmp_path / "viewer.kubeconfig"
    config.write_text(
        yaml.safe_dump(kubeconfig(loopback.server, loopback.ca, viewer.token, VIEWER))
    )
    parser, _verbs = build_parser(["dashboard"])
    args = parser.parse_args(
        [
            "dashboard",
            "--kubeconfig",
            str(config),
            "-n",
            viewer.namespace,
            "--port",
            "0",
            "--no-browser",
        ]
    )
    args.runtime = Runtime(environ={"HOME": str(tmp_path)})
    served = dashboard.start(args)
    try:
        base, _, token = served.url.partition("/dashboard/#token=")
        auth = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{base}/api/v1/whoami", headers=auth).json()
        assert me == {"user": viewer.user, "mode": "kubeconfig"}  # the API server's word
        listed = httpx.get(f"{base}/api/v1/canaries", headers=auth).json()["items"]
        assert [c["name"] for c in listed] == ["mine"]
        with EventStream(f"{base}/api/v1/watch/canaries", auth) as stream:
            assert stream.next()[0] == "snapshot"
        before = viewer.canary()
        answer = httpx.post(
            f"{base}/api/v1/namespaces/{viewer.namespace}/canaries/mine/pause", headers=auth
        )
        assert answer.status_code == 403, answer.text
        detail = answer.json()["detail"]
        assert f'User "{viewer.user}" cannot patch resource "modelcanaries"' in detail
        assert viewer.canary() == before
        access = httpx.get(  # asked of the API server first: a SelfSubjectAccessReview
            f"{base}/api/v1/namespaces/{viewer.namespace}/canaries/mine/access", headers=auth
        ).json()
        assert access["act"] is False
        assert viewer.namespace in access["reason"] or "RBAC" in access["reason"]
        refused = httpx.get(f"{base}/api/v1/namespaces/kube-system/canaries", headers=auth)
        assert refused.status_code == 404  # not the namespace it serves
    finally:
        served.stop()
