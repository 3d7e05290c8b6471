"""Least privilege by default (issue 33): the chart reads Secrets only by name or in a namespaced
Role, puts a NetworkPolicy covering ingress and egress on the controller by default, and keeps
two replicas apart (a PodDisruptionBudget, preferred anti-affinity on the node)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
from support.chart import NAMESPACE, Doc, of_kind, one, render, validate

PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"}
NAMESPACED = {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["team-a", "team-b"]}


def secret_rules(role: Doc) -> list[Doc]:
    return [r for r in role["rules"] if "secrets" in r["resources"]]


def roles(docs: list[Doc], name: str) -> dict[str | None, Doc]:
    found = [*of_kind(docs, "ClusterRole"), *of_kind(docs, "Role")]
    return {d["metadata"].get("namespace"): d for d in found if d["metadata"]["name"] == name}


# ----------------------------------------------------------------------------- Secrets


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac": {"secretNames": ["alert-signing"]}},
        {"watchNamespaces": ["team-a"]},
        NAMESPACED,
        {"gitSource": {"repo": "https://git.example/m.git", "prune": True}},
    ],
    ids=["defaults", "names", "cluster-with-namespaces", "namespaced", "git-source"],
)
def test_no_cluster_role_reads_every_secret(values: dict[str, Any]) -> None:
    for role in of_kind(render(values), "ClusterRole"):
        for rule in secret_rules(role):
            assert rule.get("resourceNames"), (role["metadata"]["name"], rule)
            assert rule["verbs"] == ["get"]


def test_the_default_cluster_scope_reads_no_secret() -> None:
    docs = render()
    assert all(not secret_rules(r) for r in [*of_kind(docs, "ClusterRole"), *of_kind(docs, "Role")])


def test_secret_names_are_the_only_secrets_read_cluster_wide() -> None:
    docs = render({"rbac": {"secretNames": ["alert-signing", "slack-webhook"]}})
    (rule,) = secret_rules(roles(docs, "cp-controlplane")[None])
    assert rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "resourceNames": ["alert-signing", "slack-webhook"],
        "verbs": ["get"],
    }
    assert not roles(docs, "cp-controlplane-secrets")


def test_the_cluster_scope_with_watch_namespaces_reads_secrets_there_only() -> None:
    docs = render({"watchNamespaces": ["team-a", "team-b"]})
    assert not secret_rules(roles(docs, "cp-controlplane")[None])
    found = roles(docs, "cp-controlplane-secrets")
    assert sorted(found) == ["team-a", "team-b"]
    for ns, role in found.items():
        assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
        (binding,) = [
            d
            for d in of_kind(docs, "RoleBinding")
            if d["metadata"]
            == {**d["metadata"], "name": "cp-controlplane-secrets", "namespace": ns}
        ]
        assert binding["roleRef"]["name"] == "cp-controlplane-secrets"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "cp-controlplane", "namespace": NAMESPACE}
        ]


def test_the_namespaced_scope_reads_secrets_in_its_roles_by_name_when_named() -> None:
    for ns, role in roles(render(NAMESPACED), "cp-controlplane").items():
        assert ns in ("team-a", "team-b")
        assert secret_rules(role) == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
        ]
    named = render({**NAMESPACED, "rbac": {"scope": "namespaced", "secretNames": ["s"]}})
    for role in roles(named, "cp-controlplane").values():
        assert [r.get("resourceNames") for r in secret_rules(role)] == [["s"]]
    off = render({**NAMESPACED, "rbac": {"scope": "namespaced", "readSecrets": False}})
    assert all(not secret_rules(r) for r in roles(off, "cp-controlplane").values())


# ----------------------------------------------------------------------------- NetworkPolicy


def egress(values: dict[str, Any] | None = None) -> list[Doc]:
    policy = one(render(values), "NetworkPolicy")
    assert validate(policy)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    rules = policy["spec"]["egress"]
    assert isinstance(rules, list)
    return rules


def namespace_ports(rules: list[Doc]) -> set[tuple[str, int]]:
    return {
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in rules
        for peer in rule.get("to") or []
        if "namespaceSelector" in peer and "podSelector" not in peer
        for port in rule["ports"]
    }


def public_ports(rules: list[Doc]) -> set[int]:
    return {
        port["port"]
        for rule in rules
        for peer in rule.get("to") or []
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
        for port in rule["ports"]
    }


def test_the_default_policy_covers_ingress_and_egress() -> None:
    docs = render()
    policy = one(docs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].items()
    )
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    rules = egress()
    dns, api = rules[0], rules[1]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    # the API server: no address known without a cluster (helm template), so its ports only
    assert "to" not in api
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    # the default Prometheus (kube-prometheus-stack-prometheus.monitoring:9090), in its namespace
    assert namespace_ports(rules) == {("monitoring", 9090)}
    # public HTTPS (Slack, GitHub), never a private address: no pod, node or cloud metadata
    assert public_ports(rules) == {443}
    (public,) = [r for r in rules if public_ports([r])]
    v4 = next(p["ipBlock"] for p in public["to"] if p["ipBlock"]["cidr"] == "0.0.0.0/0")
    assert set(v4["except"]) >= PRIVATE
    # the one rule without a destination is the API server's, on its ports
    assert [r for r in rules if "to" not in r] == [api]


def test_egress_follows_the_endpoints_of_the_values() -> None:
    values = {
        "controller": {"prometheusUrl": "http://prometheus.metrics.svc.cluster.local:9091"},
        "gates": {"argoServer": "https://argo-server.argo:2746"},
        "gitSource": {"repo": "git@github.com:team/models.git"},
        "networkPolicy": {
            "egress": {
                "apiServer": {"cidrs": ["172.18.0.2/32"], "ports": [6443]},
                "namespaces": [{"name": "alerting", "ports": [9093]}],
                "cidrs": [{"cidr": "203.0.113.0/24", "ports": [8443]}],
            }
        },
    }
    rules = egress(values)
    assert namespace_ports(rules) == {("metrics", 9091), ("argo", 2746), ("alerting", 9093)}
    assert public_ports(rules) == {443, 22}  # ssh for the scp-like git URL
    assert rules[1] == {
        "ports": [{"port": 6443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
    }
    assert {
        "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        "ports": [{"port": 8443, "protocol": "TCP"}],
    } in rules
    closed = egress({"networkPolicy": {"egress": {"publicPorts": [], "fromUrls": False}}})
    assert public_ports(closed) == set()
    assert namespace_ports(closed) == set()


def test_egress_follows_the_allowed_endpoints() -> None:
    values = {
        "allowedEndpoints": {
            "prometheus": ["http://prom.team-a:9090"],
            "alerts": ["http://alertmanager.monitoring.svc:9093/api"],
        }
    }
    assert namespace_ports(egress(values)) >= {("team-a", 9090), ("monitoring", 9093)}


# ----------------------------------------------------------------------------- two replicas


def test_two_replicas_get_a_disruption_budget_and_spread_over_nodes() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pdb = one(docs, "PodDisruptionBudget")
    assert validate(pdb)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["weight"] == 100
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == pdb["spec"]["selector"]["matchLabels"]
    )


def test_one_replica_has_neither_and_own_affinity_wins() -> None:
    single = render({"replicas": 1})
    assert not of_kind(single, "PodDisruptionBudget")
    assert "affinity" not in one(single, "Deployment")["spec"]["template"]["spec"]
    required = one(render({"podAntiAffinity": "required"}), "Deployment")
    anti = required["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert list(anti) == ["requiredDuringSchedulingIgnoredDuringExecution"]
    none = one(render({"podAntiAffinity": "none"}), "Deployment")
    assert "affinity" not in none["spec"]["template"]["spec"]
    own = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}
    mine = one(render({"affinity": own}), "Deployment")
    assert mine["spec"]["template"]["spec"]["affinity"] == own
    three = render({"replicas": 3, "podDisruptionBudget": {"minAvailable": 2}})
    assert one(three, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_a_budget_that_blocks_every_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="minAvailable 2 must be below replicas 2"):
        render({"podDisruptionBudget": {"minAvailable": 2}})
