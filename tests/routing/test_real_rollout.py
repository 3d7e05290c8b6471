"""Whole canaries on real traffic: the controller, KServe, a real node, Traefik and Prometheus.

Everything runs for real on this machine: the loopback control plane with kube-controller-manager
and kube-scheduler, KServe v0.20.0 serving the product's InferenceServices as pods of the engine
image on the real node (:mod:`harness.node.serving`), Traefik v3.6.12 as the Gateway API data
plane, the Prometheus Operator configuring Prometheus from the chart's PodMonitor
(:mod:`harness.cluster.monitoring`), and ``canaryctl controller`` as a process (out of cluster, on
the admin kubeconfig). OpenAI completions are sent through the gateway at a fixed rate, each
canary on its own host (``spec.traffic.hosts``), from before its first step to after its end.

Two canaries run side by side on the four GPUs the node advertises:

- ``good``: an FP8 candidate of the same model, promoted 25 -> 75 -> 100;
- ``slow``: a candidate whose engine adds 3 s to every request (``args:
  ["--inject=latency=+3s"]``), rolled back at its first step with the latency check as reason,
  written in its status and as an Event.

For each, every request's answer is counted per phase (from its status history): none may fail
once the first step's weights are verified, through the steps, the promotion and the rollback.
Requests before that are not counted: the HTTPRoute is written when the InferenceServices are,
before KServe has created the stable's predictor Service, and a Gateway answers 500 for a
backendRef to a Service that does not exist (Gateway API, ``HTTPBackendRef``) -- a finding of this
test, docs/testing.md.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.real_serving import GPU, traffic_canary
from support.realnode import MARKS, until

from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import LoopbackCluster, applier, start_cluster
from harness.cluster.monitoring import start_monitoring
from harness.cluster.traefik import Traefik, start_traefik
from harness.cluster.upstream_crds import all_crds
from harness.cluster.workloads import start_workloads
from harness.node.node import RealNode, start_node
from harness.node.serving import model_volume, start_serving

pytestmark = MARKS

RATE = 6.0
"""Requests per second per canary."""
API = ("canary.controlplane.dev/v1alpha1", "ModelCanary")
STEPS = ("StepStarted", "Advanced")
"""The history events that start a step: the first, then each advance."""


@dataclass
class Load:
    """OpenAI completions to ``host`` through the gateway at :data:`RATE`, each answer kept as
    (time sent, status)."""

    url: str
    host: str
    model: str
    answers: list[tuple[float, int | str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def _one(self) -> None:
        sent = time.time()
        body = json.dumps({"model": self.model, "prompt": "hello", "max_tokens": 8}).encode()
        request = urllib.request.Request(
            f"{self.url}/v1/completions",
            data=body,
            headers={"Content-Type": "application/json", "Host": self.host},
        )
        code: int | str
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                code = int(response.status)
        except urllib.error.HTTPError as exc:
            code = exc.code
        except OSError as exc:
            code = type(exc).__name__
        self.answers.append((sent, code))

    def run(self) -> None:
        started, n = time.monotonic(), 0
        while not self.stop.is_set():
            n += 1
            threading.Thread(target=self._one, daemon=True).start()
            self.stop.wait(max(0.0, started + n / RATE - time.monotonic()))


@dataclass
class Stack:
    cluster: LoopbackCluster
    node: RealNode
    gateway: Traefik
    prometheus: str
    kube: RealKube


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("rollout-cluster")
    with start_cluster(folder, crds=all_crds()) as cluster:
        start_workloads(cluster, nodes=[])
        start_kserve(cluster)
        real = start_node(cluster, cluster.workdir / "node")
        try:
            product = load_catalog().require_gpu(GPU).product_label
            start_serving(cluster, real, product)
            gateway = start_traefik(cluster)
            prometheus = start_monitoring(cluster, gateway=gateway).url
            kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
            yield Stack(cluster, real, gateway, prometheus, kube)
        finally:
            real.stop()


def status(stack: Stack, name: str) -> dict[str, Any]:
    got: dict[str, Any] = stack.kube.get(Ref(*API, name, name)).get("status") or {}
    return got


def phases(history: list[dict[str, Any]], end: float) -> list[tuple[str, float, float]]:
    """(label, start, end) of each step and of the end (promotion or rollback), from the status
    history (pure)."""
    marks = [
        (
            f"step {h['step']} at {h['weight']}%" if h["type"] in STEPS else h["type"],
            float(h["time"]),
        )
        for h in history
        if h["type"] in (*STEPS, "Promoted", "RolledBack")
    ]
    return [
        (label, at, marks[i + 1][1] if i + 1 < len(marks) else end)
        for i, (label, at) in enumerate(marks)
    ]


def test_a_healthy_candidate_is_promoted_and_a_slow_one_rolled_back_on_real_traffic(
    stack: Stack,
) -> None:
    apply = applier(stack.cluster)
    specs = {
        "good": traffic_canary("good"),
        "slow": traffic_canary("slow", args=["--inject=latency=+3s"]),
    }
    for name in specs:
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for obj in model_volume(name):
            apply(obj)
    log = (stack.cluster.workdir / "controller.log").open("wb")
    controller = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("canaryctl")),
            "controller",
            f"--kubeconfig={stack.cluster.kubeconfig}",
            f"--prometheus={stack.prometheus}",
            "--namespace=good",
            "--namespace=slow",
            "--tick=1s",
            "--progress-deadline=180s",
            "--promote-cleanup-delay=20s",
            "--rollback-cleanup-delay=20s",
            "--api-port=0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    loads = {name: Load(stack.gateway.url, f"{name}.example.com", f"{name}-llm") for name in specs}
    threads = [threading.Thread(target=load.run, daemon=True) for load in loads.values()]
    try:
        for spec in specs.values():
            stack.kube.apply(spec, field_manager="test")
        for name in specs:  # traffic from the first verified step on (see the docstring)
            until(lambda n=name: status(stack, n).get("step", 0) >= 1, f"{name} at step 1", 240)
        for thread in threads:
            thread.start()
        until(
            lambda: (
                status(stack, "good").get("phase") == "promoted"
                and status(stack, "slow").get("phase") == "rolled_back"
            ),
            "good promoted and slow rolled back",
            timeout=420,
        )
        time.sleep(25)  # past the cleanup delays: the losing variants released under load
    finally:
        for load in loads.values():
            load.stop.set()
        for thread in threads:
            thread.join(timeout=5)
        controller.terminate()
        controller.wait(timeout=30)
        log.close()
    time.sleep(3)  # the last answers in flight

    report = {}
    for name, load in loads.items():
        got = status(stack, name)
        end = time.time()
        counts: dict[str, collections.Counter[int | str]] = {}
        for label, start, stop in phases(got["history"], end):
            counts[label] = collections.Counter(c for t, c in load.answers if start <= t < stop)
        report[name] = {label: dict(c) for label, c in counts.items()}
    failed = {
        name: {
            label: {c: n for c, n in codes.items() if c != 200} for label, codes in phases_.items()
        }
        for name, phases_ in report.items()
    }
    assert all(not codes for p in failed.values() for codes in p.values()), report
    good, slow = status(stack, "good"), status(stack, "slow")
    steps = [h["weight"] for h in good["history"] if h["type"] in STEPS]
    assert steps == [25, 75, 100], good["history"]
    assert any(h["type"] == "Promoted" for h in good["history"])
    rolled = [h for h in slow["history"] if h["type"] == "RolledBack"]
    assert rolled, slow["history"]
    assert "latency" in rolled[0]["message"], rolled
    events = stack.cluster.request("GET", "/api/v1/namespaces/slow/events")["items"]
    assert any(e["reason"] == "RolledBack" and "latency" in e["message"] for e in events), [
        (e["reason"], e["message"]) for e in events
    ]
    print(json.dumps(report, indent=1))  # requests per phase, shown with -s
