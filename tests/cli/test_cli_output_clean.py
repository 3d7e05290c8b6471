"""``-o json|yaml`` of ``get`` and ``list`` print the object as ``kubectl neat`` would: without
``metadata.managedFields`` and the ``kubectl.kubernetes.io/last-applied-configuration``
annotation, everything else kept."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ruamel.yaml import YAML
from support.canaries import canary_dict
from support.cli import RunCli
from support.cli_rollouts import NAME, NS

from controlplane.cli.output import LAST_APPLIED, shown
from controlplane.kube.client import canary_ref
from harness.kube.fake import FakeKube

MANAGED = [
    {
        "manager": "kubectl-client-side-apply",
        "operation": "Update",
        "apiVersion": "canary.controlplane.dev/v1alpha1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {}},
    }
]


def _applied(kube: FakeKube, **annotations: str) -> None:
    data = canary_dict(
        NAME,
        NS,
        metadata={
            "annotations": {LAST_APPLIED: '{"apiVersion":"x"}', **annotations},
            "labels": {"team": "support"},
        },
    )
    data["metadata"]["managedFields"] = MANAGED
    kube.create(data)


def _parse(text: str, fmt: str) -> Any:
    return json.loads(text) if fmt == "json" else YAML(typ="safe").load(text)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_get_prints_the_object_without_bookkeeping(
    fmt: str, kube: FakeKube, run_cli: RunCli
) -> None:
    _applied(kube, owner="alice")
    result = run_cli("get", NAME, "-n", NS, "-o", fmt)
    assert result.code == 0, result.err
    assert "managedFields" not in result.out
    assert LAST_APPLIED not in result.out
    meta = _parse(result.out, fmt)["metadata"]
    assert meta["annotations"] == {"owner": "alice"}
    assert meta["labels"] == {"team": "support"}
    assert (meta["name"], meta["namespace"]) == (NAME, NS)
    assert "managedFields" in kube.get(canary_ref(NS, NAME))["metadata"]  # stored as it was


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_list_prints_the_items_without_bookkeeping(
    fmt: str, kube: FakeKube, run_cli: RunCli
) -> None:
    _applied(kube)
    result = run_cli("list", "-n", NS, "-o", fmt)
    assert result.code == 0, result.err
    assert "managedFields" not in result.out
    assert LAST_APPLIED not in result.out
    (item,) = _parse(result.out, fmt)["items"]
    assert "annotations" not in item["metadata"]  # nothing else was in it
    assert item["spec"] == canary_dict(NAME, NS)["spec"]


def test_shown_keeps_everything_else_and_leaves_the_object_alone() -> None:
    obj = canary_dict(NAME, NS, metadata={"annotations": {LAST_APPLIED: "{}", "a": "b"}})
    obj["metadata"]["managedFields"] = MANAGED
    before = json.loads(json.dumps(obj))
    out = shown(obj)
    assert obj == before
    expected = json.loads(json.dumps(obj))
    del expected["metadata"]["managedFields"]
    expected["metadata"]["annotations"] = {"a": "b"}
    assert out == expected
