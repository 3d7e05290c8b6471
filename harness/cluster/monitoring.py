"""Monitoring as installed: the Prometheus Operator configures Prometheus from the chart's monitors.

Owns :func:`start_monitoring`: the real Prometheus Operator (:mod:`harness.cluster.promoperator`)
reads the chart's PodMonitor (``manifests/monitoring/podmonitor.yaml``, rendered from
``charts/controlplane``: every pod labelled with a canary and a variant, its
``kserve-container`` on 8080, relabelled to ``namespace`` / ``canary`` / ``variant``) and, when a
gateway runs, a ScrapeConfig for Traefik's ``/metrics`` (:mod:`harness.cluster.traefik`, on
loopback: a static target, since it runs out of cluster); a ``Prometheus`` object selecting
both makes the operator write the configuration, and ``prometheus`` v3.5.0 runs it out of
cluster with its Kubernetes discovery on the loopback API server
(:func:`~harness.cluster.promoperator.loopback_config`). The node's pod addresses are on its bridge,
which this machine reaches, so Prometheus scrapes the real serving pods
(:mod:`harness.node.serving`) and the gateway. Its address is ``PROMETHEUS_URL``. Monitors
made later (a canary's ``<canary>-adopted`` PodMonitor) reach it as in a cluster:
:mod:`harness.cluster.promreload` runs beside it, in the config reloader's place.

The ``Prometheus`` object asks for a 5 s scrape and evaluation interval (the operator's default
is 30 s) so that a test sees a rollout's numbers within seconds; the PodMonitor's own 15 s
interval, the chart's, wins for the pods. Called by ``make kube-up NODE=1`` (:mod:`harness.cli`)
and the test fixtures. :func:`restart_prometheus` crashes Prometheus (SIGKILL) and starts it
again on the same port and the same data folder (its write-ahead log replayed: a crash, not a
wipe), for the resilience test.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.local.ports import free_port
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, applier, binary
from harness.cluster.promoperator import (
    PROMETHEUS_BINARY,
    generated_config,
    installed_prometheus_version,
    loopback_config,
    prometheus_object,
    start_operator,
)
from harness.cluster.traefik import Traefik

NAMESPACE = "monitoring"
PROMETHEUS = "controlplane"
GATEWAY_JOB = "traefik"
SCRAPE_INTERVAL = "5s"
ROOT = Path(__file__).resolve().parents[2]
PODMONITOR = ROOT / "manifests" / "monitoring" / "podmonitor.yaml"


@dataclass(frozen=True)
class Monitoring:
    """Where the running Prometheus answers."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def podmonitor() -> dict[str, Any]:
    """The chart's PodMonitor as ``manifests/monitoring`` ships it."""
    doc: dict[str, Any] = yaml.safe_load(PODMONITOR.read_text())
    return doc


def gateway_scrape(gateway: Traefik) -> dict[str, Any]:
    """A ScrapeConfig for Traefik's metrics on loopback (pure)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1alpha1",
        "kind": "ScrapeConfig",
        "metadata": {"name": GATEWAY_JOB, "namespace": NAMESPACE},
        "spec": {
            "metricsPath": "/metrics",
            "staticConfigs": [
                {"targets": [f"127.0.0.1:{gateway.metrics_port}"], "labels": {"job": GATEWAY_JOB}}
            ],
        },
    }


def prometheus(version: str) -> dict[str, Any]:
    """The ``Prometheus`` object: every PodMonitor and ScrapeConfig, 5 s intervals (pure)."""
    obj = prometheus_object(PROMETHEUS, NAMESPACE, version)
    obj["spec"].update(
        scrapeConfigSelector={},
        scrapeConfigNamespaceSelector={},
        scrapeInterval=SCRAPE_INTERVAL,
        evaluationInterval=SCRAPE_INTERVAL,
    )
    return obj


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_monitoring(
    cluster: LoopbackCluster,
    *,
    gateway: Traefik | None = None,
    detach: bool = False,
    timeout: float = 60.0,
) -> Monitoring:
    """Start the operator and a Prometheus it configures from the chart's PodMonitor (and a
    ScrapeConfig for ``gateway``); returns once Prometheus is ready. Both are the cluster's
    programs: stopped with it."""
    start_operator(cluster, detach=detach, timeout=timeout)
    apply = applier(cluster)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    monitor = podmonitor()
    apply(monitor)
    jobs = [f"podMonitor/{NAMESPACE}/{monitor['metadata']['name']}/"]
    if gateway is not None:
        apply(gateway_scrape(gateway))
        jobs.append(f"scrapeConfig/{NAMESPACE}/{GATEWAY_JOB}")
    apply(prometheus(installed_prometheus_version()))
    config = generated_config(
        cluster,
        NAMESPACE,
        PROMETHEUS,
        ready=lambda text: all(job in text for job in jobs),
        timeout=timeout,
    )
    workdir = cluster.workdir / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    token = workdir / "token"
    token.write_text(cluster.token)
    token.chmod(0o600)
    local = loopback_config(config, PROMETHEUS, cluster.server, cluster.ca, token)
    (workdir / "prometheus.yml").write_text(local)
    port = free_port()
    proc = cluster.spawn(
        "prometheus",
        [
            str(binary(PROMETHEUS_BINARY)),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # what the operator gives Prometheus so that its config reloader may post
            # /-/reload (pkg/prometheus/promcfg.go of prometheus-operator v0.85.0)
            "--web.enable-lifecycle",
        ],
        detach=detach,
    )
    running = Monitoring(port)
    deadline = time.monotonic() + timeout
    while not _ready(running.url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise KubeSetupError(
                "Prometheus did not become ready:\n" + cluster.log_tail(names=("prometheus",))
            )
        time.sleep(0.2)
    cluster.spawn(
        "prometheus-reloader",
        [
            sys.executable,
            "-m",
            "harness.cluster.promreload",
            f"--server={cluster.server}",
            f"--ca={cluster.ca}",
            f"--token={token}",
            f"--namespace={NAMESPACE}",
            f"--name={PROMETHEUS}",
            f"--config={workdir / 'prometheus.yml'}",
            f"--prometheus={running.url}",
        ],
        env={"PYTHONPATH": str(ROOT)},
        detach=detach,
    )
    return running


def restart_prometheus(
    cluster: LoopbackCluster,
    running: Monitoring | str,
    *,
    down_s: float = 0.0,
    timeout: float = 60.0,
) -> None:
    """Crash the cluster's Prometheus (SIGKILL), leave it down ``down_s`` seconds and start it
    again with the same flags: the same port (``running``, or its URL) and the same TSDB folder,
    so the history scraped before the crash is still there; returns once ``/-/ready`` answers."""
    url = running if isinstance(running, str) else running.url
    cluster.restart("prometheus", down_s=down_s, ready=lambda: _ready(url), timeout=timeout)
