"""KServe's own controller manager, reconciling on the loopback control plane.

Owns the setup of the real KServe (``kserve-manager``, built by ``scripts/build-kube.sh`` from the
``github.com/kserve/kserve`` module at :data:`~harness.cluster.upstream_crds.KSERVE_VERSION`,
the version whose CRDs are installed) against :mod:`harness.cluster.kubeapi`'s API server, in
Standard (raw Deployment) mode with Gateway API ingress, as KServe's own
``hack/setup/quick-install/kserve-standard-mode-full-install-with-manifests.sh`` sets it up:

- the ``inferenceservice-config`` ConfigMap, read from the module's
  ``config/configmap/inferenceservice.yaml`` with ``deploy.defaultDeploymentMode: Standard`` and
  ``ingress.enableGatewayApi: true`` (its ``kserveIngressGateway`` default,
  ``kserve/kserve-ingress-gateway``, is kept);
- the manager with its webhook server on a loopback port, serving the API server's own
  certificate (it is valid for 127.0.0.1 and signed by the cluster CA), and the module's
  ``config/webhook/manifests.yaml`` registered with ``url`` + ``caBundle`` instead of a Service:
  the InferenceService defaulter and validator and the pod mutator run for real;
- the Hugging Face ``ClusterServingRuntime`` (``config/runtimes/kserve-huggingfaceserver.yaml``,
  its image as the module's kustomization names it);
- a GatewayClass and the Gateway ``kserve/kserve-ingress-gateway`` (the object of KServe's
  ``hack/setup/infra/gateway-api/manage.gateway-api-gw.sh``), with
  :mod:`harness.cluster.gatewaystatus` in the part of a Gateway controller that KServe reads:
  the HTTPRoute ``status.parents`` conditions (no proxy runs; nothing here carries traffic).

- KEDA's ScaledObject CRD (:data:`~harness.cluster.upstream_crds.KEDA`, v2.18.0, what KServe's
  ``go.mod`` requires), installed before the manager starts: KServe v0.20.0 looks for it once,
  at start (``pkg/controller/v1beta1/inferenceservice/controller.go``, ``SetupWithManager``:
  ``utils.IsCrdAvailable`` for ``keda.sh/v1alpha1`` ``ScaledObject``), and watches the
  ScaledObjects it owns only if it is there. Its KEDA reconciler
  (``reconcilers/keda/keda_reconciler.go``) reads and writes ScaledObjects either way: without
  the CRD a predictor of the ``keda`` autoscaler class (the product's ``autoscaling.queue``) is
  never reconciled (``PredictorReady`` False, ``failed to get existing KEDA autoscaler: no
  matches for kind "ScaledObject"``, as observed). KEDA's operator is not run: nothing here
  turns a ScaledObject into an HPA (the stand-in, :mod:`harness.kube.keda_standin`, does).

Workloads come from :mod:`harness.cluster.workloads` (kube-controller-manager,
kube-scheduler, kwok on fake GPU nodes). Called by the test fixtures and ``make kube-up``.
Upstream files are read from the Go module cache at the pinned version, never copied here.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from controlplane.local.ports import free_port
from harness.cluster import gatewaystatus
from harness.cluster.gateways import GATEWAY, gateway_objects
from harness.cluster.kubeapi import (
    KubeSetupError,
    LoopbackCluster,
    applier,
    binary,
    harness_env,
    install_crds,
)
from harness.cluster.upstream_crds import KEDA, KSERVE, crds, module_dir

NAMESPACE = "kserve"
GATEWAY_CLASS = "controlplane-loopback"
GATEWAY_LABELS = {"serving.kserve.io/gateway": GATEWAY[1]}
"""KServe's Gateway carries its name as this infrastructure label (what its installation writes)."""
RUNTIME = "kserve-huggingfaceserver"
_MANIFESTS = "config/webhook/manifests.yaml"


def inferenceservice_config(kserve_dir: Path) -> dict[str, Any]:
    """KServe's ConfigMap with Standard mode and Gateway API ingress switched on (pure but for
    the read of the module's file)."""
    doc = yaml.safe_load((kserve_dir / "config/configmap/inferenceservice.yaml").read_text())
    data = doc["data"]
    data.pop("_example", None)
    data["deploy"] = json.dumps({"defaultDeploymentMode": "Standard"})
    ingress = json.loads(data["ingress"])
    ingress["enableGatewayApi"] = True
    data["ingress"] = json.dumps(ingress, indent=2)
    doc["metadata"] = {"name": "inferenceservice-config", "namespace": NAMESPACE}
    return dict(doc)


def _kustomized(kserve_dir: Path, folder: str, file: str) -> dict[str, Any]:
    """``folder/file`` with the image names its ``kustomization.yaml`` substitutes."""
    obj = yaml.safe_load((kserve_dir / folder / file).read_text())
    kustomization = yaml.safe_load((kserve_dir / folder / "kustomization.yaml").read_text())
    images = {i["name"]: i for i in kustomization.get("images") or []}
    spec = obj["spec"]
    for container in spec.get("containers") or [spec.get("container")]:
        name = container["image"].split(":", 1)[0]
        if name in images:
            container["image"] = f"{images[name]['newName']}:{images[name]['newTag']}"
    return dict(obj)


def huggingface_runtime(kserve_dir: Path) -> dict[str, Any]:
    """The Hugging Face ClusterServingRuntime (``config/runtimes``)."""
    return _kustomized(kserve_dir, "config/runtimes", "kserve-huggingfaceserver.yaml")


def storage_container(kserve_dir: Path) -> dict[str, Any]:
    """The ``default`` ClusterStorageContainer (``config/storagecontainers``): which storage
    initializer downloads ``hf://``, ``s3://``, ... URIs."""
    return _kustomized(kserve_dir, "config/storagecontainers", "default.yaml")


def webhook_configurations(
    kserve_dir: Path, url: str, ca_bundle: bytes, *, manifests: str = _MANIFESTS
) -> list[dict[str, Any]]:
    """The webhook configurations of the module's ``manifests`` file, each pointing at ``url`` +
    its path."""
    import base64

    docs = [d for d in yaml.safe_load_all((kserve_dir / manifests).read_text()) if d]
    for doc in docs:
        doc["metadata"] = {"name": doc["metadata"]["name"]}
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": url + path,
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
    return docs


def _tls_ready(port: int, ca: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            context.wrap_socket(sock, server_hostname="127.0.0.1"),
        ):
            return True
    except OSError:
        return False


def start_webhook_manager(
    cluster: LoopbackCluster,
    name: str,
    manager: Path,
    what: str,
    *,
    timeout: float,
    detach: bool,
) -> int:
    """Spawn one of KServe's controller managers with its webhook server on a free port, serving
    the API server's certificate, and wait until it answers TLS; the port. controller-runtime's
    webhook server reads ``<os.TempDir()>/k8s-webhook-server/serving-certs``, so ``TMPDIR`` points
    at a folder holding them. Called by :func:`start_kserve` and
    :func:`harness.cluster.llmisvc.start_llmisvc`."""
    tmp = cluster.workdir / f"{name}-tmp"
    certs = tmp / "k8s-webhook-server" / "serving-certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(cluster.workdir / "pki" / "apiserver.crt", certs / "tls.crt")
    shutil.copy(cluster.workdir / "pki" / "apiserver.key", certs / "tls.key")
    port = free_port()
    proc = cluster.spawn(
        name,
        [str(manager), "--metrics-addr=0", "--health-probe-addr=0", f"--webhook-port={port}"],
        env={"KUBECONFIG": str(cluster.kubeconfig), "POD_NAMESPACE": NAMESPACE, "TMPDIR": str(tmp)},
        detach=detach,
    )
    deadline = time.monotonic() + timeout
    while not _tls_ready(port, cluster.ca):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise KubeSetupError(
                f"{what} did not start its webhook server:\n" + cluster.log_tail(names=(name,))
            )
        time.sleep(0.2)
    return port


def start_kserve(cluster: LoopbackCluster, *, detach: bool = False, timeout: float = 90.0) -> None:
    """Start KServe's manager (with its webhooks, runtime, Gateway and the Gateway status
    stand-in) against ``cluster``; :func:`~harness.cluster.workloads.start_workloads` must
    have run for anything to become Ready."""
    kserve_dir = module_dir(KSERVE)
    manager = binary("kserve-manager")
    install_crds(cluster, crds(KEDA))  # before the manager looks for it (the module docstring)
    apply = applier(cluster)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    apply(inferenceservice_config(kserve_dir))
    apply(storage_container(kserve_dir))
    for obj in gateway_objects(GATEWAY_CLASS, gatewaystatus.CONTROLLER, 80, labels=GATEWAY_LABELS):
        apply(obj)

    port = start_webhook_manager(
        cluster, "kserve-manager", manager, "KServe's manager", timeout=timeout, detach=detach
    )
    for doc in webhook_configurations(
        kserve_dir, f"https://127.0.0.1:{port}", cluster.ca.read_bytes()
    ):
        apply(doc)
    # through the real ClusterServingRuntime validating webhook
    apply(huggingface_runtime(kserve_dir))
    cluster.spawn(
        "gatewaystatus",
        [
            sys.executable,
            "-m",
            "harness.cluster.gatewaystatus",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--gateway-class={GATEWAY_CLASS}",
        ],
        env=harness_env(),
        detach=detach,
    )
