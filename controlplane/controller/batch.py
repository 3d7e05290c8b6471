"""The controller's analysis tick: query planning for every canary due at once.

Owns which due checks are grouped, the pinned answers kept between ticks and the split of each
answer per canary and check; what an answer makes of a check stays the evaluator's, and what is
not grouped goes through :func:`~controlplane.analysis.evaluator.evaluate`. Why: a tick's queries
do not grow with the fleet. Called by the runner once per tick. See docs/controller.md, "Batched
analysis".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from controlplane.analysis import evaluator
from controlplane.analysis.evaluator import Answer, SeqRole
from controlplane.analysis.sequential import support as sequential_support
from controlplane.controller import gc_pause
from controlplane.errors import ProviderError, SpecError
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.grouped import (
    AT_START,
    PIN_MARGIN_S,
    GroupKey,
    RouteIndex,
    SeqKey,
    canary_keys,
    demand_key,
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

if TYPE_CHECKING:  # the judge loads numpy and scipy: imported by the first sequential check
    from controlplane.analysis.sequential.check import CheckLook

_Answer = dict[tuple[str, str], Any] | ProviderError
"""A grouped query's values by (canary, variant) (numbers, or ``{le: count}``), or why it
failed."""


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
    keys: dict[str, SeqKey]  # SeqRole.kind, "closing-" before a closing one -> grouped query
    source: str
    version: str


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
    demand: GroupKey | None = None
    """The grouped query of the capacity plan's demand (None: asked per canary, or not)."""


def _plain(canary: ModelCanary) -> bool:
    """Whether ``canary``'s series are selected by the default labels (no
    ``spec.analysis.selector``): only then does a grouped query find them."""
    return canary.spec.analysis.selector is None


def groupable(canary: ModelCanary, check: CheckSpec) -> MetricSpec | None:
    """The metric of ``check`` when its queries can be grouped, else None."""
    metric = canary.metric(check.metric)
    if metric is None or metric.builtin is None or not _plain(canary):
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
    (:func:`controlplane.analysis.evaluator.judge_sequential`: one numpy pass per kind of test
    over every check); False judges them one at a time (the same verdicts: ``bench/scale.py``
    measures both).
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
            if keys is not None and req.canary.spec.plan is not None and _plain(req.canary):
                window = req.canary.spec.analysis.window.seconds
                plan.demand = demand_key(window, ns, keys[1])
                members.setdefault(plan.demand, set()).add(name)
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
                    _add_terms(seq_terms, seq, name)
                    continue
                window = req.canary.window_s(due.check)
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
            seq_answers = self._ask_seq(pool, seq_terms, known, now)
            answers = {key: run.result() for key, run in runs.items()}
            judged, later_terms = self._judge_sequential(
                pool, requests, plans, seq_answers, known, now
            )
        self._keep_pinned({**seq_terms, **later_terms})
        grouped = len(answers) + len(seq_answers) + len(later_terms)
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
        """Hands the variants' loads to ``out``'s breached comparisons among the grouped and
        sequential checks (:func:`~controlplane.analysis.evaluator.with_loads`; the fallback's
        read theirs in the evaluator): one grouped query per window and namespace
        (:func:`load_key`), none at a tick without such a breach. Returns the number of grouped
        queries sent."""
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
                window = req.canary.window_s(due.check)
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
            answer = _split(answers, req.canary.metadata.name)
            spec, obs = req.canary.spec, out[req.key]
            result = evaluator.with_loads(
                req.canary,
                obs.checks[check],
                answer((key, spec.candidate.name)),
                answer((key, spec.stable.name)),
            )
            out[req.key] = replace(obs, checks={**obs.checks, check: result})
        return len(answers)

    def _ask_seq(
        self,
        pool: ThreadPoolExecutor,
        seq_terms: Mapping[SeqKey, dict[float, set[str]]],
        known: Mapping[tuple[str, str], ModelCanary],
        now: float,
    ) -> dict[SeqKey, _Answer]:
        """The answers of the grouped sequential queries ``seq_terms``, each split into
        :func:`shards` run side by side on ``pool``."""
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
        return {key: _merged([run.result() for run in parts]) for key, parts in seq_runs.items()}

    def _run_seq(
        self,
        key: SeqKey,
        terms: dict[float, set[str]],
        canaries: Mapping[str, ModelCanary],
        at: float,
        index: RouteIndex | None = None,
    ) -> _Answer:
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
        pool: ThreadPoolExecutor,
        requests: Sequence[Request],
        plans: Mapping[Hashable, _Plan],
        seq_answers: Mapping[SeqKey, _Answer],
        known: Mapping[tuple[str, str], ModelCanary],
        now: float,
    ) -> tuple[dict[tuple[Hashable, str], CheckResult], dict[SeqKey, dict[float, set[str]]]]:
        """Every sequential check of the tick, by (request key, check key): its split answers
        handed to the evaluator, the looks judged together (one at a time unless
        ``batched``). A baseline latency check whose stable had no history before the step
        (:func:`~controlplane.analysis.sequential.check.from_later_start`) takes two more
        rounds, for such checks only: the stable's reference (or boundary) at each later start
        that has come, pinned and so kept once settled, then the counts from the first start
        that found the stable's data. Returns those rounds' terms too."""
        from controlplane.analysis.sequential import check as sequential_check

        idents: list[tuple[Hashable, str]] = []
        looks: list[CheckLook | CheckResult] = []
        lacking: dict[int, tuple[_SeqPlanned, list[float], list[_SeqPlanned], ModelCanary]] = {}
        before_terms: dict[SeqKey, dict[float, set[str]]] = {}
        for req in requests:
            for seq in plans[req.key].sequential:
                idents.append((req.key, seq.due.key))
                look = _seq_look(seq, req.canary, seq_answers)
                looks.append(look)
                if isinstance(look, CheckResult):
                    continue
                if not sequential_check.lacks_stable_history(look):
                    continue
                starts = sequential_promql.later_starts(req.canary, seq.due.check, seq.since)
                planned: list[_SeqPlanned] = []
                for k, start in enumerate(starts, 1):
                    if start > now:
                        break
                    found = _plan_sequential(
                        req, seq.due, seq.metric, now, seq.source, seq.version, since=start, later=k
                    )
                    assert found is not None  # planned from the step's start already
                    planned.append(found)
                    _add_terms(before_terms, _part(found, before=True), req.canary.metadata.name)
                lacking[len(looks) - 1] = (seq, starts, planned, req.canary)
        answers = self._ask_seq(pool, before_terms, known, now) if before_terms else {}
        chosen: dict[int, tuple[list[CheckLook | CheckResult], _SeqPlanned | None]] = {}
        count_terms: dict[SeqKey, dict[float, set[str]]] = {}
        for i, (_, _, planned, canary) in lacking.items():
            laters: list[CheckLook | CheckResult] = []
            judged = None
            for found in planned:
                later = _seq_look(_part(found, before=True), canary, answers)
                laters.append(later)
                if isinstance(later, CheckResult):
                    break
                if not sequential_check.lacks_stable_history(later):
                    judged = found
                    _add_terms(count_terms, _part(found, before=False), canary.metadata.name)
                    break
            chosen[i] = (laters, judged)
        if count_terms:
            answers = {**answers, **self._ask_seq(pool, count_terms, known, now)}
        for i, (seq, starts, _, canary) in lacking.items():
            look = looks[i]
            assert not isinstance(look, CheckResult)
            laters, judged = chosen[i]
            if judged is not None:  # the start that found the stable's data, with its counts
                laters[-1] = _seq_look(judged, canary, answers)
            looks[i] = sequential_check.from_later_start(
                look, laters, since=seq.since, starts=starts, now=now
            )
        results = evaluator.judge_sequential(looks, batched=self.batched)
        return dict(zip(idents, results, strict=True)), {**before_terms, **count_terms}

    def _observations(
        self,
        req: Request,
        plan: _Plan,
        answers: Mapping[GroupKey, _Answer],
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
            with_demand=plan.demand is None,
        )
        if plan.demand is not None:
            base = replace(base, demand_rps=_demand(req, answers[plan.demand]))
        checks = dict(base.checks)  # the fallback's breached comparisons read their loads
        answer = _split(answers, req.canary.metadata.name)
        cand, stable = req.canary.spec.candidate.name, req.canary.spec.stable.name
        for p in plan.grouped:
            checks[p.due.key] = evaluator.threshold_result(
                req.canary,
                p.due,
                p.metric,
                answer,
                candidate=(p.candidate, cand),
                stable=None if p.stable is None else (p.stable, stable),
                samples=(p.samples, cand),
                # an absolute check's stable value, for display: the candidate's grouped answer
                # is ``by (canary, variant)`` and holds it already (no extra query)
                shown=(p.candidate, stable) if p.stable is None else None,
                http_source=req.http_source,
            )
        for seq in plan.sequential:
            checks[seq.due.key] = judged[(req.key, seq.due.key)]
        return replace(base, checks=checks)


def _demand(req: Request, found: _Answer) -> float | None:
    """``req``'s demand from the grouped answer: its variants' requests per second added (the
    stable's alone under a mirror), None when the query failed or a variant has no series, as
    :func:`controlplane.analysis.evaluator.demand` reads the canary's own query."""
    if isinstance(found, ProviderError):
        return None
    spec = req.canary.spec
    variants = [spec.stable.name] if req.mirror else [spec.stable.name, spec.candidate.name]
    total = 0.0
    for variant in variants:
        value = found.get((req.canary.metadata.name, variant))
        if not isinstance(value, int | float) or not math.isfinite(value):
            return None
        total += value
    return total if total >= 0 else None


def _split(answers: Mapping[Any, _Answer], name: str) -> Callable[[tuple[Any, str]], Answer]:
    """Canary ``name``'s answer to a grouped query (``answers``' key) for one of its variants:
    the query's failure, or the variant's value (None: no series)."""

    def answer(asked: tuple[Any, str]) -> Answer:
        found = answers[asked[0]]
        return found if isinstance(found, ProviderError) else found.get((name, asked[1]))

    return answer


def _add_terms(seq_terms: dict[SeqKey, dict[float, set[str]]], seq: _SeqPlanned, name: str) -> None:
    """Adds canary ``name``'s terms of ``seq`` to the tick's grouped sequential queries: keyed
    by its step start (boundary, reference, closing counts) or by its window (counts)."""
    for skey in seq.keys.values():
        param = seq.since if skey.kind.startswith(AT_START) else seq.window
        seq_terms.setdefault(skey, {}).setdefault(param, set()).add(name)


_BEFORE = ("reference", "boundary")
"""The roles of the stable's data before a sequential check's counts (``@`` their start)."""


def _part(seq: _SeqPlanned, *, before: bool) -> _SeqPlanned:
    """``seq`` with only its :data:`_BEFORE` keys (``before``), or only the others."""
    keys = {role: key for role, key in seq.keys.items() if (role in _BEFORE) == before}
    return replace(seq, keys=keys)


def _seq_look(
    seq: _SeqPlanned, canary: ModelCanary, answers: Mapping[SeqKey, _Answer]
) -> CheckLook | CheckResult:
    """The evaluator's look of ``seq`` for ``canary`` from the grouped ``answers``."""
    return evaluator.sequential_look(
        seq.due,
        seq.metric,
        _seq_split(seq, canary, answers),
        closing=any(role.startswith("closing-") for role in seq.keys),
        design_effect=sequential_support.design_effect(canary),
    )


def _seq_split(
    seq: _SeqPlanned, canary: ModelCanary, answers: Mapping[SeqKey, _Answer]
) -> Callable[[SeqRole], Answer]:
    """``canary``'s answers to the grouped queries of ``seq`` by the evaluator's role (None:
    a count ``seq`` did not plan)."""
    answer = _split(answers, canary.metadata.name)
    variants = {"candidate": canary.spec.candidate.name, "stable": canary.spec.stable.name}

    def of(role: SeqRole) -> Answer:
        key = seq.keys.get(f"closing-{role.kind}" if role.closing else role.kind)
        return None if key is None else answer((key, variants[role.variant]))

    return of


def _merged(parts: list[_Answer]) -> _Answer:
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
    req: Request,
    due: DueCheck,
    metric: MetricSpec,
    now: float,
    source: str,
    version: str,
    *,
    since: float | None = None,
    later: int = 0,
) -> _SeqPlanned | None:
    """The grouped queries of one sequential check from its step start, or from ``since``, its
    ``later``-th later start (:func:`controlplane.promql.sequential.later_starts`, its keys
    apart); None when the evaluator must handle it (no step start, or a check the sequential
    judge does not support)."""
    since = since if later else evaluator.stage_start(due, req.since)
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
        lookback = req.canary.window_s(due.check)
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
    if later:
        keys = {role: replace(key, later=later) for role, key in keys.items()}
    return _SeqPlanned(due, metric, window, since, keys, source, version)


_COUNTS = ("events", "total", "buckets")
"""The roles of a sequential check's cumulative counts (the closing test re-asks them)."""


def describe(stats: TickStats) -> dict[str, Any]:
    return {"canaries": stats.canaries, "grouped": stats.grouped_queries, "queries": stats.queries}
