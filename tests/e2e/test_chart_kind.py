"""The Helm release that scripts/kind-up.sh installs, on a real cluster (opt-in: ``pytest -m e2e``).

Runs against the current kubeconfig context after ``scripts/kind-up.sh`` (release
``controlplane`` in ``canary-system``; override with CP_RELEASE / CP_NAMESPACE). Checks that the
controller Deployment is available, that the API server agrees the controller's ServiceAccount
may do exactly what tests/chart/test_chart_rbac.py says the code needs (SubjectAccessReview per
rule), and that the in-cluster controller writes a status on a canary. Skipped, with the reason,
when no cluster answers or the release is not installed.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.canaries import canary_dict

from controlplane.errors import KubeError, NotFound
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.spec.models import API_VERSION, KIND

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
from test_chart_rbac import NEEDS

pytestmark = pytest.mark.e2e

RELEASE = os.environ.get("CP_RELEASE", "controlplane")
NAMESPACE = os.environ.get("CP_NAMESPACE", "canary-system")


@pytest.fixture(scope="module")
def kube() -> RealKube:
    try:
        client = RealKube.connect()
        client.list("v1", "Namespace")
    except KubeError as exc:
        pytest.skip(f"no Kubernetes cluster reachable from the current kubeconfig: {exc}")
    try:
        client.get(Ref("apps/v1", "Deployment", NAMESPACE, RELEASE))
    except NotFound:
        pytest.skip(f"release {RELEASE} is not installed in {NAMESPACE}: run scripts/kind-up.sh")
    return client


@pytest.fixture
def namespace(kube: RealKube) -> Iterator[str]:
    name = f"cp-chart-{uuid.uuid4().hex[:8]}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(Ref("v1", "Namespace", None, name))


def test_controller_deployment_is_available(kube: RealKube) -> None:
    deadline = time.monotonic() + 120
    while True:
        deployment = kube.get(Ref("apps/v1", "Deployment", NAMESPACE, RELEASE))
        conditions = {c["type"]: c["status"] for c in deployment["status"].get("conditions", [])}
        if conditions.get("Available") == "True":
            break
        assert time.monotonic() < deadline, deployment["status"]
        time.sleep(2)


@pytest.mark.parametrize("rule", sorted(NEEDS), ids=lambda r: f"{r[0] or 'core'}/{r[1]}")
def test_service_account_may_do_what_the_code_needs(kube: RealKube, rule: tuple[str, str]) -> None:
    group, resource = rule
    name, _, sub = resource.partition("/")
    user = f"system:serviceaccount:{NAMESPACE}:{RELEASE}"
    for verb in sorted(NEEDS[rule][0]):
        review = kube.create(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user,
                    "resourceAttributes": {
                        "group": group,
                        "resource": name,
                        "subresource": sub,
                        "verb": verb,
                        "namespace": "default",
                    },
                },
            }
        )
        assert review["status"]["allowed"], (verb, group, resource, review["status"])
    denied = kube.create(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "resourceAttributes": {"group": "", "resource": "pods", "verb": "delete"},
            },
        }
    )
    assert not denied["status"]["allowed"]


def test_in_cluster_controller_writes_a_status(kube: RealKube, namespace: str) -> None:
    bad = canary_dict(
        "bad",
        namespace,
        model={"name": "bad-llm"},
        stable={"name": "bf16", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
        candidate={"name": "fp8", "storageUri": "hf://m/x", "gpu": "nvidia-l40s"},
        traffic={"router": "kserve"},
        analysis=None,
        steps=[{"weight": 50}, {"weight": 10}],  # down: invalid
        shadow=None,
        budget=None,
    )
    kube.create(bad)
    deadline = time.monotonic() + 60
    while True:
        status = kube.get(Ref(API_VERSION, KIND, namespace, "bad")).get("status") or {}
        if status.get("phase"):
            break
        assert time.monotonic() < deadline, "the controller wrote no status within 60 s"
        time.sleep(1)
    assert status["phase"] == "invalid"
