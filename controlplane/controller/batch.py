"""Batched analysis: one tick evaluates the due checks of every canary due at that tick.

Owns a tick: which checks are grouped, the grouped queries sent (their text and the reading of
their answers live in :mod:`controlplane.promql.grouped`), the answers kept between
ticks and the judging. For N canaries the per-canary evaluator
(:func:`controlplane.analysis.evaluator.evaluate`) would send one query per canary per metric per
variant; here every built-in query is grouped by (metric family, window, namespace, and the
HTTP source and vLLM version that decide its text), sent ONCE with ``by (canary, variant)``
aggregation over ``canary=~"a|b|..."``, and its vector answer is distributed to the canaries.
The values are the contract's per-variant values exactly: ``sum by (le, canary, variant)``
restricted to one (canary, variant) is ``sum by (le)`` over that variant's selector
(``error-rate``'s gateway sources, Envoy's and Traefik's, have no such labels: their series are
selected for the whole group by one regular expression over the routes or Services, summed by
backend, and folded back to (canary, variant) here, :func:`read_grouped`; a ``label_replace``
per canary made the query grow with the group until Prometheus failed it at 1,000 canaries).
``error-rate``'s HTTP source is each request's ``http_source`` (the controller's decision from
the Gateway's class, :mod:`controlplane.routing.gateways`; None: the spec's). Judging is
:func:`controlplane.analysis.verdict.judge`, the same as the evaluator's, and provider failures
map to results the same way (no data: inconclusive; failure: inconclusive with
``provider_error``). An absolute check's result also carries the stable variant's value for
display, read from the same grouped answer (no extra query). A breached comparison of the
variants records their loads (:func:`controlplane.analysis.evaluator.with_loads`): one more
grouped query per window and namespace, asked only at a tick with such a breach
(:meth:`BatchEvaluator._fair`), so a healthy tick's queries do not change.

``judge: sequential`` checks count from the start of each canary's current step, so their windows
differ from canary to canary. They are grouped too: one query per kind of count (errors, requests,
histogram buckets, the baseline's boundary) and namespace, the union (``or``) of one term per
distinct window, each term ``sum by (canary, variant) (increase(...{canary=~"a|b"}[<window>]))``
over the canaries sharing that window. The union of disjoint label sets is exact, so each canary
gets its own counts, and the number of queries per tick does not grow with the number of canaries
(the query text does); above :data:`SHARD_CANARIES` canaries a kind's query is split into at
most ``workers`` parts (:func:`shards`), which Prometheus evaluates side by side while this
process reads the answers already in. An absolute check's terms ask for the candidates' series only
(``SeqKey.candidate_only``: it never reads the stable's counts). :class:`Request` carries
``since`` (the state's ``stage_started_at``). The tick's sequential checks are then judged
together (:func:`controlplane.analysis.sequential.check.judge_checks`: the latency looks built
on arrays, one numpy pass per kind of test).

Not grouped (per-canary fallback through the evaluator): custom ``query`` metrics, canaries with a
custom ``spec.analysis.selector`` (their labels are not ``canary``/``variant``), and
``budget.costQuery``. :class:`CountingSource` counts the queries of each tick (exposed by the
runner as ``canary_controller_analysis_queries``) and turns any failure of the source into a
:class:`~controlplane.errors.ProviderError`, so that a hostile answer (refused by the provider:
too big, too deep) or a bug in a source is a check result with ``provider_error``, counted
towards ``analysis.errorLimit`` like an outage, and never fails the whole tick.

Called by :mod:`controlplane.controller.runner` once per analysis tick.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from controlplane.analysis import evaluator, verdict
from controlplane.analysis.sequential import check as sequential_check
from controlplane.analysis.sequential import support as sequential_support
from controlplane.controller import gc_pause
from controlplane.errors import NoData, ProviderError, SpecError
from controlplane.promql import queries
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.grouped import (
    AT_START,
    PIN_MARGIN_S,
    GroupKey,
    RouteIndex,
    SeqKey,
    canary_keys,
    group_key,
    grouped_query,
    is_gateway,
    load_key,
    pinned_at,
    read_grouped,
    read_sequential,
    samples_key,
    sequential_query,
    shards,
)
from controlplane.promql.http_errors import HttpSource
from controlplane.providers.source import CountingSource, MetricSource
from controlplane.rollout.observations import CheckResult, DueCheck, Observations
from controlplane.spec.models import CheckSpec, MetricSpec, ModelCanary

# --------------------------------------------------------------------------- one tick


_Answer = dict[tuple[str, str], float] | ProviderError
"""A grouped query's values by (canary, variant), or why it failed."""


@dataclass(frozen=True)
class Request:
    """A canary due at this tick: ``key`` identifies it to the caller, ``due`` its checks,
    ``since`` when its current step started (``RolloutState.stage_started_at``; needed by
    ``judge: sequential`` checks, which are inconclusive without it), ``http_source``
    ``error-rate``'s HTTP source (None: the one the spec names,
    :func:`controlplane.promql.http_errors.http_source`)."""

    key: Hashable
    canary: ModelCanary
    due: Sequence[DueCheck]
    since: float | None = None
    http_source: HttpSource | None = None
    mirror: bool = False
    """The candidate gets a mirror of the traffic (shadow): its requests are no demand."""


@dataclass
class _SeqPlanned:
    due: DueCheck
    metric: MetricSpec
    window: float
    since: float
    keys: dict[str, SeqKey]  # role -> grouped query (errors/requests/buckets/boundary)


@dataclass
class _Planned:
    due: DueCheck
    metric: MetricSpec
    candidate: GroupKey
    stable: GroupKey | None
    samples: GroupKey


@dataclass
class _Plan:
    grouped: list[_Planned] = field(default_factory=list)
    sequential: list[_SeqPlanned] = field(default_factory=list)
    fallback: list[DueCheck] = field(default_factory=list)


def groupable(canary: ModelCanary, check: CheckSpec) -> MetricSpec | None:
    """The metric of ``check`` when its queries can be grouped, else None."""
    metric = canary.metric(check.metric)
    if metric is None or metric.builtin is None or canary.spec.analysis.selector is not None:
        return None
    return metric


@dataclass(frozen=True)
class TickStats:
    canaries: int
    grouped_queries: int
    queries: int


class BatchEvaluator:
    """Evaluates many canaries at one tick through one :class:`MetricSource`.

    ``batched`` (default): the tick's ``judge: sequential`` checks are judged together
    (:func:`controlplane.analysis.sequential.check.judge_checks`: one numpy pass per kind of
    test over every check); False judges them one at a time (``judge_check`` per check, the
    same results: ``bench/scale.py`` measures both).
    """

    def __init__(self, source: MetricSource, *, batched: bool = True, workers: int = 4) -> None:
        self.source = CountingSource(source)
        self.last = TickStats(0, 0, 0)
        self.batched = batched
        self.workers = max(1, workers)
        # (key, term param, canary) -> that canary's answer to a term pinned in the past
        self._pinned: dict[tuple[SeqKey, float, str], dict[str, Any]] = {}

    def evaluate(self, requests: Sequence[Request], now: float) -> dict[Hashable, Observations]:
        """The observations of every request at ``now``, by request key; the cyclic garbage
        collector paused meanwhile (:func:`controlplane.controller.gc_pause.paused`)."""
        with gc_pause.paused():
            return self._evaluate(requests, now)

    def _evaluate(self, requests: Sequence[Request], now: float) -> dict[Hashable, Observations]:
        before = self.source.count
        plans: dict[Hashable, _Plan] = {}
        members: dict[GroupKey, set[str]] = {}
        seq_terms: dict[SeqKey, dict[float, set[str]]] = {}
        known: dict[tuple[str, str], ModelCanary] = {}
        for req in requests:
            plan = plans[req.key] = _Plan()
            ns, name = req.canary.metadata.namespace, req.canary.metadata.name
            known[(ns, name)] = req.canary
            keys: tuple[str, str] | None
            try:
                keys = canary_keys(req.canary, req.http_source)
            except SpecError:  # no metric contract: the evaluator says so per check
                keys = None
            for due in req.due:
                metric = groupable(req.canary, due.check)
                if metric is None or keys is None:
                    plan.fallback.append(due)
                    continue
                source, version = keys
                if sequential_support.is_sequential(due.check):
                    seq = _plan_sequential(req, due, metric, now, source, version)
                    if seq is None:
                        plan.fallback.append(due)  # the evaluator says what is wrong
                        continue
                    plan.sequential.append(seq)
                    for skey in seq.keys.values():
                        param = seq.since if skey.kind.startswith(AT_START) else seq.window
                        seq_terms.setdefault(skey, {}).setdefault(param, set()).add(name)
                    continue
                window = (due.check.window or req.canary.spec.analysis.window).seconds
                planned = _Planned(
                    due,
                    metric,
                    group_key(metric, window, ns, source, version),
                    group_key(metric, window, ns, source, version)
                    if due.check.compare == "baseline"
                    else None,
                    samples_key(window, ns, version),
                )
                plan.grouped.append(planned)
                for key in (planned.candidate, planned.stable, planned.samples):
                    if key is not None:
                        members.setdefault(key, set()).add(name)
        # The tick's grouped queries run concurrently: Prometheus evaluates one while this
        # process reads another's answer.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            runs = {
                key: pool.submit(
                    self._run, key, [known[(key.namespace, n)] for n in sorted(names)], now
                )
                for key, names in members.items()
            }
            named = {ns: _named(known, ns) for ns in {key.namespace for key in seq_terms}}
            indexes = {
                (ns, src): RouteIndex.of(src, ns, named[ns])
                for ns, src in {
                    (key.namespace, key.source) for key in seq_terms if is_gateway(key.source)
                }
            }
            seq_runs = {
                key: [
                    pool.submit(
                        self._run_seq,
                        key,
                        part,
                        named[key.namespace],
                        now,
                        indexes.get((key.namespace, key.source)),
                    )
                    for part in shards(terms, self.workers)
                ]
                for key, terms in seq_terms.items()
            }
            answers = {key: run.result() for key, run in runs.items()}
            seq_answers = {
                key: _merged([run.result() for run in parts]) for key, parts in seq_runs.items()
            }
        self._keep_pinned(seq_terms)
        grouped = len(answers) + len(seq_answers)
        judged = self._judge_sequential(requests, plans, seq_answers)
        out: dict[Hashable, Observations] = {}
        for req in requests:
            out[req.key] = self._observations(req, plans[req.key], answers, judged, now)
        grouped += self._fair(requests, plans, out, now)
        self.last = TickStats(len(requests), grouped, self.source.count - before)
        return out

    def _fair(
        self,
        requests: Sequence[Request],
        plans: Mapping[Hashable, _Plan],
        out: dict[Hashable, Observations],
        now: float,
    ) -> int:
        """Records the variants' loads in ``out``'s breached comparisons among the grouped and
        sequential checks (the fallback's read theirs in the evaluator): one grouped query per
        window and namespace (:func:`load_key`), none at a tick without such a breach. A load
        that cannot be read is left out. Returns the number of grouped queries sent."""
        wanted: list[tuple[Request, str, GroupKey]] = []
        members: dict[GroupKey, set[str]] = {}
        for req in requests:
            plan = plans[req.key]
            dues = [p.due for p in plan.grouped] + [s.due for s in plan.sequential]
            checks = out[req.key].checks
            for due in dues:
                if not evaluator.needs_loads(due.check, checks[due.key]):
                    continue
                _, version = canary_keys(req.canary, req.http_source)  # read when planned
                window = evaluator.load_window(req.canary, due.check)
                key = load_key(window, req.canary.metadata.namespace, version)
                wanted.append((req, due.key, key))
                members.setdefault(key, set()).add(req.canary.metadata.name)
        canaries = {
            (r.canary.metadata.namespace, r.canary.metadata.name): r.canary for r in requests
        }
        answers = {
            key: self._run(key, [canaries[(key.namespace, n)] for n in sorted(names)], now)
            for key, names in sorted(members.items())
        }
        for req, check, key in wanted:
            found = answers[key]
            loads = {} if isinstance(found, ProviderError) else found
            name, spec = req.canary.metadata.name, req.canary.spec
            obs = out[req.key]
            result = evaluator.with_loads(
                req.canary,
                obs.checks[check],
                loads.get((name, spec.candidate.name)),
                loads.get((name, spec.stable.name)),
            )
            out[req.key] = replace(obs, checks={**obs.checks, check: result})
        return len(answers)

    def _run_seq(
        self,
        key: SeqKey,
        terms: dict[float, set[str]],
        canaries: Mapping[str, ModelCanary],
        at: float,
        index: RouteIndex | None = None,
    ) -> _SeqAnswer:
        kept: dict[tuple[str, str], Any] = {}
        asked: dict[float, set[str]] = {}
        for param, names in terms.items():
            pin = pinned_at(key.kind, param)
            settled = pin is not None and pin <= at - PIN_MARGIN_S
            for name in names:
                found = self._pinned.get((key, param, name)) if settled else None
                if found is None:
                    asked.setdefault(param, set()).add(name)
                else:
                    kept.update({(name, variant): value for variant, value in found.items()})
        if not asked:
            return kept
        query = sequential_query(key, asked, canaries, index)
        try:
            values = read_sequential(key, self.source.vector(query, at), canaries, index)
        except ProviderError as exc:
            return exc
        by_canary: dict[str, dict[str, Any]] = {}
        for (name, variant), value in values.items():
            by_canary.setdefault(name, {})[variant] = value
        for param, names in asked.items():
            pin = pinned_at(key.kind, param)
            if pin is None or pin > at - PIN_MARGIN_S:
                continue
            for name in names & by_canary.keys():  # no series yet is not kept: it may come
                self._pinned[(key, param, name)] = by_canary[name]
        return {**kept, **values}

    def _keep_pinned(self, seq_terms: Mapping[SeqKey, Mapping[float, set[str]]]) -> None:
        """Forget the pinned answers this tick did not use (a step that ended, a canary gone)."""
        used = {
            (key, param, name)
            for key, terms in seq_terms.items()
            for param, names in terms.items()
            for name in names
        }
        self._pinned = {k: v for k, v in self._pinned.items() if k in used}

    def _run(self, key: GroupKey, canaries: list[ModelCanary], at: float) -> _Answer:
        query = grouped_query(key, canaries)
        try:
            return read_grouped(key, self.source.vector(query, at), canaries)
        except ProviderError as exc:
            return exc

    def _judge_sequential(
        self,
        requests: Sequence[Request],
        plans: Mapping[Hashable, _Plan],
        seq_answers: dict[SeqKey, _SeqAnswer],
    ) -> dict[tuple[Hashable, str], CheckResult]:
        """Every sequential check of the tick, by (request key, check key): a provider failure
        per check, the rest judged together (or one by one when not ``batched``)."""
        out: dict[tuple[Hashable, str], CheckResult] = {}
        pending: list[tuple[tuple[Hashable, str], sequential_check.CheckLook]] = []
        for req in requests:
            for seq in plans[req.key].sequential:
                found = _sequential_look(req.canary, seq, seq_answers)
                if isinstance(found, CheckResult):
                    out[(req.key, seq.due.key)] = found
                else:
                    pending.append(((req.key, seq.due.key), found))
        looks = [look for _, look in pending]
        if self.batched:
            results = sequential_check.judge_checks(looks)
        else:
            results = [
                sequential_check.judge_check(
                    look.key, look.check, look.metric, look.counts, min_samples=look.min_samples
                )
                for look in looks
            ]
        for (ident, _), result in zip(pending, results, strict=True):
            out[ident] = result
        return out

    def _observations(
        self,
        req: Request,
        plan: _Plan,
        answers: dict[GroupKey, _Answer],
        judged: Mapping[tuple[Hashable, str], CheckResult],
        now: float,
    ) -> Observations:
        # The fallback also asks the budget's cost query (once per canary, not groupable).
        base = evaluator.evaluate(
            req.canary,
            plan.fallback,
            self.source,
            now,
            since=req.since,
            http_source=req.http_source,
            mirror=req.mirror,
        )
        checks = dict(base.checks)  # the fallback's breached comparisons read their loads
        for planned in plan.grouped:
            checks[planned.due.key] = self._judge(req.canary, planned, answers)
        for seq in plan.sequential:
            checks[seq.due.key] = judged[(req.key, seq.due.key)]
        return Observations(
            checks=checks,
            spend=base.spend,
            spend_error=base.spend_error,
            demand_rps=base.demand_rps,
        )

    @staticmethod
    def _judge(
        canary: ModelCanary,
        planned: _Planned,
        answers: dict[GroupKey, _Answer],
    ) -> CheckResult:
        name = canary.metadata.name
        spec = canary.spec
        values: dict[str, float | None] = {}
        roles: list[tuple[str, GroupKey | None, str]] = [
            ("candidate", planned.candidate, spec.candidate.name),
            ("stable", planned.stable, spec.stable.name),
            ("samples", planned.samples, spec.candidate.name),
        ]
        for role, key, variant in roles:
            if key is None:
                values[role] = None
                continue
            found = answers[key]
            if isinstance(found, ProviderError):
                return CheckResult(
                    key=planned.due.key,
                    metric=planned.due.check.metric,
                    verdict="inconclusive",
                    provider_error=not isinstance(found, NoData),
                    message=f"{planned.due.check.metric}: {found}",
                )
            value = found.get((name, variant))
            if value is None or not math.isfinite(value):
                # No requests finished in the window: the count is zero, not unknown.
                value = 0.0 if role == "samples" else None
            values[role] = value
        if planned.stable is None:
            # Display only: the candidate's grouped answer is ``by (canary, variant)`` and so
            # already holds the stable variant's value: no extra query, and no effect on the
            # verdict of an absolute check.
            found = answers[planned.candidate]
            ident = (name, spec.stable.name)
            shown = None if isinstance(found, ProviderError) else found.get(ident)
            values["stable"] = shown if shown is not None and math.isfinite(shown) else None
        return verdict.judge(
            planned.due.key,
            planned.due.check,
            candidate=values["candidate"],
            stable=values["stable"],
            samples=values["samples"],
            min_samples=verdict.min_samples_for(planned.metric, planned.due.check),
            looked_for=_looked_for(canary, planned) if values["candidate"] is None else None,
        )


def _looked_for(canary: ModelCanary, planned: _Planned) -> str | None:
    """What the candidate's (ungrouped) query of ``planned`` looks for: the "no data" hint."""
    try:
        plan = queries.check_queries(canary, planned.due.check)
    except SpecError:
        return None
    return queries.looked_for(plan.candidate, plan.window)


_SeqAnswer = dict[tuple[str, str], Any] | ProviderError
"""A grouped sequential query's values (floats, or ``{le: count}``) by (canary, variant)."""


def _merged(parts: list[_SeqAnswer]) -> _SeqAnswer:
    """The answers of one query's shards as one (the first failure, if any)."""
    for part in parts:
        if isinstance(part, ProviderError):
            return part
    if len(parts) == 1:
        return parts[0]
    out: dict[tuple[str, str], Any] = {}
    for part in parts:
        assert not isinstance(part, ProviderError)
        out.update(part)
    return out


def _named(known: Mapping[tuple[str, str], ModelCanary], namespace: str) -> dict[str, ModelCanary]:
    """The canaries of ``namespace`` by name."""
    return {name: canary for (ns, name), canary in known.items() if ns == namespace}


def _plan_sequential(
    req: Request, due: DueCheck, metric: MetricSpec, now: float, source: str, version: str
) -> _SeqPlanned | None:
    """The grouped queries of one sequential check; None when the evaluator must handle it (no
    step start, or a check the sequential judge does not support)."""
    since = evaluator.stage_start(due, req.since)
    if since is None or sequential_support.problems(req.canary, due.check, "check"):
        return None
    ns = req.canary.metadata.namespace
    window = sequential_promql.window_seconds(since, now)
    keys: dict[str, SeqKey] = {}
    builtin = metric.builtin
    assert builtin is not None
    absolute = due.check.compare != "baseline"
    if builtin == "error-rate":
        keys["events"] = SeqKey("errors", ns, source, version, candidate_only=absolute)
        keys["total"] = SeqKey("requests", ns, source, version, candidate_only=absolute)
    else:
        keys["buckets"] = SeqKey(f"buckets:{builtin}", ns, "", version, candidate_only=absolute)
        lookback = (due.check.window or req.canary.spec.analysis.window).seconds
        if due.check.compare == "baseline" and due.check.test == "shift":
            keys["reference"] = SeqKey(f"reference:{builtin}@{lookback!r}", ns, "", version)
        elif due.check.compare == "baseline":
            q = metric.quantile_or_default
            keys["boundary"] = SeqKey(f"boundary:{builtin}@{q!r}@{lookback!r}", ns, "", version)
    end = sequential_promql.closing_time(due.check, due.closes_at, now)
    if end is not None:
        duration = f"{max(end - since, sequential_promql.MIN_WINDOW_S):.3f}"
        for role in [r for r in keys if r in _COUNTS]:
            kind = f"closing@{duration}:{keys[role].kind}"
            keys[f"closing-{role}"] = replace(keys[role], kind=kind)
    return _SeqPlanned(due, metric, window, since, keys)


_COUNTS = ("events", "total", "buckets")
"""The roles of a sequential check's cumulative counts (the closing test re-asks them)."""


def _sequential_look(
    canary: ModelCanary, seq: _SeqPlanned, answers: dict[SeqKey, _SeqAnswer]
) -> sequential_check.CheckLook | CheckResult:
    """One sequential check's counts from the tick's grouped answers, ready to judge; or its
    result when a query it needs failed."""
    name = canary.metadata.name
    cand, stable = canary.spec.candidate.name, canary.spec.stable.name
    baseline = seq.due.check.compare == "baseline"
    got: dict[str, dict[tuple[str, str], Any]] = {}
    for role, key in seq.keys.items():
        found = answers[key]
        if isinstance(found, ProviderError):
            return CheckResult(
                key=seq.due.key,
                metric=seq.due.check.metric,
                verdict="inconclusive",
                provider_error=not isinstance(found, NoData),
                message=f"{seq.due.check.metric} (sequential): {found}",
            )
        got[role] = found

    def value(role: str, variant: str) -> Any:
        return got[role].get((name, variant)) if role in got else None

    def counts_of(prefix: str, closing: sequential_check.Counts | None) -> sequential_check.Counts:
        return sequential_check.Counts(
            cand_events=value(f"{prefix}events", cand),
            cand_total=value(f"{prefix}total", cand),
            stable_events=value(f"{prefix}events", stable) if baseline else None,
            stable_total=value(f"{prefix}total", stable) if baseline else None,
            cand_buckets=value(f"{prefix}buckets", cand),
            stable_buckets=value(f"{prefix}buckets", stable) if baseline else None,
            boundary_s=value("boundary", stable),
            reference_buckets=value("reference", stable),
            closing=closing,
        )

    ends = any(role.startswith("closing-") for role in seq.keys)
    counts = counts_of("", counts_of("closing-", None) if ends else None)
    return sequential_check.CheckLook(
        seq.due.key,
        seq.due.check,
        seq.metric,
        counts,
        verdict.min_samples_for(seq.metric, seq.due.check),
    )


def describe(stats: TickStats) -> dict[str, Any]:
    return {"canaries": stats.canaries, "grouped": stats.grouped_queries, "queries": stats.queries}
