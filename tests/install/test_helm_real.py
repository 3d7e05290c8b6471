"""The chart installed for real: the ``helm`` binary (v3.19.5, ``make kube-tools``) installs,
upgrades and uninstalls ``charts/controlplane`` on a loopback kube-apiserver v1.34.10.

The cluster of this module has the Prometheus Operator CRDs (the chart's PodMonitor,
ServiceMonitor and PrometheusRule need them) and not the ModelCanary CRD: ``helm install``
installs it from the chart's ``crds/``, as on a fresh cluster. After every install and upgrade,
each object of the release (``helm get manifest``) is read back from the server with every
rendered field as rendered (nothing dropped as unknown, nothing changed), objects a values change
leaves out are gone from the server, and the release equals what ``helm_python`` renders for the
same values (tests/chart/ checks those renders without a cluster). Bad values are refused with the
field named; a CRD change reaches the server by the step docs/install.md documents, since Helm
never upgrades ``crds/``; ``helm uninstall`` removes every object but the CRD and the canaries.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.chart import CHART, Doc, Helm, as_json, chart_copy, render, tool
from support.realkube import running_cluster
from support.serverside import describe, lost_fields, object_path, read_back

from controlplane.errors import ControlPlaneError
from controlplane.kube.client import Ref
from controlplane.kube.real import RealKube
from controlplane.spec.load import parse_text
from harness.cluster.kubeapi import LoopbackCluster
from harness.cluster.upstream_crds import PROMETHEUS_OPERATOR, crds

pytestmark = [pytest.mark.binary, pytest.mark.xdist_group("helm-real"), pytest.mark.timeout(300)]

CRD_NAME = "modelcanaries.canary.controlplane.dev"
CRD_FILE = CHART / "crds" / "modelcanary.yaml"
EXAMPLE = Path(__file__).resolve().parents[2] / "canary" / "four-week.yml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    tool("helm")  # a missing binary fails here, before a cluster starts
    tool("kubectl")
    yield from running_cluster(tmp_path_factory.mktemp("helm-kube"), crds(PROMETHEUS_OPERATOR))


@pytest.fixture(scope="module")
def helm(cluster: LoopbackCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(cluster.kubeconfig, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def admin(cluster: LoopbackCluster) -> RealKube:
    return RealKube.connect(kubeconfig=str(cluster.kubeconfig))


def namespace(kube: RealKube, name: str) -> str:
    try:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except ControlPlaneError as exc:
        if "already exists" not in str(exc):
            raise
    return name


def key(doc: Doc) -> tuple[str, str, str | None, str]:
    meta = doc["metadata"]
    return (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])


def served_as_rendered(cluster: LoopbackCluster, docs: list[Doc]) -> list[str]:
    """Each object read back from the server: the fields it lost or changed (none expected)."""
    return [f"{describe(d)} {f}" for d in docs for f in lost_fields(d, read_back(cluster, d))]


def absent(cluster: LoopbackCluster, doc: Doc) -> bool:
    import urllib.error

    try:
        cluster.request("GET", object_path(cluster, doc))
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    return False


def rendered(values: dict[str, Any], release: str, ns: str) -> list[str]:
    """What helm_python renders for ``values`` (templates only, as ``helm get manifest``)."""
    docs = render(values, namespace=ns, release=release)
    return sorted(as_json(d) for d in docs if d["kind"] != "CustomResourceDefinition")


def served_crd(admin: RealKube) -> Doc:
    return admin.get(Ref("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, CRD_NAME))


def example_canary(ns: str) -> Doc:
    """canary/four-week.yml, read as the product reads it (YAML 1.2: ``8.0e9`` is a number)."""
    (doc,) = parse_text(EXAMPLE.read_text(), str(EXAMPLE))
    data: Doc = json.loads(json.dumps(doc.data))
    data["metadata"]["namespace"] = ns
    return data


# ----------------------------------------------------------------------------- install


def test_install_with_default_values(cluster: LoopbackCluster, helm: Helm, admin: RealKube) -> None:
    done = helm.install("cp", "canary-system")
    assert "controlplane 0.1.0 is installed in namespace canary-system" in done.stdout
    assert helm.status("cp", "canary-system") == "deployed"

    manifest = helm.manifest("cp", "canary-system")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in manifest) == [
        ("ClusterRole", "cp-controlplane"),
        ("ClusterRole", "cp-controlplane-auth-delegator"),
        ("ClusterRole", "cp-controlplane-gateways"),
        ("ClusterRoleBinding", "cp-controlplane"),
        ("ClusterRoleBinding", "cp-controlplane-auth-delegator"),
        ("ClusterRoleBinding", "cp-controlplane-gateways"),
        ("ConfigMap", "cp-controlplane-modelcanary-dashboard"),
        ("Deployment", "cp-controlplane"),
        ("NetworkPolicy", "cp-controlplane"),
        ("PodDisruptionBudget", "cp-controlplane"),
        ("PodMonitor", "cp-controlplane-variants"),
        ("PrometheusRule", "cp-controlplane"),
        ("Role", "cp-controlplane-leader-election"),
        ("RoleBinding", "cp-controlplane-leader-election"),
        ("Service", "cp-controlplane"),
        ("ServiceAccount", "cp-controlplane"),
        ("ServiceMonitor", "cp-controlplane"),
    ]
    assert served_as_rendered(cluster, manifest) == []
    assert sorted(as_json(d) for d in manifest) == rendered({}, "cp", "canary-system")

    # crds/: installed by helm from the chart, as generated, and serving
    crd = served_crd(admin)
    assert lost_fields(yaml.safe_load(CRD_FILE.read_text()), crd) == []
    assert {"type": "Established", "status": "True"}.items() <= next(
        c for c in crd["status"]["conditions"] if c["type"] == "Established"
    ).items()
    canary = admin.create(example_canary(namespace(admin, "ml-serving")))
    assert canary["metadata"]["generation"] == 1


# ----------------------------------------------------------------------------- upgrades

COMBINATIONS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    (
        "namespaced",
        {
            "rbac": {"scope": "namespaced", "argoCDNamespace": "gitops"},
            "watchNamespaces": ["team-a", "team-b"],
        },
    ),
    (
        "namespaced-git-source",
        {
            "rbac": {"scope": "namespaced", "argoCDApplications": False},
            "watchNamespaces": ["team-a"],
            "gitSource": {
                "repo": "https://git.example/ml/models.git",
                "prune": True,
                "tokenSecret": {"name": "git-token", "key": "token"},
            },
        },
    ),
    (
        "api-static-token-one-replica",
        {
            "replicas": 1,
            "api": {"kubernetesAuth": False, "tokenSecret": {"name": "api", "key": "token"}},
            "gitWebhook": {"secret": {"name": "hook", "key": "secret"}},
        },
    ),
    (
        "three-replicas-election-off-minimal-rbac",
        {
            "replicas": 3,
            "leaderElection": {"enabled": False},
            "rbac": {"readSecrets": False, "argoCDApplications": False},
        },
    ),
    (
        "election-forced-git-source-ssh",
        {
            "replicas": 1,
            "leaderElection": {"enabled": True, "leaseName": "my-lease"},
            "gitSource": {
                "repo": "git@git.example:ml/models.git",
                "branch": "release",
                "path": "prod/canaries",
                "interval": "30s",
                "namespace": "team-a",
                "sshKeySecret": {"name": "git-ssh", "key": "id_ed25519"},
            },
        },
    ),
    (
        "monitors-elsewhere-network-policy",
        {
            "podMonitor": {"namespace": "monitoring", "labels": {"release": "kps"}},
            "serviceMonitor": {"namespace": "monitoring", "labels": {"release": "kps"}},
            "prometheusRule": {"namespace": "monitoring"},
            "dashboards": {"namespace": "monitoring", "folder": "Canaries"},
            "networkPolicy": {"enabled": True},
        },
    ),
    (
        "cluster-secrets-in-watched-namespaces-egress-narrowed",
        {
            "watchNamespaces": ["team-a", "team-b"],
            "gates": {"argoServer": "https://argo-server.argo:2746"},
            "networkPolicy": {
                "egress": {
                    "apiServer": {"cidrs": ["127.0.0.1/32"], "ports": [6443]},
                    "namespaces": [{"name": "alerting", "ports": [9093]}],
                    "cidrs": [
                        {"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"], "ports": [8443]}
                    ],
                    "publicPorts": [443, 22],
                }
            },
        },
    ),
    (
        "cluster-secrets-by-name-no-policy-no-budget-no-spread",
        {
            "rbac": {"secretNames": ["alert-signing", "slack-webhook"]},
            "networkPolicy": {"enabled": False},
            "podDisruptionBudget": {"enabled": False},
            "podAntiAffinity": "none",
        },
    ),
    (
        "monitors-off",
        {
            "podMonitor": {"enabled": False},
            "serviceMonitor": {"enabled": False},
            "prometheusRule": {"enabled": False},
            "dashboards": {"enabled": False},
        },
    ),
    ("defaults-again", {}),
]


def test_upgrades_through_the_main_values_combinations(
    cluster: LoopbackCluster, helm: Helm, admin: RealKube
) -> None:
    """One release upgraded through each combination in turn: every revision's objects are on
    the server as rendered, and what a combination leaves out is deleted from it."""
    for name in ("team-a", "team-b", "gitops", "monitoring"):
        namespace(admin, name)
    release, ns = "combo", "combo-system"
    helm.install(release, ns, COMBINATIONS[0][1])
    before = helm.manifest(release, ns)
    for label, values in COMBINATIONS[1:]:
        done = helm.upgrade(release, ns, values)
        assert 'Release "combo" has been upgraded' in done.stdout, label
        manifest = helm.manifest(release, ns)
        assert served_as_rendered(cluster, manifest) == [], label
        assert sorted(as_json(d) for d in manifest) == rendered(values, release, ns), label
        kept = {key(d) for d in manifest}
        dropped = [d for d in before if key(d) not in kept]
        assert [describe(d) for d in dropped if not absent(cluster, d)] == [], label
        before = manifest
    assert helm.status(release, ns) == "deployed"
    # the last combination is the defaults again: the namespaced objects went away
    assert not [d for d in before if d["metadata"].get("namespace") in ("team-a", "team-b")]


# ----------------------------------------------------------------------------- bad values

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"replicas": "two"}, "- at '/replicas': got string, want integer"),
    ({"rbac": {"scope": "everywhere"}}, "- at '/rbac/scope': value must be one of 'cluster'"),
    (
        {"rbac": {"scope": "namespaced"}},
        "- at '/watchNamespaces': minItems: got 0, want 1",
    ),
    ({"controler": {"tick": "5s"}}, "additional properties 'controler' not allowed"),
    ({"controller": {"tick": "5 seconds"}}, "- at '/controller/tick': '5 seconds' does not match"),
    ({"leaderElection": {"enabled": "yes"}}, "- at '/leaderElection/enabled': got string"),
    ({"gitSource": {"repo": "models.git"}}, "- at '/gitSource/repo': 'models.git' does not match"),
    (
        {"securityContext": {"readOnlyRootFilesystem": False}},
        "- at '/securityContext/readOnlyRootFilesystem': value must be true",
    ),
    (
        {"controller": {"extraArgs": ["--git-repo=https://git.example/m.git"]}},
        "controller.extraArgs has --git-repo=https://git.example/m.git: set gitSource.repo",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"), BAD_VALUES, ids=[m.split(":")[0][:40] for _, m in BAD_VALUES]
)
def test_bad_values_are_refused_with_the_field_named(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    done = helm.install("bad", "bad-system", values, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: INSTALLATION FAILED: "), done.stderr
    assert message in done.stderr
    assert "panic" not in done.stderr
    assert "goroutine" not in done.stderr
    assert helm.status("bad", "bad-system") == "absent"  # nothing was installed


def test_a_watched_namespace_that_does_not_exist_is_named(
    cluster: LoopbackCluster, helm: Helm
) -> None:
    values = {
        "rbac": {"scope": "namespaced", "argoCDApplications": False},
        "watchNamespaces": ["nowhere"],
    }
    done = helm.install("early", "early-system", values, check=False)
    assert done.returncode == 1
    assert 'namespaces "nowhere" not found' in done.stderr
    # Helm keeps the failed release and what it created; docs/install.md: uninstall, then retry
    assert helm.status("early", "early-system") == "failed"
    helm.uninstall("early", "early-system")
    assert helm.status("early", "early-system") == "absent"


# ----------------------------------------------------------------------------- the CRD


def test_a_crd_change_reaches_the_server_by_the_documented_step(
    cluster: LoopbackCluster, helm: Helm, admin: RealKube, tmp_path: Path
) -> None:
    """Helm installs crds/ once and never upgrades them; docs/install.md's step applies them."""
    helm.install("crd", "crd-system")  # the CRD is on the server (by this or an earlier install)
    canary = admin.create(example_canary(namespace(admin, "crd-canaries")))
    changed = chart_copy(tmp_path)
    crd = yaml.safe_load((changed / "crds" / "modelcanary.yaml").read_text())
    new = copy.deepcopy(crd)
    column = {"name": "Outcome", "type": "string", "jsonPath": ".status.outcome"}
    new["spec"]["versions"][0]["additionalPrinterColumns"].insert(0, column)
    (changed / "crds" / "modelcanary.yaml").write_text(yaml.safe_dump(new, sort_keys=False))

    def columns() -> list[str]:
        served = served_crd(admin)["spec"]["versions"][0]["additionalPrinterColumns"]
        return [c["name"] for c in served]

    before = columns()
    assert "Outcome" not in before
    helm.upgrade("crd", "crd-system", chart=changed)
    assert columns() == before  # Helm left the CRD as it was

    crds_dir = str(changed / "crds")
    # a plain server-side apply conflicts with the fields Helm's create owns
    plain = helm.kubectl("apply", "--server-side", "-f", crds_dir, check=False)
    assert plain.returncode == 1
    assert 'conflict with "helm"' in plain.stderr
    assert columns() == before
    # the documented step (docs/install.md, "CRD upgrades")
    documented = helm.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds_dir)
    assert f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} serverside-applied" in (
        documented.stdout
    )
    assert columns() == ["Outcome", *before]
    assert lost_fields(new, served_crd(admin)) == []
    kept = admin.get(Ref.of(canary))
    assert kept["metadata"]["uid"] == canary["metadata"]["uid"]

    # the next upgrade's step (no conflict now: kubectl owns the fields) puts the chart's back
    helm.upgrade("crd", "crd-system")
    helm.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    assert columns() == before
    assert lost_fields(crd, served_crd(admin)) == []


# ----------------------------------------------------------------------------- uninstall


def test_uninstall_removes_the_release_and_keeps_the_crd_and_the_canaries(
    cluster: LoopbackCluster, helm: Helm, admin: RealKube
) -> None:
    helm.install("gone", "gone-system")
    manifest = helm.manifest("gone", "gone-system")
    canary = admin.create(example_canary(namespace(admin, "gone-canaries")))
    helm.uninstall("gone", "gone-system")
    assert helm.status("gone", "gone-system") == "absent"
    assert [describe(d) for d in manifest if not absent(cluster, d)] == []
    assert served_crd(admin)["metadata"]["name"] == CRD_NAME
    assert admin.get(Ref.of(canary))["metadata"]["uid"] == canary["metadata"]["uid"]
