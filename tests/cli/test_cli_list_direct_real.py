"""``kubectl canary list`` without the Kubernetes client, against the real kube-apiserver.

:mod:`controlplane.kube.direct` reads the kubeconfig and asks the API server with the standard
library; the contract is that it answers what :class:`~controlplane.kube.real.RealKube` (the
``kubernetes`` client) answers for the same kubeconfig: the same objects, and the same error
for a user RBAC refuses (403) and a token the server does not know (401). Users: a
ServiceAccount token (``token`` and ``tokenFile``), a client certificate signed by the
server's client CA (``client-certificate-data`` and files beside the kubeconfig), an ``exec``
credential plugin answering a token and one answering a client certificate, all bound to a Role
that may list ModelCanaries; ``nobody`` (no binding) and ``stranger`` (an unknown token).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import canary_dict
from support.kubectl import service_account_token
from support.realkube import new_namespace

from controlplane.errors import KubeError
from controlplane.kube import direct
from controlplane.kube.real import RealKube
from controlplane.spec.constants import API_GROUP, API_VERSION, KIND
from harness.cluster.kubeapi import CERT_USER, Credentials, LoopbackCluster

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
OK_USERS = ("token", "token-file", "cert-data", "cert-files", "exec-token", "exec-cert")

PLUGIN = """#!{python}
import json, os, sys
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["kind"] == "ExecCredential" and info["apiVersion"] == sys.argv[1], info
assert os.environ["PLUGIN_ENV"] == "from-kubeconfig"
status = json.loads(open(sys.argv[2]).read())
print(json.dumps({{"apiVersion": sys.argv[1], "kind": "ExecCredential", "status": status}}))
"""


def _rbac(ns: str) -> list[dict[str, Any]]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "canary-lister", "namespace": ns},
        "rules": [{"apiGroups": [API_GROUP], "resources": ["modelcanaries"], "verbs": ["list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "canary-lister", "namespace": ns},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "canary-lister",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "lister", "namespace": ns},
            {"kind": "User", "name": CERT_USER, "apiGroup": "rbac.authorization.k8s.io"},
        ],
    }
    return [role, binding]


def _kubeconfig(path: Path, cluster: LoopbackCluster, user: dict[str, Any], ns: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "loopback",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority-data": base64.b64encode(
                        cluster.ca.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "c", "context": {"cluster": "loopback", "user": "u", "namespace": ns}}
        ],
        "current-context": "c",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _exec(home: Path, name: str, status: dict[str, str]) -> dict[str, Any]:
    plugin = home / "plugin.py"
    plugin.write_text(PLUGIN.format(python=sys.executable), encoding="utf-8")
    plugin.chmod(0o755)
    (home / f"{name}.json").write_text(json.dumps(status), encoding="utf-8")
    version = "client.authentication.k8s.io/v1"
    return {
        "exec": {
            "apiVersion": version,
            "command": "./plugin.py",  # relative: run in the kubeconfig's directory
            "args": [version, f"{name}.json"],
            "env": [{"name": "PLUGIN_ENV", "value": "from-kubeconfig"}],
            "interactiveMode": "Never",
        }
    }


@pytest.fixture(scope="module")
def world(
    loopback: LoopbackCluster, real_kube: RealKube, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Path]]:
    ns = new_namespace(real_kube, "direct")
    for account in ("lister", "nobody"):
        real_kube.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": ns},
            }
        )
    for obj in _rbac(ns):
        real_kube.create(obj)
    for name in ("support-triage", "support-triage-b"):
        real_kube.create(canary_dict(name, ns))
    home = tmp_path_factory.mktemp("direct-home")
    token = service_account_token(loopback, ns, "lister")
    creds = Credentials(loopback.workdir / "pki")
    (home / "token").write_text(token, encoding="utf-8")
    (home / "client.crt").write_bytes(creds.client_cert.read_bytes())
    (home / "client.key").write_bytes(creds.client_key.read_bytes())
    pem = {
        "clientCertificateData": creds.client_cert.read_text(),
        "clientKeyData": creds.client_key.read_text(),
    }
    users: dict[str, dict[str, Any]] = {
        "token": {"token": token},
        "token-file": {"tokenFile": "token"},
        "cert-data": {
            "client-certificate-data": base64.b64encode(creds.client_cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(creds.client_key.read_bytes()).decode(),
        },
        "cert-files": {"client-certificate": "client.crt", "client-key": "client.key"},
        "exec-token": _exec(home, "exec-token", {"token": token}),
        "exec-cert": _exec(home, "exec-cert", pem),
        "nobody": {"token": service_account_token(loopback, ns, "nobody")},
        "stranger": {"token": "not-a-token-this-server-knows"},
    }
    paths = {
        name: _kubeconfig(home / f"{name}.yaml", loopback, user, ns) for name, user in users.items()
    }
    return ns, paths


def _client(path: Path) -> RealKube:
    return RealKube.connect(kubeconfig=str(path), component="kubectl-canary")


def _direct(path: Path) -> direct.DirectLister:
    found = direct.lister([path], None)
    assert found is not None, f"{path.name}: the direct path gave way to the client"
    return found


@pytest.mark.parametrize("user", OK_USERS)
def test_a_user_lists_what_the_client_lists(world: tuple[str, dict[str, Path]], user: str) -> None:
    ns, paths = world
    listed = _direct(paths[user]).list(API_VERSION, KIND, ns)
    assert sorted(o["metadata"]["name"] for o in listed) == ["support-triage", "support-triage-b"]
    assert listed == _client(paths[user]).list(API_VERSION, KIND, ns)


@pytest.mark.parametrize("user", ["nobody", "stranger"])
def test_a_refused_user_gets_the_clients_error(
    world: tuple[str, dict[str, Path]], user: str
) -> None:
    ns, paths = world
    with pytest.raises(KubeError) as mine:
        _direct(paths[user]).list(API_VERSION, KIND, ns)
    with pytest.raises(KubeError) as theirs:
        _client(paths[user]).list(API_VERSION, KIND, ns)
    assert type(mine.value) is type(theirs.value)
    assert str(mine.value) == str(theirs.value)
    assert str(mine.value).startswith("403 Forbidden" if user == "nobody" else "401 Unauthorized")


PROBE = """
import json, sys
from controlplane.cli import main
code = main.main(sys.argv[1:])
print(json.dumps({"code": code, "kubernetes": "kubernetes" in sys.modules}))
"""


@pytest.mark.parametrize("user", ["exec-cert", "nobody"])
def test_canaryctl_list_needs_no_client(world: tuple[str, dict[str, Path]], user: str) -> None:
    """The whole verb, as a user runs it: the table (or the 403) and no Kubernetes client."""
    _ns, paths = world
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "list", "--kubeconfig", str(paths[user])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["kubernetes"] is False
    if user == "nobody":
        assert found["code"] == 1
        assert done.stderr.startswith("error: 403 Forbidden: modelcanaries."), done.stderr
    else:
        assert found["code"] == 0, done.stderr
        assert done.stdout.splitlines()[0].split()[:3] == ["NAME", "PHASE", "STEP"]
        assert "support-triage-b" in done.stdout
