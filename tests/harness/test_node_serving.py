"""The real KServe v0.20.0 runs the InferenceServices the product renders as pods on the real node.

On the loopback control plane with kube-controller-manager, kube-scheduler, the real KServe
(Standard mode) and a real node (:mod:`harness.node`) made a GPU node with model storage and
KServe's Hugging Face runtime running the engine image (:mod:`harness.node.serving`): the
InferenceServices of :func:`controlplane.serving.render.inference_service` become Ready pods on
``node-1`` that answer the real ``openai`` client on KServe's port with the served name and
label their metrics from the downward API. What vLLM would refuse fails the pod: a flag of a
variant's ``args`` (exit 2, ``CrashLoopBackOff``), a ``--max-model-len`` the model's
``config.json`` does not allow; ``crash-on-start`` loops, ``never-ready`` runs and is never
Ready under KServe's default TCP probe.
"""

from __future__ import annotations

import glob
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from support.real_serving import GPU, served_canary
from support.realnode import MARKS, main_status, ready, until

from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.serving.render import Role, inference_service, isvc_name
from controlplane.spec.models import ModelCanary
from harness.cluster.kserve import start_kserve
from harness.cluster.kubeapi import LoopbackCluster, applier, start_cluster
from harness.cluster.upstream_crds import serving_crds
from harness.cluster.workloads import start_workloads
from harness.node.node import NODE_NAME, RUN_DIR, RealNode, start_node
from harness.node.serving import HTTP_PORT, model_volume, start_serving, write_model

pytestmark = MARKS

NS = "serving"
ISVC_LABEL = "serving.kserve.io/inferenceservice"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LoopbackCluster, RealNode]]:
    folder = tmp_path_factory.mktemp("serving-cluster")
    with start_cluster(folder, crds=serving_crds()) as cluster:
        start_workloads(cluster, nodes=[])
        start_kserve(cluster)
        real = start_node(cluster, cluster.workdir / "node")
        try:
            product = load_catalog().require_gpu(GPU).product_label
            start_serving(cluster, real, product)
            apply = applier(cluster)
            apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            for obj in model_volume(NS):
                apply(obj)
            yield cluster, real
        finally:
            real.stop()


def deploy(cluster: LoopbackCluster, c: ModelCanary, *roles: Role) -> None:
    kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
    for role in roles:
        kube.apply(inference_service(c, role, load_catalog()), field_manager="test")


def isvc_pods(cluster: LoopbackCluster, name: str) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{NS}/pods?labelSelector={ISVC_LABEL}%3D{name}"
    items: list[dict[str, Any]] = cluster.request("GET", path)["items"]
    return items


def release(cluster: LoopbackCluster) -> None:
    kube = RealKube.connect(kubeconfig=str(cluster.kubeconfig))
    for obj in kube.list("serving.kserve.io/v1beta1", "InferenceService", NS):
        kube.delete(Ref.of(obj))
    until(
        lambda: not cluster.request("GET", f"/api/v1/namespaces/{NS}/pods")["items"],
        "the serving pods gone",
    )


def container_log(pod: dict[str, Any], container: str = "kserve-container") -> str:
    """Every log file kubelet kept of ``container`` in ``pod`` (its ``podLogsDir``)."""
    meta = pod["metadata"]
    pattern = f"{RUN_DIR}/pod-logs/{NS}_{meta['name']}_{meta['uid']}/{container}/*.log"
    return "".join(Path(path).read_text(encoding="utf-8") for path in sorted(glob.glob(pattern)))


def crash_looping(cluster: LoopbackCluster, name: str) -> dict[str, Any] | None:
    """The pod of ``name`` once kubelet has restarted its failed engine."""
    for pod in isvc_pods(cluster, name):
        status = main_status(pod)
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff" and status.get("lastState"):
            return pod
    return None


def test_rendered_inferenceservices_serve_on_the_real_node(
    stack: tuple[LoopbackCluster, RealNode],
) -> None:
    cluster, _ = stack
    c = served_canary(NS)
    deploy(cluster, c, "stable", "candidate")
    try:
        wanted: tuple[tuple[Role, int], ...] = (("stable", 2), ("candidate", 1))
        for role, replicas in wanted:
            name = isvc_name(c, role)
            until(
                lambda n=name, r=replicas: (
                    len(got := isvc_pods(cluster, n)) == r and all(map(ready, got))
                ),
                f"{name}: {replicas} Ready pods",
                timeout=180,
            )
            for pod in isvc_pods(cluster, name):
                assert pod["spec"]["nodeName"] == NODE_NAME
                main = pod["spec"]["containers"][0]
                # KServe's own defaults: the TCP probe on 8080, the pvc:// model at /mnt/models
                assert main["readinessProbe"]["tcpSocket"]["port"] == HTTP_PORT
                assert {"mountPath": "/mnt/models", "subPath": "llama-tiny"}.items() <= next(
                    m for m in main["volumeMounts"] if m["mountPath"] == "/mnt/models"
                ).items()
                assert "initContainers" not in pod["spec"]
                assert "--max-model-len=8192" in main["args"]
                client = openai.OpenAI(
                    base_url=f"http://{pod['status']['podIP']}:{HTTP_PORT}/v1",
                    api_key="none",
                    max_retries=0,
                )
                served = c.spec.model.name
                assert [m.id for m in client.models.list().data] == [served]
                answer = client.completions.create(model=served, prompt="hi", max_tokens=2)
                assert answer.choices[0].text
                url = f"http://{pod['status']['podIP']}:{HTTP_PORT}/metrics"
                with urllib.request.urlopen(url, timeout=10) as got:
                    metrics = got.read().decode()
                variant = (c.spec.stable if role == "stable" else c.spec.candidate).name
                (count,) = [
                    line
                    for line in metrics.splitlines()
                    if line.startswith("vllm:e2e_request_latency_seconds_count{")
                ]
                for label in (f'namespace="{NS}"', f'canary="{c.metadata.name}"'):
                    assert label in count
                assert f'variant="{variant}"' in count
    finally:
        release(cluster)


@pytest.mark.parametrize(
    ("candidate", "exit_code", "message"),
    [
        ({"args": ["--dtype=float8"]}, 2, "argument --dtype: invalid choice: 'float8'"),
        ({"args": ["--inject=crash-on-start"]}, 1, "torch.OutOfMemoryError: CUDA out of memory"),
        (
            {"storageUri": "pvc://models/llama-4k"},
            1,
            "User-specified max_model_len (8192) is greater than the derived max_model_len "
            "(max_position_embeddings=4096",
        ),
        ({"storageUri": "pvc://models/missing"}, 1, "Invalid repository ID or local directory"),
    ],
    ids=["vllm-refuses-a-flag", "crash-on-start", "context-too-long", "no-model"],
)
def test_what_vllm_refuses_fails_the_pod(
    stack: tuple[LoopbackCluster, RealNode], candidate: dict[str, Any], exit_code: int, message: str
) -> None:
    cluster, _ = stack
    write_model("llama-4k", max_position_embeddings=4096)
    c = served_canary(NS, **candidate)
    deploy(cluster, c, "candidate")
    try:
        pod = until(
            lambda: crash_looping(cluster, isvc_name(c, "candidate")),
            "the candidate in CrashLoopBackOff",
            timeout=180,
        )
        assert main_status(pod)["lastState"]["terminated"]["exitCode"] == exit_code
        assert message in container_log(pod)
        assert "Traceback" not in container_log(pod)
        assert not ready(pod)
    finally:
        release(cluster)


def test_a_never_ready_candidate_runs_and_is_never_ready(
    stack: tuple[LoopbackCluster, RealNode],
) -> None:
    cluster, _ = stack
    c = served_canary(NS, args=["--inject=never-ready"])
    deploy(cluster, c, "candidate")
    try:
        name = isvc_name(c, "candidate")

        def running() -> dict[str, Any] | None:
            for pod in isvc_pods(cluster, name):
                started = (main_status(pod).get("state") or {}).get("running") or {}
                if started:
                    return pod
            return None

        pod = until(running, "the never-ready candidate running")
        # KServe's TCP probe every 10 s, 3 failures: well past the first probes
        until(
            lambda: any(
                "never-ready injected" in container_log(p) for p in isvc_pods(cluster, name)
            ),
            "the engine loading",
        )
        time.sleep(25)
        pod = isvc_pods(cluster, name)[0]
        assert not ready(pod)
        assert main_status(pod)["restartCount"] == 0
        isvc = cluster.request(
            "GET", f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices/{name}"
        )
        conditions = {c["type"]: c["status"] for c in isvc["status"]["conditions"]}
        assert conditions["Ready"] == "False"
    finally:
        release(cluster)
