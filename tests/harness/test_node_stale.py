"""A node whose process was killed is taken back by ``make kube-down``, and only then.

A test run killed mid-way (``SIGKILL``: no ``finally`` runs) leaves its node running: containerd,
kubelet, the bridge, :data:`~harness.node.node.RUN_DIR`. The next node refuses to start beside it
and says to run ``make kube-down``; ``python -m harness down`` takes it back from the footprint the
node recorded when it started (:func:`harness.node.node.take_back_stale`), but refuses while the
process that runs it is alive.

Needs root and the Debian packages of ``scripts/ensure-node.sh`` (``make kube-tools``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.realnode import MARKS

from harness import cli
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster
from harness.node import host, node
from harness.node.node import start_node

pytestmark = MARKS

RUNS_A_NODE = """
import json, sys, time
from pathlib import Path
from harness.cluster.kubeapi import start_cluster
from harness.node.node import start_node
cluster = start_cluster(Path(sys.argv[1]), detach=True)
start_node(cluster, cluster.workdir / "node", engine=False)
print(json.dumps({"port": cluster.port, "token": cluster.token, "pids": cluster.pids}), flush=True)
time.sleep(3600)
"""


@contextmanager
def node_of_a_process(folder: Path) -> Iterator[tuple[subprocess.Popen[str], LoopbackCluster]]:
    """A process that starts a cluster (detached: it outlives the process) and a node of its
    own, and then sleeps; after the block, the process, a node left and the cluster stopped."""
    owner = subprocess.Popen(
        [sys.executable, "-c", RUNS_A_NODE, str(folder)], stdout=subprocess.PIPE, text=True
    )
    cluster: LoopbackCluster | None = None
    try:
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())
        cluster = LoopbackCluster(folder, started["port"], started["token"], pids=started["pids"])
        yield owner, cluster
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        if node.RUN_DIR.exists():  # the test failed before down: take the node back anyway
            node.take_back_stale()
        if cluster is not None:
            cluster.stop()


def kill(owner: subprocess.Popen[str]) -> None:
    """As a killed test run: no ``finally`` runs, nothing is stopped."""
    owner.send_signal(signal.SIGKILL)
    owner.wait()


def test_a_node_a_killed_process_left_is_taken_back_by_kube_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = host.read_footprint(node.RUN_DIR, node.CGROUP)
    elsewhere = str(tmp_path / "no-kube-up")
    with node_of_a_process(tmp_path / "killed") as (owner, cluster):
        assert (node.RUN_DIR / node.RECORD).exists()
        # while its process lives, the node is that process's: down leaves it alone
        assert cli.main(["down", "--dir", elsewhere]) == 0
        assert "left the node alone: " in capsys.readouterr().err
        assert (node.RUN_DIR / node.RECORD).exists()

        kill(owner)
        orphans = host.node_processes(node.RUN_DIR, node.CGROUP)
        assert any("kubelet" in cmd for cmd in orphans.values())  # the node outlived it
        with pytest.raises(KubeSetupError, match="`make kube-down`"):  # the next node
            start_node(cluster, tmp_path / "next-node", engine=False, wait=5)

        assert cli.main(["down", "--dir", elsewhere]) == 0
        out = capsys.readouterr().out
        assert f"took back the node a stopped process left (its logs: {tmp_path}" in out
        assert host.read_footprint(node.RUN_DIR, node.CGROUP).left_over(before) == {}
        assert not node.RUN_DIR.exists()
        assert host.node_processes(node.RUN_DIR, node.CGROUP) == {}


def test_a_node_that_recorded_nothing_is_taken_back_as_far_as_it_is_surely_its(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node killed before it wrote its record (or left by a version that kept none): its
    processes, cgroups, folder and bridge go, and the next node starts."""
    before = host.read_footprint(node.RUN_DIR, node.CGROUP)
    try:
        with node_of_a_process(tmp_path / "killed") as (owner, cluster):
            kill(owner)
            (node.RUN_DIR / node.RECORD).unlink()

            assert cli.main(["down", "--dir", str(tmp_path / "no-kube-up")]) == 0
            assert "took back the node a stopped process left\n" in capsys.readouterr().out
            assert not node.RUN_DIR.exists()
            left = host.read_footprint(node.RUN_DIR, node.CGROUP).left_over(before)
            assert not {"processes", "cgroups", "mounts"} & set(left)
            assert node.BRIDGE not in left.get("links", [])
            start_node(cluster, tmp_path / "next-node", engine=False, wait=5).stop()
    finally:
        host.take_back(before, node.RUN_DIR, node.CGROUP, node.BRIDGE)  # what it surely left
