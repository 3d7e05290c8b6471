"""PromQL for every check: the built-in ``vllm`` preset and strict rendering of custom queries.

Owns the queries of one variant of one canary: the built-ins, the ``minSamples`` count and the
custom templates (an unknown placeholder is a :class:`~controlplane.errors.SpecError`). Pure.
Called by the evaluator, the replay's planning and spec validation. See docs/analysis.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.errors import Problem, SpecError
from controlplane.promql import builtins as promql
from controlplane.promql import http_errors
from controlplane.promql.contract import (
    REQUESTS,
    RUNNING,
    WAITING,
    UnknownEngineVersion,
    contract_for,
)
from controlplane.serving.versions import vllm_version as canary_vllm_version
from controlplane.spec.check_keys import PROMOTE_KEY, shadow_check, step_check

if TYPE_CHECKING:
    from controlplane.spec.models import (
        Builtin,
        CheckSpec,
        MetricSpec,
        ModelCanary,
    )

PLACEHOLDERS: frozenset[str] = frozenset({"namespace", "canary", "variant", "window"})
"""Placeholders a custom ``query`` or ``costQuery`` may use."""

SELECTOR_PLACEHOLDERS: frozenset[str] = frozenset({"namespace", "canary", "variant"})
"""Placeholders ``spec.analysis.selector`` may use (a selector has no window)."""

DEFAULT_SELECTOR = 'namespace="{{namespace}}",canary="{{canary}}",variant="{{variant}}"'
"""SEL of the contract: the label matchers that select one variant of one canary."""

SPEND_WINDOW_SECONDS = 86400.0
"""``{{window}}`` in a ``costQuery`` is one day: the budget is a daily limit."""

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_DURATION_UNITS: tuple[tuple[str, int], ...] = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def escape_label_value(value: str) -> str:
    """Escape ``value`` for use inside a PromQL double-quoted string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prom_duration(seconds: float) -> str:
    """Render a window as a Prometheus duration in the largest exact unit.

    ``14400`` -> ``4h``, ``86400`` -> ``1d``, ``90`` -> ``90s``, ``0.5`` -> ``500ms``.
    """
    if seconds <= 0:
        raise ValueError(f"a query window must be positive, got {seconds!r}s")
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in _DURATION_UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds is a multiple of 1s")


def template_problems(
    template: str, path: str, allowed: Iterable[str] = PLACEHOLDERS
) -> list[Problem]:
    """Every placeholder problem of ``template`` (unknown names, unbalanced braces)."""
    allowed_set = frozenset(allowed)
    problems: list[Problem] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1).strip()
        if name not in allowed_set:
            known = ", ".join("{{" + p + "}}" for p in sorted(allowed_set))
            message = f"unknown placeholder {match.group(0)!r}; known placeholders: {known}"
            problems.append(Problem(path, message))
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        problems.append(Problem(path, "unbalanced '{{' or '}}' in template"))
    return problems


def render(template: str, values: dict[str, str], path: str) -> str:
    """Substitute ``values`` into ``template`` strictly.

    ``values`` are inserted as they are (callers escape label values with
    :func:`escape_label_value`). Raises :class:`SpecError` on an unknown placeholder.
    """
    problems = template_problems(template, path, values.keys())
    if problems:
        raise SpecError(problems)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1).strip()], template)


def _label_values(canary: ModelCanary, variant: str) -> dict[str, str]:
    return {
        "namespace": escape_label_value(canary.metadata.namespace),
        "canary": escape_label_value(canary.metadata.name),
        "variant": escape_label_value(variant),
    }


def selector(canary: ModelCanary, variant: str) -> str:
    """SEL for one variant: ``spec.analysis.selector`` (or the default) rendered."""
    template = canary.spec.analysis.selector or DEFAULT_SELECTOR
    return render(template, _label_values(canary, variant), "spec.analysis.selector")


def builtin_query(
    builtin: Builtin,
    sel: str,
    window: float,
    quantile: float | None = None,
    vllm_version: str | None = None,
    *,
    source: str | None = None,
    backends: tuple[http_errors.GatewayBackend, ...] = (),
) -> str:
    """The preset ``vllm`` PromQL of ``builtin`` for selector ``sel`` over ``window`` seconds,
    with the metric names of ``vllm_version`` (None: the KServe-pinned version); ``source`` and
    ``backends`` give ``error-rate`` its HTTP source (:func:`canary_builtin_query` passes the
    canary's)."""
    contract = contract_for(vllm_version)
    return promql.builtin_expr(
        builtin,
        sel,
        prom_duration(window),
        quantile,
        contract=contract,
        source=source,
        backends=backends,
    )


def engine_version(canary: ModelCanary) -> str:
    """The vLLM version whose metric contract ``canary``'s built-in queries use
    (:func:`controlplane.serving.versions.vllm_version`). Raises :class:`SpecError` (path
    ``spec.model.vllmVersion``) for a version whose metrics were not read."""
    version = canary_vllm_version(canary)
    try:
        contract_for(version)
    except UnknownEngineVersion as exc:
        problem = Problem("spec.model.vllmVersion", f"{exc}; built-in metrics cannot be queried")
        raise SpecError([problem]) from None
    return version


def canary_builtin_query(
    canary: ModelCanary,
    builtin: Builtin,
    variant: str,
    window: float,
    quantile: float | None = None,
    *,
    source: http_errors.HttpSource | None = None,
) -> str:
    """:func:`builtin_query` for one variant of ``canary``: its selector, ``error-rate``'s HTTP
    source (``source``, the controller's decision from the Gateway's class; None: the one the
    spec names, :func:`controlplane.promql.http_errors.http_source`) with the variant's gateway
    series, and the vLLM version it runs (:func:`controlplane.serving.versions.vllm_version`)."""
    http = http_errors.http_source(canary) if source is None else source
    return builtin_query(
        builtin,
        selector(canary, variant),
        window,
        quantile,
        engine_version(canary),
        source=http,
        backends=http_errors.gateway_backends(canary, variant, http)
        if builtin == "error-rate"
        else (),
    )


def load_query(canary: ModelCanary, variant: str, window: float) -> str:
    """Requests in flight per replica of ``variant`` over ``window``: each server's mean running
    batch (``vllm:num_requests_running``), averaged over its servers. What a check that compares
    variants records, so an overloaded variant is not read as a worse model."""
    return load_expr(selector(canary, variant), window)


def load_expr(sel: str, window: float, by: Sequence[str] = ()) -> str:
    """:func:`load_query` over the series ``sel`` selects, aggregated ``by`` those labels (none:
    one number; the controller's batched tick groups it ``by (canary, variant)``)."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"avg{grouping}(avg_over_time({RUNNING}{{{sel}}}[{prom_duration(window)}]))"


def demand_expr(sel: str, window: float, by: Sequence[str] = ()) -> str:
    """Requests per second the series ``sel`` selects finished over ``window``
    (``vllm:request_success_total``, every finish reason), summed ``by`` those labels (none: one
    number; the controller's batched tick groups it ``by (canary, variant)``)."""
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping}(rate({REQUESTS}{{{sel}}}[{prom_duration(window)}]))"


def demand_query(canary: ModelCanary, variants: Iterable[str], window: float) -> str:
    """:func:`demand_expr` of ``variants``, added: the demand the capacity plan sizes for.
    Shadow's mirrored copies are not demand: the caller leaves the candidate out then."""
    return " + ".join(demand_expr(selector(canary, v), window) for v in variants)


def waiting_query(canary: ModelCanary, variant: str) -> str:
    """Requests waiting in all of ``variant``'s servers (``vllm:num_requests_waiting``): what
    KEDA scales a variant on (``autoscaling.queue``)."""
    return f"sum({WAITING}{{{selector(canary, variant)}}})"


def samples_query(sel: str, window: float, vllm_version: str | None = None) -> str:
    """Requests finished within ``window``: the count ``minSamples`` is compared with.

    The contract's ``increase(vllm:request_success_total{SEL}[W])`` yields one series per
    ``finished_reason``; it is summed so that it is one number.
    """
    contract = contract_for(vllm_version)
    return promql.samples_expr(sel, prom_duration(window), contract=contract)


def metric_path(canary: ModelCanary, metric: MetricSpec) -> str:
    """Field path of ``metric`` in the spec (for error messages)."""
    index = canary.spec.analysis.metrics.index(metric)
    return f"spec.analysis.metrics[{index}]"


def metric_query(
    canary: ModelCanary,
    metric: MetricSpec,
    variant: str,
    window: float,
    *,
    source: http_errors.HttpSource | None = None,
) -> str:
    """PromQL of ``metric`` for ``variant`` over ``window`` seconds (builtin or custom);
    ``source``: ``error-rate``'s HTTP source (:func:`canary_builtin_query`)."""
    if metric.builtin is not None:
        return canary_builtin_query(
            canary, metric.builtin, variant, window, metric.quantile, source=source
        )
    if metric.query is None:
        raise SpecError(
            [Problem(metric_path(canary, metric), "a metric needs either 'builtin' or 'query'")]
        )
    values = {**_label_values(canary, variant), "window": prom_duration(window)}
    return render(metric.query, values, metric_path(canary, metric) + ".query")


def cost_query(canary: ModelCanary) -> str | None:
    """The rendered ``spec.budget.costQuery`` for the candidate, or None without one."""
    budget = canary.spec.budget
    if budget is None or budget.cost_query is None:
        return None
    values = {
        **_label_values(canary, canary.spec.candidate.name),
        "window": prom_duration(SPEND_WINDOW_SECONDS),
    }
    return render(budget.cost_query, values, "spec.budget.costQuery")


@dataclass(frozen=True)
class CheckQueries:
    """Everything one check needs from the metric source at one evaluation.

    ``stable`` is set for ``compare: baseline`` (the verdict needs it); ``stable_shown`` is the same
    metric for the stable variant of an absolute check on a built-in metric, asked for display only
    (status, alerts, dashboard): its value never changes the verdict, and a failure to get it is
    not an error. ``samples`` (candidate request count) is set for built-in metrics only.
    ``window`` is in seconds.
    """

    metric: MetricSpec
    window: float
    candidate: str
    stable: str | None
    samples: str | None
    stable_shown: str | None = None

    def all(self) -> list[str]:
        """The distinct queries, candidate first."""
        found = [self.candidate, self.stable, self.samples, self.stable_shown]
        return list(dict.fromkeys(q for q in found if q is not None))


_SELECTOR = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*\{[^{}]*\}")


@functools.lru_cache(maxsize=512)
def looked_for(query: str, window: float | None = None) -> str:
    """What a query that found nothing looked for, for the reason of a "no data" check: its
    first series selector (``vllm:e2e_request_latency_seconds_bucket{namespace="ml-serving",
    canary="support-triage",variant="nf4"}``, ``and N more selectors`` when there are several)
    and the window, else the query cut to 160 characters. Pure; memoised (a replay with no
    data asks it for the same few queries at every evaluation)."""
    found = list(dict.fromkeys(_SELECTOR.findall(query)))
    if not found:
        text = query if len(query) <= 160 else query[:159] + "\u2026"
        return f"no result for {text}"
    more = f" (and {len(found) - 1} more selectors)" if len(found) > 1 else ""
    over = f" over the last {prom_duration(window)}" if window else ""
    return f"no series matched {found[0]}{more}{over}"


def check_queries(
    canary: ModelCanary, check: CheckSpec, *, source: http_errors.HttpSource | None = None
) -> CheckQueries:
    """Plan the queries of ``check`` (``source``: ``error-rate``'s HTTP source,
    :func:`canary_builtin_query`). Raises :class:`SpecError` for an undefined metric."""
    metric = canary.metric(check.metric)
    if metric is None:
        raise SpecError(
            [Problem("spec.analysis.metrics", f"metric {check.metric!r} is not defined")]
        )
    window = canary.window_s(check)
    candidate_name = canary.spec.candidate.name
    baseline = check.compare == "baseline"
    stable_query = (
        metric_query(canary, metric, canary.spec.stable.name, window, source=source)
        if baseline or metric.builtin is not None
        else None
    )
    samples = (
        samples_query(selector(canary, candidate_name), window, engine_version(canary))
        if metric.builtin is not None
        else None
    )
    return CheckQueries(
        metric=metric,
        window=window,
        candidate=metric_query(canary, metric, candidate_name, window, source=source),
        stable=stable_query if baseline else None,
        samples=samples,
        stable_shown=None if baseline else stable_query,
    )


def all_checks(canary: ModelCanary) -> list[tuple[str, CheckSpec]]:
    """Every check of the spec with its key (``steps[0].rollbackOn[1]``, ``shadow.promoteOn``)."""
    found: list[tuple[str, CheckSpec]] = []
    shadow = canary.spec.shadow
    if shadow is not None:
        found.append((PROMOTE_KEY, shadow.promote_on))
        found += [(shadow_check(j), c) for j, c in enumerate(shadow.rollback_on)]
    for i, step in enumerate(canary.spec.steps):
        found += [(step_check(i, j), c) for j, c in enumerate(step.rollback_on)]
    return found
