"""The shipped PodMonitor, run for real: the Prometheus Operator turns it into a Prometheus
configuration and a real Prometheus discovers the canary's pods on the loopback cluster.

The ``kserve_loopback`` cluster runs KServe v0.20.0's own controller, so the predictor pods of a
KServe canary (the ``kserve`` router's one InferenceService: stable predictor plus a
``spec.canary`` entry) are the pods KServe makes, with the labels KServe copies from the
predictors. The Prometheus Operator v0.85.0 (:mod:`harness.cluster.promoperator`) generates
the configuration for ``manifests/monitoring/podmonitor.yaml`` (and the chart rendered with
``llmInferenceService.scheme=https``); the Debian ``prometheus`` runs it with discovery on the same
API server. Pods run no container (kwok), so scrapes fail: what is checked is the targets, their
addresses and scrape URLs, and the labels ``namespace``, ``canary``, ``variant``.

LLMInferenceService workloads and Istio sidecars are pods created here in the shape their
controllers give them (no LLMInferenceService controller or Istio injector runs here), cited
from upstream: the labels of ``pkg/controller/v1alpha2/llmisvc/workload_single_node.go`` plus the
``spec.labels`` our render sets, the container ``main`` with port 8000 of
``config/llmisvcconfig/config-llm-template.yaml`` (KServe v0.20.0); the ``istio-proxy`` container
(or native sidecar) with port ``http-envoy-prom`` 15090 of Istio 1.27.1's
``manifests/charts/istio-control/istio-discovery/files/injection-template.yaml``.

The PodMonitor shipped before (``targetPort: 8080``) is run beside it and finds no KServe pod:
KServe's Hugging Face runtime declares no container port.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from support.canaries import model_canary
from support.chart import ROOT, render
from support.controller_world import world_canary
from support.kserve_world import release
from support.realkube import KSERVE_GROUP

from controlplane.kube.real import RealKube
from controlplane.local.prometheus import PrometheusServer
from controlplane.profiles.catalog import load_catalog
from controlplane.routing import kserve as kserve_router
from controlplane.serving.render import ROLES, Role, llm_inference_service, object_labels
from harness.cluster.kubeapi import LoopbackCluster
from harness.cluster.promoperator import start_operator, start_scraper, targets

pytestmark = [
    pytest.mark.binary,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group(KSERVE_GROUP),
]

MONITORING = "monitoring"
NS = "scrape"
SHIPPED = ROOT / "manifests" / "monitoring" / "podmonitor.yaml"
MONITOR = "canary-controller-variants"
HTTPS_MONITOR = "tls-variants"
OLD_MONITOR = "targetport-variants"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
CATALOG = load_catalog()


# the canaries whose pods are scraped, one per kind of router; no Prometheus reads them here
PROMETHEUS = "http://prometheus.invalid:9090"
KSERVE_CANARY = model_canary(
    base=world_canary("hf", PROMETHEUS, namespace=NS, traffic={"router": "kserve"})
)
LLM_CANARY = model_canary(
    base=world_canary("llm", PROMETHEUS, namespace=NS, traffic={"router": "llmisvc"})
)
MESH_CANARY = model_canary(
    base=world_canary("mesh", PROMETHEUS, namespace=NS, traffic={"router": "istio"})
)


def old_monitor() -> dict[str, Any]:
    """The PodMonitor shipped before: one endpoint, ``targetPort: 8080``."""
    new = yaml.safe_load(SHIPPED.read_text())
    labels = new["spec"]["podMetricsEndpoints"][-1]["relabelings"]
    return {
        **new,
        "metadata": {"name": OLD_MONITOR, "namespace": MONITORING},
        "spec": {
            **new["spec"],
            "podMetricsEndpoints": [
                {"targetPort": 8080, "path": "/metrics", "interval": "15s", "relabelings": labels}
            ],
        },
    }


def https_monitor() -> dict[str, Any]:
    """The chart's PodMonitor where KServe serves LLMInferenceServices over TLS."""
    values = {"podMonitor": {"llmInferenceService": {"scheme": "https"}}}
    (doc,) = [d for d in render(values) if d["kind"] == "PodMonitor"]
    doc["metadata"] = {"name": HTTPS_MONITOR, "namespace": MONITORING}
    return doc


def llmisvc_pod(role: Role) -> dict[str, Any]:
    """A pod as KServe v0.20.0's LLMInferenceService controller makes one (single node): its
    workload labels (workload_single_node.go singleNodeLabels + component + llm-d role), the
    ``spec.labels`` it propagates onto the pod template (our render's), and the container
    ``main`` of config-llm-template.yaml with its one port, 8000, unnamed."""
    llmisvc = llm_inference_service(LLM_CANARY, role, CATALOG)
    name = llmisvc["metadata"]["name"]
    labels = {
        "app.kubernetes.io/component": "llminferenceservice-workload",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "llminferenceservice",
        "kserve.io/component": "workload",
        "llm-d.ai/role": "both",
        **llmisvc["spec"]["labels"],
    }
    main = {
        "name": "main",
        "image": "ghcr.io/llm-d/llm-d-cuda:v0.8.0",
        "ports": [{"containerPort": 8000, "protocol": "TCP"}],
    }
    return pod(f"{name}-kserve-0", labels, [main])


def mesh_pod(role: Role, native: bool) -> dict[str, Any]:
    """A KServe predictor pod with Istio 1.27.1's sidecar injected: ``istio-proxy`` declares
    port 15090 named ``http-envoy-prom``, as a container or as a native sidecar (an init
    container with ``restartPolicy: Always``)."""
    proxy: dict[str, Any] = {
        "name": "istio-proxy",
        "image": "docker.io/istio/proxyv2:1.27.1",
        "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
    }
    model = {"name": "kserve-container", "image": "kserve/huggingfaceserver:v0.20.0"}
    name = f"mesh-{role}-{'native' if native else 'sidecar'}"
    if native:
        return pod(
            name, object_labels(MESH_CANARY, role), [model], [{**proxy, "restartPolicy": "Always"}]
        )
    return pod(name, object_labels(MESH_CANARY, role), [model, proxy])


def pod(
    name: str,
    labels: dict[str, str],
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers,
        "tolerations": [GPU_TOLERATION],
        "automountServiceAccountToken": False,
    }
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": spec,
    }


def post(cluster: LoopbackCluster, path: str, body: dict[str, Any], timeout: float = 60) -> None:
    """Create ``body``; retried while the namespace's ServiceAccount or a webhook is not there
    yet, an existing object kept (the cluster is shared by the session)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.request("POST", path, body)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                return
            detail = exc.read().decode(errors="replace")
            if time.monotonic() > deadline:
                raise AssertionError(f"POST {path}: {exc.code} {detail}") from exc
        time.sleep(0.5)


def running_pods(cluster: LoopbackCluster, want: int, timeout: float = 240) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        pods = cluster.request("GET", f"/api/v1/namespaces/{NS}/pods")["items"]
        up = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") == "Running"
            and (p.get("status") or {}).get("podIP")
            and not p["metadata"].get("deletionTimestamp")
        ]
        if len(up) >= want:
            return up
        if time.monotonic() > deadline:
            summary = {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in pods}
            raise AssertionError(f"{want} running pods wanted in {NS}, have {summary}")
        time.sleep(0.5)


@dataclass
class Scrape:
    prometheus: PrometheusServer
    config: str
    pods: dict[str, dict[str, Any]]
    """name -> pod, as the API server has it"""
    seen: dict[str, Any]
    """``/api/v1/targets`` once every pod has its targets"""

    def active(self, pool: str, pod_name: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self.seen["activeTargets"]
            if t["scrapePool"] == pool and t["labels"].get("pod") == pod_name
        ]

    def kserve_pods(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.pods.values()
            if "serving.kserve.io/inferenceservice" in p["metadata"]["labels"]
        ]


def pool(monitor: str, endpoint: int) -> str:
    return f"podMonitor/{MONITORING}/{monitor}/{endpoint}"


KSERVE_POOL, LLM_POOL, MESH_POOL = (pool(MONITOR, i) for i in range(3))


@pytest.fixture(scope="module")
def scrape(
    kserve_loopback: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scrape]:
    cluster = kserve_loopback
    start_operator(cluster)
    for ns in (MONITORING, NS):
        post(
            cluster,
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
    monitors = f"/apis/monitoring.coreos.com/v1/namespaces/{MONITORING}/podmonitors"
    for monitor in (yaml.safe_load(SHIPPED.read_text()), https_monitor(), old_monitor()):
        post(cluster, monitors, monitor)

    isvc = kserve_router.build_inferenceservice(KSERVE_CANARY, CATALOG, 5, False)
    post(cluster, f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices", isvc)
    extra = [llmisvc_pod(r) for r in ROLES]
    extra += [mesh_pod("stable", False), mesh_pod("candidate", True)]
    for body in extra:
        post(cluster, f"/api/v1/namespaces/{NS}/pods", body)
    # KServe: one stable and one candidate predictor pod (the router asks the stable for 1 + 1
    # replicas, KServe lowers that by the canary's)
    pods = {p["metadata"]["name"]: p for p in running_pods(cluster, 2 + len(extra))}

    jobs = [pool(MONITOR, i) for i in range(3)] + [pool(HTTPS_MONITOR, 1), pool(OLD_MONITOR, 0)]
    server, config = start_scraper(
        cluster,
        MONITORING,
        "scrape",
        tmp_path_factory.mktemp("scrape"),
        ready=lambda text: all(f"job_name: {job}" in text for job in jobs),
        timeout=180,
    )
    try:
        expected = {
            (KSERVE_POOL, n)
            for n, p in pods.items()
            if "serving.kserve.io/inferenceservice" in p["metadata"]["labels"]
        }
        expected |= {(LLM_POOL, b["metadata"]["name"]) for b in extra[:2]}
        expected |= {(MESH_POOL, b["metadata"]["name"]) for b in extra[2:]}
        deadline = time.monotonic() + 180
        while True:
            seen = targets(server)
            found = {(t["scrapePool"], t["labels"].get("pod")) for t in seen["activeTargets"]}
            if expected <= found or time.monotonic() > deadline:
                break
            time.sleep(1)
        yield Scrape(server, config, pods, seen)
    finally:
        server.stop()
        # the module's KServe predictors hold GPUs of the cluster other modules share
        release(RealKube.connect(kubeconfig=str(cluster.kubeconfig)), NS)


def test_kserve_canary_predictor_pods_are_targets_with_canary_and_variant(scrape: Scrape) -> None:
    kserve = scrape.kserve_pods()
    variants = sorted(
        p["metadata"]["labels"].get("canary.controlplane.dev/variant", "") for p in kserve
    )
    # KServe copied each predictor's labels (ours) onto its pods
    assert variants == ["bf16", "nf4"], variants
    for p in kserve:
        name, ip = p["metadata"]["name"], p["status"]["podIP"]
        # no container port: KServe's Hugging Face runtime declares none
        (container,) = [c for c in p["spec"]["containers"] if c["name"] == "kserve-container"]
        assert not container.get("ports")
        (target,) = scrape.active(KSERVE_POOL, name)
        labels = target["labels"]
        assert labels["namespace"] == NS
        assert labels["canary"] == "hf"
        assert labels["variant"] == p["metadata"]["labels"]["canary.controlplane.dev/variant"]
        assert labels["container"] == "kserve-container"
        assert target["scrapeUrl"] == f"http://{ip}:8080/metrics"
        # the port-free target Prometheus makes for a container without ports
        assert "__meta_kubernetes_pod_container_port_number" not in target["discoveredLabels"]


def test_llminferenceservice_pods_are_targets_on_port_8000(scrape: Scrape) -> None:
    for role, variant in zip(ROLES, ("bf16", "nf4"), strict=True):
        name = llmisvc_pod(role)["metadata"]["name"]
        ip = scrape.pods[name]["status"]["podIP"]
        (target,) = scrape.active(LLM_POOL, name)
        assert {k: target["labels"][k] for k in ("namespace", "canary", "variant")} == {
            "namespace": NS,
            "canary": "llm",
            "variant": variant,
        }
        assert target["scrapeUrl"] == f"http://{ip}:8000/metrics"
        (tls,) = scrape.active(pool(HTTPS_MONITOR, 1), name)
        assert tls["scrapeUrl"] == f"https://{ip}:8000/metrics"
        # not scraped as a KServe predictor nor as a sidecar
        assert not scrape.active(KSERVE_POOL, name)
        assert not scrape.active(MESH_POOL, name)


def test_istio_sidecars_are_targets_and_only_they(scrape: Scrape) -> None:
    for role, variant, native in zip(ROLES, ("bf16", "nf4"), (False, True), strict=True):
        name = mesh_pod(role, native)["metadata"]["name"]
        ip = scrape.pods[name]["status"]["podIP"]
        (target,) = scrape.active(MESH_POOL, name)
        assert {k: target["labels"][k] for k in ("namespace", "canary", "variant")} == {
            "namespace": NS,
            "canary": "mesh",
            "variant": variant,
        }
        assert target["scrapeUrl"] == f"http://{ip}:15090/stats/prometheus"
        # the model container of the same pod is scraped as a predictor
        assert len(scrape.active(KSERVE_POOL, name)) == 1
    for p in scrape.kserve_pods():  # no sidecar, no sidecar target
        assert not scrape.active(MESH_POOL, p["metadata"]["name"])


def test_the_targetport_podmonitor_shipped_before_finds_no_kserve_pod(scrape: Scrape) -> None:
    assert scrape.kserve_pods()
    for p in scrape.kserve_pods():
        assert not scrape.active(pool(OLD_MONITOR, 0), p["metadata"]["name"])
    # it is in the configuration all the same: the operator did generate it
    assert f"job_name: {pool(OLD_MONITOR, 0)}" in scrape.config
