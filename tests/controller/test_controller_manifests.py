"""The shipped manifests parse, and their RBAC covers every kind the controller touches, derived
from the code (every router's objects, the canary itself, Events, the Lease)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_world import canary_dict

from controlplane.kube import lease
from controlplane.profiles.catalog import load_catalog
from controlplane.routing.objects import desired_objects
from controlplane.spec.models import API_GROUP, PLURAL, ModelCanary

ROOT = Path(__file__).resolve().parents[2] / "manifests"
OWNED = ["rbac", "controller", "monitoring"]
WRITE = {"get", "list", "watch", "create", "update", "patch", "delete"}

TRAFFIC: dict[str, dict[str, Any]] = {
    "gateway-api": {"router": "gateway-api", "gateway": {"name": "gw"}},
    "istio": {"router": "istio", "hosts": ["llm.example.com"]},
    "kserve": {"router": "kserve"},
    "kserve-knative": {"router": "kserve-knative"},
    "llmisvc": {"router": "llmisvc"},
}


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for folder in OWNED:
        for path in sorted((ROOT / folder).glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                assert isinstance(doc, dict), path
                found.append((f"{folder}/{path.name}", doc))
    return found


def touched() -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, from what the controller applies for every router."""
    needs: dict[tuple[str, str], set[str]] = {}
    catalog = load_catalog()
    for traffic in TRAFFIC.values():
        data = canary_dict("c", "http://127.0.0.1:9090", traffic=traffic)
        data["spec"]["candidate"]["storageUri"] = "hf://meta-llama/Llama-3.1-8B-Instruct"
        data["spec"]["candidate"]["systemPrompt"] = "Be brief."  # adds the ConfigMaps
        canary = ModelCanary.model_validate(data)
        for outcome in (None, "promoted", "rolled_back"):
            for obj in desired_objects(canary, catalog, 5, False, outcome):  # type: ignore[arg-type]
                group = obj["apiVersion"].rpartition("/")[0]
                needs[(group, obj["kind"].lower() + "s")] = set(WRITE)
    needs[(API_GROUP, PLURAL)] = {"get", "list", "watch", "update"}
    needs[(API_GROUP, f"{PLURAL}/status")] = {"update"}
    needs[(API_GROUP, f"{PLURAL}/finalizers")] = {"update"}
    needs[("", "events")] = {"create"}
    return needs


def granted(doc: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in doc["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def roles(kind: str, leader: bool = False) -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in documents()
        if doc["kind"] == kind and ("leader" in doc["metadata"]["name"]) == leader
    ]


def test_every_manifest_parses_with_kind_and_name() -> None:
    docs = documents()
    kinds = {doc["kind"] for _, doc in docs}
    assert {"ClusterRole", "Role", "Deployment", "Service", "PodMonitor", "ServiceMonitor"} <= kinds
    for where, doc in docs:
        assert doc.get("apiVersion"), where
        assert doc["metadata"]["name"], where


def test_the_code_touches_every_router_kind() -> None:
    resources = {resource for _, resource in touched()}
    expected = {"inferenceservices", "llminferenceservices", "httproutes", "virtualservices"}
    assert expected | {"configmaps", "events"} <= resources


@pytest.mark.parametrize("kind", ["ClusterRole", "Role"])
def test_rbac_covers_every_kind_the_controller_touches(kind: str) -> None:
    (role,) = roles(kind)
    rules = granted(role)
    missing = {
        f"{group or 'core'}/{resource}: {sorted(verbs - rules.get((group, resource), set()))}"
        for (group, resource), verbs in touched().items()
        if not verbs <= rules.get((group, resource), set())
    }
    assert not missing
    assert ("", "secrets") not in rules  # least privilege: nothing it does not use
    assert all("*" not in verbs for verbs in rules.values())
    assert set(rules) == set(touched())


def test_leader_election_role_grants_the_lease() -> None:
    (role,) = roles("Role", leader=True)
    group = lease.API_VERSION.rpartition("/")[0]
    assert {"get", "create", "update"} <= granted(role)[(group, lease.KIND.lower() + "s")]


def test_pod_monitor_turns_pod_labels_into_canary_and_variant() -> None:
    (monitor,) = [doc for _, doc in documents() if doc["kind"] == "PodMonitor"]
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    targets = {r["targetLabel"]: r["sourceLabels"][0] for r in relabel}
    assert targets == {
        "canary": "__meta_kubernetes_pod_label_canary_controlplane_dev_canary",
        "variant": "__meta_kubernetes_pod_label_canary_controlplane_dev_variant",
        "namespace": "__meta_kubernetes_namespace",
    }


def test_deployment_service_and_service_monitor_agree() -> None:
    docs = {doc["kind"]: doc for _, doc in documents()}
    deployment, service, monitor = docs["Deployment"], docs["Service"], docs["ServiceMonitor"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "controller"
    assert "--leader-elect" in container["args"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert f"--metrics-port={port}" in container["args"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "canary-controller"
