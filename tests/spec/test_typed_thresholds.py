"""Typed thresholds (issue 41): a bare number on a time or ratio threshold is refused with the
unit to write, the resolution rule reads whatever is written, and a latency threshold inside a
coarse histogram bucket is a warning (``validation.warnings``, ``canaryctl validate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support.canaries import canary_dict, model_canary

from controlplane.analysis import resolution
from controlplane.cli.main import main
from controlplane.promql.contract import contract_for
from controlplane.validation import check_object, warnings, warnings_text

METRICS = [
    {"name": "ttft", "builtin": "ttft", "quantile": 0.99},
    {"name": "latency", "builtin": "e2e-latency"},
    {"name": "errors", "builtin": "error-rate"},
    {"name": "rps", "builtin": "request-rate"},
    {"name": "queue", "query": "up", "unit": "number"},
    {"name": "q-seconds", "query": "up", "unit": "seconds"},
    {"name": "q-ratio", "query": "up", "unit": "ratio"},
    {"name": "kpi", "query": "up"},
]
PATH = "spec.steps[0].rollbackOn[0].above"


def first_step(*checks: dict[str, Any]) -> list[dict[str, Any]]:
    """One step, at 100%, with ``checks``."""
    return [{"weight": 100, "rollbackOn": list(checks)}]


def problems_of(*checks: dict[str, Any]) -> list[tuple[str, str]]:
    data = canary_dict(metrics=METRICS, steps=first_step(*checks), shadow=None)
    return [(p.path, p.message) for p in check_object(data)]


@pytest.mark.parametrize("bare", [0.2, "0.2", 200], ids=["float", "string", "int"])
@pytest.mark.parametrize(
    ("metric", "what", "hint"),
    [
        ("ttft", "a latency (ttft, seconds)", "write a unit, e.g. 200ms or 0.2s"),
        (
            "latency",
            "a latency (metric 'latency': e2e-latency, seconds)",
            "write a unit, e.g. 200ms or 0.2s",
        ),
        ("q-seconds", "a latency (query metric 'q-seconds', unit: seconds)", "write a unit"),
    ],
)
def test_a_bare_number_on_a_latency_is_refused_with_the_unit(
    bare: object, metric: str, what: str, hint: str
) -> None:
    found = problems_of({"metric": metric, "above": bare})
    message = f"{bare} is a bare number on {what}: {hint}"
    assert any(path == PATH and m.startswith(message) for path, m in found), found


@pytest.mark.parametrize(
    ("bare", "percent"), [(0.2, "20%"), ("0.2", "20%"), (200, "200%"), (0.001, "0.1%")]
)
@pytest.mark.parametrize(
    ("metric", "what"),
    [
        ("errors", "a ratio (metric 'errors': error-rate, a fraction from 0 to 1)"),
        ("q-ratio", "a ratio (query metric 'q-ratio', unit: ratio)"),
    ],
)
def test_a_bare_number_on_a_ratio_is_refused_with_a_percentage(
    bare: object, percent: str, metric: str, what: str
) -> None:
    assert problems_of({"metric": metric, "above": bare}) == [
        (PATH, f"{bare} is a bare number on {what}: write a percentage, e.g. {percent}")
    ]


@pytest.mark.parametrize("bare", [0.05, "0.05", 5])
def test_a_bare_number_on_a_relative_drift_is_refused(bare: object) -> None:
    percent = "5%"
    assert problems_of({"metric": "rps", "compare": "baseline", "above": bare}) == [
        (
            PATH,
            f"{bare} is a bare number on a relative drift (compare: baseline, candidate / stable "
            f"- 1): write a percentage, e.g. {percent}",
        )
    ]


@pytest.mark.parametrize(
    "check",
    [
        {"metric": "queue", "above": 200},
        {"metric": "queue", "above": "0.2"},
        {"metric": "rps", "below": 10},
        {"metric": "kpi", "above": 0.5},
        {"metric": "errors", "above": 0},
        {"metric": "errors", "above": "0.1%"},
        {"metric": "latency", "compare": "baseline", "above": "10%"},
        {"metric": "latency", "compare": "baseline", "above": 0},
        {"metric": "ttft", "above": "250ms"},
    ],
    ids=lambda c: f"{c['metric']}-{c.get('above', c.get('below'))}",
)
def test_plain_numbers_where_they_mean_what_they_say(check: dict[str, Any]) -> None:
    assert problems_of(check) == []


@pytest.mark.parametrize(
    ("bare", "why"),
    [
        (8000, "at or above its last finite bucket bound 7680.00s"),
        ("0.2", "below its first bucket bound 300.0ms"),
        (0, "below its first bucket bound 300.0ms"),
    ],
)
def test_the_resolution_rule_reads_a_bare_number_too(bare: object, why: str) -> None:
    found = problems_of({"metric": "latency", "above": bare})
    assert any(path == PATH and why in message for path, message in found), found


# ---------------------------------------------------------------------- the bucket warning

WARNING_150 = (
    "150ms lies in ttft's bucket 100ms–250ms; histogram_quantile interpolates linearly inside "
    "it, so a true p99 anywhere in that bucket can read as anything from 100ms to 250ms (up to "
    "100ms off); a bound on a bucket edge (100ms or 250ms) is read exactly"
)


def ttft_steps(threshold: str, **check: Any) -> list[dict[str, Any]]:
    """One step with one check on ttft (p99)."""
    return first_step({"metric": "ttft", "above": threshold, **check})


def test_a_threshold_inside_a_coarse_bucket_is_a_warning_not_a_problem() -> None:
    data = canary_dict(metrics=METRICS, steps=ttft_steps("150ms"), shadow=None)
    assert check_object(data) == []
    [warning] = warnings(model_canary(base=data))
    assert (warning.path, warning.message) == (PATH, WARNING_150)


@pytest.mark.parametrize("threshold", ["100ms", "250ms", "0.1s"])
def test_a_threshold_on_a_bucket_edge_is_read_exactly(threshold: str) -> None:
    assert (
        warnings(
            model_canary(
                base=canary_dict(metrics=METRICS, steps=ttft_steps(threshold), shadow=None)
            )
        )
        == []
    )


def test_relative_checks_and_fine_buckets_get_no_warning() -> None:
    assert (
        warnings(
            model_canary(
                base=canary_dict(
                    metrics=METRICS, steps=ttft_steps("10%", compare="baseline"), shadow=None
                )
            )
        )
        == []
    )
    # e2e-latency 1.5s-2s: at most 0.3s (19% of 1.7s) off
    checks = first_step({"metric": "latency", "above": "1.7s"})
    assert warnings(model_canary(metrics=METRICS, steps=checks, shadow=None)) == []


@pytest.mark.parametrize("version", [None, "0.33"])
def test_the_coarse_rule(version: str | None) -> None:
    ttft = contract_for(version).buckets("ttft")
    assert resolution.coarse_bucket(0.15, ttft) == (0.1, 0.25)
    assert resolution.coarse_bucket(0.1, ttft) is None  # an edge
    assert resolution.coarse_bucket(0.09, ttft) is None  # 80ms-100ms: 11% off at most
    assert resolution.coarse_bucket(0.0005, ttft) is None  # below b_1: an error instead
    assert resolution.coarse_bucket(3000.0, ttft) is None  # above b_n: an error instead


def test_warnings_carry_the_yaml_line() -> None:
    text = yaml.safe_dump(
        canary_dict(metrics=METRICS, steps=ttft_steps("150ms"), shadow=None), sort_keys=False
    )
    [warning] = warnings_text(text, "c.yml")
    assert warning.file == "c.yml"
    assert warning.line == text.splitlines().index("    - metric: ttft") + 1 + 1
    assert warning.path == PATH


def test_canaryctl_validate_prints_the_warning_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(
        yaml.safe_dump(
            canary_dict(metrics=METRICS, steps=ttft_steps("150ms"), shadow=None), sort_keys=False
        )
    )
    line = path.read_text().splitlines().index("    - metric: ttft") + 2
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    lines = [x for x in err.splitlines() if ": capacity: " not in x]  # the plan's notes
    assert lines == [
        f"{path}:{line}: warning: {PATH}: {WARNING_150}",
        "1 file(s) valid (1 warning)",
    ]
    assert main(["validate", "-o", "json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "[]"  # the JSON contract (a list of problems) is unchanged
    lines = [x for x in err.splitlines() if ": capacity: " not in x]
    assert lines == [f"{path}:{line}: warning: {PATH}: {WARNING_150}"]
