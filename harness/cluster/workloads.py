"""Deployments that become Ready pods on the loopback control plane: controllers, scheduler, nodes.

Owns what turns the API server of :mod:`harness.cluster.kubeapi` into a cluster that runs
workloads without a kubelet: ``kube-controller-manager`` (Deployments -> ReplicaSets -> Pods,
EndpointSlices for Services, garbage collection of owned objects, namespace deletion),
``kube-scheduler`` (binding pods to nodes by node selector, toleration and the
``nvidia.com/gpu`` extended resource, as in a real cluster) and ``kwok`` (the kubelet's part:
fake nodes stay Ready, scheduled pods get an IP and reach Running/Ready, deleted pods go).

:func:`gpu_nodes` builds one fake node per GPU of the catalogue
(:mod:`controlplane.profiles.catalog`), labelled as NVIDIA's GPU Feature Discovery labels a real
one (``nvidia.com/gpu.product`` is what the rendered InferenceServices select on), with
``nvidia.com/gpu`` capacity and the ``nvidia.com/gpu:NoSchedule`` taint GPU pools carry.

Upstream facts relied on (read at the pinned versions): kwok v0.7.0 manages the nodes annotated
``kwok.x-k8s.io/node: fake`` (its own deployment, ``kustomize/kwok/kwok.yaml``) and, given no
stages, applies its default node-fast / pod-fast stages (``pkg/kwok/cmd/root.go``,
``getDefaultNodeStages`` / ``getDefaultPodStages``); kube-apiserver v1.34.10 puts the
``node.kubernetes.io/not-ready`` taint on every new node (``plugin/pkg/admission/nodetaint``),
which only kube-controller-manager's node lifecycle controller lifts.
:func:`start_workloads` starts the three programs and creates the nodes; called by
:mod:`harness.cluster.kserve`, ``make kube-up`` and the test fixtures. Nothing here runs a
container: a pod is Ready because kwok says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, binary

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
"""Nodes kwok manages carry ``kwok.x-k8s.io/node: fake`` (see the module docstring)."""
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
CONTROLLERS = (
    "deployment,replicaset,garbagecollector,namespace,endpoint,endpointslice,serviceaccount,"
    "nodelifecycle,persistentvolume-binder,pvc-protection,pv-protection,horizontalpodautoscaling,"
    "root-ca-cert-publisher"
)
"""kube-controller-manager's controllers a rollout needs. ``horizontalpodautoscaling``: KServe
v0.20.0's Standard mode leaves a predictor's Deployment at one replica and creates an HPA with
the predictor's ``minReplicas`` / ``maxReplicas``; with no metrics server the HPA controller
still raises a Deployment below its minimum to it (Kubernetes v1.34.10
``pkg/controller/podautoscaler/horizontal.go``, "Current number of replicas below
Spec.MinReplicas") and moves nothing else. ``nodelifecycle`` lifts the
``node.kubernetes.io/not-ready`` taint admission puts on a new node, ``serviceaccount``
creates the ``default`` ServiceAccount KServe's credential builder reads,
``persistentvolume-binder`` binds the claim of the real node's model volume
(:mod:`harness.node.serving`) and ``pvc-protection`` / ``pv-protection`` release the claim and
the volume once no pod uses them (the API server's ``StorageObjectInUseProtection`` admission
puts their finalizers on both; without these controllers a deleted namespace holding a claim
stays ``Terminating``), ``root-ca-cert-publisher`` writes the ``kube-root-ca.crt``
ConfigMap of every namespace, which a pod's mounted ServiceAccount token comes with (the CA its
Kubernetes client trusts), ``endpoint`` (``endpoints-controller``) writes each Service's v1
Endpoints, the only thing the API server's Service proxy resolves a Service by (v1.34.10
``pkg/registry/core/service/storage/storage.go``, ``ResourceLocation``: without them every
call through it is a 404 naming the Service), which the controller reads a quality canary's
pairer through."""
POD_CIDR = "10.244.0.1/16"


def gpu_node(name: str, product: str, gpus: int = 8) -> dict[str, Any]:
    """A fake GPU node: GFD's labels, ``nvidia.com/gpu`` capacity, the GPU taint (pure)."""
    capacity = {"cpu": "192", "memory": "2Ti", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.count": str(gpus),
            },
        },
        "spec": {"taints": [GPU_TAINT]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def gpu_nodes(gpus_per_node: int = 8) -> list[dict[str, Any]]:
    """One fake node per GPU of the built-in catalogue, named ``gpu-<catalogue name>``."""
    from controlplane.profiles.catalog import load_catalog

    catalog = load_catalog()
    nodes = []
    for name in catalog.gpu_names():
        profile = catalog.require_gpu(name)
        nodes.append(gpu_node(f"gpu-{name}", profile.product_label, gpus_per_node))
    return nodes


def start_workloads(
    cluster: LoopbackCluster,
    *,
    nodes: Iterable[dict[str, Any]] | None = None,
    detach: bool = False,
    timeout: float = 60.0,
) -> None:
    """Start kube-controller-manager, kube-scheduler and kwok against ``cluster`` and create
    ``nodes`` (default :func:`gpu_nodes`); returns once every node is Ready."""
    kubeconfig = str(cluster.kubeconfig)
    cluster.spawn(
        "kube-controller-manager",
        [
            str(binary("kube-controller-manager")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--controllers={CONTROLLERS}",
            f"--root-ca-file={cluster.ca}",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--v=0",
        ],
        detach=detach,
    )
    cluster.spawn(
        "kube-scheduler",
        [
            str(binary("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=0",
        ],
        detach=detach,
    )
    cluster.spawn(
        "kwok",
        [
            str(binary("kwok")),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.244.0.1",
            "--node-lease-duration-seconds=40",
        ],
        detach=detach,
    )
    wanted = list(gpu_nodes() if nodes is None else nodes)
    for node in wanted:
        cluster.request("POST", "/api/v1/nodes", node)
    deadline = time.monotonic() + timeout
    names = {n["metadata"]["name"] for n in wanted}
    while True:
        items = cluster.request("GET", "/api/v1/nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        }
        if names <= ready:
            return
        if time.monotonic() > deadline:
            raise KubeSetupError(
                f"kwok did not make nodes {sorted(names - ready)} Ready:\n"
                + cluster.log_tail(names=("kwok", "kube-controller-manager", "kube-scheduler"))
            )
        time.sleep(0.2)
