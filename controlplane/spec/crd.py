"""The ModelCanary CustomResourceDefinition, generated from the pydantic models.

Owns the translation of the models' JSON Schema into a structural OpenAPI v3.0 schema the API
server accepts (no defaults: the models own them). ``manifests/crd/modelcanary.yaml`` is its output
(``canaryctl schema --crd``; a test fails on drift). The API server checks shape only. Pure.
See docs/spec.md, "The CRD".
"""

from __future__ import annotations

from typing import Any

import yaml

from controlplane.errors import ControlPlaneError
from controlplane.spec.models import API_GROUP, KIND, PLURAL, SHORT_NAME, ModelCanary
from controlplane.spec.units import DURATION_PATTERN

VERSION = "v1alpha1"
CRD_NAME = f"{PLURAL}.{API_GROUP}"
HEADER = (
    "# Generated from controlplane/spec/models.py by `canaryctl schema --crd` (scripts/gen-crd).\n"
    "# Do not edit: change the models and regenerate; tests/spec/test_crd.py fails on drift.\n"
)

_DROP = {"title", "default", "$defs", "examples"}

SUPPORTED = frozenset(
    {
        "description",
        "type",
        "format",
        "properties",
        "items",
        "additionalProperties",
        "required",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "nullable",
        "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
    }
)
"""The OpenAPI v3.0 keywords a structural schema may hold, as apiextensions-apiserver v1.34 accepts
them (``validation.go``: ``patternProperties``, ``propertyNames``, ``$ref``, ``definitions``,
``dependencies``, ``additionalItems`` and ``uniqueItems: true`` are forbidden, ``title`` and
``default`` we leave out on purpose). Anything else makes :func:`openapi_schema` fail loudly."""


class UnsupportedSchema(ControlPlaneError, ValueError):
    """The models' JSON Schema uses a keyword the CRD cannot express."""


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _map_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``patternProperties`` (one pattern) and ``propertyNames`` of a map, which apiextensions
    refuses, as ``additionalProperties`` (the values' schema: kept, not pruned) plus CEL rules on
    the keys (``self.all(k, ...)`` ranges over a map's keys)."""
    patterns = node.get("patternProperties") or {}
    if len(patterns) > 1 or (patterns and "additionalProperties" in node):
        raise UnsupportedSchema(f"a map with several key patterns: {sorted(patterns)}")
    rules: list[dict[str, str]] = []
    names = dict(node.get("propertyNames") or {})
    pattern = next(iter(patterns), None) or names.pop("pattern", None)
    if pattern is not None:
        rules.append(
            {
                "rule": f"self.all(k, k.matches({_cel_string(pattern)}))",
                "message": f"every key must match {pattern}",
            }
        )
    low, high = names.pop("minLength", None), names.pop("maxLength", None)
    if low is not None or high is not None:
        checks = [f"size(k) >= {low}"] if low is not None else []
        checks += [f"size(k) <= {high}"] if high is not None else []
        span = f"{low or 0} to {high} characters" if high is not None else f"at least {low}"
        rules.append({"rule": f"self.all(k, {' && '.join(checks)})", "message": f"keys are {span}"})
    names.pop("type", None)
    if names:
        raise UnsupportedSchema(f"propertyNames keywords the CRD cannot check: {sorted(names)}")
    out = {k: v for k, v in node.items() if k not in ("patternProperties", "propertyNames")}
    if patterns:
        out["additionalProperties"] = next(iter(patterns.values()))
    if rules:
        out["x-kubernetes-validations"] = [*node.get("x-kubernetes-validations", []), *rules]
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a ModelCanary as users write it (camelCase names)."""
    return ModelCanary.model_json_schema(by_alias=True, mode="validation")


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = dict(target)
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        node = merged
    return node


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) < len(node["anyOf"])
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        if len(branches) == 1:
            inner = _resolve(branches[0], defs)
            merged = {**inner, **{k: v for k, v in outer.items() if k not in _DROP}}
            single = _structural(merged, defs)
            if nullable:
                single["nullable"] = True
            return single
        # several types (a threshold: number or string): any value, checked by the models
        description = outer.get("description") or next(
            (b["description"] for b in branches if "description" in b), None
        )
        loose: dict[str, Any] = {"description": description} if description else {}
        loose["x-kubernetes-preserve-unknown-fields"] = True
        if nullable:
            loose["nullable"] = True
        return loose
    if "patternProperties" in node or "propertyNames" in node:
        node = _map_of(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out["properties"] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _structural(value, defs)
            # False (unknown fields forbidden): the API server prunes them; validate reports them
        elif key == "uniqueItems" and value is True:
            raise UnsupportedSchema("uniqueItems: true (a set) has no CRD equivalent: use a list")
        elif key in SUPPORTED:
            out[key] = value
        else:
            raise UnsupportedSchema(f"JSON Schema keyword {key!r} has no CRD equivalent")
    if out.get("pattern") == DURATION_PATTERN and out.get("type") == "string":
        del out["type"]  # "0" may be written unquoted: an integer or a duration string
        out["x-kubernetes-int-or-string"] = True
    return out


def openapi_schema() -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of the CRD."""
    source = json_schema()
    defs: dict[str, Any] = source.get("$defs", {})
    spec = _structural(source["properties"]["spec"], defs)
    return {
        "description": "A metric-gated canary rollout of a served LLM variant.",
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {
                "description": "Written by the controller.",
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            },
        },
    }


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": [SHORT_NAME],
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Step", "type": "integer", "jsonPath": ".status.step"},
                        {"name": "Weight", "type": "integer", "jsonPath": ".status.weight"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Never writes anchors/aliases (the same enum in two places is written twice)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def crd_yaml() -> str:
    """The CRD as the YAML committed in ``manifests/crd/modelcanary.yaml``."""
    body = yaml.dump(crd(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body
