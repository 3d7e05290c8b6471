"""One PromQL builder for the built-in metrics: per canary and grouped (batched).

Owns the expression of every built-in, from the contract's names. ``by`` is the extra grouping:
empty for one variant, ``("canary", "variant")`` for the batched query, added to every
aggregation, so a grouped series equals the per-canary value (tested against a real Prometheus
in ``tests/promql/test_promql_grouped.py``). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.promql import http_errors
from controlplane.promql.contract import (
    LATENCY_BUILTINS,
    MetricContract,
    contract_for,
    error_terms,
)
from controlplane.spec.constants import DEFAULT_QUANTILE


def aggregate(op: str, by: Sequence[str], expr: str) -> str:
    """``op(expr)``, or ``op by (a, b) (expr)`` when ``by`` is not empty."""
    if not by:
        return f"{op}({expr})"
    return f"{op} by ({', '.join(by)}) ({expr})"


def builtin_expr(
    builtin: str,
    sel: str,
    window: str,
    quantile: float | None = None,
    *,
    by: Sequence[str] = (),
    contract: MetricContract | None = None,
    source: str | None = None,
    backends: Sequence[http_errors.GatewayBackend] = (),
) -> str:
    """The PromQL of ``builtin`` for label matchers ``sel`` over ``window`` (a Prometheus
    duration), aggregated ``by`` the given labels (none: one number). With ``source`` (the
    canary's HTTP source, :func:`controlplane.promql.http_errors.http_source` or the
    controller's decision), ``error-rate`` reads that source's HTTP failures too
    (:func:`controlplane.promql.http_errors.error_terms`; ``backends``: the selected variant's
    gateway series, which the gateway sources need). Every canary query passes its source;
    without one, ``error-rate`` is the engine's finish reasons alone."""
    c = contract_for() if contract is None else contract
    if builtin in LATENCY_BUILTINS:
        q = DEFAULT_QUANTILE if quantile is None else quantile
        series = c.histogram(builtin).series
        inner = aggregate("sum", ("le", *by), f"rate({series}{{{sel}}}[{window}])")
        return f"histogram_quantile({q!r}, {inner})"
    if builtin == "error-rate" and source is not None:
        http = http_errors.error_terms(
            source, sel, window, by, vllm_version=c.read_from, backends=backends
        )
        return f"{http.failed} / {http.total}"
    if builtin == "error-rate":
        terms = error_terms(c, sel, window)
        return f"{aggregate('sum', by, terms.failed)} / {aggregate('sum', by, terms.total)}"
    if builtin in ("request-rate", "tokens-per-second"):
        return aggregate("sum", by, f"rate({c.metric(builtin).series}{{{sel}}}[{window}])")
    if builtin == "kv-cache-usage":
        return aggregate("avg", by, f"{c.metric(builtin).series}{{{sel}}}")
    raise ValueError(f"unknown built-in metric {builtin!r}")


def samples_expr(
    sel: str, window: str, *, by: Sequence[str] = (), contract: MetricContract | None = None
) -> str:
    """Requests finished within ``window``: the count ``minSamples`` is compared with.

    ``increase(vllm:request_success_total{SEL}[W])`` has one series per ``finished_reason``; it
    is summed (``by`` the given labels)."""
    c = contract_for() if contract is None else contract
    return aggregate("sum", by, f"increase({c.requests}{{{sel}}}[{window}])")
