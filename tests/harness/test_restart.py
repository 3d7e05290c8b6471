"""Crashing one program of the loopback cluster and starting it again (harness.cluster.kubeapi).

:meth:`LoopbackCluster.restart` is what ``tests/routing/test_real_resilience.py`` stands on:
SIGKILL, then the same command line and environment, so the same ports and data, the log
appended, the new process in the old one's place in the stop order. A small web server stands
in for a program here; the real kube-apiserver comes back on its port with etcd's data.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from controlplane.local.ports import free_port
from harness.cluster import kubeapi
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, start_cluster

pytestmark = pytest.mark.binary


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def web(cluster: LoopbackCluster, port: int, *, detach: bool = False) -> None:
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    proc = cluster.spawn("web", argv, env={"WEB_MARK": "kept"}, detach=detach)
    assert kubeapi._wait(lambda: answers(port), [proc], 30)


def test_flag_reads_the_last_value_of_a_flag() -> None:
    argv = ["etcd", "--name=a", "--advertise-client-urls=http://x:1", "--name=b"]
    assert kubeapi._flag(argv, "--name") == "b"
    assert kubeapi._flag(argv, "--advertise-client-urls") == "http://x:1"
    assert kubeapi._flag(argv, "--data-dir") is None


@pytest.mark.parametrize("detach", [False, True])
def test_a_restarted_program_runs_again_as_it_was_on_its_port(tmp_path: Path, detach: bool) -> None:
    cluster = LoopbackCluster(tmp_path, 0, "")
    port = free_port()
    try:
        web(cluster, port, detach=detach)
        first = cluster.running["web"]
        cluster.restart("web", down_s=0.2, ready=lambda: answers(port), timeout=30)
        again = cluster.running["web"]
        assert again.pid != first.pid
        assert first.returncode is not None  # killed, collected
        assert answers(port)
        assert cluster.programs["web"].env == {"WEB_MARK": "kept"}
        if detach:
            assert cluster.pids == [again.pid]
            assert again in kubeapi._DETACHED
            assert first not in kubeapi._DETACHED
        else:
            assert cluster.processes == [again]
        log = (tmp_path / "web.log").read_text()
        assert "started again after SIGKILL" in log
        with pytest.raises(KubeSetupError, match="still running"):
            cluster.revive("web")
        with pytest.raises(KubeSetupError, match="no program 'nginx'"):
            cluster.kill("nginx")
    finally:
        cluster.stop()
    assert cluster.running["web"].returncode is not None
    assert not answers(port)


def test_a_program_that_does_not_come_back_is_an_error_with_its_log(tmp_path: Path) -> None:
    cluster = LoopbackCluster(tmp_path, 0, "")
    try:
        cluster.spawn("quitter", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"])
        cluster.running["quitter"].wait()
        with pytest.raises(KubeSetupError, match=r"did not come back(.|\n)*bye"):
            cluster.revive("quitter", ready=lambda: False, timeout=5)
    finally:
        cluster.stop()


@pytest.mark.timeout(300)
def test_kube_apiserver_comes_back_on_its_port_with_the_data_of_etcd(tmp_path: Path) -> None:
    with start_cluster(tmp_path / "cluster") as cluster:
        path = "/api/v1/namespaces/default/configmaps"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}}
        cluster.request("POST", path, {**body, "data": {"k": "v"}})
        before = cluster.running["kube-apiserver"].pid
        cluster.restart("kube-apiserver", down_s=1.0)  # waits for /readyz
        assert cluster.running["kube-apiserver"].pid != before
        assert cluster.request("GET", f"{path}/kept")["data"] == {"k": "v"}
        assert "started again after SIGKILL" in (cluster.workdir / "kube-apiserver.log").read_text()
    assert all(p.returncode is not None for p in cluster.running.values())
