"""The committed CRD: generated from the models, structural, and accepting every example.

These tests start no program: the structural-schema rules apiextensions-apiserver applies are
checked directly, on every node reachable through any schema keyword (``properties``,
``additionalProperties``, ``patternProperties``, ``items``, ``allOf``/``anyOf``/``oneOf``/``not``,
...): every node typed or marked, and no keyword outside :data:`controlplane.spec.crd.SUPPORTED`
(so ``patternProperties``, ``propertyNames``, ``$ref``, ``anyOf``, ``title``, ``default`` and
``const`` all fail). The schema is exercised with a JSON Schema draft-4 validator, whose
``exclusiveMinimum: true`` and ``nullable``-free semantics match OpenAPI v3.0's.
``tests/spec/test_crd_real_server.py`` holds the CRD against the real API server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controlplane.spec import crd as crd_module
from controlplane.spec.crd import SUPPORTED, UnsupportedSchema, crd, crd_yaml, openapi_schema
from controlplane.spec.load import parse_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "manifests" / "crd" / "modelcanary.yaml"
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
ESCAPES = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def test_committed_crd_matches_the_generator() -> None:
    assert COMMITTED.read_text() == crd_yaml(), "stale CRD: run scripts/gen-crd"


def test_crd_identity() -> None:
    obj = yaml.safe_load(COMMITTED.read_text())
    spec = obj["spec"]
    assert obj["metadata"]["name"] == "modelcanaries.canary.controlplane.dev"
    assert (spec["group"], spec["names"]["plural"], spec["names"]["shortNames"]) == (
        "canary.controlplane.dev",
        "modelcanaries",
        ["mcanary"],
    )
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Phase", ".status.phase"),
        ("Step", ".status.step"),
        ("Weight", ".status.weight"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True


SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
SCHEMA_ONE = ("items", "additionalProperties", "additionalItems", "not", "propertyNames")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema in ``schema``, through every keyword that holds schemas."""
    yield path, schema
    for keyword in SCHEMA_MAPS:
        for name, sub in (schema.get(keyword) or {}).items():
            if isinstance(sub, dict):
                yield from nodes(sub, f"{path}.{keyword}[{name}]")
    for keyword in SCHEMA_ONE:
        sub = schema.get(keyword)
        if isinstance(sub, dict):
            yield from nodes(sub, f"{path}.{keyword}")
        elif isinstance(sub, list):  # draft-4 tuple items
            for i, item in enumerate(sub):
                yield from nodes(item, f"{path}.{keyword}[{i}]")
    for keyword in SCHEMA_LISTS:
        for i, sub in enumerate(schema.get(keyword) or []):
            yield from nodes(sub, f"{path}.{keyword}[{i}]")


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """What apiextensions-apiserver would refuse in ``schema`` (an ``openAPIV3Schema``)."""
    problems = []
    for path, node in nodes(schema):
        where = path or "."
        if "type" not in node and not any(node.get(e) for e in ESCAPES):
            problems.append(f"{where}: no type")
        problems.extend(f"{where}: {key} is not supported" for key in node if key not in SUPPORTED)
        if node.get("additionalProperties") is False:
            problems.append(f"{where}: additionalProperties: false")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties")
        if node.get("uniqueItems") is True:
            problems.append(f"{where}: uniqueItems: true")
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node and not isinstance(node[bound], bool):
                problems.append(f"{where}: numeric {bound} (OpenAPI v3.0 wants a boolean)")
        for rule in node.get("x-kubernetes-validations", []):
            if set(rule) - {"rule", "message", "messageExpression", "reason", "fieldPath"}:
                problems.append(f"{where}: x-kubernetes-validations entry {rule}")
    return problems


def committed_schema(text: str) -> dict[str, Any]:
    (version,) = yaml.safe_load(text)["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural() -> None:
    assert structural_problems(openapi_schema()) == []
    assert structural_problems(committed_schema(COMMITTED.read_text())) == []


def test_the_walk_reaches_maps_and_nested_schemas() -> None:
    # parameters is a map: its values' schema sits under additionalProperties
    paths = [p for p, _ in nodes(openapi_schema())]
    assert any(p.endswith(".properties[parameters].additionalProperties") for p in paths)
    # the shapes apiextensions refuses are found wherever they sit
    old_map = {
        "type": "object",
        "patternProperties": {"^[a-z]+$": {"type": "string", "title": "deep"}},
        "propertyNames": {"type": "string", "maxLength": 3},
    }
    nested = {
        "type": "object",
        "properties": {"a": {"type": "array", "items": old_map, "uniqueItems": True}},
        "additionalProperties": {"type": "string", "default": "x"},
    }
    assert structural_problems(nested) == [
        ".: properties and additionalProperties",
        ".properties[a]: uniqueItems: true",
        ".properties[a].items: patternProperties is not supported",
        ".properties[a].items: propertyNames is not supported",
        ".properties[a].items.patternProperties[^[a-z]+$]: title is not supported",
        ".additionalProperties: default is not supported",
    ]
    assert structural_problems({"anyOf": [{"$ref": "#/x"}]}) == [
        ".: no type",
        ".: anyOf is not supported",
        ".anyOf[0]: no type",
        ".anyOf[0]: $ref is not supported",
    ]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("contentEncoding", "base64"),
        ("if", {"type": "string"}),
        ("uniqueItems", True),
        ("propertyNames", {"enum": ["a"]}),
    ],
)
def test_a_keyword_the_crd_cannot_express_raises(
    monkeypatch: pytest.MonkeyPatch, keyword: str, value: Any
) -> None:
    field = {"type": "object" if keyword == "propertyNames" else "string", keyword: value}
    source = {"properties": {"spec": {"type": "object", "properties": {"field": field}}}}
    monkeypatch.setattr(crd_module, "json_schema", lambda: source)
    with pytest.raises(UnsupportedSchema):
        openapi_schema()


def test_a_map_with_two_key_patterns_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    two = {"^a$": {"type": "string"}, "^b$": {"type": "integer"}}
    field = {"type": "object", "patternProperties": two}
    source = {"properties": {"spec": {"type": "object", "properties": {"field": field}}}}
    monkeypatch.setattr(crd_module, "json_schema", lambda: source)
    with pytest.raises(UnsupportedSchema, match="several key patterns"):
        openapi_schema()


def example_object(path: Path) -> Any:
    # As the API server receives it: JSON-compatible data (YAML 1.2 floats, as kubectl reads them).
    return parse_text(path.read_text())[0].data


VALIDATOR = jsonschema.Draft4Validator(openapi_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_crd_schema_accepts_every_example(path: Path) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(example_object(path))
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value", "validator"),
    [
        pytest.param(("spec", "steps", 0, "weight"), "five", "type", id="weight-not-integer"),
        pytest.param(("spec", "steps", 0, "weight"), 101, "maximum", id="weight-over-100"),
        pytest.param(("spec", "stable", "quantization"), "fp16", "enum", id="unknown-quantization"),
        pytest.param(("spec", "steps", 0, "duration"), "7 days", "pattern", id="bad-duration"),
        pytest.param(("spec", "model", "parameters"), 0, "minimum", id="parameters-not-positive"),
    ],
)
def test_crd_schema_rejects_bad_shapes(path: tuple[Any, ...], value: Any, validator: str) -> None:
    data = example_object(EXAMPLES[0])
    node = data
    for seg in path[:-1]:
        node = node[seg]
    node[path[-1]] = value
    errors = list(VALIDATOR.iter_errors(data))
    assert [e.validator for e in errors] == [validator]


@pytest.mark.parametrize("value", ["200ms", 0.5, 3, "-5%"], ids=str)
def test_thresholds_accept_numbers_and_strings(value: Any) -> None:
    data = example_object(EXAMPLES[0])
    data["spec"]["steps"][0]["rollbackOn"][0]["above"] = value
    assert list(VALIDATOR.iter_errors(data)) == []


def test_duration_zero_may_be_an_integer() -> None:
    data = example_object(EXAMPLES[0])
    data["spec"]["steps"][0]["rollbackOn"][0]["for"] = 0
    assert list(VALIDATOR.iter_errors(data)) == []


def test_crd_object_is_what_the_yaml_holds() -> None:
    assert yaml.safe_load(crd_yaml()) == crd()
