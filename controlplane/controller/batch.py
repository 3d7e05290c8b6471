"""Batched analysis: one tick evaluates the due checks of every canary due at that tick.

Owns the grouping of built-in metric queries. For N canaries the per-canary evaluator
(:func:`controlplane.analysis.evaluator.evaluate`) would send one query per canary per metric per
variant; here every built-in query is grouped by (metric family, window, namespace, and the
router and vLLM version that decide its text), sent ONCE with ``by (canary, variant)``
aggregation over ``canary=~"a|b|..."``, and its vector answer is distributed to the canaries.
The values are the contract's per-variant values exactly: ``sum by (le, canary, variant)``
restricted to one (canary, variant) is ``sum by (le)`` over that variant's selector
(``error-rate``'s Envoy source has no such labels: its series are selected for the whole group
by one regular expression over the routes, summed by route and backend, and folded back to
(canary, variant) here, :func:`read_grouped`; a ``label_replace`` per canary made the query grow
with the group until Prometheus failed it at 1,000 canaries). Judging is
:func:`controlplane.analysis.verdict.judge`, the same as the evaluator's, and provider failures
map to results the same way (no data: inconclusive; failure: inconclusive with
``provider_error``). An absolute check's result also carries the stable variant's value for
display, read from the same grouped answer (no extra query).

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
together (:func:`controlplane.analysis.sequential_check.judge_checks`: the latency looks built
on arrays, one numpy pass per kind of test).

Not grouped (per-canary fallback through the evaluator): custom ``query`` metrics, canaries with a
custom ``spec.analysis.selector`` (their labels are not ``canary``/``variant``), and
``budget.costQuery``. :class:`CountingSource` counts the queries of each tick (exposed by the
runner as ``canary_controller_analysis_queries``).

Called by :mod:`controlplane.controller.runner` once per analysis tick.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from controlplane.analysis import evaluator, http_errors, promql, queries, sequential_check, verdict
from controlplane.analysis.buckets import parse_le
from controlplane.analysis.metric_contract import DEFAULT_VLLM_VERSION, contract_for
from controlplane.analysis.metric_provider import MetricProvider
from controlplane.controller import gc_pause
from controlplane.errors import NoData, ProviderError, SpecError
from controlplane.providers.prometheus import PrometheusClient, PrometheusProvider
from controlplane.rollout.observations import CheckResult, DueCheck, Observations
from controlplane.spec.models import DEFAULT_QUANTILE, CheckSpec, MetricSpec, ModelCanary

Labels = dict[str, str]
Sample = tuple[Labels, float]
GROUP_LABELS = ("canary", "variant")


class MetricSource(MetricProvider, Protocol):
    """A :class:`MetricProvider` that also answers a query with every series it returns."""

    def vector(self, query: str, at: float) -> list[Sample]:
        """Every series of ``query`` at ``at`` as (labels, value); values may be NaN."""
        ...


class PrometheusSource:
    """:class:`MetricSource` over an injected ``PrometheusConnect`` (see
    :func:`controlplane.providers.prometheus.from_url`)."""

    def __init__(self, client: PrometheusClient) -> None:
        self._client = client
        self._single = PrometheusProvider(client)

    def instant(self, query: str, at: float) -> float:
        return self._single.instant(query, at)

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        return self._single.range(query, start, end, step)

    def vector(self, query: str, at: float) -> list[Sample]:
        return self._single.vector(query, at)


class CountingSource:
    """Counts every query sent through it (``instant``, ``vector``, ``range``); thread-safe."""

    def __init__(self, inner: MetricSource) -> None:
        self.inner = inner
        self.count = 0
        self._lock = threading.Lock()

    def _tick(self) -> None:
        with self._lock:
            self.count += 1

    def instant(self, query: str, at: float) -> float:
        self._tick()
        return self.inner.instant(query, at)

    def range(self, query: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
        self._tick()
        return self.inner.range(query, start, end, step)

    def vector(self, query: str, at: float) -> list[Sample]:
        self._tick()
        return self.inner.vector(query, at)


# --------------------------------------------------------------------------- grouped PromQL (pure)


@dataclass(frozen=True, order=True)
class GroupKey:
    """One grouped query: ``family`` (``e2e-latency@0.95``, ``error-rate``, ``samples``...),
    ``window`` in seconds (0 for gauges), ``namespace``, and what makes the query's text differ
    between canaries: ``router`` (``spec.traffic.router``; ``error-rate`` only, else empty) and
    ``vllm_version`` (the metric contract's)."""

    family: str
    window: float
    namespace: str
    router: str = ""
    vllm_version: str = DEFAULT_VLLM_VERSION


def _family(metric: MetricSpec) -> str:
    assert metric.builtin is not None
    if metric.builtin in ("e2e-latency", "ttft", "inter-token-latency"):
        q = DEFAULT_QUANTILE if metric.quantile is None else metric.quantile
        return f"{metric.builtin}@{q!r}"
    return metric.builtin


def group_key(
    metric: MetricSpec,
    window: float,
    namespace: str,
    router: str = "",
    vllm_version: str = DEFAULT_VLLM_VERSION,
) -> GroupKey:
    """The group of ``metric``'s query; ``router`` counts for ``error-rate`` only."""
    family = _family(metric)
    return GroupKey(
        family,
        0.0 if family == "kv-cache-usage" else window,
        namespace,
        router if family == "error-rate" else "",
        vllm_version,
    )


def samples_key(
    window: float, namespace: str, vllm_version: str = DEFAULT_VLLM_VERSION
) -> GroupKey:
    return GroupKey("samples", window, namespace, "", vllm_version)


def canary_keys(canary: ModelCanary) -> tuple[str, str]:
    """``(router, vllm_version)`` of ``canary``'s grouped keys (:func:`queries.engine_version`:
    SpecError for a version without a metric contract)."""
    return canary.spec.traffic.router, queries.engine_version(canary)


def _envoy(router: str) -> bool:
    """Whether ``router``'s HTTP source is Envoy's: its series carry no canary labels, so its
    grouped ``error-rate`` terms come back unfolded (:func:`http_errors.grouped_sources`)."""
    return router in http_errors.ENVOY_ROUTERS


def group_selector(namespace: str, canaries: Sequence[str]) -> str:
    """``namespace="ns",canary=~"a|b"``: only the canaries of the group."""
    alternatives = "|".join(re.escape(name) for name in sorted(set(canaries)))
    ns = queries.escape_label_value(namespace)
    return f'namespace="{ns}",canary=~"{queries.escape_label_value(alternatives)}"'


def grouped_query(key: GroupKey, canaries: Sequence[ModelCanary]) -> str:
    """The PromQL of ``key`` for ``canaries`` (all of ``key``'s namespace, router and version),
    aggregated ``by (canary, variant)``: the builder of the per-canary queries
    (:mod:`controlplane.analysis.promql`) with the group labels added, over the metric names of
    ``key.vllm_version`` and, for ``error-rate``, the HTTP source of ``key.router``."""
    sel = group_selector(key.namespace, [c.metadata.name for c in canaries])
    contract = contract_for(key.vllm_version)
    family, _, quantile = key.family.partition("@")
    if family == "kv-cache-usage":
        return promql.builtin_expr(family, sel, "", by=GROUP_LABELS, contract=contract)
    w = queries.prom_duration(key.window)
    if family == "samples":
        return promql.samples_expr(sel, w, by=GROUP_LABELS, contract=contract)
    if family == "error-rate" and _envoy(key.router):
        routes = http_errors.envoy_routes(key.namespace, canaries)
        return http_errors.grouped_sources(
            sel, w, GROUP_LABELS, routes, vllm_version=key.vllm_version
        )
    q = float(quantile) if quantile else None
    return promql.builtin_expr(
        family, sel, w, q, by=GROUP_LABELS, contract=contract, router=key.router or None
    )


def read_grouped(
    key: GroupKey, samples: Iterable[Sample], canaries: Sequence[ModelCanary]
) -> dict[tuple[str, str], float]:
    """The answer to :func:`grouped_query` as values by (canary, variant); the Envoy routers'
    ``error-rate`` folded from its sources (failed / all requests, NaN when none finished)."""
    if key.family == "error-rate" and _envoy(key.router):
        folded = http_errors.fold_sources(
            samples, http_errors.envoy_routes(key.namespace, canaries)
        )
        return {
            ident: terms["failed"] / terms["total"] if terms.get("total") else math.nan
            for ident, terms in folded.items()
            if "failed" in terms
        }
    return {(labels.get("canary", ""), labels.get("variant", "")): v for labels, v in samples}


@dataclass(frozen=True, order=True)
class SeqKey:
    """One grouped sequential query: ``kind`` (``errors``, ``requests``, ``buckets:<builtin>``,
    ``boundary:<builtin>@<q>@<lookback s>``, ``reference:<builtin>@<lookback s>``,
    ``closing@<duration s>:<count kind>``) and ``namespace``; its terms are keyed by window
    seconds (counts) or by the step start (boundaries, references, closing counts)."""

    kind: str
    namespace: str
    router: str = ""
    vllm_version: str = DEFAULT_VLLM_VERSION
    candidate_only: bool = False
    """The counts of absolute checks: only the candidates' series are asked (each term's
    selector adds ``variant=~`` its canaries' candidates; an Envoy router's HTTP source, selected
    by route, still answers for both backends), since an absolute check never reads the
    stable's counts: half the series of the tick's answers. A namespace with absolute and
    ``compare: baseline`` checks of one kind asks two queries for it, still whatever N."""


_AT_START = ("boundary:", "reference:", "closing@")
PIN_MARGIN_S = 300.0
"""A pinned term (``@`` a time at least this far in the past) reads samples that no longer
change: its answers are kept from tick to tick (:class:`BatchEvaluator`), not asked again."""


def pinned_at(kind: str, param: float) -> float | None:
    """The time a grouped sequential term of ``kind`` is pinned at (``@``), or None when it
    reads up to the tick's time: the baseline's boundary and reference at the step's start
    (``param``), the closing counts at the step's end (``param`` + the step's duration)."""
    if kind.startswith("closing@"):
        return param + float(kind.removeprefix("closing@").partition(":")[0])
    if kind.startswith(("boundary:", "reference:")):
        return param
    return None


"""Grouped sequential kinds keyed by each canary's step start, not by its window: the
baseline's boundary and reference (``@`` the start) and the closing test's counts
(``closing@<duration s>:<kind>``: over the whole step, ``@`` its end)."""


def _seq_term(
    kind: str,
    param: float,
    sel: str,
    *,
    router: str = "",
    vllm_version: str = DEFAULT_VLLM_VERSION,
    routes: http_errors.EnvoyRoutes | None = None,
) -> str:
    """One term of a grouped sequential query over ``sel``'s canaries. The error counts are
    :func:`controlplane.analysis.http_errors.error_terms` of ``router`` (``increase``, grouped,
    already aggregated), the histograms those of ``vllm_version``'s metric contract."""
    histograms = contract_for(vllm_version).bucket_series()
    pin = ""
    if kind.startswith("closing@"):  # the step's whole counts, pinned at its end
        duration, _, kind = kind.removeprefix("closing@").partition(":")
        param, pin = float(duration), f" @ {param + float(duration):.3f}"
    if kind in ("errors", "requests"):
        w = queries.prom_duration(max(param, sequential_check.MIN_WINDOW_S))
        if _envoy(router):
            assert routes is not None
            return http_errors.grouped_sources(
                sel,
                w,
                GROUP_LABELS,
                routes,
                terms=("failed",) if kind == "errors" else ("total",),
                fn="increase",
                modifier=pin,
                vllm_version=vllm_version,
            )
        terms = http_errors.error_terms(
            router, sel, w, GROUP_LABELS, fn="increase", modifier=pin, vllm_version=vllm_version
        )
        return terms.failed if kind == "errors" else terms.total
    family, _, rest = kind.partition(":")
    if family == "buckets":
        w = queries.prom_duration(max(param, sequential_check.MIN_WINDOW_S))
        hist = histograms[rest]
        return f"sum by (le, canary, variant) (increase({hist}{{{sel}}}[{w}]{pin}))"
    if family == "reference":
        builtin, lookback = rest.split("@")
        hist = histograms[builtin]
        w = queries.prom_duration(float(lookback))
        return f"sum by (le, canary, variant) (increase({hist}{{{sel}}}[{w}] @ {param:.3f}))"
    if family == "boundary":
        builtin, q, lookback = rest.split("@")
        hist = histograms[builtin]
        w = queries.prom_duration(float(lookback))
        return (
            f"histogram_quantile({q}, sum by (le, canary, variant) "
            f"(rate({hist}{{{sel}}}[{w}] @ {param:.3f})))"
        )
    raise AssertionError(f"unhandled sequential kind {kind!r}")  # pragma: no cover


@dataclass(frozen=True)
class RouteIndex:
    """The Envoy backends of a namespace's canaries, named once a tick: each canary's
    :func:`http_errors.envoy_routes` members, so that the routes of any group of them are
    joined, not named again for every term, part and kind of a tick's queries."""

    namespace: str
    by_canary: Mapping[str, Mapping[tuple[str, int], tuple[str, str]]]

    @classmethod
    def of(cls, namespace: str, canaries: Mapping[str, ModelCanary]) -> RouteIndex:
        return cls(
            namespace,
            {
                name: http_errors.envoy_routes(namespace, [canary]).members
                for name, canary in canaries.items()
            },
        )

    def routes(self, names: Iterable[str]) -> http_errors.EnvoyRoutes:
        """:func:`http_errors.envoy_routes` of the canaries ``names``, in that order (a route
        two canaries share goes to the later one, as there)."""
        members: dict[tuple[str, int], tuple[str, str]] = {}
        for name in names:
            members.update(self.by_canary[name])
        return http_errors.EnvoyRoutes(self.namespace, members)


def _routes(
    key: SeqKey, canaries: Mapping[str, ModelCanary], index: RouteIndex | None
) -> RouteIndex | None:
    """``index``, or one named now for ``canaries``; None unless ``key``'s router is Envoy's."""
    if not _envoy(key.router):
        return None
    return index if index is not None else RouteIndex.of(key.namespace, canaries)


def sequential_query(
    key: SeqKey,
    terms: dict[float, set[str]],
    canaries: Mapping[str, ModelCanary],
    index: RouteIndex | None = None,
) -> str:
    """The union (``or``) of one term per window (or step start), each over its canaries
    (``canaries``: by name, for their routes; ``index``: their Envoy routes, named once)."""
    routes = _routes(key, canaries, index)
    return " or ".join(
        _seq_term(
            key.kind,
            param,
            _term_selector(key, sorted(names), canaries),
            router=key.router,
            vllm_version=key.vllm_version,
            routes=routes.routes(sorted(names)) if routes is not None else None,
        )
        for param, names in sorted(terms.items())
    )


def _term_selector(key: SeqKey, names: Sequence[str], canaries: Mapping[str, ModelCanary]) -> str:
    """The selector of one term over ``names``: :func:`group_selector`, and for a
    ``candidate_only`` key the variants that are these canaries' candidates (another canary's
    stable of the same name may come back too: it is not read)."""
    sel = group_selector(key.namespace, names)
    if not key.candidate_only:
        return sel
    variants = "|".join(sorted({re.escape(canaries[n].spec.candidate.name) for n in names}))
    return f'{sel},variant=~"{queries.escape_label_value(variants)}"'


def read_sequential(
    key: SeqKey,
    samples: Iterable[Sample],
    canaries: Mapping[str, ModelCanary],
    index: RouteIndex | None = None,
) -> dict[tuple[str, str], Any]:
    """The answer to :func:`sequential_query` by (canary, variant): ``{le: count}`` for bucket
    kinds, else a count (the Envoy routers' error counts folded from their sources, over the
    routes of every canary of ``canaries``: ``index`` when given). NoData when a bucket bound
    cannot be read."""
    base = key.kind.partition(":")[2] if key.kind.startswith("closing@") else key.kind
    found_routes = _routes(key, canaries, index)
    if base in ("errors", "requests") and found_routes is not None:
        routes = found_routes.routes(canaries)
        term = "failed" if base == "errors" else "total"
        folded = http_errors.fold_sources(samples, routes)
        return {ident: terms[term] for ident, terms in folded.items() if term in terms}
    values: dict[tuple[str, str], Any] = {}
    buckets = base.startswith(("buckets:", "reference:"))
    les: dict[str, float] = {}  # a histogram has few distinct bounds: parse each once
    for labels, value in samples:
        ident = (labels.get("canary", ""), labels.get("variant", ""))
        if buckets:
            found = values.setdefault(ident, {})
            text = labels.get("le", "")
            le = les.get(text)
            if le is None:
                le = les[text] = parse_le(text)
            found[le] = found.get(le, 0.0) + value
        else:
            values[ident] = value
    return values


# --------------------------------------------------------------------------- one tick


_Answer = dict[tuple[str, str], float] | ProviderError
"""A grouped query's values by (canary, variant), or why it failed."""


@dataclass(frozen=True)
class Request:
    """A canary due at this tick: ``key`` identifies it to the caller, ``due`` its checks,
    ``since`` when its current step started (``RolloutState.stage_started_at``; needed by
    ``judge: sequential`` checks, which are inconclusive without it)."""

    key: Hashable
    canary: ModelCanary
    due: Sequence[DueCheck]
    since: float | None = None


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
    (:func:`controlplane.analysis.sequential_check.judge_checks`: one numpy pass per kind of
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
                keys = canary_keys(req.canary)
            except SpecError:  # no metric contract: the evaluator says so per check
                keys = None
            for due in req.due:
                metric = groupable(req.canary, due.check)
                if metric is None or keys is None:
                    plan.fallback.append(due)
                    continue
                router, version = keys
                if sequential_check.is_sequential(due.check):
                    seq = _plan_sequential(req, due, metric, now, router, version)
                    if seq is None:
                        plan.fallback.append(due)  # the evaluator says what is wrong
                        continue
                    plan.sequential.append(seq)
                    for skey in seq.keys.values():
                        param = seq.since if skey.kind.startswith(_AT_START) else seq.window
                        seq_terms.setdefault(skey, {}).setdefault(param, set()).add(name)
                    continue
                window = (due.check.window or req.canary.spec.analysis.window).seconds
                planned = _Planned(
                    due,
                    metric,
                    group_key(metric, window, ns, router, version),
                    group_key(metric, window, ns, router, version)
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
                ns: RouteIndex.of(ns, named[ns])
                for ns in {key.namespace for key in seq_terms if _envoy(key.router)}
            }
            seq_runs = {
                key: [
                    pool.submit(
                        self._run_seq,
                        key,
                        part,
                        named[key.namespace],
                        now,
                        indexes.get(key.namespace),
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
        self.last = TickStats(len(requests), grouped, self.source.count - before)
        return out

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
        base = evaluator.evaluate(req.canary, plan.fallback, self.source, now, since=req.since)
        checks = dict(base.checks)
        for planned in plan.grouped:
            checks[planned.due.key] = self._judge(req.canary, planned, answers)
        for seq in plan.sequential:
            checks[seq.due.key] = judged[(req.key, seq.due.key)]
        return Observations(checks=checks, spend=base.spend, spend_error=base.spend_error)

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
        )


_SeqAnswer = dict[tuple[str, str], Any] | ProviderError
"""A grouped sequential query's values (floats, or ``{le: count}``) by (canary, variant)."""

SHARD_CANARIES = 1000
"""A grouped sequential query over more canaries than this is split (:func:`shards`)."""


def shards(terms: Mapping[float, set[str]], most: int) -> list[dict[float, set[str]]]:
    """``terms`` (canaries by window or step start) split into at most ``most`` queries of at
    most about :data:`SHARD_CANARIES` canaries each, in the order of the terms, so that a large
    fleet's answers are evaluated by Prometheus side by side and read by this process while
    the next is evaluated (at most ``most`` queries per kind, whatever N)."""
    names = sorted((param, name) for param, group in terms.items() for name in group)
    count = max(1, min(most, math.ceil(len(names) / SHARD_CANARIES)))
    size = math.ceil(len(names) / count) if names else 0
    out: list[dict[float, set[str]]] = []
    for start in range(0, len(names), max(size, 1)):
        part: dict[float, set[str]] = {}
        for param, name in names[start : start + size]:
            part.setdefault(param, set()).add(name)
        out.append(part)
    return out or [{}]


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
    req: Request, due: DueCheck, metric: MetricSpec, now: float, router: str, version: str
) -> _SeqPlanned | None:
    """The grouped queries of one sequential check; None when the evaluator must handle it (no
    step start, or a check the sequential judge does not support)."""
    since = evaluator.stage_start(due, req.since)
    if since is None or sequential_check.problems(req.canary, due.check, "check"):
        return None
    ns = req.canary.metadata.namespace
    window = sequential_check.window_seconds(since, now)
    keys: dict[str, SeqKey] = {}
    builtin = metric.builtin
    assert builtin is not None
    absolute = due.check.compare != "baseline"
    if builtin == "error-rate":
        keys["events"] = SeqKey("errors", ns, router, version, candidate_only=absolute)
        keys["total"] = SeqKey("requests", ns, router, version, candidate_only=absolute)
    else:
        keys["buckets"] = SeqKey(f"buckets:{builtin}", ns, "", version, candidate_only=absolute)
        lookback = (due.check.window or req.canary.spec.analysis.window).seconds
        if due.check.compare == "baseline" and due.check.test == "shift":
            keys["reference"] = SeqKey(f"reference:{builtin}@{lookback!r}", ns, "", version)
        elif due.check.compare == "baseline":
            q = sequential_check.quantile_of(metric)
            keys["boundary"] = SeqKey(f"boundary:{builtin}@{q!r}@{lookback!r}", ns, "", version)
    end = sequential_check.closing_time(due.check, due.closes_at, now)
    if end is not None:
        duration = f"{max(end - since, sequential_check.MIN_WINDOW_S):.3f}"
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
