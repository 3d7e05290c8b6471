"""KServe's LLMInferenceService controller (``cmd/llmisvc``), reconciling on the loopback control
plane.

Owns the setup of the real LLMInferenceService controller manager (``llmisvc-manager``, built by
``scripts/build-kube.sh`` from the ``github.com/kserve/kserve`` module at
:data:`~harness.cluster.upstream_crds.KSERVE`) against
:mod:`harness.cluster.kubeapi`'s API server, as KServe's ``config/llmisvc`` kustomization
deploys it, with what it reads:

- the ``kserve`` namespace, KServe's ``inferenceservice-config`` ConfigMap (its ``ingress``
  section names the Gateway the managed HTTPRoutes attach to) and that Gateway, with
  :mod:`harness.cluster.gatewaystatus` writing HTTPRoute parent status as a Gateway controller
  would (all from :mod:`harness.cluster.kserve`; KServe's InferenceService manager itself is
  not started);
- the Gateway API Inference Extension CRDs (``InferencePool``) at the version KServe's
  ``go.mod`` pins (:data:`~harness.cluster.upstream_crds.GATEWAY_API_INFERENCE`);
- the manager with its webhook server on a loopback port serving the API server's own
  certificate, the module's ``config/webhook/llmisvc/manifests.yaml`` (defaulting and validating
  webhooks of LLMInferenceService, validating webhooks of LLMInferenceServiceConfig) registered
  with ``url`` + ``caBundle``, and the CRD's ``v1alpha1`` <-> ``v1alpha2`` conversion webhook
  (``config/crd/full/llmisvc/llmisvc_conversion_webhook_patch.yaml``: path ``/convert``) pointed
  at the same server;
- the well-known ``LLMInferenceServiceConfig`` presets of ``config/llmisvcconfig`` in the
  ``kserve`` namespace (through the real validating webhook): the route template
  (``kserve-config-llm-router-route``) among them.

Workloads come from :mod:`harness.cluster.workloads` (kwok makes the pods Ready on fake GPU
nodes). Called by the test fixture ``llmisvc_loopback``. Upstream files are read from the Go
module cache at the pinned version, never copied here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from harness.cluster.gateways import gateway_objects
from harness.cluster.gatewaystatus import CONTROLLER
from harness.cluster.kserve import (
    GATEWAY_CLASS,
    GATEWAY_LABELS,
    NAMESPACE,
    inferenceservice_config,
    start_webhook_manager,
    webhook_configurations,
)
from harness.cluster.kubeapi import (
    LoopbackCluster,
    applier,
    binary,
    harness_env,
    install_crds,
)
from harness.cluster.upstream_crds import GATEWAY_API_INFERENCE, KSERVE, crds, module_dir

MANAGER = "llmisvc-manager"
WEBHOOKS = "config/webhook/llmisvc/manifests.yaml"
PRESETS = "config/llmisvcconfig"
LLMISVC_CRD = "config/crd/full/llmisvc/serving.kserve.io_llminferenceservices.yaml"
CONFIG_CRD = "config/crd/full/llmisvc/serving.kserve.io_llminferenceserviceconfigs.yaml"


def presets(kserve_dir: Path) -> list[dict[str, Any]]:
    """The well-known LLMInferenceServiceConfigs (``config/llmisvcconfig``, as its kustomization
    lists them), in the controller's namespace."""
    folder = kserve_dir / PRESETS
    listed = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    docs = []
    for name in listed:
        for doc in yaml.safe_load_all((folder / name).read_text()):
            if doc:
                doc["metadata"]["namespace"] = NAMESPACE
                docs.append(doc)
    return docs


def converting_crds(kserve_dir: Path, url: str, ca_bundle: bytes) -> list[dict[str, Any]]:
    """The LLMInferenceService and LLMInferenceServiceConfig CRDs with KServe's conversion webhook
    (``strategy: Webhook``, path ``/convert``) at ``url`` instead of its Service."""
    import base64

    out = []
    for path in (LLMISVC_CRD, CONFIG_CRD):
        crd = yaml.safe_load((kserve_dir / path).read_text())
        crd["spec"]["conversion"] = {
            "strategy": "Webhook",
            "webhook": {
                "clientConfig": {
                    "url": url + "/convert",
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                },
                "conversionReviewVersions": ["v1", "v1beta1"],
            },
        }
        out.append(crd)
    return out


def start_llmisvc(
    cluster: LoopbackCluster, *, detach: bool = False, timeout: float = 120.0
) -> None:
    """Start KServe's LLMInferenceService controller (with its webhooks, presets, the Gateway and
    the Gateway status stand-in) against ``cluster``;
    :func:`~harness.cluster.workloads.start_workloads` must have run for anything to become
    Ready."""
    kserve_dir = module_dir(KSERVE)
    manager = binary(MANAGER)
    install_crds(cluster, crds(GATEWAY_API_INFERENCE))
    apply = applier(cluster)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    apply(inferenceservice_config(kserve_dir))
    for obj in gateway_objects(GATEWAY_CLASS, CONTROLLER, 80, labels=GATEWAY_LABELS):
        apply(obj)

    port = start_webhook_manager(
        cluster,
        MANAGER,
        manager,
        "KServe's LLMInferenceService controller",
        timeout=timeout,
        detach=detach,
    )
    url = f"https://127.0.0.1:{port}"
    ca = cluster.ca.read_bytes()
    install_crds(cluster, converting_crds(kserve_dir, url, ca))
    for doc in webhook_configurations(kserve_dir, url, ca, manifests=WEBHOOKS):
        apply(doc)
    # through the real LLMInferenceServiceConfig validating webhook
    for doc in presets(kserve_dir):
        apply(doc)
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
