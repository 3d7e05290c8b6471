"""What harness.node.argo gives Argo Workflows, read without starting it: the pins agree with
scripts/build-argo.sh, and the controller's ConfigMap and the executor's Role are what the module
docstring says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harness.cluster.kubeapi import KUBE_VERSION
from harness.node import argo

ROOT = Path(__file__).resolve().parents[2]


def pin(script: str, name: str) -> str:
    text = (ROOT / "scripts" / script).read_text()
    (value,) = re.findall(rf'^{name}="([^"]+)"', text, re.MULTILINE)
    return value


def test_the_binaries_and_the_crds_are_one_version() -> None:
    assert pin("build-argo.sh", "ARGO_VERSION") == argo.ARGO_VERSION == argo.ARGO.version
    assert pin("build-argo.sh", "KUBE_VERSION") == pin("build-kube.sh", "KUBE_VERSION")
    assert pin("build-argo.sh", "KUBE_VERSION") == KUBE_VERSION
    assert all(f.startswith("manifests/base/crds/full/") for f in argo.ARGO.files)
    assert len(argo.ARGO.files) == 8


def test_the_controller_runs_the_executor_built_here_on_the_nodes_network() -> None:
    config = argo.controller_config("localhost/argoexec:v3.7.3", 6443)
    assert config["metadata"] == {"name": argo.CONFIGMAP, "namespace": argo.NAMESPACE}
    data = {key: yaml.safe_load(value) for key, value in config["data"].items()}
    assert data["executor"] == {
        "image": "localhost/argoexec:v3.7.3",
        "imagePullPolicy": "Never",
        "env": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
        ],
    }
    assert data["metricsConfig"] == data["telemetryConfig"] == {"enabled": False}
    assert data["workflowDefaults"] == {
        "spec": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}
    }


def test_the_executor_may_write_task_results_and_nothing_else() -> None:
    role, binding = argo.executor_rbac("ml-serving")
    assert role["rules"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        }
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "default", "namespace": "ml-serving"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
