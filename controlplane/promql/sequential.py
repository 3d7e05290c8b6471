"""The PromQL of ``judge: sequential`` checks: the cumulative counts since the step started.

Owns the queries of one check's counts (:class:`Plan`): failed and all requests, or both
variants' latency histograms, the stable's reference before the step, and the counts pinned at the
step's end for the closing test. Pure; called by the sequential check, the grouped form and the
controller's batch. See docs/judges-derivation.md, "What the evaluator gives it".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from controlplane.promql import http_errors, queries
from controlplane.promql.contract import contract_for
from controlplane.rollout.observations import TIME_SLACK_S
from controlplane.spec.models import CheckSpec, MetricSpec, ModelCanary

MIN_WINDOW_S = 1.0
"""The shortest window a count is asked over (a step that started this second)."""


def window_seconds(since: float, now: float) -> float:
    """Whole seconds from the step start to ``now`` (rounded down: never before the step)."""
    return float(max(math.floor(now - since + 1e-6), 0))


@dataclass(frozen=True)
class Plan:
    """The PromQL of one sequential check of one canary at one evaluation: scalar counts for rate
    checks, one series per ``le`` for latency checks, ``boundary`` (the stable's quantile just
    before the step, ``compare: baseline``) and ``closing`` (the whole step's counts pinned at its
    end, for a ``finalLook``; None otherwise).
    """

    metric: MetricSpec
    window: float
    cand_events: str | None = None
    cand_total: str | None = None
    stable_events: str | None = None
    stable_total: str | None = None
    cand_buckets: str | None = None
    stable_buckets: str | None = None
    boundary: str | None = None
    reference: str | None = None
    closing: Plan | None = None


def later_starts(canary: ModelCanary, check: CheckSpec, since: float) -> list[float]:
    """Where a ``compare: baseline`` latency check's counts may start when the stable had no
    latency data in the window before the step (a stable just deployed or just adopted, whose
    series begin with the step): every ``analysis.interval`` into the step, up to one window
    (the check's). The first whose window before it holds the stable's data is judged
    (:func:`controlplane.analysis.sequential.check.from_later_start`): :func:`plan` at that
    start reads the stable's data from the step's start to it as the reference (or boundary),
    which its counts do not include, so the scores still never look at the data they judge.
    See docs/judges-derivation.md, "A stable without history"."""
    interval = canary.spec.analysis.interval.seconds
    window = canary.window_s(check)
    looks = max(1, math.ceil(window / interval - 1e-9))
    return [since + min(k * interval, window) for k in range(1, looks + 1)]


def closing_time(check: CheckSpec, closes_at: float | None, now: float) -> float | None:
    """The end of the step's data for the closing test, or None when it does not run (no
    ``finalLook``, no step end, or the step's duration is not up at ``now``).

    From the step's end on, every evaluation runs the closing test on the counts up to the end
    (``@`` that time): the same data however often a held step is evaluated, so the test is
    still one look, as its level needs.
    """
    if check.final_look <= 0 or closes_at is None or now < closes_at - TIME_SLACK_S:
        return None
    return closes_at


def plan(
    canary: ModelCanary,
    check: CheckSpec,
    since: float,
    now: float,
    *,
    closes_at: float | None = None,
    source: http_errors.HttpSource | None = None,
) -> Plan:
    """Queries for ``check`` over ``[since, now]`` (and, for the closing test, over the whole
    step: see :func:`closing_time`); ``source``: ``error-rate``'s HTTP source (None: the one the
    spec names, :func:`controlplane.promql.http_errors.http_source`). The check must be one the
    sequential judge supports (:func:`controlplane.analysis.sequential.support.problems`, which
    the judge's ``plan`` asks first)."""
    metric = canary.metric(check.metric)
    assert metric is not None
    assert metric.builtin is not None
    http = http_errors.http_source(canary) if source is None else source
    counts = _counts(canary, check, metric, window_seconds(since, now), None, http)
    end = closing_time(check, closes_at, now)
    closing = None
    if end is not None:
        closing = _counts(canary, check, metric, window_seconds(since, end), end, http)
    if metric.builtin == "error-rate":
        return replace(counts, closing=closing)
    hist = contract_for(queries.engine_version(canary)).bucket_series()[metric.builtin]
    stable = queries.selector(canary, canary.spec.stable.name)
    boundary = reference = None
    lookback = queries.prom_duration(canary.window_s(check))
    if check.compare == "baseline" and check.test == "shift":
        reference = f"sum by (le) (increase({hist}{{{stable}}}[{lookback}] @ {since:.3f}))"
    elif check.compare == "baseline":
        boundary = (
            f"histogram_quantile({metric.quantile_or_default!r}, sum by (le) "
            f"(rate({hist}{{{stable}}}[{lookback}] @ {since:.3f})))"
        )
    return replace(counts, boundary=boundary, reference=reference, closing=closing)


def _counts(
    canary: ModelCanary,
    check: CheckSpec,
    metric: MetricSpec,
    window: float,
    at: float | None,
    source: http_errors.HttpSource,
) -> Plan:
    """The cumulative counts over ``window`` seconds, ending now or ``@ at``. Error counts are
    :func:`controlplane.promql.http_errors.error_terms` of ``source`` and the canary's vLLM
    version (already aggregated), as the per-canary and grouped ``error-rate`` queries are."""
    version = queries.engine_version(canary)
    w = queries.prom_duration(max(window, MIN_WINDOW_S))
    pin = "" if at is None else f" @ {at:.3f}"
    cand = queries.selector(canary, canary.spec.candidate.name)
    stable = queries.selector(canary, canary.spec.stable.name)
    baseline = check.compare == "baseline"
    if metric.builtin == "error-rate":

        def terms(sel: str, variant: str) -> http_errors.ErrorTerms:
            return http_errors.error_terms(
                source,
                sel,
                w,
                fn="increase",
                modifier=pin,
                vllm_version=version,
                backends=http_errors.gateway_backends(canary, variant, source),
            )

        c = terms(cand, canary.spec.candidate.name)
        s = terms(stable, canary.spec.stable.name)
        return Plan(
            metric,
            window,
            cand_events=c.failed,
            cand_total=c.total,
            stable_events=s.failed if baseline else None,
            stable_total=s.total if baseline else None,
        )
    hist = contract_for(version).bucket_series()[str(metric.builtin)]
    return Plan(
        metric,
        window,
        cand_buckets=f"sum by (le) (increase({hist}{{{cand}}}[{w}]{pin}))",
        stable_buckets=f"sum by (le) (increase({hist}{{{stable}}}[{w}]{pin}))"
        if baseline
        else None,
    )
