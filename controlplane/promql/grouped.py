"""The text of a tick's grouped PromQL and the reading of its answers (pure).

Owns what :mod:`controlplane.controller.batch` sends (one query per metric family, window and
namespace, ``by (canary, variant)``; the sequential unions; shards of a large fleet) and how an
answer is split per canary and check. Why the grouped values are the per-variant values:
docs/controller.md, "Batched analysis".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.promql import builtins as promql
from controlplane.promql import http_errors, queries
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.contract import DEFAULT_VLLM_VERSION, contract_for
from controlplane.promql.samples import GROUP_LABELS, Sample, parse_le
from controlplane.spec.models import MetricSpec, ModelCanary


@dataclass(frozen=True, order=True)
class GroupKey:
    """One grouped query: ``family`` (``e2e-latency@0.95``, ``error-rate``, ``samples``...),
    ``window`` in seconds (0 for gauges), ``namespace``, and what makes the query's text differ
    between canaries: ``source`` (``error-rate``'s HTTP source,
    :data:`~controlplane.promql.http_errors.HttpSource`; ``error-rate`` only, else empty) and
    ``vllm_version`` (the metric contract's)."""

    family: str
    window: float
    namespace: str
    source: str = ""
    vllm_version: str = DEFAULT_VLLM_VERSION


LOAD = "load"
"""The family of the variants' requests in flight per replica
(:func:`controlplane.promql.queries.load_query`, grouped)."""


DEMAND = "demand"
"""The family of the variants' finished requests per second
(:func:`controlplane.promql.queries.demand_expr`, grouped): the capacity plan's demand."""


def _family(metric: MetricSpec) -> str:
    assert metric.builtin is not None
    if metric.builtin in ("e2e-latency", "ttft", "inter-token-latency"):
        return f"{metric.builtin}@{metric.quantile_or_default!r}"
    return metric.builtin


def group_key(
    metric: MetricSpec,
    window: float,
    namespace: str,
    source: str = "",
    vllm_version: str = DEFAULT_VLLM_VERSION,
) -> GroupKey:
    """The group of ``metric``'s query; ``source`` counts for ``error-rate`` only."""
    family = _family(metric)
    return GroupKey(
        family,
        0.0 if family == "kv-cache-usage" else window,
        namespace,
        source if family == "error-rate" else "",
        vllm_version,
    )


def samples_key(
    window: float, namespace: str, vllm_version: str = DEFAULT_VLLM_VERSION
) -> GroupKey:
    return GroupKey("samples", window, namespace, "", vllm_version)


def load_key(window: float, namespace: str, vllm_version: str = DEFAULT_VLLM_VERSION) -> GroupKey:
    """The group of the variants' loads over ``window`` (:func:`grouped_query`'s ``load``
    family): what the tick's breached comparisons read to say whether they were fair."""
    return GroupKey(LOAD, window, namespace, "", vllm_version)


def demand_key(window: float, namespace: str, vllm_version: str = DEFAULT_VLLM_VERSION) -> GroupKey:
    """The group of the variants' demand over ``window`` (:func:`grouped_query`'s ``demand``
    family): one query for every planned canary of a namespace that a tick evaluates."""
    return GroupKey(DEMAND, window, namespace, "", vllm_version)


def canary_keys(
    canary: ModelCanary, source: http_errors.HttpSource | None = None
) -> tuple[str, str]:
    """``(source, vllm_version)`` of ``canary``'s grouped keys: ``error-rate``'s HTTP source
    (``source``, the controller's decision; None: the spec's,
    :func:`http_errors.http_source`) and :func:`queries.engine_version` (SpecError for a
    version without a metric contract)."""
    http = http_errors.http_source(canary) if source is None else source
    return http, queries.engine_version(canary)


def is_gateway(source: str) -> bool:
    """Whether ``source`` is a gateway's: its series carry no canary labels, so its grouped
    ``error-rate`` terms come back unfolded (:func:`http_errors.grouped_sources`)."""
    return source in http_errors.GATEWAY_SOURCES


def group_selector(namespace: str, canaries: Sequence[str]) -> str:
    """``namespace="ns",canary=~"a|b"``: only the canaries of the group."""
    alternatives = "|".join(re.escape(name) for name in sorted(set(canaries)))
    ns = queries.escape_label_value(namespace)
    return f'namespace="{ns}",canary=~"{queries.escape_label_value(alternatives)}"'


def grouped_query(key: GroupKey, canaries: Sequence[ModelCanary]) -> str:
    """The PromQL of ``key`` for ``canaries`` (all of ``key``'s namespace, source and version),
    aggregated ``by (canary, variant)``: the builder of the per-canary queries
    (:mod:`controlplane.promql.builtins`) with the group labels added, over the metric names of
    ``key.vllm_version`` and, for ``error-rate``, the HTTP source ``key.source``."""
    sel = group_selector(key.namespace, [c.metadata.name for c in canaries])
    contract = contract_for(key.vllm_version)
    family, _, quantile = key.family.partition("@")
    if family == "kv-cache-usage":
        return promql.builtin_expr(family, sel, "", by=GROUP_LABELS, contract=contract)
    w = queries.prom_duration(key.window)
    if family == LOAD:
        return queries.load_expr(sel, key.window, by=GROUP_LABELS)
    if family == DEMAND:
        return queries.demand_expr(sel, key.window, by=GROUP_LABELS)
    if family == "samples":
        return promql.samples_expr(sel, w, by=GROUP_LABELS, contract=contract)
    if family == "error-rate" and is_gateway(key.source):
        gateway = http_errors.gateway_group(key.source, key.namespace, canaries)
        return http_errors.grouped_sources(
            sel, w, GROUP_LABELS, gateway, vllm_version=key.vllm_version
        )
    q = float(quantile) if quantile else None
    return promql.builtin_expr(
        family, sel, w, q, by=GROUP_LABELS, contract=contract, source=key.source or None
    )


def read_grouped(
    key: GroupKey, samples: Iterable[Sample], canaries: Sequence[ModelCanary]
) -> dict[tuple[str, str], float]:
    """The answer to :func:`grouped_query` as values by (canary, variant); a gateway source's
    ``error-rate`` folded from its sources (failed / all requests, NaN when none finished)."""
    if key.family == "error-rate" and is_gateway(key.source):
        folded = http_errors.fold_sources(
            samples, http_errors.gateway_group(key.source, key.namespace, canaries)
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
    source: str = ""
    vllm_version: str = DEFAULT_VLLM_VERSION
    candidate_only: bool = False
    """The counts of absolute checks: only the candidates' series are asked (each term's
    selector adds ``variant=~`` its canaries' candidates; a gateway's HTTP source, selected
    by route or Service, still answers for both variants), since an absolute check never reads the
    stable's counts: half the series of the tick's answers. A namespace with absolute and
    ``compare: baseline`` checks of one kind asks two queries for it, still whatever N."""
    later: int = 0
    """0 for terms from the step's start; ``k`` for those from the ``k``-th later start of a
    check whose stable had no history before the step
    (:func:`controlplane.promql.sequential.later_starts`): asked apart, so that a canary's
    terms from two starts never meet in one ``or``."""


AT_START = ("boundary:", "reference:", "closing@")
"""Grouped sequential kinds keyed by each canary's step start, not by its window: the
baseline's boundary and reference (``@`` the start) and the closing test's counts
(``closing@<duration s>:<kind>``: over the whole step, ``@`` its end)."""

PIN_MARGIN_S = 300.0
"""A pinned term (``@`` a time at least this far in the past) reads samples that no longer
change: its answers are kept from tick to tick
(:class:`~controlplane.controller.batch.BatchEvaluator`), not asked again."""


def pinned_at(kind: str, param: float) -> float | None:
    """The time a grouped sequential term of ``kind`` is pinned at (``@``), or None when it
    reads up to the tick's time: the baseline's boundary and reference at the step's start
    (``param``), the closing counts at the step's end (``param`` + the step's duration)."""
    if kind.startswith("closing@"):
        return param + float(kind.removeprefix("closing@").partition(":")[0])
    if kind.startswith(("boundary:", "reference:")):
        return param
    return None


def _seq_term(
    kind: str,
    param: float,
    sel: str,
    *,
    source: str = "",
    vllm_version: str = DEFAULT_VLLM_VERSION,
    gateway: http_errors.GatewayGroup | None = None,
) -> str:
    """One term of a grouped sequential query over ``sel``'s canaries. The error counts are
    :func:`controlplane.promql.http_errors.error_terms` of ``source`` (``increase``, grouped,
    already aggregated; a gateway source's through ``gateway``), the histograms those of
    ``vllm_version``'s metric contract."""
    histograms = contract_for(vllm_version).bucket_series()
    pin = ""
    if kind.startswith("closing@"):  # the step's whole counts, pinned at its end
        duration, _, kind = kind.removeprefix("closing@").partition(":")
        param, pin = float(duration), f" @ {param + float(duration):.3f}"
    if kind in ("errors", "requests"):
        w = queries.prom_duration(max(param, sequential_promql.MIN_WINDOW_S))
        if is_gateway(source):
            assert gateway is not None
            return http_errors.grouped_sources(
                sel,
                w,
                GROUP_LABELS,
                gateway,
                terms=("failed",) if kind == "errors" else ("total",),
                fn="increase",
                modifier=pin,
                vllm_version=vllm_version,
            )
        terms = http_errors.error_terms(
            source, sel, w, GROUP_LABELS, fn="increase", modifier=pin, vllm_version=vllm_version
        )
        return terms.failed if kind == "errors" else terms.total
    family, _, rest = kind.partition(":")
    if family == "buckets":
        w = queries.prom_duration(max(param, sequential_promql.MIN_WINDOW_S))
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
    """The gateway backends of a namespace's canaries for one gateway source, named once a
    tick: each canary's :func:`http_errors.gateway_group` members, so that the backends of any
    group of them are joined, not named again for every term, part and kind of a tick's
    queries."""

    source: str
    namespace: str
    by_canary: Mapping[str, http_errors.EnvoyRoutes | http_errors.TraefikServices]

    @classmethod
    def of(cls, source: str, namespace: str, canaries: Mapping[str, ModelCanary]) -> RouteIndex:
        return cls(
            source,
            namespace,
            {
                name: http_errors.gateway_group(source, namespace, [canary])
                for name, canary in canaries.items()
            },
        )

    def routes(self, names: Iterable[str]) -> http_errors.EnvoyRoutes | http_errors.TraefikServices:
        """:func:`http_errors.gateway_group` of the canaries ``names``, in that order (a
        backend two canaries share goes to the later one, as there)."""
        members: dict[Any, tuple[str, str]] = {}
        for name in names:
            members.update(self.by_canary[name].members)
        if self.source == "traefik":
            return http_errors.TraefikServices(members)
        return http_errors.EnvoyRoutes(self.namespace, members)


def _routes(
    key: SeqKey, canaries: Mapping[str, ModelCanary], index: RouteIndex | None
) -> RouteIndex | None:
    """``index``, or one named now for ``canaries``; None unless ``key``'s source is a
    gateway's."""
    if not is_gateway(key.source):
        return None
    if index is not None and index.source == key.source:
        return index
    return RouteIndex.of(key.source, key.namespace, canaries)


def sequential_query(
    key: SeqKey,
    terms: dict[float, set[str]],
    canaries: Mapping[str, ModelCanary],
    index: RouteIndex | None = None,
) -> str:
    """The union (``or``) of one term per window (or step start), each over its canaries
    (``canaries``: by name, for their routes; ``index``: their gateway backends, named once)."""
    routes = _routes(key, canaries, index)
    return " or ".join(
        _seq_term(
            key.kind,
            param,
            _term_selector(key, sorted(names), canaries),
            source=key.source,
            vllm_version=key.vllm_version,
            gateway=routes.routes(sorted(names)) if routes is not None else None,
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
    kinds, else a count (a gateway source's error counts folded from their sources, over the
    backends of every canary of ``canaries``: ``index`` when given). NoData when a bucket bound
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
