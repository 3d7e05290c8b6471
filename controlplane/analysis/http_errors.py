"""Where the ``error-rate`` built-in's failed and all requests come from, per router.

Owns the PromQL of the two terms of ``error-rate`` (failed requests / all requests) for every
``spec.traffic.router``, for one selector and window, in a plain and a grouped form::

    error_terms(router, sel, window, by=(), *, fn="rate", modifier="", vllm_version=None)
        -> ErrorTerms(failed=..., total=...)

``failed`` and ``total`` are complete, aggregated expressions (``sum``/``max``, ``by (...)``
when ``by`` is given): the built-in's value is ``failed / total``; with ``fn="increase"`` they
are the counts over the window (the cumulative counts of ``judge: sequential``). ``modifier`` is
appended to every range (`` @ 1700000000.000``). Called by the single PromQL builder
(:mod:`controlplane.analysis.promql`) and by the local stack's tests; pure string functions.

What counts as a failure (decided here, documented in docs/analysis.md, "Where errors come
from"): an HTTP 5xx answered for the variant; an HTTP 429 where the source tells it apart from
other 4xx (an overloaded candidate is a regression; vLLM's own metric groups codes to ``4xx``,
so there it cannot be told apart and is not counted); an engine finish with
``finished_reason="error"``. Not failures: other 4xx (the client's fault), client disconnects
and ``abort`` finishes (vLLM v1 does not count a client disconnect as a finish at all, and
answers it as a 2xx in its HTTP metric).

One request can be seen twice: vLLM turns an engine ``error`` finish into HTTP 500 when it has
not started streaming (``vllm/v1/engine/__init__.py``, ``FinishReason``: "always converted to
500"), and into an error event inside a 200 stream when it has. Adding the two sources would
count every non-streamed engine error twice, so each term is the *larger* of the HTTP source and
the engine source (``max`` over both, each summed first): never double counted; a dead candidate
(HTTP 503, no engine finishes) and a streamed engine error (HTTP 200, an ``error`` finish) are
both seen. A source with no series (not scraped, not exported) falls out of the ``max``.

Sources per router (versions read in docs/analysis.md):

- ``gateway-api``, ``kserve``: Envoy Gateway's Envoy, per-backend cluster stats
  ``envoy_cluster_upstream_rq{envoy_response_code}`` (failed: the failure codes; all: every code),
  relabelled to ``namespace``/``canary``/``variant`` by the gateway's monitor; plus the engine;
- ``istio``: ``istio_requests_total{reporter="destination", response_code}`` from the
  destination pod's sidecar (its PodMonitor labels); plus the engine;
- ``llmisvc``: ``vllm serve``'s own ``http_requests_total{handler, status}`` (status grouped
  ``5xx``); plus the engine;
- ``kserve-knative`` (and any other router): the engine only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from controlplane.analysis.metric_contract import contract_for

ENGINE_FAILED_REASON = "error"
"""The ``finished_reason`` that is a failed request (``FinishReason.ERROR``, vLLM v1)."""

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
) -> ErrorTerms:
    """The failed and all-requests terms of ``error-rate`` for ``router`` (see the module
    docstring), label matchers ``sel`` (no braces), ``window`` (a Prometheus duration), grouped
    ``by`` these labels when given. ``vllm_version`` picks the engine's metric contract
    (:func:`~controlplane.analysis.metric_contract.contract_for`; ValueError when unknown)."""
    requests = contract_for(vllm_version).requests
    rng = f"[{window}]{modifier}"

    def term(series: str, extra: str = "") -> str:
        matchers = f"{sel},{extra}" if extra else sel
        return _agg("sum", by, f"{fn}({series}{{{matchers}}}{rng})")

    engine_failed = term(requests, f'finished_reason="{ENGINE_FAILED_REASON}"')
    engine_total = term(requests)
    if router in ENVOY_ROUTERS:
        source = "envoy"
        http_failed = term(ENVOY_RQ_BY_CODE, f'envoy_response_code=~"{FAILED_CODES}"')
        http_total = term(ENVOY_RQ_BY_CODE)
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
