"""One evaluation: query the provider for every due check and judge the answers.

Owns the mapping from provider outcomes to check results: a value is judged by
:mod:`controlplane.analysis.verdict`; :class:`~controlplane.errors.NoData` is inconclusive (not a
provider error); any other :class:`~controlplane.errors.ProviderError` (unreachable, timeout,
rejected query) — and a query that cannot be rendered from the spec — is inconclusive with
``provider_error=True``, which counts towards ``analysis.errorLimit``. It never raises for provider
problems. Within one evaluation the same query at the same time is asked once.

A thin shell around the pure queries/verdict: called by the controller every ``analysis.interval``
and by ``canaryctl simulate`` (with the replay provider) for each simulated tick.

``judge: sequential`` checks (see :mod:`controlplane.analysis.sequential.check`) need the time the
current step (or shadow phase) started, ``since``: their counts are cumulative from then. Callers
pass the state's ``stage_started_at``; without it such a check is inconclusive and says why.

``error-rate``'s HTTP source is the caller's ``http_source`` (the controller's decision from the
Gateway's class); None is the one the spec names
(:func:`controlplane.promql.http_errors.http_source`).

A breached check that compares the variants (``compare: baseline``, a sequential judge) also
asks each variant's requests in flight per replica (:func:`fair`): when one carries more than
``spec.capacity.maxLoadRatio`` times the other's, its message says the comparison is not fair
(an overloaded variant, not a worse model); the verdict is never changed.

An absolute check on a built-in metric also asks the stable variant's value, for display only
(``CheckResult.stable``: status, alerts, dashboard); it never changes the verdict, and when it
cannot be had it is simply left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from controlplane.analysis import verdict
from controlplane.analysis.metric_provider import MetricProvider, VectorProvider
from controlplane.analysis.sequential import support as sequential_support
from controlplane.errors import NoData, ProviderError, ProviderQueryError, SpecError
from controlplane.promql import queries
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.answers import Sample
from controlplane.promql.http_errors import HttpSource
from controlplane.rollout.observations import CheckResult, DueCheck, Observations
from controlplane.spec.models import CapacitySpec, CheckSpec, ModelCanary


class _Failed:
    """A failed lookup, cached like a value."""

    def __init__(self, error: ProviderError) -> None:
        self.error = error


class _Once:
    """Asks ``provider`` each distinct query once; remembers values and failures."""

    def __init__(self, provider: MetricProvider, at: float) -> None:
        self._provider = provider
        self._at = at
        self._seen: dict[str, float | _Failed] = {}
        self._vectors: dict[str, list[Sample] | _Failed] = {}

    @property
    def at(self) -> float:
        return self._at

    def get(self, query: str) -> float:
        if query not in self._seen:
            try:
                self._seen[query] = self._provider.instant(query, self._at)
            except ProviderError as exc:
                self._seen[query] = _Failed(exc)
        found = self._seen[query]
        if isinstance(found, _Failed):
            raise found.error
        return found

    def vector(self, query: str) -> list[Sample]:
        if query not in self._vectors:
            try:
                if not isinstance(self._provider, VectorProvider):
                    raise ProviderQueryError(
                        "this metric source cannot answer vector queries (needed for the "
                        f"histogram buckets of a sequential check): {query!r}"
                    )
                self._vectors[query] = self._provider.vector(query, self._at)
            except ProviderError as exc:
                self._vectors[query] = _Failed(exc)
        found = self._vectors[query]
        if isinstance(found, _Failed):
            raise found.error
        return found

    def maybe(self, query: str | None) -> float | None:
        """The value of ``query``; None for no query or no data."""
        if query is None:
            return None
        try:
            return self.get(query)
        except NoData:
            return None


_PLANS: dict[
    tuple[int, int, HttpSource | None],
    tuple[ModelCanary, CheckSpec, queries.CheckQueries | SpecError],
] = {}
_PLANS_MAX = 4096


def _plan(
    canary: ModelCanary, check: CheckSpec, source: HttpSource | None = None
) -> queries.CheckQueries:
    """``queries.check_queries`` memoised by object identity (specs are immutable) and HTTP
    source.

    A replay evaluates the same checks ~40,000 times; rendering their PromQL each time would
    dominate its run time. Entries hold their objects, so an id is never reused while cached.
    """
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


def _error_result(key: str, metric: str, why: str, *, provider_error: bool) -> CheckResult:
    return CheckResult(
        key=key,
        metric=metric,
        verdict="inconclusive",
        provider_error=provider_error,
        message=f"{metric}: {why}",
    )


def stage_start(due: DueCheck, since: float | None) -> float | None:
    """The start of the current step for ``due``: ``since``, else a ``since`` the state machine
    put on the due check itself (forward compatible), else None."""
    if since is not None:
        return since
    found = getattr(due, "since", None)
    return float(found) if isinstance(found, int | float) else None


def evaluate_sequential(
    canary: ModelCanary,
    due: DueCheck,
    ask: _Once,
    since: float | None,
    now: float,
    source: HttpSource | None = None,
) -> CheckResult:
    """Judge one ``judge: sequential`` check on counts since ``since``.

    The judges (numpy, scipy's special functions) are imported here, by the first sequential
    check: a spec without one, and ``canaryctl simulate`` of it, never load them (issue 41)."""
    from controlplane.analysis.sequential import check as sequential_check
    from controlplane.analysis.sequential.buckets import buckets_from

    name = due.check.metric
    if since is None:
        return _error_result(
            due.key,
            name,
            "the sequential judge needs the time the step started, and none was given",
            provider_error=False,
        )
    try:
        plan = sequential_check.plan(
            canary, due.check, since, now, closes_at=due.closes_at, source=source
        )
    except SpecError as exc:
        return _error_result(due.key, name, f"cannot build the query: {exc}", provider_error=True)
    try:

        def buckets(query: str | None) -> dict[float, float] | None:
            return buckets_from(ask.vector(query)) if query else None

        def counts_of(p: sequential_promql.Plan) -> sequential_check.Counts:
            return sequential_check.Counts(
                cand_events=ask.maybe(p.cand_events),
                cand_total=ask.maybe(p.cand_total),
                stable_events=ask.maybe(p.stable_events),
                stable_total=ask.maybe(p.stable_total),
                cand_buckets=buckets(p.cand_buckets),
                stable_buckets=buckets(p.stable_buckets),
                boundary_s=ask.maybe(p.boundary),
                reference_buckets=buckets(p.reference),
                closing=counts_of(p.closing) if p.closing is not None else None,
            )

        counts = counts_of(plan)
    except NoData as exc:
        return _error_result(due.key, name, str(exc), provider_error=False)
    except ProviderError as exc:
        return _error_result(due.key, name, str(exc), provider_error=True)
    return sequential_check.judge_check(
        due.key,
        due.check,
        plan.metric,
        counts,
        min_samples=verdict.min_samples_for(plan.metric, due.check),
    )


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
    name = due.check.metric
    if sequential_support.is_sequential(due.check):
        at = ask.at if now is None else now
        return evaluate_sequential(canary, due, ask, stage_start(due, since), at, http_source)
    try:
        plan = _plan(canary, due.check, http_source)
    except SpecError as exc:
        return _error_result(due.key, name, f"cannot build the query: {exc}", provider_error=True)

    values: dict[str, float | None] = {}
    for role, query in (
        ("candidate", plan.candidate),
        ("stable", plan.stable),
        ("samples", plan.samples),
    ):
        if query is None:
            values[role] = None
            continue
        try:
            values[role] = ask.get(query)
        except NoData:
            # No requests finished in the window: the count is zero, not unknown.
            values[role] = 0.0 if role == "samples" else None
        except ProviderError as exc:
            return _error_result(due.key, name, str(exc), provider_error=True)

    stable = values["stable"]
    if plan.stable_shown is not None:
        # Display only: no data or a failure leaves the stable value unknown, never the verdict.
        try:
            shown = ask.get(plan.stable_shown)
            stable = shown if math.isfinite(shown) else None
        except ProviderError:
            stable = None
    return verdict.judge(
        due.key,
        due.check,
        candidate=values["candidate"],
        stable=stable,
        samples=values["samples"],
        min_samples=verdict.min_samples_for(plan.metric, due.check),
        looked_for=(
            queries.looked_for(plan.candidate, plan.window) if values["candidate"] is None else None
        ),
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


def load_window(canary: ModelCanary, check: CheckSpec) -> float:
    """The seconds the loads of ``check`` are averaged over: its window."""
    return (check.window or canary.spec.analysis.window).seconds


def fair(canary: ModelCanary, due: DueCheck, result: CheckResult, ask: _Once) -> CheckResult:
    """``result`` with each variant's requests in flight per replica over the check's window
    when it :func:`needs_loads` (:func:`with_loads`); a load that cannot be read is left out.
    The controller's batched tick reads the same loads grouped
    (:func:`controlplane.promql.grouped.load_key`)."""
    if not needs_loads(due.check, result):
        return result
    window = load_window(canary, due.check)
    loads: dict[str, float | None] = {}
    for role, variant in (("candidate", canary.spec.candidate), ("stable", canary.spec.stable)):
        try:
            loads[role] = ask.maybe(queries.load_query(canary, variant.name, window))
        except (ProviderError, SpecError):
            loads[role] = None
    return with_loads(canary, result, loads["candidate"], loads["stable"])


def with_loads(
    canary: ModelCanary, result: CheckResult, candidate: float | None, stable: float | None
) -> CheckResult:
    """``result`` recording the variants' requests in flight per replica (``candidate``,
    ``stable``; None or not finite: not read). When one carries more than ``maxLoadRatio``
    times the other's (``spec.capacity``, default 1.5), its message says the comparison is not
    fair. The verdict is never changed."""
    candidate = candidate if candidate is not None and math.isfinite(candidate) else None
    stable = stable if stable is not None and math.isfinite(stable) else None
    result = replace(result, load_candidate=candidate, load_stable=stable)
    if candidate is None or stable is None or min(candidate, stable) <= 0:
        return result
    allowed = (canary.spec.capacity or CapacitySpec()).max_load_ratio
    ratio = max(candidate, stable) / min(candidate, stable)
    if ratio <= allowed:
        return result
    heavier = "candidate" if candidate > stable else "stable"
    note = (
        f"not a fair comparison: the {heavier} carries {ratio:.1f}x the other's requests in "
        f"flight per replica (candidate {candidate:.1f}, stable {stable:.1f}; "
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
) -> Observations:
    """Observations at ``now`` for the ``due`` checks, plus the candidate's daily spend and,
    with ``spec.capacity``, the demand both variants served over the analysis window (the
    stable's alone while the candidate gets a mirror: ``mirror``).

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
        try:
            spend = ask.get(cost)
        except NoData:
            spend = None
        except ProviderError:
            spend_error = True
    return Observations(
        checks=checks,
        spend=spend,
        spend_error=spend_error,
        demand_rps=demand(canary, ask, mirror),
    )


def demand(canary: ModelCanary, ask: _Once, mirror: bool = False) -> float | None:
    """Requests per second users sent the variants over the analysis window, with
    ``spec.capacity`` (None without it, or when it cannot be read: the plan then sizes for
    what the stable's replicas were sized for)."""
    if canary.spec.capacity is None:
        return None
    variants = [canary.spec.stable.name]
    if not mirror:
        variants.append(canary.spec.candidate.name)
    query = queries.demand_query(canary, variants, canary.spec.analysis.window.seconds)
    try:
        value = ask.maybe(query)
    except (ProviderError, SpecError):
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None
