"""The ModelCanary CRD on the real API server (the loopback kube-apiserver v1.34).

Every example spec in ``canary/`` applied as a ModelCanary object with strict server-side apply
comes back with every field intact (``spec.gates[].parameters`` values included: the map's values
schema is ``additionalProperties``, not the ``patternProperties`` apiextensions refuses); a gate
parameter key that breaks the key rules is refused with the CEL rule's message; and the CRD the
server runs is the one we ship, chart copy included.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.serverside import Refused, apply_and_compare, apply_strict, in_namespace, read_back

from controlplane.spec.crd import CRD_NAME, SUPPORTED
from controlplane.spec.load import parse_text
from harness.cluster.kubeapi import LoopbackCluster

pytestmark = pytest.mark.binary

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifests" / "crd" / "modelcanary.yaml"
CHART_COPY = ROOT / "charts" / "controlplane" / "crds" / "modelcanary.yaml"
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
KEY_PATTERN_MESSAGE = "every key must match ^[A-Za-z0-9_.-]+$"
KEY_SIZE_MESSAGE = "keys are 1 to 253 characters"


def objects(path: Path) -> list[dict[str, Any]]:
    # as kubectl sends them: JSON-compatible data (YAML 1.2 floats)
    docs = [doc.data for doc in parse_text(path.read_text(encoding="utf-8"))]
    assert all(isinstance(d, dict) for d in docs)
    return docs  # type: ignore[return-value]


def gated() -> dict[str, Any]:
    [obj] = objects(ROOT / "canary" / "gated.yml")
    return obj


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_round_trips_with_every_field(
    loopback: LoopbackCluster, real_ns: str, path: Path
) -> None:
    for obj in objects(path):
        assert apply_and_compare(loopback, in_namespace(loopback, obj, real_ns)) == []


def test_gate_parameters_are_stored_as_sent(loopback: LoopbackCluster, real_ns: str) -> None:
    sent = in_namespace(loopback, gated(), real_ns)
    sent_parameters = [gate.get("parameters") for gate in sent["spec"]["gates"]]
    assert any(sent_parameters), "canary/gated.yml has no gate parameters left to check"
    apply_strict(loopback, sent)
    stored = read_back(loopback, sent)
    assert [gate.get("parameters") for gate in stored["spec"]["gates"]] == sent_parameters


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("has space", KEY_PATTERN_MESSAGE),
        ("slash/key", KEY_PATTERN_MESSAGE),
        ("{{model}}", KEY_PATTERN_MESSAGE),
        ("k" * 254, KEY_SIZE_MESSAGE),
    ],
    ids=["space", "slash", "braces", "too-long"],
)
def test_a_bad_gate_parameter_key_is_refused_with_the_cel_message(
    loopback: LoopbackCluster, real_ns: str, key: str, message: str
) -> None:
    obj = in_namespace(loopback, gated(), real_ns)
    obj["metadata"]["name"] = "bad-key"
    obj["spec"]["gates"][0]["parameters"][key] = "value"
    with pytest.raises(Refused) as refused:
        apply_strict(loopback, obj)
    assert refused.value.code == 422
    assert "spec.gates[0].parameters" in str(refused.value)
    assert message in str(refused.value)


def test_a_good_key_at_the_limits_is_accepted(loopback: LoopbackCluster, real_ns: str) -> None:
    obj = in_namespace(loopback, gated(), real_ns)
    obj["metadata"]["name"] = "long-key"
    obj["spec"]["gates"][0]["parameters"] = {"k" * 253: "v", "a.B_c-9": "w" * 10_000}
    assert apply_and_compare(loopback, obj) == []


def test_the_served_crd_is_the_manifest_and_the_chart_copy(loopback: LoopbackCluster) -> None:
    assert CHART_COPY.read_text(encoding="utf-8") == MANIFEST.read_text(encoding="utf-8")
    shipped = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    served = loopback.request(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    )
    conditions = {c["type"]: c["status"] for c in served["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NonStructuralSchema") is None
    assert served["spec"]["versions"] == shipped["spec"]["versions"]
    assert served["spec"]["names"] == shipped["spec"]["names"]
    # and applying it again changes nothing (a dry run: the cluster runs on it)
    again = apply_strict(loopback, copy.deepcopy(shipped), dry_run=True)
    assert again["spec"]["versions"] == shipped["spec"]["versions"]


# ----------------------------------------------------------- what apiextensions accepts (SUPPORTED)


def probe_crd(field: dict[str, Any]) -> dict[str, Any]:
    """A throwaway CRD whose ``spec.field`` is ``field`` (applied as a dry run only)."""
    schema = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"field": field}}},
    }
    version = {"name": "v1", "served": True, "storage": True}
    version["schema"] = {"openAPIV3Schema": schema}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "probes.probe.controlplane.dev"},
        "spec": {
            "group": "probe.controlplane.dev",
            "names": {"kind": "Probe", "plural": "probes", "singular": "probe"},
            "scope": "Namespaced",
            "versions": [version],
        },
    }


EVERY_SUPPORTED_KEYWORD: dict[str, Any] = {
    "description": "every keyword SUPPORTED lists, on one field",
    "type": "object",
    "properties": {
        "text": {"type": "string", "format": "byte", "pattern": "^a", "enum": ["ab"]},
        "sized": {"type": "string", "minLength": 1, "maxLength": 3, "nullable": True},
        "number": {
            "type": "number",
            "minimum": 0,
            "maximum": 10,
            "exclusiveMinimum": True,
            "exclusiveMaximum": True,
            "multipleOf": 0.5,
        },
        "list": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": 5,
            "uniqueItems": False,
            "x-kubernetes-list-type": "set",
        },
        "map": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "minProperties": 1,
            "maxProperties": 5,
            "x-kubernetes-map-type": "granular",
            "x-kubernetes-validations": [{"rule": "self.all(k, size(k) < 9)", "message": "m"}],
        },
        "either": {"x-kubernetes-int-or-string": True},
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
    "required": ["text"],
}


def test_every_supported_keyword_is_accepted_by_the_server(loopback: LoopbackCluster) -> None:
    used = {key for node in _schemas(EVERY_SUPPORTED_KEYWORD) for key in node}
    assert used == set(SUPPORTED)
    apply_strict(loopback, probe_crd(EVERY_SUPPORTED_KEYWORD), dry_run=True)


def _schemas(node: dict[str, Any]) -> list[dict[str, Any]]:
    subs = list(node.get("properties", {}).values())
    subs += [node[k] for k in ("items", "additionalProperties") if isinstance(node.get(k), dict)]
    return [node, *(s for sub in subs for s in _schemas(sub))]


@pytest.mark.parametrize(
    ("field", "complaint"),
    [
        (
            {"type": "object", "patternProperties": {"^a$": {"type": "string"}}},
            "patternProperties: Forbidden",
        ),
        (
            {"type": "object", "propertyNames": {"type": "string", "maxLength": 3}},
            "propertyNames: field not declared in schema",
        ),
        (
            {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "uniqueItems: Forbidden",
        ),
    ],
    ids=["patternProperties", "propertyNames", "uniqueItems"],
)
def test_what_crd_py_refuses_the_server_refuses(
    loopback: LoopbackCluster, field: dict[str, Any], complaint: str
) -> None:
    # the ModelCanary CRD before additionalProperties + CEL used the first two: not installable
    # (propertyNames is not even a field of apiextensions' JSONSchemaProps)
    with pytest.raises(Refused, match=complaint):
        apply_strict(loopback, probe_crd(field), dry_run=True)
