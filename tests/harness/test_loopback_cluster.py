"""The loopback control plane (harness.cluster.kubeapi): what `make kube-up` promises.

A cluster with TLS, token authentication, RBAC and service-account token signing, whose last
printed line is ``KUBECONFIG=<path>``; ``down`` leaves no process and no port behind; a missing
binary or toolchain is one clear line. The session fixture ``loopback`` uses the same code.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from harness import cli
from harness.cluster import kubeapi, upstream_crds
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster


def call(cluster: LoopbackCluster, token: str, method: str, path: str, body: Any = None) -> int:
    """The HTTP status of one call with ``token``, TLS verified against the cluster's CA only."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(cluster.server + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=str(cluster.ca))
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            raise AssertionError(f"429 {exc.headers} {exc.read()!r}") from exc
        return int(exc.code)


def port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (as Go's net.Listen does: SO_REUSEADDR, so
    connections the closed server left in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.binary
def test_tls_token_authentication_and_rbac(loopback: LoopbackCluster, real_ns: str) -> None:
    canaries = f"/apis/canary.controlplane.dev/v1alpha1/namespaces/{real_ns}/modelcanaries"
    assert call(loopback, loopback.token, "GET", canaries) == 200
    assert call(loopback, "not-a-token", "GET", canaries) == 401
    # an untrusted CA fails the TLS handshake: the kubeconfig's CA is the one that signed it
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(loopback.server + "/readyz", timeout=10)

    # service-account token signing: a TokenRequest answers a token the server then trusts ...
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}
    loopback.request("POST", f"/api/v1/namespaces/{real_ns}/serviceaccounts", sa)
    answer = loopback.request(
        "POST",
        f"/api/v1/namespaces/{real_ns}/serviceaccounts/reader/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    token = answer["status"]["token"]
    # ... and RBAC authorizes it: nothing granted, refused; once bound to a Role, allowed
    assert call(loopback, token, "GET", canaries) == 403
    rules = [{"apiGroups": ["canary.controlplane.dev"], "resources": ["modelcanaries"]}]
    rules[0]["verbs"] = ["get", "list"]  # type: ignore[assignment]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}
    role |= {"metadata": {"name": "reader"}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}
    binding |= {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": real_ns}],
    }
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{real_ns}"
    loopback.request("POST", f"{rbac}/roles", role)
    loopback.request("POST", f"{rbac}/rolebindings", binding)
    assert call(loopback, token, "GET", canaries) == 200
    assert call(loopback, token, "DELETE", f"{canaries}/anything") == 403


@pytest.mark.binary
def test_every_pinned_crd_is_served(real_kube: RealKube) -> None:
    installed = {
        crd["metadata"]["name"]
        for crd in real_kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    }
    wanted = {crd["metadata"]["name"] for crd in upstream_crds.all_crds()}
    assert wanted <= installed
    for name in (
        "modelcanaries.canary.controlplane.dev",
        "inferenceservices.serving.kserve.io",
        "llminferenceservices.serving.kserve.io",
        "clusterservingruntimes.serving.kserve.io",
        "httproutes.gateway.networking.k8s.io",
        "virtualservices.networking.istio.io",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ):
        assert name in installed


@pytest.mark.binary
def test_the_pins_beside_kserve_are_what_its_go_mod_requires() -> None:
    # the CRDs of the objects KServe's managers watch and write must be the versions they are
    # built against: a KServe bump that moves one fails here, not in a reconcile
    go_mod = (upstream_crds.module_dir(upstream_crds.KSERVE) / "go.mod").read_text()
    required = {
        parts[0]: parts[1]
        for line in go_mod.splitlines()
        if len(parts := line.split()) >= 2 and parts[1].startswith("v")
    }
    for pinned in (
        upstream_crds.GATEWAY_API,
        upstream_crds.ISTIO,
        upstream_crds.GATEWAY_API_INFERENCE,
        upstream_crds.KEDA,
    ):
        assert required.get(pinned.module) == pinned.version, pinned


@pytest.mark.binary
def test_kserves_crds_are_split_as_its_charts_ship_them() -> None:
    # serving_crds() stands for an install without KServe's kserve-llmisvc-crd chart: that must
    # stay what KServe's charts ship, and its manager must not need the chart left out
    root = upstream_crds.module_dir(upstream_crds.KSERVE)

    def chart(name: str) -> set[str]:
        return {p.name for p in (root / "charts" / name / "templates").glob("*.yaml")}

    def names(upstream: upstream_crds.Upstream) -> set[str]:
        return {Path(f).name for f in upstream.files}

    assert names(upstream_crds.KSERVE) == chart("kserve-crd")
    assert names(upstream_crds.KSERVE_LLMISVC) == chart("kserve-llmisvc-crd") - chart("kserve-crd")
    manager = (root / "cmd" / "manager" / "main.go").read_text()
    assert "llmisvc" not in manager
    assert "v1alpha2" not in manager
    every = {c["metadata"]["name"] for c in upstream_crds.all_crds()}
    serving = {c["metadata"]["name"] for c in upstream_crds.serving_crds()}
    assert every - serving == {
        "llminferenceservices.serving.kserve.io",
        "llminferenceserviceconfigs.serving.kserve.io",
    }


@pytest.mark.binary
def test_up_prints_kubeconfig_last_and_down_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "kube-up"
    own = upstream_crds.own_crd()
    try:
        cluster = cli.up(folder, [own])
        assert cli.main(["down", "--dir", str(tmp_path / "elsewhere")]) == 0
        state = json.loads((folder / "state.json").read_text())
        assert len(state["pids"]) == 2
        assert all(kubeapi._alive(p) for p in state["pids"])
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == cluster.server
        kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
        assert kube.list("canary.controlplane.dev/v1alpha1", "ModelCanary", "default") == []
    finally:
        assert cli.main(["down", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "stopped"
    assert not any(kubeapi._alive(p) for p in state["pids"])
    assert port_free(state["port"])
    assert not folder.exists()


def test_a_missing_binary_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(KubeSetupError, match=r"kube-apiserver v1\.34\.\d+ is not built: run `make"):
        kubeapi.start_cluster(tmp_path / "cluster")
    assert not (tmp_path / "cluster").exists()
    monkeypatch.setattr(cli, "all_crds", list)
    assert cli.main(["up", "--dir", str(tmp_path / "up")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "make kube-tools" in err[0]
    assert "Go >= 1.25" in err[0]


def test_a_missing_go_toolchain_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO", raising=False)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(KubeSetupError, match=r"^go is required .*install Go >= 1\.24"):
        upstream_crds.module_dir(upstream_crds.KSERVE)


@pytest.mark.binary
def test_up_with_kserve_runs_it_and_down_leaves_nothing(tmp_path: Path) -> None:
    # `make kube-up KSERVE=1`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
    # kwok, KServe's manager and the Gateway status stand-in, all detached and all stopped
    folder = tmp_path / "kube-up"
    try:
        cluster = cli.up(folder, upstream_crds.all_crds(), kserve=True)
        state = json.loads((folder / "state.json").read_text())
        assert len(state["pids"]) == 7
        assert all(kubeapi._alive(p) for p in state["pids"])
        kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
        nodes = kube.list("v1", "Node")
        assert {n["metadata"]["labels"]["nvidia.com/gpu.product"] for n in nodes} >= {
            "NVIDIA-H100-80GB-HBM3",
            "NVIDIA-L40S",
        }
        # admitted by KServe's own validating webhook, served by its manager
        runtime = kube.get(
            Ref(
                "serving.kserve.io/v1alpha1",
                "ClusterServingRuntime",
                None,
                "kserve-huggingfaceserver",
            )
        )
        assert runtime["spec"]["supportedModelFormats"][0]["name"] == "huggingface"
        hooks = kube.list("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
        assert "inferenceservice.serving.kserve.io" in {h["metadata"]["name"] for h in hooks}
    finally:
        assert cli.main(["down", "--dir", str(folder)]) == 0
    assert not any(kubeapi._alive(p) for p in state["pids"])
    assert port_free(state["port"])
    assert not folder.exists()


@pytest.mark.binary
def test_a_detached_program_stopped_by_pid_is_collected_through_its_popen(
    tmp_path: Path,
) -> None:
    """``stop`` reaps a detached child through the ``Popen`` that started it: the object then
    knows its exit status and leaves the module's list, so nothing reports a child "still
    running" (a ``ResourceWarning``) when the test process exits."""
    import sys

    cluster = LoopbackCluster(tmp_path, 0, "")
    proc = cluster.spawn(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], detach=True
    )
    assert proc in kubeapi._DETACHED
    assert cluster.pids == [proc.pid]
    cluster.stop()
    assert proc.returncode is not None
    assert proc not in kubeapi._DETACHED
