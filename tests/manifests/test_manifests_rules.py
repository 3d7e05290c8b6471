"""The controller's alert rules: valid for promtool, unit-tested with ``promtool test rules``,
identical in the plain file and the PrometheusRule, and written against existing metric names."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.manifests import CONTROLLER_METRICS, SCRAPE_METRICS, metric_names

from controlplane.local.prometheus import binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "manifests/prometheus/controller-rules.yaml"
OPERATOR_RULE = ROOT / "manifests/prometheus/controller-prometheusrule.yaml"
UNIT_TESTS = Path(__file__).with_name("controller-rules.test.yaml")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.mark.binary
def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


@pytest.mark.binary
def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.binary
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The same unit tests against rules with a loosened threshold must fail."""
    text = RULES.read_text().replace("for: 2h", "for: 4h")
    assert text != RULES.read_text()
    (tmp_path / "manifests/prometheus").mkdir(parents=True)
    (tmp_path / "manifests/prometheus/controller-rules.yaml").write_text(text)
    (tmp_path / "tests/manifests").mkdir(parents=True)
    copy = tmp_path / "tests/manifests/controller-rules.test.yaml"
    copy.write_text(UNIT_TESTS.read_text())
    result = _promtool("test", "rules", str(copy))
    assert result.returncode != 0
    assert "ModelCanaryPausedTooLong" in result.stdout + result.stderr


def test_prometheusrule_carries_the_same_groups() -> None:
    plain = yaml.safe_load(RULES.read_text())
    operator = yaml.safe_load(OPERATOR_RULE.read_text())
    assert operator["apiVersion"] == "monitoring.coreos.com/v1"
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"]


def test_every_alert_has_severity_summary_and_known_metrics() -> None:
    names = {rule["alert"] for rule in _rules()}
    assert {
        "CanaryControllerDown",
        "CanaryControllerNoLeader",
        "CanaryControllerReconcileErrors",
        "CanaryControllerAnalysisStalled",
        "CanaryControllerSlowTicks",
        "CanaryControllerProviderErrors",
        "CanaryAlertDeliveryFailing",
        "ModelCanaryPausedTooLong",
        "ModelCanaryRolledBack",
    } <= names
    for rule in _rules():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= CONTROLLER_METRICS | SCRAPE_METRICS, (rule["alert"], used)
