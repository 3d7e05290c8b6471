"""The real Argo Workflows on the loopback control plane: its CRDs, controller and Argo Server.

Owns :func:`start_argo`: Argo Workflows :data:`ARGO_VERSION` (``workflow-controller``, ``argo
server`` and the executor ``argoexec``, built by ``scripts/build-argo.sh`` from the
``github.com/argoproj/argo-workflows/v3`` module) set up against :mod:`harness.cluster.kubeapi`'s
API server and :mod:`harness.node.node`'s real node, as its ``manifests/cluster-install`` sets it
up, with these differences, each for this machine:

- the strict CRDs of the module (``manifests/base/crds/full/``, what ``make manifests`` calls the
  full CRDs; the install manifests ship the minimal ones, which keep no schema);
- ``workflow-controller`` and ``argo server`` are host processes on the admin kubeconfig (no
  pods, no RBAC of their own), in the namespace :data:`NAMESPACE`; both listen on 127.0.0.1 only
  (the build binds their fixed listeners there, and the controller's metrics server is switched
  off: ``metricsConfig.enabled: false``);
- the Argo Server speaks TLS with the API server's own certificate (valid for 127.0.0.1, signed
  by the cluster CA: a client verifies it with ``cluster.ca``), from the Secret
  :data:`TLS_SECRET` (``--tls-certificate-secret-name``), in ``--auth-mode=client``, its default:
  it acts with the bearer token of each request, so the product's controller needs the RBAC its
  chart grants and nothing more;
- the controller's ConfigMap :data:`CONFIGMAP` (``config/config.go`` of the module, its
  ``Config``): the executor image built here (:func:`harness.node.workflow_images.
  executor_image`, ``--executor-image``), ``imagePullPolicy: Never``; and, since the API server
  listens on 127.0.0.1 (no Service reaches it), every Workflow pod takes the node's
  network (``workflowDefaults.spec.hostNetwork``) and the executor reaches the API server through
  ``KUBERNETES_SERVICE_HOST`` / ``_PORT`` (``executor.env``), as the controller's own pod does in
  the real-traffic tests; with ``dnsPolicy: ClusterFirstWithHostNet`` its steps use the cluster's
  DNS where the node runs it (``start_node(cluster_network=True)``: kube-proxy and CoreDNS,
  :mod:`harness.node.services`), so they reach a Service by its name as in any cluster;
- the executor's Role (``manifests/quick-start/base/executor/emissary/executor-role.yaml``:
  ``create`` and ``patch`` on ``workflowtaskresults``) bound to the ``default`` ServiceAccount of
  each namespace Workflows run in (:func:`allow_workflows`).

The cluster must run with ``service_accounts=True`` (the executor calls the API with its pod's
token) and :func:`~harness.cluster.workloads.start_workloads` (the token's CA ConfigMap).
Called by the test fixtures (``tests/support/real_argo.py``). Upstream files are read from the
Go module cache at the pinned version, never copied here.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import yaml

from controlplane.local.ports import free_port
from harness.cluster.kubeapi import KubeSetupError, LoopbackCluster, applier, binary, install_crds
from harness.cluster.upstream_crds import Upstream, crds
from harness.node.node import RealNode
from harness.node.workflow_images import executor_image, python_image

ARGO_VERSION = "v3.7.3"
"""Keep equal to ``ARGO_VERSION`` in ``scripts/build-argo.sh``."""
ARGO = Upstream(
    "github.com/argoproj/argo-workflows/v3",
    ARGO_VERSION,
    tuple(
        f"manifests/base/crds/full/argoproj.io_{name}.yaml"
        for name in (
            "clusterworkflowtemplates",
            "cronworkflows",
            "workflowartifactgctasks",
            "workfloweventbindings",
            "workflows",
            "workflowtaskresults",
            "workflowtasksets",
            "workflowtemplates",
        )
    ),
)
NAMESPACE = "argo"
CONFIGMAP = "workflow-controller-configmap"
"""``common.ConfigMapName``, the controller's and the server's ``--configmap`` default."""
TLS_SECRET = "argo-server-tls"
EXECUTOR_ROLE = "argo-executor"


def controller_config(executor: str, api_port: int) -> dict[str, Any]:
    """The ``workflow-controller-configmap`` (pure): its keys are ``Config``'s JSON fields, each
    value YAML."""
    executor_container = {
        "image": executor,
        "imagePullPolicy": "Never",
        "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
        ],
    }
    # the node's network, and the cluster's DNS on it (kubelet falls back to the host's resolver
    # when the node has none): a step reaches a Service by name where the node runs CoreDNS
    defaults = {"spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
        "data": {
            "executor": yaml.safe_dump(executor_container),
            "metricsConfig": yaml.safe_dump({"enabled": False}),
            "telemetryConfig": yaml.safe_dump({"enabled": False}),
            "workflowDefaults": yaml.safe_dump(defaults),
        },
    }


def executor_rbac(namespace: str) -> list[dict[str, Any]]:
    """The executor's Role and its binding to ``namespace``'s ``default`` ServiceAccount (pure)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": EXECUTOR_ROLE, "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowtaskresults"],
                    "verbs": ["create", "patch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": EXECUTOR_ROLE, "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": EXECUTOR_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    ]


def allow_workflows(cluster: LoopbackCluster, namespace: str) -> None:
    """Let Workflows run in ``namespace`` (the executor's Role, bound to ``default``)."""
    apply = applier(cluster)
    for obj in executor_rbac(namespace):
        apply(obj)


@dataclass
class Argo:
    """A running Argo Workflows: the Argo Server's URL (TLS, the cluster CA) and the images the
    node holds for Workflows (``executor``, ``python``)."""

    cluster: LoopbackCluster
    url: str
    executor: str
    python: str

    def cli(self, *args: str, timeout: float = 60) -> str:
        """``argo ARGS`` on the admin kubeconfig (the CLI's Kubernetes mode: no Argo Server)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGO_")}
        done = subprocess.run(
            [str(binary("argo")), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise KubeSetupError(f"argo {' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def server_version(self) -> dict[str, Any]:
        """``GET /api/v1/version`` of the Argo Server, with the admin's token."""
        request = urllib.request.Request(
            self.url + "/api/v1/version",
            headers={"Authorization": f"Bearer {self.cluster.token}"},
        )
        context = ssl.create_default_context(cafile=str(self.cluster.ca))
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            found: dict[str, Any] = yaml.safe_load(response.read())
            return found


def _tls_secret(cluster: LoopbackCluster) -> dict[str, Any]:
    pki = cluster.workdir / "pki"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode((pki / "apiserver.crt").read_bytes()).decode(),
            "tls.key": base64.b64encode((pki / "apiserver.key").read_bytes()).decode(),
        },
    }


def start_argo(
    cluster: LoopbackCluster, node: RealNode, *, detach: bool = False, timeout: float = 90.0
) -> Argo:
    """Install the CRDs, import the executor and Python images into ``node``, and start the
    controller and the Argo Server; returns once the server answers its version."""
    for name in ("workflow-controller", "argo"):
        binary(name)
    install_crds(cluster, crds(ARGO), timeout=timeout)
    images = node.folder / "argo-images"
    images.mkdir(parents=True, exist_ok=True)
    executor = node.import_image(executor_image(images, ARGO_VERSION))
    python = node.import_image(python_image(images))
    with contextlib.suppress(OSError):
        for leftover in images.iterdir():
            if leftover.is_file():
                leftover.unlink()
    apply = applier(cluster)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    apply(controller_config(executor, cluster.port))
    apply(_tls_secret(cluster))
    kubeconfig = f"--kubeconfig={cluster.kubeconfig}"
    cluster.spawn(
        "workflow-controller",
        [
            str(binary("workflow-controller")),
            kubeconfig,
            f"--namespace={NAMESPACE}",
            f"--executor-image={executor}",
            "--executor-image-pull-policy=Never",
            "--workflow-workers=4",
            "--pod-cleanup-workers=2",
        ],
        env={"LEADER_ELECTION_DISABLE": "true"},
        detach=detach,
    )
    port = free_port()
    server = cluster.spawn(
        "argo-server",
        [
            str(binary("argo")),
            "server",
            kubeconfig,
            f"--namespace={NAMESPACE}",
            f"--port={port}",
            "--auth-mode=client",
            f"--tls-certificate-secret-name={TLS_SECRET}",
        ],
        # --auth-mode=client builds each request's Kubernetes client from $KUBECONFIG
        # (util/kubeconfig/kubeconfig.go, DefaultRestConfig: the default loading rules, not
        # --kubeconfig), the request's token in place of the credentials
        env={"KUBECONFIG": str(cluster.kubeconfig), "ARGO_ARTIFACT_SERVER": "false"},
        detach=detach,
    )
    argo = Argo(cluster, f"https://127.0.0.1:{port}", executor, python)
    deadline = time.monotonic() + timeout
    while True:
        try:
            argo.server_version()
            return argo
        except (OSError, urllib.error.URLError, ValueError):
            if server.poll() is not None or time.monotonic() > deadline:
                raise KubeSetupError(
                    "the Argo Server did not answer:\n"
                    + cluster.log_tail(names=("argo-server", "workflow-controller"))
                ) from None
            time.sleep(0.3)
