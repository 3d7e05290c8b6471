"""The committed CRD: generated from the models, structural, and accepting every example.

The API server is not available here, so its structural-schema rules are checked directly (every
node typed or marked, no $ref / anyOf / titles / additionalProperties: false / const), and the
schema is exercised with a JSON Schema draft-4 validator, whose ``exclusiveMinimum: true`` and
``nullable``-free semantics match OpenAPI v3.0's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controlplane.spec.crd import crd, crd_yaml, openapi_schema
from controlplane.spec.load import parse_text

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "manifests" / "crd" / "modelcanary.yaml"
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
ESCAPES = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
FORBIDDEN = ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "default")


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


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural() -> None:
    problems = []
    for path, node in nodes(openapi_schema()):
        if "type" not in node and not any(node.get(e) for e in ESCAPES):
            problems.append(f"{path}: no type")
        problems.extend(f"{path}: {key}" for key in FORBIDDEN if key in node)
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties: false")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties")
        if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            problems.append(f"{path}: numeric exclusiveMinimum (OpenAPI v3.0 wants a boolean)")
    assert problems == []


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
