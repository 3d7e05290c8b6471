"""The controller against a real cluster (opt-in: ``pytest -m e2e``; a kind cluster is enough).

Needs a kubeconfig context whose user may create CRDs and namespaces. Installs the ModelCanary CRD
the chart ships (charts/controlplane/crds/), then runs a controller in this process: an invalid
canary is Stalled with an Event and nothing applied; with
KServe and Gateway API installed (skipped otherwise), a valid canary gets its finalizer, its
serving objects with ownerReferences, and is cleaned up when deleted. Skipped by default and when
no cluster answers, with the reason. A controller the chart installed in the cluster watches every
namespace too: run this file before installing the release (scripts/kind-up.sh with
STEPS="cluster gpus gateway certmanager kserve"), or install it with rbac.scope=namespaced;
tests/e2e/test_chart_kind.py covers the installed release.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller
from controlplane.controller.status import FINALIZER
from controlplane.errors import KubeError, NotFound
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.models import API_VERSION, KIND

pytestmark = pytest.mark.e2e

# the chart installs this file; tests/chart checks that it equals manifests/crd/
CRD = Path(__file__).resolve().parents[2] / "charts" / "controlplane" / "crds" / "modelcanary.yaml"


@pytest.fixture(scope="module")
def kube() -> RealKube:
    try:
        client = RealKube.connect()
        client.list("v1", "Namespace")
    except KubeError as exc:
        pytest.skip(f"no Kubernetes cluster reachable from the current kubeconfig: {exc}")
    client.apply(yaml.safe_load(CRD.read_text()))
    for _ in range(60):
        try:
            client.list(API_VERSION, KIND)
            break
        except KubeError:
            time.sleep(1)
    return client


@pytest.fixture
def namespace(kube: RealKube) -> Iterator[str]:
    name = f"cp-ctl-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(Ref("v1", "Namespace", None, name))


def canary(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"name": f"{name}-llm"},
        "stable": {"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
        "candidate": {
            "name": "fp8",
            "storageUri": "hf://m/x",
            "quantization": "fp8",
            "gpu": "nvidia-l40s",
        },
        "traffic": {"router": "gateway-api", "gateway": {"name": "gw"}},
        "analysis": {"metrics": [{"name": "errors", "builtin": "error-rate"}]},
        "steps": [
            {"weight": 10, "duration": "1h", "rollbackOn": [{"metric": "errors", "above": "1%"}]},
            {"weight": 100},
        ],
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def controller(kube: RealKube, namespace: str) -> Controller:
    reconciler = Reconciler(kube, load_catalog(), Settings(progress_deadline_s=600))
    return Controller(
        kube,
        reconciler,
        lambda url: pytest.fail("no Prometheus here"),
        time.time,
        namespaces=[namespace],
    )


def drive(ctrl: Controller, passes: int = 5) -> None:
    for _ in range(passes):
        ctrl.poll(1.0)
        ctrl.run_once()


def test_invalid_canary_is_stalled_and_nothing_is_applied(kube: RealKube, namespace: str) -> None:
    bad = canary(namespace, "bad", steps=[{"weight": 50}, {"weight": 10}])
    kube.create(bad)
    drive(controller(kube, namespace))
    status = kube.get(Ref(API_VERSION, KIND, namespace, "bad"))["status"]
    assert status["phase"] == "invalid"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] == "True"
    reasons = [e["reason"] for e in kube.list("v1", "Event", namespace)]
    assert "InvalidSpec" in reasons


def test_valid_canary_deploys_with_owner_references_and_cleans_up(
    kube: RealKube, namespace: str
) -> None:
    try:
        kube.list("serving.kserve.io/v1beta1", "InferenceService", namespace)
        kube.list("gateway.networking.k8s.io/v1", "HTTPRoute", namespace)
    except KubeError as exc:
        pytest.skip(f"KServe and Gateway API CRDs are needed for this test: {exc}")
    kube.create(canary(namespace, "good"))
    ctrl = controller(kube, namespace)
    drive(ctrl)
    ref = Ref(API_VERSION, KIND, namespace, "good")
    obj = kube.get(ref)
    assert FINALIZER in obj["metadata"]["finalizers"]
    isvcs = kube.list("serving.kserve.io/v1beta1", "InferenceService", namespace)
    assert {i["metadata"]["name"] for i in isvcs} == {"good-llm-bf16", "good-llm-fp8"}
    assert all(i["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"] for i in isvcs)
    kube.delete(ref)
    drive(ctrl)
    with pytest.raises(NotFound):
        kube.get(ref)
    assert kube.list("serving.kserve.io/v1beta1", "InferenceService", namespace) == []
