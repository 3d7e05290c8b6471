"""Helpers of the chart tests: render and lint ``charts/controlplane`` with Helm's Go SDK
(``helm_python``, no helm binary, no cluster), and validate rendered objects against the
Kubernetes OpenAPI schemas (``kubernetes-validate``) or, for the Prometheus Operator kinds that
those schemas do not hold, against the small schema in
``tests/chart/schemas/monitoring.coreos.com.yaml``.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "controlplane"
RELEASE = "cp"
NAMESPACE = "canary-system"
# The Kubernetes version whose schemas every object must fit: the kind node image of
# scripts/kind-up.sh (tests/chart/test_kind_setup.py checks they agree).
KUBE_VERSION = "1.34.0"
MONITORING_SCHEMAS = ROOT / "tests" / "chart" / "schemas" / "monitoring.coreos.com.yaml"

Doc = dict[str, Any]


def render_files(
    values: dict[str, Any] | None = None,
    chart: Path = CHART,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` would."""
    with helm.Chart.load(chart) as loaded:
        return loaded.render(values=values, name=release, namespace=namespace, is_install=True)


def render(
    values: dict[str, Any] | None = None,
    chart: Path = CHART,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> list[Doc]:
    """Every object the chart installs with ``values``: crds/ first, then the templates."""
    docs: list[Doc] = []
    with helm.Chart.load(chart) as loaded:
        for crd in loaded.crds:
            docs.extend(d for d in yaml.safe_load_all(crd["data"]) if d)
    for path, text in sorted(render_files(values, chart, namespace, release).items()):
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), f"{path}: not an object"
                docs.append(doc)
    return docs


def notes(values: dict[str, Any] | None = None) -> str:
    return render_files(values)[f"{CHART.name}/templates/NOTES.txt"]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (main,) = pod["containers"]
    assert isinstance(main, dict)
    return main


def chart_copy(tmp: Path) -> Path:
    """A copy of the chart to render with extra files (a dashboard, a rules file)."""
    target = tmp / CHART.name
    shutil.copytree(CHART, target)
    return target


@cache
def _monitoring_schemas() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MONITORING_SCHEMAS.read_text())
    return loaded


def validate(doc: Doc) -> str:
    """Validate one object; returns what it was validated against. Raises on a bad object and
    on a kind that no schema here covers (nothing is skipped silently)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    if api_version == "monitoring.coreos.com/v1":
        schema = _monitoring_schemas()[kind]
        jsonschema.Draft7Validator(schema).validate(doc)
        return f"tests/chart/schemas ({kind})"
    version = kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    return f"kubernetes {version} (strict)"


def as_json(doc: Doc) -> str:
    return json.dumps(doc, sort_keys=True)
