"""``python -m harness up|down --dir D [--kserve]``: ``make kube-up`` / ``kube-down``.

``up`` starts a detached loopback cluster (:mod:`harness.cluster.kubeapi`) with the product's and
the upstream CRDs (:mod:`harness.cluster.upstream_crds`); with ``--kserve`` (``make kube-up
KSERVE=1``) also the workloads (:mod:`harness.cluster.workloads`) and the real KServe
(:mod:`harness.cluster.kserve`); with ``--node`` (``make kube-up NODE=1``) the workloads and a real
node (:mod:`harness.node.node`: kubelet, containerd, CNI, the locally built images, and Service
routing and cluster DNS, kube-proxy and CoreDNS (:mod:`harness.node.services`); with both,
every pod runs on that node, which :mod:`harness.node.serving` makes a GPU node with model
storage and KServe's Hugging Face runtime running the engine image). It records
the cluster's processes (and the node's folder and what the machine looked like before it) in
``D/state.json`` and prints ``KUBECONFIG=<path>`` as its last line (with ``--node``, then
``GATEWAY_URL=http://127.0.0.1:<port>``: Traefik, :mod:`harness.cluster.traefik`, and
``PROMETHEUS_URL=http://127.0.0.1:<port>``: the Prometheus the operator configures from the
chart's PodMonitor, scraping the pods and Traefik, :mod:`harness.cluster.monitoring`);
``down`` takes the node back, stops the cluster and removes ``D``, then takes back a node a
stopped process left (a killed test run: :func:`harness.node.node.take_back_stale`);
``images`` (``make images``, before ``make test``'s pytest) builds the node's images that are not
cached yet, so that no test's timeout pays for a cold build. The top of the harness: it
imports the modules below it, and none of them imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controlplane.errors import ControlPlaneError
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import ETCD_VERSION, KUBE_VERSION, LoopbackCluster, start_cluster
from harness.cluster.monitoring import start_monitoring
from harness.cluster.traefik import start_traefik
from harness.cluster.upstream_crds import all_crds
from harness.cluster.workloads import start_workloads
from harness.node.controller_image import controller_image
from harness.node.host import Footprint
from harness.node.images import engine_base
from harness.node.node import RECORD, RUN_DIR, NodeHeld, RealNode, start_node, take_back_stale
from harness.node.serving import ENGINES, start_serving

SERVING_GPU = "NVIDIA-L40S"
"""The GPU the real node advertises with ``--kserve --node``: the examples' ``nvidia-l40s``."""


def _state(folder: Path) -> Path:
    return folder / "state.json"


def up(
    folder: Path,
    crds: Sequence[dict[str, Any]],
    *,
    kserve: bool = False,
    node: bool = False,
    engine: str = "simulated",
) -> LoopbackCluster:
    """Start a detached cluster in ``folder`` (stopping one already recorded there); with
    ``kserve``, also the workloads (:mod:`harness.cluster.workloads`) and the real KServe
    (:mod:`harness.cluster.kserve`); with ``node``, the workloads, a real node with its cluster
    network (a pod reaches a Service by its DNS name) and Traefik as its gateway; with both,
    KServe's pods run ``engine``: the simulated one or the real vLLM (``make vllm``)."""
    down(folder)
    cluster = start_cluster(folder, crds=crds, detach=True)
    state: dict[str, Any] = {}
    real: RealNode | None = None
    try:
        if kserve or node:  # with a real node, every pod runs there: no fake GPU nodes
            start_workloads(cluster, nodes=[] if node else None, detach=True)
        if kserve:
            start_kserve(cluster, detach=True)
        if node:
            real = start_node(cluster, folder / "node", detach=True, cluster_network=True)
            state["node"] = {"folder": str(real.folder), "before": real.before.to_json()}
            if kserve:
                start_serving(cluster, real, SERVING_GPU, engine=engine)
            gateway = start_traefik(cluster, detach=True)
            state["gateway_url"] = gateway.url
            state["prometheus_url"] = start_monitoring(cluster, gateway=gateway, detach=True).url
    except BaseException:
        if real is not None:
            real.stop()
        cluster.stop()
        raise
    state.update(pids=cluster.pids, port=cluster.port)
    _state(folder).write_text(json.dumps(state))
    if real is not None and real.lock is not None:  # recorded: `down` finds it from here on
        os.close(real.lock)
        real.lock = None
    return cluster


def down(folder: Path) -> bool:
    """Stop the cluster recorded in ``folder`` and remove its files; False if none was."""
    state = _state(folder)
    if not state.exists():
        return False
    recorded = json.loads(state.read_text())
    if "node" in recorded:
        node = RealNode(
            Path(recorded["node"]["folder"]), Footprint.from_json(recorded["node"]["before"])
        )
        left = node.stop()
        if left:
            print(f"warning: the node left {left}", file=sys.stderr)
    LoopbackCluster(folder, recorded["port"], "", pids=list(recorded["pids"])).stop()
    shutil.rmtree(folder, ignore_errors=True)
    return True


def take_back_stale_node(run: Path = RUN_DIR) -> dict[str, Any] | None:
    """:func:`harness.node.node.take_back_stale`, refused for a node ``make kube-up`` runs from
    a folder still recorded (``make kube-down KUBE_DIR=`` that folder stops it with its cluster)."""
    record = run / RECORD
    if record.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            owner = Path(json.loads(record.read_text())["folder"]).parent
            if _state(owner).exists():
                raise NodeHeld(
                    f"the node is the one `make kube-up` started in {owner}: "
                    f"`make kube-down KUBE_DIR={owner}` stops it with its cluster"
                )
    return take_back_stale(run)


def images() -> int:
    """Build the engine's base and the controller's image unless cached (each keyed by what it
    is built from); print where they are."""
    try:
        base = engine_base()
        controller = controller_image()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"engine base: {base}")
    print(f"controller image: {controller.ref} ({controller.archive})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness",
        description="A loopback etcd + kube-apiserver with the product's and upstream CRDs.",
    )
    parser.add_argument("action", choices=["up", "down", "images"])
    parser.add_argument("--dir", type=Path, help="where the cluster's files live (up, down)")
    parser.add_argument(
        "--kserve",
        action="store_true",
        help="also run kube-controller-manager, kube-scheduler, kwok GPU nodes and KServe",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="also run a real node: kubelet, containerd and CNI with locally built images (root)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="simulated",
        help="what KServe's pods run with --kserve --node: the simulated engine or the real vLLM",
    )
    args = parser.parse_args(argv)
    if args.action == "images":
        return images()
    if args.dir is None:
        parser.error(f"{args.action} needs --dir")
    folder: Path = args.dir.resolve()
    try:
        if args.action == "down":
            stopped = down(folder)
            print("stopped" if stopped else f"no cluster recorded in {folder}")
            try:
                stale = take_back_stale_node()
            except NodeHeld as held:
                print(f"left the node alone: {held}", file=sys.stderr)
                return 0
            if stale is not None:
                logs = f" (its logs: {stale['folder']})" if stale["folder"] else ""
                print(f"took back the node a stopped process left{logs}")
                if stale["left"]:
                    print(f"warning: the node left {stale['left']}", file=sys.stderr)
            return 0
        cluster = up(folder, all_crds(), kserve=args.kserve, node=args.node, engine=args.engine)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"kube-apiserver {KUBE_VERSION} at {cluster.server} (etcd {ETCD_VERSION}); logs in {folder}"
    )
    print(f"KUBECONFIG={cluster.kubeconfig}")
    recorded = json.loads(_state(folder).read_text())
    for key in ("gateway_url", "prometheus_url"):
        if key in recorded:
            print(f"{key.upper()}={recorded[key]}")
    return 0
