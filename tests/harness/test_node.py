"""A real node: kubelet v1.34.10, containerd, runc and CNI run the engine image built here.

The loopback control plane with kube-controller-manager and kube-scheduler
(:mod:`harness.cluster.workloads`, no kwok node in the way) gets a real node
(:func:`harness.node.node.start_node`). What it shows, read back as ``kubectl`` would:

- a Deployment of the engine image becomes Ready pods because kubelet ran their readiness probe
  against a real process, each on its own address on the node's bridge; the EndpointSlice of a
  Service lists them; the real ``openai`` client gets answers from each pod's address;
- an engine that crashes on start (a GPU out of memory at load) loops in ``CrashLoopBackOff``;
  one that never passes its probe runs but is never a ready endpoint; a killed engine process is
  restarted by kubelet;
- with the node's cluster network (``cluster_network=True``: kube-proxy and CoreDNS), a pod
  reaches a Service by its DNS name, ``engine.serving.svc.cluster.local``: CoreDNS answers its
  ClusterIP, kube-proxy's rules take the connection to a pod on the same bridge and back, and so
  from the host, as a Workflow pod on the node's network connects;
- ``make kube-up NODE=1`` starts the node with that network (CoreDNS answers for the API
  server's own Service);
- stopping the node (and ``make kube-down`` after ``make kube-up NODE=1``) leaves no process,
  mount, network namespace, link, iptables rule (kube-proxy's of both families included), cgroup
  or file behind.

Needs root and the Debian packages of ``scripts/ensure-node.sh`` (``make kube-tools``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from support.realnode import (
    MARKS,
    MODEL,
    PORT,
    deployment,
    main_status,
    pods,
    ready,
    ready_endpoints,
    service,
    until,
)

from harness import cli
from harness.cluster.kubeapi import SERVICE_CIDR, LoopbackCluster, start_cluster
from harness.cluster.workloads import start_workloads
from harness.node import host, node, services
from harness.node.node import RealNode, start_node

pytestmark = MARKS

NS = "serving"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    with start_cluster(tmp_path_factory.mktemp("node-cluster")) as running:
        start_workloads(running, nodes=[])
        running.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        yield running


@pytest.fixture(scope="module")
def real(cluster: LoopbackCluster) -> Iterator[RealNode]:
    started = start_node(cluster, cluster.workdir / "node", cluster_network=True)
    yield started
    started.stop()


def test_a_deployment_runs_real_pods_that_answer_openai(
    cluster: LoopbackCluster, real: RealNode
) -> None:
    cluster.request(
        "POST",
        f"/apis/apps/v1/namespaces/{NS}/deployments",
        deployment(NS, "engine", real.images["engine"], 2, "--served-model-name", MODEL),
    )
    cluster.request("POST", f"/api/v1/namespaces/{NS}/services", service(NS, "engine"))
    running = until(
        lambda: (
            (got := pods(cluster, NS, "engine")) and len(got) == 2 and all(map(ready, got)) and got
        ),
        "two Ready engine pods",
    )
    addresses = {p["status"]["podIP"] for p in running}
    assert len(addresses) == 2
    for pod in running:
        assert pod["spec"]["nodeName"] == node.NODE_NAME
        assert pod["status"]["hostIP"] == node.NODE_IP
        assert main_status(pod)["imageID"].startswith("sha256:")  # run by containerd
    assert until(
        lambda: ready_endpoints(cluster, NS, "engine") == addresses, "both ready endpoints"
    )

    for address in sorted(addresses):
        client = OpenAI(base_url=f"http://{address}:{PORT}/v1", api_key="none", max_retries=0)
        assert [m.id for m in client.models.list().data] == [MODEL]
        answer = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8
        )
        assert answer.choices[0].message.content
        assert answer.usage is not None
        assert answer.usage.completion_tokens >= 1
        with urllib.request.urlopen(f"http://{address}:{PORT}/metrics", timeout=10) as got:
            metrics = got.read().decode()
        (count,) = [
            line
            for line in metrics.splitlines()
            if line.startswith("vllm:e2e_request_latency_seconds_count{")
        ]
        assert f'model_name="{MODEL}"' in count
        assert f'namespace="{NS}"' in count  # from the downward API
        assert float(count.rsplit(" ", 1)[1]) == 1.0


ASK = (
    "import json, sys, urllib.request\n"
    "url = 'http://engine.serving.svc.cluster.local/v1/models'\n"
    "with urllib.request.urlopen(url, timeout=10) as answer:\n"
    "    print(json.dumps([m['id'] for m in json.load(answer)['data']]))\n"
)
"""What the client pod runs: the engine Service's models, asked by its cluster DNS name."""


def test_a_pod_reaches_a_service_by_its_cluster_dns_name(
    cluster: LoopbackCluster, real: RealNode
) -> None:
    until(lambda: ready_endpoints(cluster, NS, "engine"), "the engine Service's endpoints")
    service_ip = cluster.request("GET", f"/api/v1/namespaces/{NS}/services/engine")["spec"][
        "clusterIP"
    ]
    name = f"engine.{NS}.svc.cluster.local"
    assert services.resolve(name, node.NODE_IP) == [service_ip]
    assert services.resolve(f"engine.{NS}.svc.cluster.local.example.com", node.NODE_IP) == []
    with urllib.request.urlopen(f"http://{service_ip}/v1/models", timeout=10) as answer:
        assert [m["id"] for m in json.load(answer)["data"]] == [MODEL]  # from the host
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [
            {
                "name": "ask",
                "image": real.images["engine"],
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", ASK],
            }
        ],
    }
    body = {"metadata": {"name": "ask", "namespace": NS}, "spec": spec}
    created = cluster.request("POST", f"/api/v1/namespaces/{NS}/pods", body)

    def finished() -> str | None:
        got = cluster.request("GET", f"/api/v1/namespaces/{NS}/pods/ask")
        phase = (got.get("status") or {}).get("phase")
        return str(phase) if phase in ("Succeeded", "Failed") else None

    phase = until(finished, "the client pod finished", 120)
    folder = node.RUN_DIR / "pod-logs" / f"{NS}_ask_{created['metadata']['uid']}" / "ask"
    said = "".join(p.read_text() for p in sorted(folder.glob("*.log")))
    assert phase == "Succeeded", said
    assert f'["{MODEL}"]' in said


def test_an_engine_crashing_on_start_loops_and_a_never_ready_one_gets_no_endpoint(
    cluster: LoopbackCluster, real: RealNode
) -> None:
    image = real.images["engine"]
    for name, fault in (("crashing", "crash-on-start"), ("unready", "never-ready")):
        cluster.request(
            "POST",
            f"/apis/apps/v1/namespaces/{NS}/deployments",
            deployment(NS, name, image, 1, f"--inject={fault}"),
        )
        cluster.request("POST", f"/api/v1/namespaces/{NS}/services", service(NS, name))

    def crash_looping() -> dict[str, Any] | None:
        got = pods(cluster, NS, "crashing")
        status = main_status(got[0]) if got else {}
        waiting = (status.get("state") or {}).get("waiting") or {}
        return status if waiting.get("reason") == "CrashLoopBackOff" else None

    status = until(crash_looping, "the crashing engine in CrashLoopBackOff")
    assert status["restartCount"] >= 1
    assert status["lastState"]["terminated"]["exitCode"] != 0

    def running_unready() -> dict[str, Any] | None:
        got = pods(cluster, NS, "unready")
        if not got:
            return None
        state = main_status(got[0]).get("state") or {}
        return got[0] if "running" in state else None

    name = until(running_unready, "the never-ready engine running")["metadata"]["name"]

    def failed_probes() -> int:  # kubelet counts repeats of one event in its count
        path = f"/api/v1/namespaces/{NS}/events?fieldSelector=involvedObject.name%3D{name}"
        events = cluster.request("GET", path)["items"]
        return sum(e.get("count") or 1 for e in events if e.get("reason") == "Unhealthy")

    until(lambda: failed_probes() >= 3, "three readiness probes failed")
    pod = pods(cluster, NS, "unready")[0]
    assert not ready(pod)
    with pytest.raises(ConnectionRefusedError):  # loading for ever, as vLLM refuses meanwhile
        socket.create_connection((pod["status"]["podIP"], PORT), timeout=5).close()
    assert ready_endpoints(cluster, NS, "unready") == set()


def test_kubelet_restarts_a_killed_engine(cluster: LoopbackCluster, real: RealNode) -> None:
    pod = pods(cluster, NS, "engine")[0]
    before = main_status(pod)["restartCount"]
    name = pod["metadata"]["name"]
    marker = f"pod{pod['metadata']['uid']}"
    engines = [
        pid
        for pid, cmd in host.node_processes(real.run, node.CGROUP).items()
        if "controlplane.local.serve" in cmd and marker in Path(f"/proc/{pid}/cgroup").read_text()
    ]
    assert len(engines) == 1, engines
    os.kill(engines[0], signal.SIGKILL)

    def restarted() -> bool:
        got = cluster.request("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
        return bool(main_status(got)["restartCount"] > before) and ready(got)

    until(restarted, "the engine restarted and Ready again")


def test_stopping_the_node_leaves_nothing_behind(real: RealNode) -> None:
    assert real.stop() == {}
    after = host.read_footprint(real.run, node.CGROUP)
    assert after.left_over(real.before) == {}
    assert not real.run.exists()
    assert "Started kubelet" in (real.folder / "log" / "kubelet.log").read_text()  # logs stay


def test_kube_up_node_then_kube_down_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "up"
    before = host.read_footprint(node.RUN_DIR, node.CGROUP)
    try:
        assert cli.main(["up", "--dir", str(folder), "--node"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-3] == f"KUBECONFIG={folder / 'kubeconfig'}"
        assert re.fullmatch(r"GATEWAY_URL=http://127\.0\.0\.1:\d+", lines[-2])
        assert re.fullmatch(r"PROMETHEUS_URL=http://127\.0\.0\.1:\d+", lines[-1])
        # the node's cluster network: CoreDNS on the bridge answers for the API server's own
        # Service, which takes the first address of the Service range
        first = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
        name = "kubernetes.default.svc.cluster.local"
        assert services.resolve(name, node.NODE_IP) == [first]
        # Traefik answers; no HTTPRoute matches yet
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(lines[-2].split("=", 1)[1] + "/v1/models", timeout=10)
        # the operator configured Prometheus from the chart's PodMonitor and Traefik's
        # ScrapeConfig; the gateway is scraped
        prometheus = lines[-1].split("=", 1)[1]

        def gateway_up() -> bool:
            with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=10) as got:
                active = json.loads(got.read())["data"]["activeTargets"]
            pools = {t["scrapePool"]: t["health"] for t in active}
            return pools.get("scrapeConfig/monitoring/traefik") == "up"

        until(gateway_up, "Prometheus scraping Traefik", timeout=60)
        config = (folder / "prometheus" / "prometheus.yml").read_text()
        assert "podMonitor/monitoring/canary-controller-variants/0" in config
    finally:
        assert cli.main(["down", "--dir", str(folder)]) == 0
    assert host.read_footprint(node.RUN_DIR, node.CGROUP).left_over(before) == {}
    assert not folder.exists()
