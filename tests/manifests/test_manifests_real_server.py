"""The static manifests under ``manifests/``, held against the real API server.

Every Kubernetes object there whose kind the loopback kube-apiserver serves (built-in kinds, our
CRD, the pinned upstream CRDs: Prometheus Operator v0.85.0 for PodMonitor / ServiceMonitor /
PrometheusRule) is applied with server-side apply and ``fieldValidation=Strict`` and read back
with nothing lost (:mod:`support.serverside`). Namespaced objects go to the test's namespace;
cluster-scoped ones are applied as they are (the cluster is the test run's own); the CRD, which
the cluster runs on, is a dry run. The kinds left out are listed, so a new one is not skipped
silently. Also here: the checks themselves see a refusal and a pruned field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.serverside import (
    Refused,
    apply_and_compare,
    apply_strict,
    collection_path,
    in_namespace,
    lost_fields,
    read_back,
    resource,
)

from harness.cluster.kubeapi import LoopbackCluster

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NOT_SERVED = {("argoproj.io/v1alpha1", "WorkflowTemplate")}
"""Argo Workflows' CRDs are not among the pinned upstream CRDs the loopback cluster installs."""


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
                name = f"{path.relative_to(MANIFESTS)}:{doc['kind']}/{doc['metadata']['name']}"
                docs.append((name, doc))
    return docs


DOCS = documents()
SERVED = [(n, d) for n, d in DOCS if (d["apiVersion"], d["kind"]) not in NOT_SERVED]


def test_every_manifest_kind_is_held_against_the_server_or_listed() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for _, d in DOCS}
    assert kinds >= NOT_SERVED, "a kind listed as not served is no longer in manifests/"
    assert {"PodMonitor", "ServiceMonitor", "PrometheusRule", "CustomResourceDefinition"} <= {
        d["kind"] for _, d in SERVED
    }


@pytest.mark.binary
@pytest.mark.parametrize(("name", "doc"), SERVED, ids=[n for n, _ in SERVED])
def test_manifest_is_accepted_and_kept(
    loopback: LoopbackCluster, real_ns: str, name: str, doc: dict[str, Any]
) -> None:
    crd = doc["kind"] == "CustomResourceDefinition"
    obj = in_namespace(loopback, doc, real_ns)
    assert apply_and_compare(loopback, obj, dry_run=crd) == []


@pytest.mark.binary
def test_kinds_listed_as_not_served_are_not(loopback: LoopbackCluster) -> None:
    # if the cluster ever installs them, they belong in the test above
    for api_version, kind in NOT_SERVED:
        with pytest.raises(Exception, match=r"404|serves no"):
            resource(loopback, api_version, kind)


# --------------------------------------------------------------------------- the checks' checks


def config_map(namespace: str, **extra: Any) -> dict[str, Any]:
    meta = {"name": "probe", "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "b"}} | extra


def pod_monitor(namespace: str) -> dict[str, Any]:
    endpoint = {"targetPort": 8080, "path": "/metrics", "notAField": True}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {"selector": {}, "podMetricsEndpoints": [endpoint]},
    }


@pytest.mark.binary
def test_strict_validation_refuses_an_unknown_field(
    loopback: LoopbackCluster, real_ns: str
) -> None:
    # a custom resource and a built-in kind: the typed apply patch cannot hold the field
    with pytest.raises(Refused, match=r"podMetricsEndpoints\[0\]\.notAField: field not declared"):
        apply_strict(loopback, pod_monitor(real_ns))
    with pytest.raises(Refused, match=r"\.notAField: field not declared"):
        apply_strict(loopback, config_map(real_ns, notAField=1))


@pytest.mark.binary
def test_the_read_back_sees_what_the_server_pruned(loopback: LoopbackCluster, real_ns: str) -> None:
    # A create without strict validation stores the object with the unknown field dropped, and
    # says so in a warning at most: the comparison with the read-back is what catches it.
    sent = pod_monitor(real_ns)
    loopback.request("POST", f"{collection_path(loopback, sent)}?fieldValidation=Ignore", sent)
    assert lost_fields(sent, read_back(loopback, sent)) == [
        ".spec.podMetricsEndpoints[0].notAField: missing"
    ]


@pytest.mark.parametrize(
    ("sent", "got", "lost"),
    [
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}, []),
        ({"a": {"b": 1}}, {"a": {}}, [".a.b: missing"]),
        ({"a": [1, 2]}, {"a": [1]}, [".a: sent [1, 2], read back [1]"]),
        ({"a": [{"b": "x"}]}, {"a": [{"b": "y"}]}, [".a[0].b: sent 'x', read back 'y'"]),
        ({"a": 100.0}, {"a": 100}, []),
        ({"a": True}, {"a": 1}, [".a: sent True, read back 1"]),
        ({"a": "1"}, {"a": 1}, [".a: sent '1', read back 1"]),
    ],
)
def test_lost_fields(sent: Any, got: Any, lost: list[str]) -> None:
    assert lost_fields(sent, got) == lost
