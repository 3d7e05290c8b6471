"""The controller against a real cluster (opt-in: ``pytest -m e2e``; the kind cluster of
scripts/kind-up.sh is enough).

Needs a kubeconfig context whose user may create CRDs and namespaces. Installs the ModelCanary CRD
the chart ships (charts/controlplane/crds/), then runs a controller in this process: an invalid
canary is Stalled with an Event and nothing applied. With KServe and the Gateway
gateway-system/inference-gateway installed (the script's gateway and kserve steps; skipped
otherwise, with the reason), a valid canary gets its finalizer and its InferenceServices and
HTTPRoute with ownerReferences; KServe (Standard mode) makes a Deployment per variant whose pods
carry the canary's labels; Envoy Gateway accepts the HTTPRoute; and deleting the canary removes
them (KServe's own finalizer included). Skipped by default and when no cluster answers.

The release the script installs (CP_RELEASE in CP_NAMESPACE, as tests/e2e/test_chart_kind.py)
watches every namespace too: while this file runs its Deployment is scaled to 0, so that only the
controller under test reconciles, and scaled back afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import FP8_ONE_CHECK, canary_dict

from controlplane.controller.reconcile import Reconciler, Settings
from controlplane.controller.runner import Controller
from controlplane.errors import KubeError, NotFound
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.models import API_VERSION, KIND
from controlplane.status.document import FINALIZER

pytestmark = pytest.mark.e2e

# the chart installs this file; tests/chart checks that it equals manifests/crd/
CRD = Path(__file__).resolve().parents[2] / "charts" / "controlplane" / "crds" / "modelcanary.yaml"
RELEASE = os.environ.get("CP_RELEASE", "controlplane")
RELEASE_NAMESPACE = os.environ.get("CP_NAMESPACE", "canary-system")
# the Gateway scripts/kind-up.sh creates for the examples, and KServe's kinds
GATEWAY = {"name": "inference-gateway", "namespace": "gateway-system"}
ISVC = "serving.kserve.io/v1beta1"
ROUTE = "gateway.networking.k8s.io/v1"


def wait_for(what: str, check: Any, timeout: float = 120.0) -> Any:
    """``check()`` until it returns something truthy, or fail with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(2)


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


@pytest.fixture(scope="module", autouse=True)
def release_scaled_down(kube: RealKube) -> Iterator[None]:
    """The installed release's controller stopped while this file runs, then restored."""
    ref = Ref("apps/v1", "Deployment", RELEASE_NAMESPACE, RELEASE)
    try:
        replicas = kube.get(ref)["spec"].get("replicas", 1)
    except NotFound:
        yield
        return
    kube.patch(ref, {"spec": {"replicas": 0}})
    selector = kube.get(ref)["spec"]["selector"]["matchLabels"]
    wait_for(
        f"the pods of {RELEASE} gone",
        lambda: not kube.list("v1", "Pod", RELEASE_NAMESPACE, selector),
    )
    try:
        yield
    finally:
        kube.patch(ref, {"spec": {"replicas": replicas}})
        wait_for(
            f"{RELEASE} available again",
            lambda: (kube.get(ref).get("status") or {}).get("availableReplicas") == replicas,
        )


@pytest.fixture
def namespace(kube: RealKube) -> Iterator[str]:
    name = f"cp-ctl-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(Ref("v1", "Namespace", None, name))


# The canaries of these tests: fp8 of the example's checkpoint behind the Gateway of
# scripts/kind-up.sh, an hour at 10 % checking errors, then 100 %; no shadow, no budget. Each
# names its own model (``<name>-llm``).
BASE = canary_dict(
    base=FP8_ONE_CHECK,
    stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
    candidate={**FP8_ONE_CHECK["spec"]["candidate"], "storageUri": "hf://m/x"},
    traffic={"router": "gateway-api", "gateway": GATEWAY},
)


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
    bad = canary_dict(
        "bad",
        namespace,
        base=BASE,
        model={"name": "bad-llm"},
        steps=[{"weight": 50}, {"weight": 10}],  # down: invalid
    )
    kube.create(bad)
    drive(controller(kube, namespace))
    status = kube.get(Ref(API_VERSION, KIND, namespace, "bad"))["status"]
    assert status["phase"] == "invalid"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Stalled"] == "True"
    reasons = [e["reason"] for e in kube.list("v1", "Event", namespace)]
    assert "InvalidSpec" in reasons


def accepted(route: dict[str, Any]) -> bool:
    """Whether the Gateway's controller accepted the route (KServe's readiness reads the same)."""
    parents = (route.get("status") or {}).get("parents") or []
    return any(
        c["type"] == "Accepted" and c["status"] == "True"
        for p in parents
        for c in p.get("conditions") or []
    )


def test_valid_canary_deploys_with_owner_references_and_cleans_up(
    kube: RealKube, namespace: str
) -> None:
    try:
        kube.list(ISVC, "InferenceService", namespace)
        kube.get(Ref(ROUTE, "Gateway", GATEWAY["namespace"], GATEWAY["name"]))
    except KubeError as exc:
        pytest.skip(f"KServe and the Gateway of scripts/kind-up.sh are needed: {exc}")
    kube.create(canary_dict("good", namespace, base=BASE, model={"name": "good-llm"}))
    ctrl = controller(kube, namespace)
    drive(ctrl)
    ref = Ref(API_VERSION, KIND, namespace, "good")
    obj = kube.get(ref)
    assert FINALIZER in obj["metadata"]["finalizers"]
    isvcs = kube.list(ISVC, "InferenceService", namespace)
    assert {i["metadata"]["name"] for i in isvcs} == {"good-llm-bf16", "good-llm-fp8"}
    assert all(i["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"] for i in isvcs)
    # KServe in Standard mode: a Deployment <isvc>-predictor per variant, pods labelled by us
    for variant in ("bf16", "fp8"):
        name = f"good-llm-{variant}-predictor"
        deployment = wait_for(
            f"KServe's Deployment {name}",
            lambda n=name: [
                d
                for d in kube.list("apps/v1", "Deployment", namespace)
                if d["metadata"]["name"] == n
            ],
        )[0]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["canary.controlplane.dev/canary"] == "good"
        assert labels["canary.controlplane.dev/variant"] == variant
    # Envoy Gateway accepts our route on the script's Gateway
    wait_for(
        "the HTTPRoute accepted by gateway-system/inference-gateway",
        lambda: accepted(kube.get(Ref(ROUTE, "HTTPRoute", namespace, "good"))),
    )
    kube.delete(ref)
    drive(ctrl)
    with pytest.raises(NotFound):
        kube.get(ref)
    # KServe holds its own finalizer on each InferenceService until its controller lets go
    wait_for(
        "the InferenceServices deleted",
        lambda: kube.list(ISVC, "InferenceService", namespace) == [],
    )
