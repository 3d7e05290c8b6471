"""``looked_for``: what a query that found nothing looked for, said in a "no data" reason."""

from __future__ import annotations

from controlplane.promql.queries import looked_for


def test_first_selector_and_window() -> None:
    query = (
        "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{"
        'namespace="ml",canary="c",variant="nf4"}[5m])))'
    )
    assert looked_for(query, 300) == (
        'no series matched vllm:e2e_request_latency_seconds_bucket{namespace="ml",canary="c",'
        'variant="nf4"} over the last 5m'
    )


def test_several_selectors_are_counted() -> None:
    query = 'sum(rate(ok_total{a="1"}[4h])) / sum(rate(all_total{a="1"}[4h]))'
    assert looked_for(query) == 'no series matched ok_total{a="1"} (and 1 more selectors)'


def test_a_query_without_selector_is_quoted() -> None:
    assert looked_for("vector(0) > 1") == "no result for vector(0) > 1"
    assert len(looked_for("x" * 500)) < 200
