"""The metric names the controller exposes and vLLM exports (the contract the dashboard and the
alert rules are written against), and a PromQL metric-name extractor."""

from __future__ import annotations

import re

CONTROLLER_METRICS = frozenset(
    {
        "canary_controller_reconciles_total",
        "canary_controller_reconcile_errors_total",
        "canary_controller_conflicts_total",
        "canary_controller_analysis_ticks_total",
        "canary_controller_analysis_queries_total",
        "canary_controller_last_tick_queries",
        "canary_controller_last_tick_canaries",
        "canary_controller_leader",
        "canary_controller_analysis_tick_duration_seconds_bucket",
        "canary_controller_provider_errors_total",
        "canary_controller_alert_deliveries_total",
        "canary_controller_alert_queue_depth",
        "canary_phase",
        "canary_weight",
        "canary_step",
        "canary_step_started_timestamp_seconds",
        "canary_checks_total",
        "canary_rollbacks_total",
        "canary_promotions_total",
        "canary_step_duration_seconds_bucket",
        "canary_step_duration_seconds_count",
        "canary_check_value",
        "canary_check_threshold",
    }
)
VLLM_METRICS = frozenset(
    {
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:request_success_total",
        "vllm:generation_tokens_total",
        "vllm:kv_cache_usage_perc",
    }
)
SCRAPE_METRICS = frozenset({"up"})

_NAME = re.compile(
    r"(?<![\w:$\"'])((?:canary_|vllm:)[A-Za-z0-9_:]+|up)(?=\s*[{\[)]|\s*$|\s*[<>=!])"
)


def metric_names(expr: str) -> set[str]:
    """The ``canary_*`` / ``vllm:*`` / ``up`` metric names an expression selects."""
    return set(_NAME.findall(expr))
