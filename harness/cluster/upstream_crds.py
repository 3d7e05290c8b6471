"""The upstream CRDs the product renders objects for, read from their Go modules (pinned).

Owns the pins of the schemas our objects are validated against on the loopback API server
(:mod:`harness.cluster.kubeapi`): KServe, Gateway API (standard channel), Istio networking and
the Prometheus Operator; and of two that only the clusters running KServe's managers install
(Gateway API Inference Extension's InferencePool, KEDA's ScaledObject). Each is fetched with
``go mod download -json <module>@<version>`` into Go's module cache (outside the repository; a
machine downloads each once) and the CRD files are read from the module's folder there. Nothing
is committed. Called by ``make kube-up`` and the test fixtures; :func:`all_crds` adds the
product's own CRD.

The versions match what KServe v0.20.0's ``go.mod`` requires (Gateway API v1.5.1, Istio API
v1.27.1, Gateway API Inference Extension v1.5.0, KEDA v2.18.0); the Prometheus Operator is the
newest release on the module proxy when pinned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.spec.crd import crd
from harness.cluster.kubeapi import KubeSetupError, crd_documents


@dataclass(frozen=True)
class Upstream:
    """A Go module at a pinned version and the CRD files (relative to its root) we install."""

    module: str
    version: str
    files: tuple[str, ...]
    groups: tuple[str, ...] | None = None
    """Only the CRDs of these API groups (None: all in ``files``)."""


KSERVE = Upstream(
    "github.com/kserve/kserve",
    "v0.20.0",
    (
        "config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "config/crd/full/serving.kserve.io_servingruntimes.yaml",
        "config/crd/full/serving.kserve.io_clusterservingruntimes.yaml",
        "config/crd/full/serving.kserve.io_inferencegraphs.yaml",
        "config/crd/full/serving.kserve.io_trainedmodels.yaml",
        "config/crd/full/clusterstoragecontainer/serving.kserve.io_clusterstoragecontainers.yaml",
    ),
)
"""What KServe v0.20.0's ``kserve-crd`` chart installs (``charts/kserve-crd/templates``)."""
KSERVE_LLMISVC = Upstream(
    KSERVE.module,
    KSERVE.version,
    (
        "config/crd/full/llmisvc/serving.kserve.io_llminferenceservices.yaml",
        "config/crd/full/llmisvc/serving.kserve.io_llminferenceserviceconfigs.yaml",
    ),
)
"""The LLMInferenceService CRDs, which KServe v0.20.0 ships in a chart of their own,
``kserve-llmisvc-crd``, an install may leave out (its ``kserve-crd`` and ``kserve-resources``
charts neither hold nor need them: ``cmd/manager/main.go`` imports neither ``llmisvc`` nor
``v1alpha2``). They are 0.8 MB each: on this machine's API server the two cost about 23 s of its
CPU and 12 s of a cluster's start, more than every other CRD together (``python
bench/crd_install.py``; :func:`serving_crds`)."""
GATEWAY_API = Upstream(
    "sigs.k8s.io/gateway-api",
    "v1.5.1",
    (
        "config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml",
        "config/crd/standard/gateway.networking.k8s.io_gateways.yaml",
        "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
        "config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml",
        "config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml",
        "config/crd/standard/gateway.networking.k8s.io_backendtlspolicies.yaml",
    ),
)
ISTIO = Upstream(
    "istio.io/api",
    "v1.27.1",
    ("kubernetes/customresourcedefinitions.gen.yaml",),
    groups=("networking.istio.io",),
)
PROMETHEUS_OPERATOR = Upstream(
    "github.com/prometheus-operator/prometheus-operator",
    "v0.85.0",
    (
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
)
GATEWAY_API_INFERENCE = Upstream(
    "sigs.k8s.io/gateway-api-inference-extension",
    "v1.5.0",
    ("config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",),
)
"""The InferencePool CRD KServe's LLMInferenceService controller watches when served (KServe
v0.20.0's ``go.mod`` pins the module at v1.5.0); installed by :mod:`harness.cluster.llmisvc`
only, not one of :data:`UPSTREAMS` (the product renders no InferencePool)."""
KEDA = Upstream(
    "github.com/kedacore/keda/v2",
    "v2.18.0",
    ("config/crd/bases/keda.sh_scaledobjects.yaml",),
)
"""KEDA's ScaledObject CRD, at the version KServe v0.20.0's ``go.mod`` requires (its manager
imports ``apis/keda/v1alpha1``, so building it downloads this module too; :func:`module_dir`
fetches it pinned either way). KServe makes a predictor of the ``keda`` autoscaler class a
ScaledObject, which the product asks for with ``autoscaling.queue``. Installed by
:mod:`harness.cluster.kserve` before KServe's manager starts, not one of :data:`UPSTREAMS` (the
product renders no ScaledObject itself); KEDA's operator is not run."""
TRAEFIK_CRD = Upstream(
    "github.com/traefik/traefik/v3",
    "v3.6.12",
    ("docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",),
)
"""The CRDs of Traefik's ``kubernetesCRD`` provider (``TraefikService``, ``IngressRoute``, ...),
of the Traefik ``scripts/build-kube.sh`` builds; installed by
:func:`harness.cluster.traefik.start_traefik` when asked (Argo Rollouts' Traefik router), not
one of :data:`UPSTREAMS`."""
UPSTREAMS = (KSERVE, KSERVE_LLMISVC, GATEWAY_API, ISTIO, PROMETHEUS_OPERATOR)


def _go() -> str:
    found = os.environ.get("GO") or shutil.which("go")
    if not found:
        raise KubeSetupError(
            "go is required to read the upstream CRDs from their Go modules: "
            "install Go >= 1.24 (https://go.dev/doc/install)"
        )
    return found


def module_dir(upstream: Upstream) -> Path:
    """The module's folder in Go's module cache (downloaded on first use)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on", "GOWORK": "off"}
    proc = subprocess.run(
        [_go(), "mod", "download", "-json", f"{upstream.module}@{upstream.version}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(env.get("TMPDIR", "/tmp")),
        check=False,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    folder = info.get("Dir")
    if proc.returncode != 0 or not folder:
        detail = info.get("Error") or proc.stderr.strip()[-500:]
        raise KubeSetupError(f"could not download {upstream.module}@{upstream.version}: {detail}")
    return Path(folder)


def crd_files(upstream: Upstream) -> list[Path]:
    """The pinned CRD files of ``upstream``, from the module cache."""
    root = module_dir(upstream)
    paths = [root / name for name in upstream.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise KubeSetupError(f"{upstream.module}@{upstream.version} has no {', '.join(missing)}")
    return paths


def crds(upstream: Upstream) -> list[dict[str, Any]]:
    """The pinned CRD objects of ``upstream`` (of its ``groups``, when set)."""
    docs = crd_documents(crd_files(upstream))
    if upstream.groups is None:
        return docs
    return [doc for doc in docs if doc["spec"]["group"] in upstream.groups]


def own_crd() -> dict[str, Any]:
    """The product's ModelCanary CRD, generated from the models (what
    manifests/crd/modelcanary.yaml holds: tests/spec/test_crd.py fails on drift), so an installed
    package needs no checkout."""
    return crd()


def upstream_crds(upstreams: tuple[Upstream, ...] = UPSTREAMS) -> list[dict[str, Any]]:
    """Every pinned upstream CRD."""
    return [doc for up in upstreams for doc in crds(up)]


def all_crds() -> list[dict[str, Any]]:
    """The product's ModelCanary CRD, then every upstream one."""
    return [own_crd(), *upstream_crds()]


def serving_crds() -> list[dict[str, Any]]:
    """:func:`all_crds` but KServe's LLMInferenceService ones (:data:`KSERVE_LLMISVC`): a cluster
    whose KServe was installed without its ``kserve-llmisvc-crd`` chart, as the test clusters
    that make no LLMInferenceService start (``make kube-up`` installs every CRD)."""
    return [own_crd(), *upstream_crds(tuple(u for u in UPSTREAMS if u is not KSERVE_LLMISVC))]
