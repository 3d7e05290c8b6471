"""Where the ``error-rate`` built-in's failed and all requests come from, per router.

Owns the PromQL of the two terms of ``error-rate`` (failed requests / all requests) for every
``spec.traffic.router``, for one selector and window, in a plain and a grouped form::

    error_terms(router, sel, window, by=(), *, fn="rate", modifier="", vllm_version=None,
                envoy=())
        -> ErrorTerms(failed=..., total=...)
    grouped_sources(sel, window, by, routes, *, terms, fn, modifier, vllm_version) -> str
    fold_sources(samples, routes) -> {(canary, variant): {"failed": ..., "total": ...}}

(the grouped form of the Envoy routers, whose series carry no canary labels), and the Envoy
clusters of one variant of a canary (:func:`envoy_backend`, :func:`envoy_routes`). ``failed`` and
``total`` are complete, aggregated expressions (``sum``/``max``, ``by (...)`` when ``by`` is
given): the built-in's value is ``failed / total``; with ``fn="increase"`` they are the counts
over the window (the cumulative counts of ``judge: sequential``). ``modifier`` is appended to
every range (`` @ 1700000000.000``). Called by the single PromQL builder
(:mod:`controlplane.promql.builtins`), by the sequential counts
(:mod:`controlplane.analysis.sequential.check`, :mod:`controlplane.controller.batch`) and by the
local stack's tests; pure string functions.

What counts as a failure (decided here, documented in docs/analysis.md, "Where errors come
from"): an HTTP 5xx answered for the variant; an HTTP 429 where the source tells it apart from
other 4xx (an overloaded candidate is a regression; vLLM's own metric groups codes to ``4xx``,
so there it cannot be told apart and is not counted); an engine finish whose
``finished_reason`` is one of the metric contract's ``error_reasons`` (``error``: the contract
owns that list and says why ``abort`` is not in it). Not failures: other 4xx (the client's
fault), client disconnects and ``abort`` finishes.

One request can be seen twice: vLLM turns an engine ``error`` finish into HTTP 500 when it has
not started streaming (``vllm/v1/engine/__init__.py``, ``FinishReason``: "always converted to
500"), and into an error event inside a 200 stream when it has. Adding the two sources would
count every non-streamed engine error twice, so each term is the *larger* of the HTTP source and
the engine source (``max`` over both, each summed first): never double counted; a dead candidate
(HTTP 503, no engine finishes) and a streamed engine error (HTTP 200, an ``error`` finish) are
both seen. A source with no series (not scraped, not exported) falls out of the ``max``.

Sources per router (versions read in docs/analysis.md):

- ``gateway-api``, ``kserve``: Envoy Gateway's Envoy, per-backend cluster stats
  ``envoy_cluster_upstream_rq{envoy_cluster_name, envoy_response_code}`` (failed: the failure
  codes; all: every code), selected by ``envoy_cluster_name`` alone: the clusters of the
  variant's backendRef in the canary's HTTPRoute (:func:`envoy_backend`), so the gateway's scrape
  needs no relabeling; plus the engine. The grouped form (many canaries in one query,
  :func:`grouped_sources`) selects every route of the group with one regular expression and
  sums ``by`` the route and backend index it reads from the cluster name, so its size does not
  grow with the group; :func:`fold_sources` maps those back to (canary, variant) and takes the
  larger source, the ``max`` the plain form does in PromQL;
- ``istio``: ``istio_requests_total{reporter="destination", response_code}`` from the
  destination pod's sidecar (its PodMonitor labels); plus the engine;
- ``llmisvc``: ``vllm serve``'s own ``http_requests_total{handler, status}`` (status grouped
  ``5xx``); plus the engine;
- ``kserve-knative`` (and any other router): the engine only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from controlplane.promql.contract import contract_for
from controlplane.serving import names
from controlplane.spec.models import ModelCanary

VLLM_HTTP_REQUESTS = "http_requests_total"
"""prometheus-fastapi-instrumentator's counter, attached by ``vllm serve``."""

VLLM_INFERENCE_HANDLERS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
"""The ``handler`` values of inference requests (``/v1/models`` polls would dilute the rate)."""

ENVOY_RQ_BY_CODE = "envoy_cluster_upstream_rq"
"""Envoy's ``cluster.<name>.upstream_rq_<code>`` with the ``envoy_response_code`` tag."""

ENVOY_RQ_TOTAL = "envoy_cluster_upstream_rq_total"
"""Envoy's ``cluster.<name>.upstream_rq_total``: NOT the denominator, because Envoy counts it
when a request is attached to an upstream connection, so a request to an unreachable backend
(charged ``upstream_rq_503``) is not in it; all requests are the sum over every code."""

ISTIO_REQUESTS = "istio_requests_total"
"""Istio's standard request counter."""

FAILED_CODES = "5..|429"
"""HTTP codes that are failures where a source reports single codes."""

ENVOY_CLUSTER = "envoy_cluster_name"
"""The tag Envoy's stats tag extraction gives the cluster of ``cluster.<name>.*`` stats."""

ENVOY_ROUTERS = frozenset({"gateway-api", "kserve"})
ISTIO_ROUTERS = frozenset({"istio"})
VLLM_HTTP_ROUTERS = frozenset({"llmisvc"})


@dataclass(frozen=True)
class ErrorTerms:
    """``failed`` and ``total`` requests, each a complete aggregated PromQL expression; the
    ``error-rate`` built-in is ``failed / total``. ``sources`` names what was combined."""

    failed: str
    total: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class EnvoyBackend:
    """The Envoy clusters of one variant of one canary: ``clusters`` is a regular expression of
    ``envoy_cluster_name`` values."""

    clusters: str


@dataclass(frozen=True)
class EnvoyRoutes:
    """The Envoy side of a grouped query: the canaries' ``namespace`` and, per (HTTPRoute name,
    backend index), the (canary, variant) whose requests that backend carries
    (:func:`envoy_routes`)."""

    namespace: str
    members: Mapping[tuple[str, int], tuple[str, str]]


def _route_of(canary: ModelCanary) -> str:
    """The HTTPRoute Envoy Gateway serves the canary from: ours for ``gateway-api``
    (:func:`controlplane.routing.gateway_api.build_httproute`, named
    :func:`~controlplane.serving.names.route_name`), KServe's top-level route named after the
    one InferenceService for ``kserve`` (:func:`controlplane.routing.kserve.route_ref`)."""
    if canary.spec.traffic.router == "kserve":
        return names.single_service_name(canary.spec.model.name)
    return names.route_name(canary.metadata.name)


def envoy_backend(canary: ModelCanary, variant: str) -> EnvoyBackend:
    """The Envoy Gateway clusters that carry ``variant``'s requests of ``canary``, from the
    canary itself (no relabeling of Envoy's stats needed).

    Envoy Gateway (v1.8.1, ``irRouteDestinationName`` / ``irDestinationSettingName`` in
    ``internal/gatewayapi/helpers.go``) names a backendRef's own cluster
    ``httproute/<namespace>/<route>/rule/<r>/backend/<b>``. Both routes list the stable backend
    first and the candidate second in every rule that splits (``gateway-api``: the weighted rule,
    and with a cohort the cohort's rule, whose other rule holds the stable alone as backend 0;
    ``kserve``: the stable predictor, then the canary's), so the stable is backend 0 and the
    candidate backend 1 in any rule. A custom ``spec.analysis.selector`` does not change this:
    Envoy's series carry none of its labels. ValueError for a variant that is neither."""
    route = f"httproute/{canary.metadata.namespace}/{_route_of(canary)}/"
    return EnvoyBackend(
        clusters=f"{_literal(route)}rule/[0-9]+/backend/{_backend_index(canary, variant)}"
    )


def _backend_index(canary: ModelCanary, variant: str) -> int:
    if variant == canary.spec.stable.name:
        return 0
    if variant == canary.spec.candidate.name:
        return 1
    raise ValueError(f"{variant!r} is neither variant of canary {canary.metadata.name!r}")


def envoy_routes(namespace: str, canaries: Sequence[ModelCanary]) -> EnvoyRoutes:
    """The Envoy backends of both variants of every canary of a group (all in ``namespace``),
    named as :func:`envoy_backend` names them: stable backend 0, candidate backend 1."""
    members: dict[tuple[str, int], tuple[str, str]] = {}
    for canary in canaries:
        route = _route_of(canary)
        for variant in (canary.spec.stable.name, canary.spec.candidate.name):
            members[(route, _backend_index(canary, variant))] = (canary.metadata.name, variant)
    return EnvoyRoutes(namespace, members)


def _literal(text: str) -> str:
    """``text`` as a regular expression matching itself (RE2 metacharacters escaped)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _envoy_term(backends: Sequence[EnvoyBackend], extra: str, fn: str, rng: str) -> str:
    """``envoy_cluster_upstream_rq`` summed over the ``backends``' clusters (joined)."""
    clusters = "|".join(f"(?:{b.clusters})" for b in backends)
    if len(backends) == 1:
        clusters = backends[0].clusters
    matchers = f'{ENVOY_CLUSTER}=~"{_quote(clusters)}"' + (f",{extra}" if extra else "")
    return f"sum({fn}({ENVOY_RQ_BY_CODE}{{{matchers}}}{rng}))"


ROUTE_LABEL = "envoy_route"
BACKEND_LABEL = "envoy_backend"
SOURCE_TERM = "error_term"
"""The label :func:`grouped_sources` tags each series with: ``<failed|total>/<source>``."""


def _envoy_grouped(routes: EnvoyRoutes, extra: str, fn: str, rng: str) -> str:
    """``envoy_cluster_upstream_rq`` of every backend of ``routes``, one selector for the whole
    group, summed ``by`` the route and backend index read from the cluster name."""
    names = "|".join(_literal(route) for route in sorted({r for r, _ in routes.members}))
    regex = f"httproute/{_literal(routes.namespace)}/({names})/rule/[0-9]+/backend/([01])"
    matchers = f'{ENVOY_CLUSTER}=~"{_quote(regex)}"' + (f",{extra}" if extra else "")
    inner = f"{fn}({ENVOY_RQ_BY_CODE}{{{matchers}}}{rng})"
    for label, group in ((ROUTE_LABEL, "$1"), (BACKEND_LABEL, "$2")):
        inner = (
            f'label_replace({inner}, "{label}", "{group}", "{ENVOY_CLUSTER}", "{_quote(regex)}")'
        )
    return f"sum by ({ROUTE_LABEL}, {BACKEND_LABEL}) ({inner})"


def grouped_sources(
    sel: str,
    window: str,
    by: Sequence[str],
    routes: EnvoyRoutes,
    *,
    terms: Sequence[Literal["failed", "total"]] = ("failed", "total"),
    fn: Literal["rate", "increase"] = "rate",
    modifier: str = "",
    vllm_version: str | None = None,
) -> str:
    """The Envoy routers' ``error-rate`` terms for a group of canaries, unfolded: each source's
    ``terms`` as its own series, tagged ``error_term="<term>/<source>"`` — the engine's summed
    ``by`` (``canary``, ``variant``), Envoy's by route and backend (:func:`_envoy_grouped`).
    The query's size is one selector per source and term, whatever the group's size (the
    alternative, one relabelled sum per canary, grew with the group until Prometheus refused
    it at 1,000 canaries). :func:`fold_sources` turns the answer into (canary, variant) values."""
    contract = contract_for(vllm_version)
    rng = f"[{window}]{modifier}"
    engine_sel = {
        "failed": f'{sel},finished_reason=~"{"|".join(contract.error_reasons)}"',
        "total": sel,
    }
    envoy_codes = {"failed": f'envoy_response_code=~"{FAILED_CODES}"', "total": ""}
    parts = []
    for name in terms:
        engine = _agg("sum", by, f"{fn}({contract.requests}{{{engine_sel[name]}}}{rng})")
        envoy = _envoy_grouped(routes, envoy_codes[name], fn, rng)
        for source, expr in (("envoy", envoy), ("engine", engine)):
            parts.append(f'label_replace({expr}, "{SOURCE_TERM}", "{name}/{source}", "", "")')
    return " or ".join(parts)


def fold_sources(
    samples: Iterable[tuple[Mapping[str, str], float]], routes: EnvoyRoutes
) -> dict[tuple[str, str], dict[str, float]]:
    """A :func:`grouped_sources` answer as ``{(canary, variant): {term: value}}``: each term the
    larger of its sources (a source with no series falls out), as the plain form's ``max``.
    Series of a route or backend not in ``routes`` are ignored."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for labels, value in samples:
        term, _, source = labels.get(SOURCE_TERM, "").partition("/")
        if source == "envoy":
            try:
                backend = int(labels.get(BACKEND_LABEL, ""))
            except ValueError:
                continue
            ident = routes.members.get((labels.get(ROUTE_LABEL, ""), backend))
        elif source:
            ident = (labels.get("canary", ""), labels.get("variant", ""))
        else:
            ident = None
        if ident is None or not term:
            continue
        found = out.setdefault(ident, {})
        found[term] = max(found.get(term, value), value)
    return out


def _agg(op: str, by: Sequence[str], expr: str) -> str:
    return f"{op}({expr})" if not by else f"{op} by ({', '.join(by)}) ({expr})"


def _larger(by: Sequence[str], terms: Sequence[tuple[str, str]]) -> str:
    """The larger of already aggregated ``terms`` (``(source, expr)``) per group; a term with no
    series drops out. Each is tagged with a ``source`` label so that ``or`` keeps all of them."""
    tagged = " or ".join(f'label_replace({expr}, "source", "{src}", "", "")' for src, expr in terms)
    return _agg("max", by, tagged)


def error_terms(
    router: str,
    sel: str,
    window: str,
    by: Sequence[str] = (),
    *,
    fn: Literal["rate", "increase"] = "rate",
    modifier: str = "",
    vllm_version: str | None = None,
    envoy: Sequence[EnvoyBackend] = (),
) -> ErrorTerms:
    """The failed and all-requests terms of ``error-rate`` for ``router`` (see the module
    docstring), label matchers ``sel`` (no braces), ``window`` (a Prometheus duration), grouped
    ``by`` these labels when given. ``vllm_version`` picks the engine's metric contract
    (:func:`~controlplane.promql.contract.contract_for`; ValueError when unknown).
    ``envoy``: the variants' :func:`envoy_backend` (the Envoy routers need them: ValueError
    without). The Envoy routers' grouped form is :func:`grouped_sources` (ValueError here)."""
    contract = contract_for(vllm_version)
    requests = contract.requests
    rng = f"[{window}]{modifier}"

    def term(series: str, extra: str = "") -> str:
        matchers = f"{sel},{extra}" if extra else sel
        return _agg("sum", by, f"{fn}({series}{{{matchers}}}{rng})")

    engine_failed = term(requests, f'finished_reason=~"{"|".join(contract.error_reasons)}"')
    engine_total = term(requests)
    if router in ENVOY_ROUTERS:
        if not envoy:
            raise ValueError(f"router {router!r}: the Envoy source needs the variants' backends")
        source = "envoy"
        codes = f'envoy_response_code=~"{FAILED_CODES}"'
        if by:
            raise ValueError(
                f"router {router!r}: the grouped form of the Envoy source is grouped_sources"
            )
        http_failed = _envoy_term(envoy, codes, fn, rng)
        http_total = _envoy_term(envoy, "", fn, rng)
    elif router in ISTIO_ROUTERS:
        source = "istio"
        dest = 'reporter="destination"'
        http_failed = term(ISTIO_REQUESTS, f'{dest},response_code=~"{FAILED_CODES}"')
        http_total = term(ISTIO_REQUESTS, dest)
    elif router in VLLM_HTTP_ROUTERS:
        source = "vllm-http"
        handlers = f'handler=~"{"|".join(VLLM_INFERENCE_HANDLERS)}"'
        http_failed = term(VLLM_HTTP_REQUESTS, f'{handlers},status="5xx"')
        http_total = term(VLLM_HTTP_REQUESTS, handlers)
    else:
        return ErrorTerms(engine_failed, engine_total, ("engine",))
    return ErrorTerms(
        failed=_larger(by, ((source, http_failed), ("engine", engine_failed))),
        total=_larger(by, ((source, http_total), ("engine", engine_total))),
        sources=(source, "engine"),
    )
