"""Render the plain manifests under manifests/{controller,rbac,monitoring} from the Helm chart, so
``kubectl apply -f`` users and Helm users get the same objects.

    .venv/bin/python tests/chart/render_manifests.py      # rewrite them after a chart change

tests/chart/test_chart_manifests.py fails while the committed files differ from this rendering.
Helm's own labels (helm.sh/chart, app.kubernetes.io/managed-by) are dropped; the release is
``canary-controller`` in ``canary-system``, the namespaced RBAC example watches ``ml-serving``.
manifests/controller/namespace.yaml is hand-written (the chart does not create its namespace).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support
from support.chart import ROOT, Doc, render

MANIFESTS = ROOT / "manifests"
HEADER = (
    "# Rendered from charts/controlplane by tests/chart/render_manifests.py: do not edit; change\n"
    "# the chart and re-render. {what}\n"
)
RELEASE = "canary-controller"
BASE: dict[str, Any] = {
    "fullnameOverride": RELEASE,
    "podMonitor": {"namespace": "monitoring"},
    "serviceMonitor": {"namespace": "monitoring"},
    "prometheusRule": {"namespace": "monitoring"},
    "dashboards": {"namespace": "monitoring"},
}
NAMESPACED = {**BASE, "rbac": {"scope": "namespaced"}, "watchNamespaces": ["ml-serving"]}
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


def _strip(doc: Doc) -> Doc:
    def clean(labels: dict[str, str] | None) -> None:
        for key in HELM_LABELS:
            (labels or {}).pop(key, None)

    clean(doc["metadata"].get("labels"))
    template = doc.get("spec", {}).get("template") if isinstance(doc.get("spec"), dict) else None
    if isinstance(template, dict):
        clean(template["metadata"].get("labels"))
    return doc


def _pick(docs: list[Doc], kind: str, suffix: str = "") -> list[Doc]:
    return [
        _strip(d)
        for d in docs
        if d["kind"] == kind and d["metadata"]["name"] == f"canary-controller{suffix}"
    ]


def files() -> dict[str, str]:
    """Relative path under manifests/ -> its text."""
    cluster = render(BASE, release=RELEASE)
    namespaced = render(NAMESPACED, release=RELEASE)
    out: dict[str, tuple[str, list[Doc]]] = {
        "controller/deployment.yaml": (
            "The controller: 2 replicas with --leader-elect.",
            _pick(cluster, "Deployment"),
        ),
        "controller/service.yaml": (
            "/metrics, /healthz, /readyz and the API on port 8080 (http).",
            _pick(cluster, "Service"),
        ),
        "controller/networkpolicy.yaml": (
            "Ingress to the API port from monitoring; egress to DNS, the API server\n"
            "# (any address on 443/6443: the chart's values can name its CIDRs), Prometheus in\n"
            "# monitoring and public HTTPS only.",
            _pick(cluster, "NetworkPolicy"),
        ),
        "controller/poddisruptionbudget.yaml": (
            "One of the 2 replicas stays up through a drain.",
            _pick(cluster, "PodDisruptionBudget"),
        ),
        "rbac/serviceaccount.yaml": (
            "Bind it with EITHER clusterrole.yaml + clusterrolebinding.yaml (every\n"
            "# namespace) OR role.yaml + rolebinding.yaml per watched namespace (--namespace NS)\n"
            "# and argocd-role.yaml; gateways.yaml and auth-delegator.yaml in both.",
            _pick(cluster, "ServiceAccount"),
        ),
        "rbac/clusterrole.yaml": (
            "Every namespace. tests/chart/test_chart_rbac.py derives the rules from the code.",
            _pick(cluster, "ClusterRole"),
        ),
        "rbac/clusterrolebinding.yaml": ("", _pick(cluster, "ClusterRoleBinding")),
        "rbac/role.yaml": (
            "The namespaced scope: one per watched namespace (here ml-serving).",
            _pick(namespaced, "Role"),
        ),
        "rbac/rolebinding.yaml": ("", _pick(namespaced, "RoleBinding")),
        "rbac/argocd-role.yaml": (
            "Namespaced scope only: git write-back reads Argo CD Applications in argocd.",
            _pick(namespaced, "Role", "-argocd") + _pick(namespaced, "RoleBinding", "-argocd"),
        ),
        "rbac/leader-election.yaml": (
            "--leader-elect: the Lease, in the controller's namespace only.",
            _pick(cluster, "Role", "-leader-election")
            + _pick(cluster, "RoleBinding", "-leader-election"),
        ),
        "rbac/gateways.yaml": (
            "Both scopes: get Gateways and GatewayClasses\n"
            "# (rbac.readGateways): their implementation decides where the error rate reads.",
            _pick(cluster, "ClusterRole", "-gateways")
            + _pick(cluster, "ClusterRoleBinding", "-gateways"),
        ),
        "rbac/auth-delegator.yaml": (
            "The API's TokenReview and SubjectAccessReview (cluster-scoped, both scopes).",
            _pick(cluster, "ClusterRole", "-auth-delegator")
            + _pick(cluster, "ClusterRoleBinding", "-auth-delegator"),
        ),
        "monitoring/podmonitor.yaml": (
            "vLLM pods -> Prometheus labels canary, variant, namespace.",
            _pick(cluster, "PodMonitor", "-variants"),
        ),
        "monitoring/servicemonitor.yaml": (
            "The controller's own /metrics.",
            _pick(cluster, "ServiceMonitor"),
        ),
    }
    texts = {}
    for path, (what, docs) in out.items():
        assert docs, f"{path}: the chart rendered nothing for it"
        body = "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
        texts[path] = HEADER.format(what=what).replace("# \n", "") + body
    return texts


def main() -> None:
    for path, text in files().items():
        target = MANIFESTS / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote manifests/{path}")


if __name__ == "__main__":
    main()
