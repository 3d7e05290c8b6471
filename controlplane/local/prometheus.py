"""A real, throwaway Prometheus: backfill a temporary TSDB, start the binary, stop it cleanly.

Owns the lifecycle of the Prometheus servers the demo, the local stack, the tests and the benches
start: :func:`backfill` (``promtool tsdb create-blocks-from openmetrics``), :func:`start_prometheus`
(a free loopback port, 400-day retention so old blocks survive) and a stop that leaves no orphan;
and the local stack's :func:`scrape_config` and the reads of its targets (:func:`last_scrape`).
A missing binary is an error that says how to install it, never a skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controlplane.errors import ControlPlaneError
from controlplane.local.ports import free_port
from controlplane.local.server import ModelServer
from controlplane.promql.queries import prom_duration
from controlplane.spec.models import ModelCanary
from controlplane.spec.units import time_value

CONFIG = "global:\n  scrape_interval: 1m\nscrape_configs: []\n"


class PrometheusSetupError(ControlPlaneError):
    """The throwaway Prometheus could not be installed, backfilled or started."""


def binary(name: str) -> str:
    """Path of ``prometheus`` / ``promtool`` / ``prometheus-alertmanager``, or a clear error
    telling how to install it."""
    found = shutil.which(name)
    if found is None:
        package = "prometheus-alertmanager" if "alertmanager" in name else "prometheus"
        raise PrometheusSetupError(
            f"{name!r} is not on PATH: a real one is needed here "
            f"(Debian/Ubuntu: apt-get install -y {package}; or run `make setup`)"
        )
    return found


def backfill(files: Sequence[Path], data_dir: Path, parallel: int = 2) -> None:
    """Turn OpenMetrics ``files`` into TSDB blocks under ``data_dir`` (``parallel`` at a time)."""
    promtool = binary("promtool")
    data_dir.mkdir(parents=True, exist_ok=True)
    pending = list(files)
    running: list[tuple[Path, subprocess.Popen[bytes]]] = []
    try:
        while pending or running:
            while pending and len(running) < parallel:
                path = pending.pop(0)
                cmd = [
                    promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(path),
                    str(data_dir),
                    "--max-block-duration=24h",
                ]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                running.append((path, proc))
            path, proc = running.pop(0)
            _, err = proc.communicate()
            if proc.returncode != 0:
                detail = err.decode(errors="replace")[-2000:]
                raise PrometheusSetupError(f"promtool could not backfill {path.name}: {detail}")
    finally:
        for _, proc in running:
            proc.kill()
            proc.wait()


@dataclass
class PrometheusServer:
    """A running ``prometheus`` (or ``prometheus-alertmanager``) process on ``127.0.0.1:port``;
    ``data_dir`` is its TSDB (or Alertmanager's storage)."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate and wait (kill after 10 s). Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(server: PrometheusServer, timeout: float) -> bool:
    """Poll ``/-/ready`` until 200 (True), the process exits or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(server.url + "/-/ready", timeout=1) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def start_prometheus(
    data_dir: Path, *, timeout: float = 60.0, attempts: int = 3
) -> PrometheusServer:
    """Start ``prometheus`` on ``data_dir`` (a TSDB, possibly backfilled) and wait until ready.

    No scrape jobs; a 400-day retention so backfilled blocks are not deleted at once."""
    return start_prometheus_with_config(
        data_dir, CONFIG, retention="400d", timeout=timeout, attempts=attempts
    )


def start_prometheus_with_config(
    data_dir: Path,
    config: str,
    *,
    retention: str = "1d",
    timeout: float = 60.0,
    attempts: int = 3,
) -> PrometheusServer:
    """Start ``prometheus`` with the configuration text ``config`` (e.g. live scrape jobs) on the
    TSDB at ``data_dir`` on a free loopback port, and wait until ready. Used by the local stack
    (:mod:`controlplane.local.stack`), which scrapes its model servers and router."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir.parent / f"{data_dir.name}-prometheus.yml"
    config_path.write_text(config)
    return _launch(
        "prometheus",
        lambda port: [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        data_dir,
        data_dir.parent / f"{data_dir.name}-prometheus.log",
        timeout,
        attempts,
    )


def start_alertmanager(
    workdir: Path, config: str, *, timeout: float = 30.0, attempts: int = 3
) -> PrometheusServer:
    """Start ``prometheus-alertmanager`` with the configuration text ``config`` on a free loopback
    port (storage and log under ``workdir``; no clustering, so alerts are sent without waiting
    for gossip to settle) and wait until ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(config)
    storage = workdir / "alertmanager-data"
    storage.mkdir(exist_ok=True)
    return _launch(
        "prometheus-alertmanager",
        lambda port: [
            f"--config.file={config_path}",
            f"--storage.path={storage}",
            "--cluster.listen-address=",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        storage,
        workdir / "alertmanager.log",
        timeout,
        attempts,
    )


def _launch(
    name: str,
    flags: Callable[[int], list[str]],
    data_dir: Path,
    log_path: Path,
    timeout: float,
    attempts: int,
) -> PrometheusServer:
    """Run ``name`` with ``flags(port)`` on a free port until ``/-/ready`` answers, retrying when
    the port was taken between :func:`free_port` and the bind."""
    exe = binary(name)
    last = ""
    for _ in range(attempts):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen([exe, *flags(port)], stdout=log, stderr=subprocess.STDOUT)
        server = PrometheusServer(process, port, data_dir, log_path)
        if wait_ready(server, timeout):
            return server
        last = server.log_tail()
        server.stop()
    raise PrometheusSetupError(f"{name} did not become ready; its log ends with:\n{last}")


FILE_SD_REFRESH = "5s"
"""Prometheus rereads a ``file_sd_configs`` file whenever it changes (inotify) and at least this
often besides."""


def scrape_config(
    canary: ModelCanary,
    servers: Mapping[str, ModelServer],
    router_port: int,
    interval: float,
    *,
    targets_file: Path | None = None,
) -> str:
    """Prometheus configuration scraping the model servers (with their contract labels) and the
    router. ``servers`` are static targets; ``targets_file`` is a ``file_sd_configs`` file that
    lists the replicas that exist at the moment (:func:`replica_targets`), reread whenever it
    changes. The router's Envoy cluster stats are scraped as they are, as a cluster's gateway
    scrape takes Envoy's ``/stats/prometheus``: no per-variant relabeling (the ``error-rate``
    query finds each variant's clusters by ``envoy_cluster_name``:
    :func:`controlplane.promql.http_errors.envoy_backend`); only the target's static
    ``namespace``/``canary`` labels, which that query does not read.
    ``scrape_timeout`` may not exceed the interval."""
    every = prom_duration(interval)
    labels = {"namespace": canary.metadata.namespace, "canary": canary.metadata.name}
    variants: dict[str, Any] = {"job_name": "local-variants", "honor_labels": True}
    if servers:
        variants["static_configs"] = [
            {
                "targets": [f"127.0.0.1:{server.port}"],
                "labels": {**labels, "variant": server.who.variant},
            }
            for server in servers.values()
        ]
    if targets_file is not None:
        variants["file_sd_configs"] = [
            {"files": [str(targets_file)], "refresh_interval": FILE_SD_REFRESH}
        ]
    config = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "scrape_configs": [
            variants,
            {
                "job_name": "local-router",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{router_port}"], "labels": labels}],
            },
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def _active_targets(url: str) -> list[dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(url + "/api/v1/targets?state=active", timeout=2) as response:
            data = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    found: list[dict[str, Any]] = data.get("data", {}).get("activeTargets", [])
    return found


def targets_up(url: str) -> tuple[int, int]:
    targets = _active_targets(url)
    if targets is None:
        return 0, -1
    return sum(1 for t in targets if t.get("health") == "up"), len(targets)


def last_scrape(url: str, instance: str) -> float | None:
    """When the Prometheus at ``url`` last began a successful scrape of ``instance`` (its
    ``lastScrape`` while its health is ``up``); None before one, or when it is no target."""
    for target in _active_targets(url) or []:
        if target.get("labels", {}).get("instance") != instance or target.get("health") != "up":
            continue
        try:
            return time_value(target.get("lastScrape", ""))
        except ValueError:
            return None
    return None
