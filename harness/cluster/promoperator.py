"""The real Prometheus Operator on the loopback API server, and a real Prometheus on its output.

Owns running the Prometheus Operator (``cmd/operator`` of the Go module
``github.com/prometheus-operator/prometheus-operator``, built by ``scripts/build-kube.sh`` at
:data:`OPERATOR_VERSION`, the version whose CRDs :mod:`harness.cluster.upstream_crds`
installs) against a :class:`~harness.cluster.kubeapi.LoopbackCluster`, and turning the
scrape configuration it generates into a running Prometheus whose Kubernetes discovery reads the
same API server. Called by ``tests/install/test_scrape_real.py``, which checks that the chart's
PodMonitor finds the pods KServe makes (docs/metrics.md "Scraping, verified").

:func:`start_operator` installs the CRDs its Prometheus controller watches (Prometheus, Probe,
ScrapeConfig, ... objects, not only monitors) and starts it with the cluster's admin kubeconfig
(``KUBECONFIG``, read by ``pkg/k8sutil/k8sutil.go`` ``NewClusterConfig``) and no kubelet
Service. A :func:`prometheus_object` in the cluster makes it write the Secret
``prometheus-<name>`` whose ``prometheus.yaml.gz`` is the configuration
(``pkg/prometheus/common.go``: ``ConfigSecretName``, ``ConfigFilename``);
:func:`generated_config` reads it. In a cluster Prometheus runs in a pod and its discovery
finds the API server in-cluster; here :func:`on_loopback` adds the server's address, CA and a
token file to each ``kubernetes_sd_configs`` entry and changes nothing else, after
:func:`expand_env` has done what the operator's config reloader does in the pod (``$(SHARD)``,
``$(POD_NAME)``).
:func:`start_scraper` does all of that and starts ``prometheus`` (v3.5.0, the version the operator
deploys by default, built by ``scripts/build-kube.sh``: Debian's 2.42 has no Kubernetes
discovery);
:func:`targets` reads ``/api/v1/targets``. Nothing here runs a container.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from controlplane.local.ports import free_port
from controlplane.local.prometheus import PrometheusServer, wait_ready
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, binary
from harness.cluster.kubeapi import install_crds as _install_crds
from harness.cluster.upstream_crds import PROMETHEUS_OPERATOR, Upstream, crds

OPERATOR_VERSION = PROMETHEUS_OPERATOR.version
"""The operator binary's version: the one whose CRDs are installed (``scripts/build-kube.sh``
pins the same)."""
OPERATOR_BINARY = "prometheus-operator"
PROMETHEUS_BINARY = "prometheus"
"""Prometheus v3.5.0 from ``scripts/build-kube.sh`` (the operator's ``DefaultPrometheusVersion``):
Debian's ``prometheus`` 2.42 is built without Kubernetes discovery (it refuses
``kubernetes_sd_configs``)."""
CONFIG_KEY = "prometheus.yaml.gz"
_CRD_DIR = "example/prometheus-operator-crd"
OPERATOR_CRDS = Upstream(
    PROMETHEUS_OPERATOR.module,
    OPERATOR_VERSION,
    tuple(
        f"{_CRD_DIR}/monitoring.coreos.com_{plural}.yaml"
        for plural in (
            "prometheuses",
            "podmonitors",
            "servicemonitors",
            "probes",
            "scrapeconfigs",
            "prometheusrules",
        )
    ),
)
"""The CRDs of what the operator's Prometheus controller reads (``example/prometheus-operator-crd``
of its module). Without the Alertmanager, ThanosRuler and PrometheusAgent CRDs it does not start
those controllers (``cmd/operator/main.go``, ``checkPrerequisites``)."""


def prometheus_version(text: str) -> str:
    """``v2.42.0`` from ``prometheus --version``'s first line (pure)."""
    found = re.search(r"version (\d+\.\d+\.\d+)", text)
    if found is None:
        raise KubeSetupError(f"prometheus --version: no version in {text[:200]!r}")
    return f"v{found.group(1)}"


def installed_prometheus_version() -> str:
    """The version of the ``prometheus`` binary that will run the configuration."""
    out = subprocess.run(
        [str(binary(PROMETHEUS_BINARY)), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return prometheus_version(out.stdout + out.stderr)


def start_operator(
    cluster: LoopbackCluster, *, detach: bool = False, timeout: float = 60.0
) -> None:
    """Install the operator's CRDs and start it against ``cluster``; return once its web server
    answers ``/healthz``. It is stopped with the cluster."""
    _install_crds(cluster, crds(OPERATOR_CRDS))
    port = free_port()
    proc = cluster.spawn(
        OPERATOR_BINARY,
        [
            str(binary(OPERATOR_BINARY)),
            "--kubelet-service=",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log-level=info",
        ],
        env={"KUBECONFIG": str(cluster.kubeconfig)},
        detach=detach,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise KubeSetupError(
                "the Prometheus Operator did not start:\n"
                + cluster.log_tail(names=(OPERATOR_BINARY,))
            )
        time.sleep(0.2)


def prometheus_object(name: str, namespace: str, version: str) -> dict[str, Any]:
    """A ``Prometheus`` selecting every PodMonitor in every namespace and nothing else (pure).

    ``version`` is the Prometheus the configuration is generated for (the operator leaves out
    what that version does not know)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "version": version,
            "replicas": 1,
            "podMonitorSelector": {},
            "podMonitorNamespaceSelector": {},
        },
    }


def decode_config(secret: dict[str, Any]) -> str:
    """The configuration text in the operator's Secret (pure)."""
    data = secret.get("data") or {}
    if CONFIG_KEY not in data:
        raise KubeSetupError(f"Secret {secret['metadata']['name']} has no {CONFIG_KEY}")
    return gzip.decompress(base64.b64decode(data[CONFIG_KEY])).decode()


def generated_config(
    cluster: LoopbackCluster,
    namespace: str,
    name: str,
    *,
    ready: Any = None,
    timeout: float = 60.0,
) -> str:
    """The configuration the operator wrote for Prometheus ``name``, once ``ready(text)`` holds
    (default: once the Secret exists)."""
    path = f"/api/v1/namespaces/{namespace}/secrets/prometheus-{name}"
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            last = decode_config(cluster.request("GET", path))
            if ready is None or ready(last):
                return last
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        except KubeSetupError:
            pass
        if time.monotonic() > deadline:
            raise KubeSetupError(
                f"the operator wrote no configuration for {namespace}/{name} in {timeout:.0f}s "
                f"(last: {last[:2000]!r}):\n" + cluster.log_tail(names=(OPERATOR_BINARY,))
            )
        time.sleep(0.5)


_ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def reloader_env(name: str) -> dict[str, str]:
    """What the config reloader of Prometheus ``name``'s first pod has in its environment for
    the generated configuration: ``SHARD`` 0 and ``POD_NAME`` (``pkg/operator/config_reloader.go``,
    ``ShardEnvVar``, ``PodNameEnvVar``; pure)."""
    return {"SHARD": "0", "POD_NAME": f"prometheus-{name}-0"}


def expand_env(config: str, env: dict[str, str]) -> str:
    """``config`` with each ``$(VAR)`` replaced from ``env``, as the config reloader writes
    ``prometheus.env.yaml`` before Prometheus reads it (the generated configuration has
    ``$(SHARD)`` in its sharding rule, ``$(POD_NAME)`` in an external label; pure)."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in env:
            raise KubeSetupError(
                f"the generated configuration refers to $({match.group(1)}), which is unset"
            )
        return env[match.group(1)]

    return _ENV_REF.sub(value, config)


def on_loopback(config: str, server: str, ca_file: Path, token_file: Path) -> str:
    """``config`` with every ``kubernetes_sd_configs`` entry pointed at ``server`` (its CA and a
    bearer token file), nothing else changed (pure)."""
    doc = yaml.safe_load(config) or {}
    out = copy.deepcopy(doc)
    for job in out.get("scrape_configs") or []:
        for sd in job.get("kubernetes_sd_configs") or []:
            sd["api_server"] = server
            sd["tls_config"] = {"ca_file": str(ca_file)}
            sd["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    return yaml.safe_dump(out, sort_keys=False)


def loopback_config(config: str, name: str, server: str, ca_file: Path, token_file: Path) -> str:
    """The operator's ``config`` for Prometheus ``name`` as the loopback Prometheus reads it:
    the config reloader's environment filled in (:func:`expand_env`), its discovery on
    ``server`` (:func:`on_loopback`; pure)."""
    return on_loopback(expand_env(config, reloader_env(name)), server, ca_file, token_file)


def start_scraper(
    cluster: LoopbackCluster,
    namespace: str,
    name: str,
    workdir: Path,
    *,
    ready: Any = None,
    timeout: float = 60.0,
) -> tuple[PrometheusServer, str]:
    """Create Prometheus ``name`` (for the installed ``prometheus``'s version), wait for the
    operator's configuration (``ready``, as in :func:`generated_config`), and run ``prometheus``
    on it with discovery on ``cluster``. Returns the server and the configuration as generated."""
    body = prometheus_object(name, namespace, installed_prometheus_version())
    cluster.request(
        "POST", f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheuses", body
    )
    config = generated_config(cluster, namespace, name, ready=ready, timeout=timeout)
    workdir.mkdir(parents=True, exist_ok=True)
    token = workdir / "token"
    token.write_text(cluster.token)
    token.chmod(0o600)
    local = on_loopback(expand_env(config, reloader_env(name)), cluster.server, cluster.ca, token)
    return start_prometheus(local, workdir, timeout=timeout), config


def start_prometheus(config: str, workdir: Path, *, timeout: float = 60.0) -> PrometheusServer:
    """Run :data:`PROMETHEUS_BINARY` on ``config`` (files under ``workdir``) on a free loopback
    port until ``/-/ready`` answers (retried when the port was taken meanwhile)."""
    config_path = workdir / "prometheus.yml"
    config_path.write_text(config)
    log_path = workdir / "prometheus.log"
    for _ in range(3):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(binary(PROMETHEUS_BINARY)),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = PrometheusServer(process, port, workdir / "data", log_path)
        if wait_ready(server, timeout):
            return server
        server.stop()
    raise KubeSetupError(
        f"prometheus did not become ready; its log ends with:\n{server.log_tail()}"
    )


def targets(server: PrometheusServer) -> dict[str, Any]:
    """``/api/v1/targets?state=any``: ``activeTargets`` (with ``discoveredLabels``, ``labels``,
    ``scrapePool``) and ``droppedTargets``."""
    with urllib.request.urlopen(server.url + "/api/v1/targets?state=any", timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
    return dict(body["data"])
