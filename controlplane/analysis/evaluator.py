"""What a query's answer makes of a check, for every caller; and one canary's evaluation.

Owns the one mapping from (check, answers) to a check result, so that the controller and
``canaryctl simulate`` / ``up`` cannot disagree, and :func:`evaluate` (one canary's due checks,
each query once). The controller's batched tick uses the mapping for its grouped answers.
Behaviour: docs/analysis.md, "No data, errors and the evaluator".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from controlplane.analysis import verdict
from controlplane.analysis.metric_provider import MetricProvider, VectorProvider
from controlplane.analysis.sequential import support as sequential_support
from controlplane.errors import NoData, ProviderError, ProviderQueryError, SpecError
from controlplane.promql import queries
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.http_errors import HttpSource
from controlplane.rollout.observations import CheckResult, DueCheck, Observations
from controlplane.spec.models import CheckSpec, MetricSpec, ModelCanary

if TYPE_CHECKING:  # the judge loads numpy and scipy: only a sequential check imports it
    from controlplane.analysis.sequential.check import CheckLook, Counts

K = TypeVar("K")

Answer = float | Mapping[float, float] | ProviderError | None
"""One query's answer for one variant: a number, a histogram's ``{le: count}``, None for no
series, or the error the source gave (:class:`~controlplane.errors.NoData`: no usable value)."""


def _number(found: Answer) -> float | None:
    """``found`` when it is a finite number, else None (no data, a failure, a histogram)."""
    return float(found) if isinstance(found, float | int) and math.isfinite(found) else None


def _failure(found: Answer) -> ProviderError | None:
    """``found`` when the source failed (a :class:`ProviderError` other than ``NoData``)."""
    return found if isinstance(found, ProviderError) and not isinstance(found, NoData) else None


def _error_result(key: str, metric: str, why: str, *, provider_error: bool) -> CheckResult:
    return CheckResult(
        key=key,
        metric=metric,
        verdict="inconclusive",
        provider_error=provider_error,
        message=f"{metric}: {why}",
    )


# --------------------------------------------------------------------------- threshold checks


def threshold_result(
    canary: ModelCanary,
    due: DueCheck,
    metric: MetricSpec,
    answer: Callable[[K], Answer],
    *,
    candidate: K,
    stable: K | None = None,
    samples: K | None = None,
    shown: K | None = None,
    http_source: HttpSource | None = None,
) -> CheckResult:
    """``due``'s ``judge: threshold`` result from ``answer(query)`` of its queries, asked in this
    order and none after a failure: the candidate's value, the stable's (``compare:
    baseline``), the candidate's request count (built-ins: ``minSamples``), and the stable's
    value ``shown`` beside an absolute check, for display only (never judged; left out when it
    cannot be had). A "no data" result says what the candidate's query looked for
    (:func:`looked_for`, with ``error-rate``'s ``http_source``)."""
    name = due.check.metric
    values: dict[str, float | None] = {}
    for role, key in (("candidate", candidate), ("stable", stable), ("samples", samples)):
        found = None if key is None else answer(key)
        failed = _failure(found)
        if failed is not None:
            return _error_result(due.key, name, str(failed), provider_error=True)
        value = _number(found)
        if value is None and role == "samples" and key is not None:
            value = 0.0  # no requests finished in the window: the count is zero, not unknown
        values[role] = value
    if shown is not None:
        values["stable"] = _number(answer(shown))
    return verdict.judge(
        due.key,
        due.check,
        candidate=values["candidate"],
        stable=values["stable"],
        samples=values["samples"],
        min_samples=verdict.min_samples_for(metric, due.check),
        looked_for=looked_for(canary, due.check, http_source)
        if values["candidate"] is None
        else None,
    )


_PLANS: dict[
    tuple[int, int, HttpSource | None],
    tuple[ModelCanary, CheckSpec, queries.CheckQueries | SpecError],
] = {}
_PLANS_MAX = 4096


def _plan(
    canary: ModelCanary, check: CheckSpec, source: HttpSource | None = None
) -> queries.CheckQueries:
    """``queries.check_queries`` memoised by object identity (specs are immutable) and HTTP
    source: a replay evaluates the same checks ~40,000 times. Entries hold their objects, so an
    id is never reused while cached."""
    key = (id(canary), id(check), source)
    hit = _PLANS.get(key)
    if hit is None or hit[0] is not canary or hit[1] is not check:
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        try:
            planned: queries.CheckQueries | SpecError = queries.check_queries(
                canary, check, source=source
            )
        except SpecError as exc:
            planned = exc
        hit = (canary, check, planned)
        _PLANS[key] = hit
    if isinstance(hit[2], SpecError):
        raise hit[2]
    return hit[2]


def looked_for(
    canary: ModelCanary, check: CheckSpec, source: HttpSource | None = None
) -> str | None:
    """What the candidate's query of ``check`` looks for (``source``: ``error-rate``'s HTTP
    source, None: the spec's), the hint of a "no data" result
    (:func:`controlplane.promql.queries.looked_for`); None when it cannot be rendered."""
    try:
        plan = _plan(canary, check, source)
    except SpecError:
        return None
    return queries.looked_for(plan.candidate, plan.window)


# --------------------------------------------------------------------------- sequential checks


class SeqRole(NamedTuple):
    """One count a ``judge: sequential`` check reads: its ``kind`` (``events``, ``total``,
    ``buckets``; the baseline's ``boundary`` or ``reference``, the stable's before the step),
    the ``variant`` it is of (``candidate``, ``stable``), and whether it is over the whole step
    for the closing test (``closing``)."""

    kind: str
    variant: str
    closing: bool = False


_SEQ_FIELDS = (
    ("cand_events", "events", "candidate"),
    ("cand_total", "total", "candidate"),
    ("stable_events", "events", "stable"),
    ("stable_total", "total", "stable"),
    ("cand_buckets", "buckets", "candidate"),
    ("stable_buckets", "buckets", "stable"),
    ("boundary_s", "boundary", "stable"),
    ("reference_buckets", "reference", "stable"),
)
"""The :class:`~controlplane.analysis.sequential.check.Counts` fields, in the order asked."""

_HISTOGRAMS = ("buckets", "reference")
_BEFORE = ("boundary", "reference")
"""The stable's counts before the step (``@`` its start): not part of the closing counts."""


def _read_counts(
    check: CheckSpec, answer: Callable[[SeqRole], Answer], closing: bool
) -> dict[str, Any] | ProviderError:
    """The counts of ``check`` by ``Counts`` field, or the first failure: a count without a
    series (or ``NoData``) is None, nothing served yet (vLLM starts its counters at 0); a number
    goes to the judge as it is (it says when a count is broken); a histogram that cannot be read
    (``NoData``) fails the look. The stable's counts are asked for ``compare: baseline`` only,
    the boundary and reference outside the closing counts only."""
    baseline = check.compare == "baseline"
    out: dict[str, Any] = {}
    for name, kind, variant in _SEQ_FIELDS:
        if (variant == "stable" and not baseline) or (closing and kind in _BEFORE):
            continue
        found = answer(SeqRole(kind, variant, closing))
        if isinstance(found, ProviderError):
            if kind in _HISTOGRAMS or not isinstance(found, NoData):
                return found
            found = None
        out[name] = (found or None) if kind in _HISTOGRAMS else found
    return out


def sequential_look(
    due: DueCheck,
    metric: MetricSpec,
    answer: Callable[[SeqRole], Answer],
    *,
    closing: bool = False,
    design_effect: float = 1.0,
) -> CheckLook | CheckResult:
    """``due``'s look for the sequential judge from ``answer(role)`` of its counts
    (:class:`SeqRole`, asked in order, none after a failure; ``closing``: the closing test's
    counts too), or its inconclusive result when one failed (``provider_error`` unless it was
    ``NoData``). ``design_effect``: the requests that weigh as one sample
    (:func:`~controlplane.analysis.sequential.support.design_effect` of the canary). Judged by
    :func:`judge_sequential`."""
    from controlplane.analysis.sequential.check import CheckLook, Counts

    outer = _read_counts(due.check, answer, False)
    inner: dict[str, Any] | ProviderError | None = None
    if closing and not isinstance(outer, ProviderError):
        inner = _read_counts(due.check, answer, True)
    for found in (outer, inner):
        if isinstance(found, ProviderError):
            name = due.check.metric
            return CheckResult(
                key=due.key,
                metric=name,
                verdict="inconclusive",
                provider_error=not isinstance(found, NoData),
                message=f"{name} (sequential): {found}",
            )
    assert isinstance(outer, dict)
    final: Counts | None = Counts(**inner) if isinstance(inner, dict) else None
    return CheckLook(
        due.key,
        due.check,
        metric,
        Counts(**outer, closing=final),
        verdict.min_samples_for(metric, due.check),
        design_effect,
    )


def judge_sequential(
    looks: Sequence[CheckLook | CheckResult], *, batched: bool = True
) -> list[CheckResult]:
    """The results of :func:`sequential_look`'s looks, in order (a result is kept as it is):
    judged together, one numpy pass per kind of test
    (:func:`~controlplane.analysis.sequential.check.judge_checks`: the count looks' e-values
    only where they decide), or one at a time (``batched=False``, ``judge_check``: every
    e-value); the verdicts are the same."""
    from controlplane.analysis.sequential import check as sequential_check

    pending = [look for look in looks if not isinstance(look, CheckResult)]
    if batched:
        judged = sequential_check.judge_checks(pending)
    else:
        judged = [
            sequential_check.judge_check(
                look.key,
                look.check,
                look.metric,
                look.counts,
                min_samples=look.min_samples,
                design_effect=look.design_effect,
                started_s=look.started_s,
            )
            for look in pending
        ]
    results = iter(judged)
    return [look if isinstance(look, CheckResult) else next(results) for look in looks]


def stage_start(due: DueCheck, since: float | None) -> float | None:
    """The start of the current step for ``due``: ``since``, else a ``since`` the state machine
    put on the due check itself (forward compatible), else None."""
    if since is not None:
        return since
    found = getattr(due, "since", None)
    return float(found) if isinstance(found, int | float) else None


def _plan_query(plan: sequential_promql.Plan, role: SeqRole) -> str | None:
    """The query of ``role`` in ``plan`` (None: not planned)."""
    counts = plan.closing if role.closing else plan
    if counts is None:
        return None
    if role.kind in _BEFORE:
        field = role.kind
    else:
        field = f"{'cand' if role.variant == 'candidate' else 'stable'}_{role.kind}"
    query = getattr(counts, field)
    return query if isinstance(query, str) else None


def evaluate_sequential(
    canary: ModelCanary,
    due: DueCheck,
    ask: _Once,
    since: float | None,
    now: float,
    source: HttpSource | None = None,
) -> CheckResult:
    """Judge one ``judge: sequential`` check on counts since ``since``.

    The judges (numpy, scipy's special functions) are imported by the first sequential check: a
    spec without one, and ``canaryctl simulate`` of it, never load them."""
    from controlplane.analysis.sequential import check as sequential_check

    name = due.check.metric
    if since is None:
        return _error_result(
            due.key,
            name,
            "the sequential judge needs the time the step started, and none was given",
            provider_error=False,
        )

    def look_from(start: float) -> CheckLook | CheckResult:
        try:
            plan = sequential_check.plan(
                canary, due.check, start, now, closes_at=due.closes_at, source=source
            )
        except SpecError as exc:
            why = f"cannot build the query: {exc}"
            return _error_result(due.key, name, why, provider_error=True)

        def answer(role: SeqRole) -> Answer:
            query = _plan_query(plan, role)
            if query is None:
                return None
            return ask.histogram(query) if role.kind in _HISTOGRAMS else ask.answer(query)

        return sequential_look(
            due,
            plan.metric,
            answer,
            closing=plan.closing is not None,
            design_effect=sequential_support.design_effect(canary),
        )

    look = look_from(since)
    if not isinstance(look, CheckResult) and sequential_check.lacks_stable_history(look):
        starts = sequential_promql.later_starts(canary, due.check, since)
        laters: list[CheckLook | CheckResult] = []
        for start in (start for start in starts if start <= now):
            later = look_from(start)
            laters.append(later)
            if isinstance(later, CheckResult) or not sequential_check.lacks_stable_history(later):
                break
        look = sequential_check.from_later_start(look, laters, since=since, starts=starts, now=now)
    return judge_sequential([look], batched=False)[0]


# --------------------------------------------------------------------------- one canary


class _Once:
    """Asks ``provider`` each distinct query once at ``at``; remembers answers and failures."""

    def __init__(self, provider: MetricProvider, at: float) -> None:
        self._provider = provider
        self.at = at
        self._seen: dict[str, Answer] = {}
        self._histograms: dict[str, Answer] = {}

    def answer(self, query: str) -> Answer:
        if query not in self._seen:
            try:
                self._seen[query] = self._provider.instant(query, self.at)
            except ProviderError as exc:
                self._seen[query] = exc
        return self._seen[query]

    def histogram(self, query: str) -> Answer:
        """``{le: count}`` of a ``sum by (le)`` vector query (a sequential check's buckets)."""
        if query not in self._histograms:
            from controlplane.analysis.sequential.buckets import buckets_from

            try:
                if not isinstance(self._provider, VectorProvider):
                    raise ProviderQueryError(
                        "this metric source cannot answer vector queries (needed for the "
                        f"histogram buckets of a sequential check): {query!r}"
                    )
                self._histograms[query] = buckets_from(self._provider.vector(query, self.at))
            except ProviderError as exc:
                self._histograms[query] = exc
        return self._histograms[query]


def evaluate_check(
    canary: ModelCanary,
    due: DueCheck,
    ask: _Once,
    *,
    since: float | None = None,
    now: float | None = None,
    http_source: HttpSource | None = None,
) -> CheckResult:
    """Judge one due check, turning every provider problem into an inconclusive result."""
    if sequential_support.is_sequential(due.check):
        at = ask.at if now is None else now
        return evaluate_sequential(canary, due, ask, stage_start(due, since), at, http_source)
    try:
        plan = _plan(canary, due.check, http_source)
    except SpecError as exc:
        name = due.check.metric
        return _error_result(due.key, name, f"cannot build the query: {exc}", provider_error=True)
    return threshold_result(
        canary,
        due,
        plan.metric,
        ask.answer,
        candidate=plan.candidate,
        stable=plan.stable,
        samples=plan.samples,
        shown=plan.stable_shown,
        http_source=http_source,
    )


def breached(result: CheckResult) -> bool:
    """The check is breached, or its sequential judge decided to roll back."""
    return result.verdict == "breach" or result.decided == "breach"


def compares_variants(check: CheckSpec) -> bool:
    """A check whose verdict sets the candidate against the stable (``compare: baseline`` or a
    sequential judge): the variants' loads decide whether that comparison is fair."""
    return check.compare == "baseline" or sequential_support.is_sequential(check)


def needs_loads(check: CheckSpec, result: CheckResult) -> bool:
    """Whether ``result`` reads the variants' loads: a comparison of the variants that is
    breached (the evaluations that can roll back; a healthy tick asks nothing more, so the
    controller's batched queries stay independent of the fleet's size)."""
    return compares_variants(check) and breached(result)


def fair(canary: ModelCanary, due: DueCheck, result: CheckResult, ask: _Once) -> CheckResult:
    """``result`` with each variant's requests in flight per replica over the check's window
    when it :func:`needs_loads` (:func:`with_loads`). The controller's batched tick reads the
    same loads grouped (:func:`controlplane.promql.grouped.load_key`)."""
    if not needs_loads(due.check, result):
        return result
    window = canary.window_s(due.check)

    def load(variant: str) -> Answer:
        try:
            return ask.answer(queries.load_query(canary, variant, window))
        except SpecError:
            return None

    return with_loads(
        canary, result, load(canary.spec.candidate.name), load(canary.spec.stable.name)
    )


def with_loads(
    canary: ModelCanary, result: CheckResult, candidate: Answer, stable: Answer
) -> CheckResult:
    """``result`` recording the variants' requests in flight per replica (the answers to their
    load queries; a load that cannot be read, no data or a failure, is left out). When one
    carries more than ``maxLoadRatio`` times the other's (``spec.capacity``, default 1.5), its
    message says the comparison is not fair. The verdict is never changed."""
    cand, base = _number(candidate), _number(stable)
    result = replace(result, load_candidate=cand, load_stable=base)
    if cand is None or base is None or min(cand, base) <= 0:
        return result
    allowed = canary.spec.capacity_or_default().max_load_ratio
    ratio = max(cand, base) / min(cand, base)
    if ratio <= allowed:
        return result
    heavier = "candidate" if cand > base else "stable"
    note = (
        f"not a fair comparison: the {heavier} carries {ratio:.1f}x the other's requests in "
        f"flight per replica (candidate {cand:.1f}, stable {base:.1f}; "
        f"spec.capacity.maxLoadRatio {allowed:g}), so a difference may be load, not the model"
    )
    message = f"{result.message}; {note}" if result.message else note
    return replace(result, message=message)


def evaluate(
    canary: ModelCanary,
    due: Sequence[DueCheck],
    provider: MetricProvider,
    now: float,
    *,
    since: float | None = None,
    http_source: HttpSource | None = None,
    mirror: bool = False,
    with_demand: bool = True,
) -> Observations:
    """Observations at ``now`` for the ``due`` checks, plus the candidate's daily spend and,
    under the capacity plan, the demand both variants served over the analysis window (the
    stable's alone while the candidate gets a mirror: ``mirror``; not asked without
    ``with_demand``, the batched tick's grouped query asks it).

    ``since``: when the current step (or shadow phase) started; ``judge: sequential`` checks
    count from then (see :func:`stage_start`). ``http_source``: ``error-rate``'s HTTP source
    (None: the spec's).
    """
    ask = _Once(provider, now)
    checks = {
        d.key: fair(
            canary,
            d,
            evaluate_check(canary, d, ask, since=since, now=now, http_source=http_source),
            ask,
        )
        for d in due
    }

    spend: float | None = None
    spend_error = False
    try:
        cost = queries.cost_query(canary)
    except SpecError:
        cost, spend_error = None, True
    if cost is not None:
        found = ask.answer(cost)
        spend_error = _failure(found) is not None
        spend = _number(found)
    return Observations(
        checks=checks,
        spend=spend,
        spend_error=spend_error,
        demand_rps=demand(canary, ask, mirror) if with_demand else None,
    )


def demand(canary: ModelCanary, ask: _Once, mirror: bool = False) -> float | None:
    """Requests per second users sent the variants over the analysis window, under the
    capacity plan (None without it, or when it cannot be read: the plan then sizes for what
    the stable's replicas were sized for)."""
    if canary.spec.plan is None:
        return None
    variants = [canary.spec.stable.name]
    if not mirror:
        variants.append(canary.spec.candidate.name)
    query = queries.demand_query(canary, variants, canary.spec.analysis.window.seconds)
    value = _number(ask.answer(query))
    return value if value is not None and value >= 0 else None
