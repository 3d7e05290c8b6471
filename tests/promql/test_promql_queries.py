"""Unit tests of controlplane.promql.queries: exact PromQL of the preset, strict templates."""

from __future__ import annotations

import pytest
from support.canaries import model_canary

from controlplane.errors import SpecError
from controlplane.promql import queries
from controlplane.spec.models import CheckSpec

SEL = 'namespace="ml-serving",canary="support-triage",variant="nf4"'


@pytest.mark.parametrize(
    ("builtin", "quantile", "expected"),
    [
        pytest.param(
            "e2e-latency",
            0.99,
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(vllm:e2e_request_latency_seconds_bucket{{{SEL}}}[5m])))",
            id="e2e-latency",
        ),
        pytest.param(
            "e2e-latency",
            None,
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(vllm:e2e_request_latency_seconds_bucket{{{SEL}}}[5m])))",
            id="e2e-latency-default-quantile",
        ),
        pytest.param(
            "ttft",
            0.5,
            "histogram_quantile(0.5, sum by (le) "
            f"(rate(vllm:time_to_first_token_seconds_bucket{{{SEL}}}[5m])))",
            id="ttft",
        ),
        pytest.param(
            "inter-token-latency",
            None,
            "histogram_quantile(0.95, sum by (le) "
            f"(rate(vllm:inter_token_latency_seconds_bucket{{{SEL}}}[5m])))",
            id="inter-token-latency",
        ),
        pytest.param(
            "error-rate",
            None,
            # the example's router (gateway-api): the Envoy clusters of its route's backend 1,
            # or the engine's error finishes, whichever is larger (http_errors)
            "max(label_replace(sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"
            '"httproute/ml-serving/support-triage/rule/[0-9]+/backend/1",'
            'envoy_response_code=~"5..|429"}[5m])), "source", "envoy", "", "") or '
            "label_replace(sum(rate(vllm:request_success_total{"
            f'{SEL},finished_reason=~"error"}}[5m])), "source", "engine", "", ""))'
            " / max(label_replace(sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"
            '"httproute/ml-serving/support-triage/rule/[0-9]+/backend/1"}[5m])), '
            '"source", "envoy", "", "") or label_replace(sum(rate('
            f'vllm:request_success_total{{{SEL}}}[5m])), "source", "engine", "", ""))',
            id="error-rate",
        ),
        pytest.param(
            "request-rate", None, f"sum(rate(vllm:request_success_total{{{SEL}}}[5m]))", id="rps"
        ),
        pytest.param(
            "tokens-per-second",
            None,
            f"sum(rate(vllm:generation_tokens_total{{{SEL}}}[5m]))",
            id="tokens-per-second",
        ),
        pytest.param("kv-cache-usage", None, f"avg(vllm:kv_cache_usage_perc{{{SEL}}})", id="kv"),
    ],
)
def test_builtin_promql_is_the_contract_table(
    builtin: str, quantile: float | None, expected: str
) -> None:
    metric = {"name": "m", "builtin": builtin}
    if quantile is not None:
        metric["quantile"] = quantile
    canary = model_canary(analysis={"metrics": [metric]})
    assert queries.metric_query(canary, canary.spec.analysis.metrics[0], "nf4", 300) == expected


def test_sample_count_query_sums_the_contract_increase() -> None:
    canary = model_canary()
    plan = queries.check_queries(canary, CheckSpec.model_validate({"metric": "errors", "above": 1}))
    assert plan.samples == f"sum(increase(vllm:request_success_total{{{SEL}}}[5m]))"


def test_selector_override_is_rendered_and_escaped() -> None:
    canary = model_canary(
        analysis={
            "selector": 'kubernetes_namespace="{{namespace}}",app="{{canary}}-{{ variant }}"',
            "metrics": [{"name": "rps", "builtin": "request-rate"}],
        },
        candidate={"name": "nf4", "storageUri": "s3://x", "gpu": "g"},
    )
    query = queries.metric_query(canary, canary.spec.analysis.metrics[0], 'a"b\\c\nd', 60)
    assert query == (
        'sum(rate(vllm:request_success_total{kubernetes_namespace="ml-serving",'
        'app="support-triage-a\\"b\\\\c\\nd"}[1m]))'
    )


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        pytest.param("plain", "plain", id="plain"),
        pytest.param('q"uote', 'q\\"uote', id="double-quote"),
        pytest.param("back\\slash", "back\\\\slash", id="backslash"),
        pytest.param("new\nline", "new\\nline", id="newline"),
        pytest.param('\\"', '\\\\\\"', id="backslash-then-quote"),
    ],
)
def test_escape_label_value(raw: str, escaped: str) -> None:
    assert queries.escape_label_value(raw) == escaped


def test_custom_query_placeholders_and_window() -> None:
    canary = model_canary()
    kpi = canary.metric("kpi")
    assert kpi is not None
    rendered = queries.metric_query(canary, kpi, "bf16", 4 * 3600)
    assert "{{" not in rendered
    assert 'variant="bf16"}[4h]' in rendered
    assert rendered.count('namespace="ml-serving",canary="support-triage"') == 2


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        pytest.param('rate(x{pod="{{pod}}"}[5m])', "{{pod}}", id="unknown-name"),
        pytest.param("rate(x[{{ Window }}])", "{{ Window }}", id="case-matters"),
        pytest.param('rate(x{a="{{namespace}"}[5m])', "unbalanced", id="unclosed"),
        pytest.param('rate(x{a="namespace}}"}[5m])', "unbalanced", id="unopened"),
    ],
)
def test_bad_placeholder_is_a_spec_error_with_its_path(template: str, fragment: str) -> None:
    canary = model_canary(analysis={"metrics": [{"name": "m", "query": template}]})
    with pytest.raises(SpecError) as info:
        queries.metric_query(canary, canary.spec.analysis.metrics[0], "nf4", 300)
    problem = info.value.problems[0]
    assert problem.path == "spec.analysis.metrics[0].query"
    assert fragment in problem.message


def test_window_placeholder_is_not_allowed_in_a_selector() -> None:
    problems = queries.template_problems(
        'a="{{window}}"', "spec.analysis.selector", queries.SELECTOR_PLACEHOLDERS
    )
    assert [p.path for p in problems] == ["spec.analysis.selector"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(300, "5m", id="5m"),
        pytest.param(14400, "4h", id="4h"),
        pytest.param(86400, "1d", id="1d"),
        pytest.param(7 * 86400, "7d", id="7d"),
        pytest.param(90, "90s", id="90s"),
        pytest.param(5400, "90m", id="90m"),
        pytest.param(0.5, "500ms", id="500ms"),
        pytest.param(1.5, "1500ms", id="1500ms"),
    ],
)
def test_prom_duration(seconds: float, text: str) -> None:
    assert queries.prom_duration(seconds) == text


def test_prom_duration_rejects_zero() -> None:
    with pytest.raises(ValueError, match="positive"):
        queries.prom_duration(0)


def test_cost_query_is_rendered_for_the_candidate() -> None:
    assert queries.cost_query(model_canary()) == (
        'sum(increase(gpu_cost_dollars_total{canary="support-triage",variant="nf4"}[1d]))'
    )
    assert queries.cost_query(model_canary(budget=None)) is None


def test_compare_baseline_plans_the_stable_query_with_the_check_window() -> None:
    canary = model_canary()
    check = canary.spec.steps[1].rollback_on[0]
    plan = queries.check_queries(canary, check)
    assert plan.window == 4 * 3600
    assert plan.samples is None  # custom query: no sample count
    assert plan.stable is not None
    assert 'variant="bf16"}[4h]' in plan.stable
    assert 'variant="nf4"}[4h]' in plan.candidate


def test_undefined_metric_is_a_spec_error() -> None:
    check = CheckSpec.model_validate({"metric": "nope", "above": 1})
    with pytest.raises(SpecError, match="'nope' is not defined"):
        queries.check_queries(model_canary(), check)


def test_all_checks_keys() -> None:
    keys = [k for k, _ in queries.all_checks(model_canary())]
    assert keys == [
        "shadow.promoteOn",
        "shadow.rollbackOn[0]",
        "steps[0].rollbackOn[0]",
        "steps[0].rollbackOn[1]",
        "steps[1].rollbackOn[0]",
        "steps[2].rollbackOn[0]",
    ]
