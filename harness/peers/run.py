"""The peers as host processes on the loopback cluster, as ``scripts/build-peers.sh`` built them.

Owns :func:`peers_dir` (where the script put the binaries and CRDs), :func:`install_peer_crds`,
:func:`start_flagger`: ``flagger`` v1.44.0 out of cluster (``-kubeconfig``), its Gateway API
router (``-mesh-provider=gatewayapi:v1``, the value of the tutorial's Helm install,
``meshProvider=gatewayapi:v1``; ``cmd/flagger/main.go`` lists it) and the cluster's Prometheus
(``-metrics-server``), logging to ``<cluster>/flagger.log``; and :func:`start_rollouts`: Argo
Rollouts' ``rollouts-controller`` v1.10.2 out of cluster (``--kubeconfig``), logging to
``<cluster>/argo-rollouts.log``. Both stop with the cluster. Called by
``tests/routing/test_real_peers.py`` (``bench/peers.py``).
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from controlplane.local.ports import free_port
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, crd_documents, install_crds
from harness.tools import tools_dir

FLAGGER_CRDS = "flagger-crd.yaml"
ROLLOUTS_CRDS = "argo-rollouts-crds.yaml"
USER_AGENTS = {"flagger": "flagger/", "argo-rollouts": "rollouts-controller/"}
"""How each tool's requests begin their ``User-Agent`` in the API server's audit log: neither
sets one, so client-go's default names the program (``rest.DefaultKubernetesUserAgent``)."""


def peers_dir() -> Path:
    """Where ``scripts/build-peers.sh`` puts the peers (outside the repository)."""
    return tools_dir() / "peers" / "bin"


def peer(name: str) -> Path:
    """One file the script built, or a clear error telling how to build it."""
    path = peers_dir() / name
    if not path.exists():
        raise KubeSetupError(f"{name} is not built: run scripts/build-peers.sh (Go >= 1.26)")
    return path


def install_peer_crds(cluster: LoopbackCluster, *files: str) -> None:
    """The CRDs each peer's module ships (``artifacts/flagger/crd.yaml``,
    ``manifests/crds/*.yaml``), as the script copied them."""
    install_crds(cluster, crd_documents(peer(f) for f in files))


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def start_flagger(
    cluster: LoopbackCluster, prometheus: str, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """Flagger on ``cluster`` with the Gateway API router and ``prometheus``; returns once its
    ``/healthz`` answers (``pkg/server/server.go``)."""
    install_peer_crds(cluster, FLAGGER_CRDS)
    port = free_port()
    proc = cluster.spawn(
        "flagger",
        [
            str(peer("flagger")),
            f"-kubeconfig={cluster.kubeconfig}",
            "-mesh-provider=gatewayapi:v1",
            f"-metrics-server={prometheus}",
            f"-port={port}",
            "-log-level=info",
            "-zap-encoding=console",
            "-enable-config-tracking=false",
        ],
    )
    deadline = time.monotonic() + timeout
    while not _healthy(f"http://127.0.0.1:{port}/healthz"):
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (cluster.workdir / "flagger.log").read_text(errors="replace")[-3000:]
            raise KubeSetupError(f"flagger did not answer /healthz:\n{log}")
        time.sleep(0.5)
    return proc


ROLLOUTS_NAMESPACE = "argo-rollouts"
"""Where Rollouts reads its ConfigMap ``argo-rollouts-config`` (``POD_NAMESPACE``,
``utils/defaults/defaults.go``); none is applied: the built-in Traefik router needs no plugin."""


def start_rollouts(cluster: LoopbackCluster, timeout: float = 90.0) -> subprocess.Popen[bytes]:
    """Argo Rollouts v1.10.2's controller on ``cluster``, every namespace, no leader election;
    returns once its ``/healthz`` answers (``controller/healthz.go``)."""
    install_peer_crds(cluster, ROLLOUTS_CRDS)
    healthz, metrics = free_port(), free_port()
    proc = cluster.spawn(
        "argo-rollouts",
        [
            str(peer("rollouts-controller")),
            f"--kubeconfig={cluster.kubeconfig}",
            f"--healthzPort={healthz}",
            f"--metricsPort={metrics}",
            "--leader-elect=false",
            "--loglevel=info",
        ],
        env={"POD_NAMESPACE": ROLLOUTS_NAMESPACE},
    )
    deadline = time.monotonic() + timeout
    while not _healthy(f"http://127.0.0.1:{healthz}/healthz"):
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (cluster.workdir / "argo-rollouts.log").read_text(errors="replace")[-3000:]
            raise KubeSetupError(f"argo rollouts did not answer /healthz:\n{log}")
        time.sleep(0.5)
    return proc
