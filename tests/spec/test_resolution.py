"""Resolution-aware validation: latency thresholds vLLM's histograms cannot resolve are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.analysis import resolution
from controlplane.promql.contract import contract_for
from controlplane.spec.load import load_text
from controlplane.validation import check_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "canary" / "four-week.yml").read_text()
P95_CHECK = "{metric: latency, above: 300ms}"
PATH = "spec.steps[0].rollbackOn[0].above"


def problems_with(check: str, version: str | None = None) -> list[tuple[str, str]]:
    """The problems of the four-week example with its first check replaced: through spec
    validation (the KServe-pinned version), or through the rule for ``version``."""
    text = EXAMPLE.replace(P95_CHECK, check)
    if version is None:
        return [(p.path, p.message) for p in check_text(text, "four-week.yml")]
    (canary,) = load_text(text, "four-week.yml")
    return [(p.path, p.message) for p in resolution.problems(canary, version)]


def test_the_examples_own_thresholds_are_resolvable() -> None:
    assert problems_with(P95_CHECK) == []


def test_a_p95_threshold_below_the_quantile_floor_always_breaches() -> None:
    [(path, message)] = problems_with("{metric: latency, above: 200ms}")
    assert path == PATH
    assert "metric 'latency' (e2e-latency p95) reads vllm:e2e_request_latency_seconds" in message
    assert "0.3, 0.5, 0.8, 1, 1.5, 2, ... 7680" in message
    assert "from 285.0ms (0.95 x 300.0ms) to 300.0ms" in message
    assert "'above 200ms' breaches at every evaluation" in message
    assert "at least 300.0ms, the ttft metric (its buckets start at 1.0ms) or a custom query" in (
        message
    )


def test_a_threshold_inside_the_first_bucket_is_refused_without_always_breaching() -> None:
    [(path, message)] = problems_with("{metric: latency, above: 290ms}")
    assert path == PATH
    assert "below its first bucket bound 300.0ms" in message
    assert "breaches at every evaluation" not in message


@pytest.mark.parametrize("threshold", ["300ms", "500ms", "1.5s", "7679s"])
def test_thresholds_within_the_buckets_are_fine(threshold: str) -> None:
    assert problems_with(f"{{metric: latency, above: {threshold}}}") == []


def test_a_threshold_at_the_last_bound_can_never_be_crossed() -> None:
    [(path, message)] = problems_with("{metric: latency, above: 7680s}")
    assert path == PATH
    assert "never reports more than 7680.00s" in message


def test_relative_checks_are_not_refused() -> None:
    assert problems_with("{metric: latency, compare: baseline, above: 1%}") == []


def test_the_error_names_vllms_bucket_option_where_the_version_has_it() -> None:
    [(_, old)] = problems_with("{metric: latency, above: 200ms}", version="0.24.0")
    [(_, new)] = problems_with("{metric: latency, above: 200ms}", version="0.33.0")
    assert "--custom-histogram-buckets" not in old
    assert "vLLM 0.33 buckets" in new
    assert "--custom-histogram-buckets (family request_latency)" in new


def test_the_p99_floor_is_its_quantile_of_the_first_bound() -> None:
    text = EXAMPLE.replace(
        "{metric: latency-p99, above: 500ms}", "{metric: latency-p99, above: 296ms}"
    )
    [problem] = check_text(text, "four-week.yml")
    assert problem.path == "spec.steps[2].rollbackOn[0].above"
    assert "from 297.0ms (0.99 x 300.0ms)" in problem.message
    assert "breaches at every evaluation" in problem.message


@pytest.mark.parametrize("version", [None, "0.33"])
def test_the_floor_rule_matches_the_contract(version: str | None) -> None:
    buckets = contract_for(version).buckets("e2e-latency")
    assert resolution.quantile_floor(0.95, buckets) == pytest.approx(0.285)
    assert not resolution.resolvable(0.2999, buckets)
    assert resolution.resolvable(buckets[0], buckets)
    assert not resolution.resolvable(buckets[-1], buckets)
