"""``python -m harness.cluster up|down --dir D [--kserve]``: ``make kube-up`` / ``kube-down``.

``up`` starts a detached loopback cluster (:mod:`harness.cluster.kubeapi`) with the product's and
the upstream CRDs (:mod:`harness.cluster.upstream_crds`); with ``--kserve`` (``make kube-up
KSERVE=1``) also the workloads (:mod:`harness.cluster.workloads`) and the real KServe
(:mod:`harness.cluster.kserve`). It records the cluster's processes in ``D/state.json`` and prints
``KUBECONFIG=<path>`` as its last line; ``down`` stops them and removes ``D``. The top of the
cluster package: it imports the modules below it, and none of them imports it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controlplane.errors import ControlPlaneError
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import ETCD_VERSION, KUBE_VERSION, LoopbackCluster, start_cluster
from harness.cluster.upstream_crds import all_crds
from harness.cluster.workloads import start_workloads


def _state(folder: Path) -> Path:
    return folder / "state.json"


def up(folder: Path, crds: Sequence[dict[str, Any]], *, kserve: bool = False) -> LoopbackCluster:
    """Start a detached cluster in ``folder`` (stopping one already recorded there); with
    ``kserve``, also the workloads (:mod:`harness.cluster.workloads`) and the real KServe
    (:mod:`harness.cluster.kserve`)."""
    down(folder)
    cluster = start_cluster(folder, crds=crds, detach=True)
    try:
        if kserve:
            start_workloads(cluster, detach=True)
            start_kserve(cluster, detach=True)
    except BaseException:
        cluster.stop()
        raise
    _state(folder).write_text(json.dumps({"pids": cluster.pids, "port": cluster.port}))
    return cluster


def down(folder: Path) -> bool:
    """Stop the cluster recorded in ``folder`` and remove its files; False if none was."""
    state = _state(folder)
    if not state.exists():
        return False
    recorded = json.loads(state.read_text())
    LoopbackCluster(folder, recorded["port"], "", pids=list(recorded["pids"])).stop()
    shutil.rmtree(folder, ignore_errors=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.cluster",
        description="A loopback etcd + kube-apiserver with the product's and upstream CRDs.",
    )
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, required=True, help="where the cluster's files live")
    parser.add_argument(
        "--kserve",
        action="store_true",
        help="also run kube-controller-manager, kube-scheduler, kwok GPU nodes and KServe",
    )
    args = parser.parse_args(argv)
    folder: Path = args.dir.resolve()
    try:
        if args.action == "down":
            stopped = down(folder)
            print("stopped" if stopped else f"no cluster recorded in {folder}")
            return 0
        cluster = up(folder, all_crds(), kserve=args.kserve)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"kube-apiserver {KUBE_VERSION} at {cluster.server} (etcd {ETCD_VERSION}); logs in {folder}"
    )
    print(f"KUBECONFIG={cluster.kubeconfig}")
    return 0
