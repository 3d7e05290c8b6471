"""Release hygiene: one version (controlplane.__version__) that Chart.yaml repeats, and the files
the chart carries as copies (Helm cannot read outside the chart directory) equal their sources:
the generated CRD, the Grafana dashboards and the controller's alert rules. The CRD accepts every
example in canary/ against its own openAPIV3Schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support.chart import CHART, ROOT

import controlplane
from controlplane.spec.load import parse_text

CRD_SOURCE = ROOT / "manifests" / "crd" / "modelcanary.yaml"
CRD_COPY = CHART / "crds" / "modelcanary.yaml"
DASHBOARDS = ROOT / "manifests" / "grafana"
RULES_SOURCE = ROOT / "manifests" / "prometheus" / "controller-rules.yaml"
RULES_COPY = CHART / "rules" / "controller-rules.yaml"
EXAMPLES = sorted((ROOT / "canary").glob("*.yml"))
SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def test_chart_version_and_app_version_equal_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert SEMVER.match(controlplane.__version__)
    assert chart["version"] == controlplane.__version__
    assert chart["appVersion"] == controlplane.__version__


def test_chart_crd_is_the_generated_crd_byte_for_byte() -> None:
    assert CRD_COPY.read_bytes() == CRD_SOURCE.read_bytes(), (
        "charts/controlplane/crds/modelcanary.yaml differs from manifests/crd/modelcanary.yaml: "
        "cp manifests/crd/modelcanary.yaml charts/controlplane/crds/"
    )


def test_chart_dashboards_equal_manifests_grafana() -> None:
    sources = {p.name: p.read_bytes() for p in DASHBOARDS.glob("*.json")}
    copies = {p.name: p.read_bytes() for p in (CHART / "dashboards").glob("*.json")}
    assert copies == sources, "cp manifests/grafana/*.json charts/controlplane/dashboards/"


def test_chart_rules_equal_manifests_prometheus() -> None:
    if RULES_SOURCE.exists():
        assert RULES_COPY.exists(), f"cp {RULES_SOURCE.relative_to(ROOT)} {RULES_COPY.parent}"
        assert RULES_COPY.read_bytes() == RULES_SOURCE.read_bytes()
    else:
        assert not RULES_COPY.exists(), "the chart carries rules that have no source"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_COPY.read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def validator() -> jsonschema.Draft4Validator:
    # OpenAPI v3.0's exclusiveMinimum: true and nullable fit draft 4 (see tests/spec/test_crd.py)
    return jsonschema.Draft4Validator(crd_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_fit_the_crd_schema(path: Path) -> None:
    # the spec loader reads YAML as the API server does (8.0e9 is a number, not a string)
    docs = [d.data for d in parse_text(path.read_text(), path.name)]
    canaries = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ModelCanary"]
    assert canaries
    for doc in canaries:
        errors = sorted(validator().iter_errors(doc), key=str)
        assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_crd_schema_rejects_a_bad_canary() -> None:
    doc = parse_text(EXAMPLES[0].read_text())[0].data
    doc["spec"]["candidate"]["quantization"] = "int3"
    doc["spec"]["steps"] = "all at once"
    paths = {tuple(e.absolute_path) for e in validator().iter_errors(doc)}
    assert ("spec", "candidate", "quantization") in paths
    assert ("spec", "steps") in paths
