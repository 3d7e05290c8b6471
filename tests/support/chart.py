"""Helpers of the chart tests: render and lint ``charts/controlplane`` with Helm's Go SDK
(``helm_python``, no helm binary, no cluster), and validate rendered objects against the
Kubernetes OpenAPI schemas (``kubernetes-validate``) or, for the Prometheus Operator kinds that
those schemas do not hold, against the small schema in
``tests/chart/schemas/monitoring.coreos.com.yaml``.

For the chart on a real API server (``tests/install/``): :class:`Helm` runs the ``helm`` and
``kubectl`` binaries of ``make kube-tools`` on a kubeconfig; :func:`service_account_kubeconfig`
mints a token for a ServiceAccount with the TokenRequest API; :func:`grants_of` reads what the
rendered RBAC grants a ServiceAccount; :class:`RequestLog` records what a RealKube asks the server,
as RBAC names it (group, resource, verb, namespace).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

if TYPE_CHECKING:
    from harness.cluster.kubeapi import LoopbackCluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "controlplane"
RELEASE = "cp"
NAMESPACE = "canary-system"
# The Kubernetes version whose schemas every object must fit: the kind node image of
# scripts/kind-up.sh (tests/chart/test_kind_setup.py checks they agree).
KUBE_VERSION = "1.34.0"
MONITORING_SCHEMAS = ROOT / "tests" / "chart" / "schemas" / "monitoring.coreos.com.yaml"

Doc = dict[str, Any]


def render_files(
    values: dict[str, Any] | None = None,
    chart: Path = CHART,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` would."""
    with helm.Chart.load(chart) as loaded:
        return loaded.render(values=values, name=release, namespace=namespace, is_install=True)


def render(
    values: dict[str, Any] | None = None,
    chart: Path = CHART,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> list[Doc]:
    """Every object the chart installs with ``values``: crds/ first, then the templates."""
    docs: list[Doc] = []
    with helm.Chart.load(chart) as loaded:
        for crd in loaded.crds:
            docs.extend(d for d in yaml.safe_load_all(crd["data"]) if d)
    for path, text in sorted(render_files(values, chart, namespace, release).items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: not an object"
                docs.append(doc)
    return docs


def notes(values: dict[str, Any] | None = None) -> str:
    return render_files(values)[f"{CHART.name}/templates/NOTES.txt"]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    assert isinstance(main, dict)
    return main


def chart_copy(tmp: Path) -> Path:
    """A copy of the chart to render with extra files (a dashboard, a rules file)."""
    target = tmp / CHART.name
    shutil.copytree(CHART, target)
    return target


@cache
def _monitoring_schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MONITORING_SCHEMAS.read_text())
    return loaded


def validate(doc: Doc) -> str:
    """Validate one object; returns what it was validated against. Raises on a bad object and
    on a kind that no schema here covers (nothing is skipped silently)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    if api_version == "monitoring.coreos.com/v1":
        schema = _monitoring_schemas()[kind]
        jsonschema.Draft7Validator(schema).validate(doc)
        return f"tests/chart/schemas ({kind})"
    version = kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    return f"kubernetes {version} (strict)"


def as_json(doc: Doc) -> str:
    return json.dumps(doc, sort_keys=True)


# ----------------------------------------------------------------------------- on a real server
# tests/install/: the chart installed with the helm binary into the loopback kube-apiserver, and
# the product run with the token of the ServiceAccount the chart creates.

HELM_VERSION = "v3.19.5"
"""The helm scripts/build-kube.sh builds (the last Helm 3 line on k8s.io 0.34)."""
RBAC_GROUP = "rbac.authorization.k8s.io"


def tool(name: str) -> Path:
    """``helm`` or ``kubectl`` from ``make kube-tools``; fails the test with how to build it."""
    from harness.cluster.kubeapi import KUBE_VERSION, tool_dir

    path = tool_dir() / name
    if not os.access(path, os.X_OK):
        version = HELM_VERSION if name == "helm" else KUBE_VERSION
        pytest.fail(
            f"{name} {version} is not built: run `make kube-tools` (scripts/build-kube.sh; it "
            "needs Go >= 1.24 on PATH)",
            pytrace=False,
        )
    return path


@dataclass
class Helm:
    """The helm CLI on one kubeconfig, with its own cache, config and data folders under
    ``home`` (no repositories, plugins or settings of the machine's user)."""

    kubeconfig: Path
    home: Path

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(tool("helm")), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """kubectl on the same kubeconfig."""
        done = subprocess.run(
            [str(tool("kubectl")), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
            )
        return done

    def values_file(self, values: dict[str, Any]) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / f"values-{len(list(self.home.glob('values-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def install(
        self,
        release: str,
        namespace: str,
        values: dict[str, Any] | None = None,
        *,
        chart: Path = CHART,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``helm install`` (creating the namespace) and wait for nothing: no pod runs here."""
        return self.run(
            "install", release, str(chart), "--namespace", namespace, "--create-namespace",
            "--values", str(self.values_file(values or {})), check=check,
        )  # fmt: skip

    def upgrade(
        self,
        release: str,
        namespace: str,
        values: dict[str, Any] | None = None,
        *,
        chart: Path = CHART,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``helm upgrade`` with exactly ``values`` (``--reset-values``: nothing carried over)."""
        return self.run(
            "upgrade", release, str(chart), "--namespace", namespace, "--reset-values",
            "--values", str(self.values_file(values or {})), check=check,
        )  # fmt: skip

    def uninstall(self, release: str, namespace: str) -> subprocess.CompletedProcess[str]:
        return self.run("uninstall", release, "--namespace", namespace, "--wait")

    def manifest(self, release: str, namespace: str) -> list[Doc]:
        """The objects of the release's current revision (templates only: crds/ are not in it)."""
        text = self.run("get", "manifest", release, "--namespace", namespace).stdout
        return [d for d in yaml.safe_load_all(text) if d]

    def status(self, release: str, namespace: str) -> str:
        done = self.run("status", release, "--namespace", namespace, "-o", "json", check=False)
        if done.returncode != 0:
            return "absent"
        return str(json.loads(done.stdout)["info"]["status"])


def service_account_token(
    cluster: LoopbackCluster, namespace: str, name: str, seconds: int = 3600
) -> str:
    """A token of ServiceAccount ``namespace/name`` from the TokenRequest API (as the kubelet
    mounts one into the controller's pod)."""
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
    token: str = cluster.request("POST", path, request)["status"]["token"]
    return token


def service_account_kubeconfig(
    cluster: LoopbackCluster, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig at ``path`` that authenticates as ServiceAccount ``namespace/name``."""
    from harness.cluster.kubeapi import kubeconfig

    token = service_account_token(cluster, namespace, name)
    config = kubeconfig(cluster.server, cluster.ca, token, user=f"{namespace}-{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


Grant = tuple[str, str, str]
"""(apiGroup, resource, verb) as RBAC names them (``modelcanaries/status``: a subresource)."""


def grants_of(
    docs: list[Doc], namespace: str, service_account: str
) -> dict[Grant, set[str | None]]:
    """What the RBAC objects in ``docs`` grant ServiceAccount ``namespace/service_account``:
    (group, resource, verb) -> where (None: every namespace, through a ClusterRoleBinding)."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    found: dict[Grant, set[str | None]] = {}
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
        if subject not in binding["subjects"]:
            continue
        where = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], where if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        found.setdefault((group, resource, verb), set()).add(where)
    return found


@dataclass(frozen=True)
class Call:
    """One request to the API server, as RBAC sees it (None namespace: cluster scope or all)."""

    group: str
    resource: str
    verb: str
    namespace: str | None
    status: int

    @property
    def grant(self) -> Grant:
        return (self.group, self.resource, self.verb)


def rbac_request(method: str, url: str) -> tuple[str, str, str, str | None] | None:
    """(group, resource, verb, namespace) of a resource request, None for discovery."""
    parsed = urllib.parse.urlsplit(url)
    parts = [p for p in parsed.path.split("/") if p]
    query = urllib.parse.parse_qs(parsed.query)
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # the discovery of one group/version
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    verb = {
        "GET": "get"
        if named
        else ("watch" if query.get("watch") in (["true"], ["True"]) else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if named else "deletecollection",
    }[method.upper()]
    return group, resource, verb, namespace


class RequestLog:
    """Every request a :class:`~controlplane.kube.real.RealKube` sends, as (group, resource,
    verb, namespace, status), read off its HTTP client: what the API server authorizes. A
    server-side apply answered 201 created the object, which RBAC also checks as ``create``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def attach(self, kube: Any) -> Any:
        rest = kube._api_client.rest_client  # the product's own client; only observed here
        send = rest.request
        log = self

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            try:
                response = send(method, url, *args, **kwargs)
            except Exception as exc:
                log.note(method, url, int(getattr(exc, "status", 0) or 0))
                raise
            log.note(method, url, int(getattr(response, "status", 0) or 0))
            return response

        rest.request = request
        return kube

    def note(self, method: str, url: str, status: int) -> None:
        found = rbac_request(method, url)
        if found is None:
            return
        with self._lock:
            self.calls.append(Call(*found, status))
            if found[2] == "patch" and status == 201:
                self.calls.append(Call(found[0], found[1], "create", found[3], status))

    def used(self) -> set[Grant]:
        return {c.grant for c in self.calls}
