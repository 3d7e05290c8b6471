"""The Grafana dashboard: its structure, and every PromQL expression of its panels and
annotations (variables substituted) run against a real Prometheus holding the standard two-day
vLLM history of the contract example (``history`` fixture, tests/conftest.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.history import History
from support.manifests import CONTROLLER_METRICS, VLLM_METRICS, metric_names
from support.scenario import HOUR

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests/grafana/modelcanary-dashboard.json"
DASH: dict[str, Any] = json.loads(DASHBOARD.read_text())


def _variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in DASH["templating"]["list"]}


def _exprs() -> list[tuple[str, str]]:
    """(where, expr) of every panel target and annotation query."""
    out = []
    for panel in DASH["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} {target['refId']}", target["expr"]))
    for ann in DASH["annotations"]["list"]:
        if "expr" in ann:
            out.append((f"annotation {ann['name']}", ann["expr"]))
    return out


def substitute(expr: str, namespace: str, canary: str) -> str:
    """What Grafana sends for ``expr`` (textbox variables at their defaults)."""
    values = {
        "namespace": namespace,
        "canary": canary,
        "__rate_interval": "4m",
        "__interval": "1m",
        "__range": "1h",
    }
    for name, var in _variables().items():
        if var["type"] == "textbox":
            values[name] = var["query"]
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr


def test_dashboard_structure() -> None:
    assert DASH["uid"] == "modelcanary"  # the notifier's links point here
    assert 36 <= DASH["schemaVersion"] <= 41
    variables = _variables()
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "label_values(canary_weight, namespace)" in variables["namespace"]["definition"]
    assert variables["canary"]["definition"].startswith('label_values(canary_weight{namespace="$n')
    assert variables["kpi_numerator"]["type"] == "textbox"
    ids = [p["id"] for p in DASH["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASH["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
    titles = " | ".join(p["title"] for p in DASH["panels"])
    for wanted in (
        "Candidate weight",
        "End-to-end latency P50 / P95 / P99",
        "Time to first token",
        "Inter-token latency",
        "Error rate",
        "Generated tokens / s",
        "KV cache usage",
        "KPI",
        "Check value vs threshold",
    ):
        assert wanted in titles
    annotations = {a["name"]: a for a in DASH["annotations"]["list"]}
    assert "canary_rollbacks_total" in annotations["Rollbacks"]["expr"]
    assert "canary_promotions_total" in annotations["Promotions"]["expr"]


def test_every_expression_selects_the_canary_and_known_metrics() -> None:
    for where, expr in _exprs():
        names = metric_names(expr)
        assert names <= CONTROLLER_METRICS | VLLM_METRICS, (where, names)
        per_canary = {n for n in names if not n.startswith("canary_controller_")}
        if per_canary:
            for match in re.finditer(r"(?:canary_|vllm:)[\w:]+\{([^}]*)\}", expr):
                assert 'namespace="$namespace"' in match.group(1), where
                assert 'canary="$canary"' in match.group(1), where


@pytest.mark.binary
def test_every_expression_runs_on_real_prometheus(history: History) -> None:
    scenario = history.scenario
    at = scenario.start + 12 * HOUR  # candidate at 25% of the traffic
    failures = []
    data: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(base_url=history.url, timeout=30) as client:
        for where, expr in _exprs():
            query = substitute(expr, scenario.namespace, scenario.canary)
            assert "$" not in query, (where, query)
            response = client.get("/api/v1/query", params={"query": query, "time": at})
            body = response.json()
            if response.status_code != 200 or body.get("status") != "success":
                failures.append(f"{where}: {body.get('error', response.text)}")
                continue
            data[where] = body["data"]["result"]
    assert failures == []
    # the serving panels show both variants of the history
    kpi = "KPI: ${kpi_numerator} / ${kpi_denominator}"
    serving = {
        p["title"]
        for p in DASH["panels"]
        if any(
            name in VLLM_METRICS for t in p.get("targets", []) for name in metric_names(t["expr"])
        )
    }
    assert len(serving) == 7
    for where, result in data.items():
        if where.rsplit(" ", 1)[0] in serving or where == f"{kpi} A":
            variants = {series["metric"].get("variant") for series in result}
            assert variants == {"bf16", "nf4"}, (where, result)
    p95 = {
        s["metric"]["variant"]: float(s["value"][1])
        for s in data["End-to-end latency P50 / P95 / P99 B"]
    }
    # candidate median 100 ms (log-sd 0.35): its P95 is well under a second and above the median
    assert 0.1 < p95["nf4"] < 1.0
    (drift,) = data[f"{kpi} B"]
    assert float(drift["value"][1]) == pytest.approx(0.63 / 0.70 - 1, abs=0.03)
