"""The WorkflowTemplates in manifests/argo/ hang together (Argo's CRD schema is not available
offline, so this checks what can be checked): one WorkflowTemplate per file, the entrypoint and
every referenced template exist, every ``{{workflow.parameters.X}}`` / ``{{inputs.parameters.X}}``
is declared, the embedded Python compiles, and the gates of canary/gated.yml pass only declared
parameters and every required one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.validation import validated_file

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "manifests" / "argo").glob("*.yaml"))
REF = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HEREDOC = re.compile(r"python3? - <<'PY'\n(.*?)\n\s*PY\n", re.S)


def load(path: Path) -> dict[str, Any]:
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert isinstance(doc, dict)
    return doc


def test_both_templates_are_shipped() -> None:
    assert {p.name for p in FILES} == {"llm-regression-eval.yaml", "quantized-model-profile.yaml"}


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_workflow_template_structure(path: Path) -> None:
    doc = load(path)
    assert (doc["apiVersion"], doc["kind"]) == ("argoproj.io/v1alpha1", "WorkflowTemplate")
    assert NAME.match(doc["metadata"]["name"])
    assert doc["metadata"]["name"] == path.stem
    spec = doc["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    assert len(templates) == len(spec["templates"]), "duplicate template names"
    assert spec["entrypoint"] in templates
    for template in templates.values():
        kinds = [k for k in ("container", "script", "steps", "dag", "resource") if k in template]
        assert len(kinds) == 1, f"{template['name']}: exactly one kind, got {kinds}"
        for group in template.get("steps") or []:
            for item in group:
                assert item["template"] in templates, item
        for task in (template.get("dag") or {}).get("tasks") or []:
            assert task["template"] in templates, task
    # parameters referenced exist
    declared = {p["name"] for p in spec["arguments"]["parameters"]}
    for template in templates.values():
        inputs = {p["name"] for p in (template.get("inputs") or {}).get("parameters") or []}
        for text in strings({k: v for k, v in template.items() if k != "inputs"}):
            for ref in REF.findall(text):
                if ref.startswith("workflow.parameters."):
                    assert ref.removeprefix("workflow.parameters.") in declared, ref
                elif ref.startswith("inputs.parameters."):
                    assert ref.removeprefix("inputs.parameters.") in inputs, ref
                else:
                    pytest.fail(f"{template['name']}: unexpected reference {{{{{ref}}}}}")
        for param in (template.get("inputs") or {}).get("parameters") or []:
            for ref in REF.findall(str(param.get("value", ""))):
                assert ref.removeprefix("workflow.parameters.") in declared, ref
        for param in (template.get("outputs") or {}).get("parameters") or []:
            assert param["valueFrom"]["path"].startswith("/"), param


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_embedded_python_compiles(path: Path) -> None:
    compiled = 0
    for template in load(path)["spec"]["templates"]:
        script = template.get("script")
        if not script:
            continue
        source = script["source"]
        if script["command"] == ["python"]:
            compile(source, f"{path.name}:{template['name']}", "exec")
            compiled += 1
        for block in HEREDOC.findall(source):
            lines = block.splitlines()
            indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
            compile("\n".join(x[indent:] for x in lines), f"{path.name}:heredoc", "exec")
            compiled += 1
    assert compiled >= 1


def test_gated_example_passes_what_the_templates_take() -> None:
    templates = {load(p)["metadata"]["name"]: load(p) for p in FILES}
    (canary,) = validated_file(ROOT / "canary" / "gated.yml")
    assert canary.spec.gates
    for gate in canary.spec.gates:
        template = templates[gate.workflow_template.name]
        params = template["spec"]["arguments"]["parameters"]
        declared = {p["name"] for p in params}
        required = {p["name"] for p in params if "value" not in p}
        assert set(gate.parameters) <= declared, gate.name
        assert required <= set(gate.parameters), gate.name
