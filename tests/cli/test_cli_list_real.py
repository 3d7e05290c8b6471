"""``kubectl canary list`` against the real kube-apiserver, through the Kubernetes client.

Each kind of credential a kubeconfig gives the client lists the ModelCanaries of a namespace:
a ServiceAccount token (``token`` and ``tokenFile``), a client certificate signed by the
server's client CA (``client-certificate-data`` and files beside the kubeconfig), an ``exec``
credential plugin answering a token and one answering a client certificate (run from the
kubeconfig's folder, with ``KUBERNETES_EXEC_INFO`` and the kubeconfig's ``env``). Every one of
them is bound to a Role that grants ``list`` on ``modelcanaries`` and nothing else (the API
groups are discovered with what every authenticated user may read): ``list`` needs no more.
``nobody`` (a ServiceAccount with no binding) gets the server's 403 reason and ``stranger`` (a
token the server does not know) its 401, each as one ``error:`` line, exit 1.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import canary_dict
from support.kubectl import service_account_token
from support.realkube import new_namespace

from controlplane.cli.cluster import Runtime
from controlplane.cli.main import main
from controlplane.kube.real import RealKube
from controlplane.spec.constants import API_GROUP
from harness.cluster.kubeapi import CERT_USER, Credentials, LoopbackCluster

pytestmark = pytest.mark.binary

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
    ns = new_namespace(real_kube, "lister")
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
    home = tmp_path_factory.mktemp("lister-home")
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


def _list(path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``kubectl canary list --kubeconfig PATH ARGV`` as a user runs it: the runtime connects
    with the kubeconfig (no client handed in)."""
    code = main(["list", "--kubeconfig", str(path), *argv], runtime=Runtime(environ={}))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("user", OK_USERS)
def test_a_user_allowed_to_list_gets_the_table(
    world: tuple[str, dict[str, Path]], user: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _ns, paths = world
    code, out, err = _list(paths[user], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "PHASE", "STEP"]
    assert [line.split()[0] for line in lines[1:]] == ["support-triage", "support-triage-b"]


def test_list_as_json_is_the_servers_objects(
    world: tuple[str, dict[str, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    ns, paths = world
    code, out, err = _list(paths["exec-cert"], capsys, "-o", "json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["kind"] == "List"
    assert [o["metadata"]["name"] for o in listed["items"]] == [
        "support-triage",
        "support-triage-b",
    ]
    assert {o["metadata"]["namespace"] for o in listed["items"]} == {ns}


@pytest.mark.parametrize(
    ("user", "said"),
    [
        ("nobody", "error: 403 Forbidden: modelcanaries.canary.controlplane.dev is forbidden"),
        ("stranger", "error: 401 Unauthorized"),
    ],
)
def test_a_refused_user_gets_the_servers_reason(
    world: tuple[str, dict[str, Path]],
    user: str,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ns, paths = world
    code, out, err = _list(paths[user], capsys)
    assert code == 1
    assert out == ""
    assert err.startswith(said), err
    assert len(err.splitlines()) == 1, err  # one line, no traceback
