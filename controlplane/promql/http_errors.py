"""The ``error-rate`` built-in's HTTP source: which one a canary reads, and its PromQL (pure).

Owns which source a spec names (:func:`http_source`) or the Gateway in the way decides
(:func:`decide`), each variant's gateway series, and both terms (failed / all) per source, plain
or grouped; each term is the larger of the HTTP and the engine source, so no error counts twice.
See docs/analysis.md, "Where errors come from".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from controlplane.errors import Problem
from controlplane.promql.contract import contract_for
from controlplane.serving import object_names, pairer
from controlplane.serving.render import isvc_name

if TYPE_CHECKING:
    from controlplane.spec.models import GatewayImplementation, ModelCanary

HttpSource = Literal["envoy", "istio", "traefik", "vllm-http", "engine"]
"""Where ``error-rate`` reads HTTP answers (the module docstring lists them)."""

ROUTER_SOURCES: Mapping[str, HttpSource] = {
    "gateway-api": "envoy",
    "kserve": "envoy",
    "istio": "istio",
    "llmisvc": "vllm-http",
}
"""Each router's own source (any other router: ``engine``)."""

GATEWAY_ROUTERS = frozenset({"gateway-api", "kserve"})
"""The routers whose traffic passes a Gateway API Gateway (ours, or KServe's ingress Gateway):
their source follows the Gateway's implementation."""

IMPLEMENTATION_SOURCES: Mapping[GatewayImplementation, HttpSource] = {
    "envoy-gateway": "envoy",
    "istio": "istio",
    "traefik": "traefik",
}
"""The source of each Gateway API implementation ``spec.traffic.gateway.implementation`` names."""

GATEWAY_SOURCES = frozenset({"envoy", "traefik"})
"""Sources whose series carry none of the canary's labels: selected by the canary's own route or
Services (:func:`gateway_backends`), grouped by :func:`grouped_sources`."""

VLLM_HTTP_REQUESTS = "http_requests_total"
"""prometheus-fastapi-instrumentator's counter, attached by ``vllm serve``."""

VLLM_INFERENCE_HANDLERS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
"""The ``handler`` values of inference requests (``/v1/models`` polls would dilute the rate)."""

ENVOY_RQ_BY_CODE = "envoy_cluster_upstream_rq"
"""Envoy's ``cluster.<name>.upstream_rq_<code>`` with the ``envoy_response_code`` tag."""

ENVOY_RQ_TOTAL = "envoy_cluster_upstream_rq_total"
"""NOT the denominator (a request to an unreachable backend is charged 503 without being in it):
all requests are the sum over every code."""

TRAEFIK_REQUESTS = "traefik_service_requests_total"
"""Traefik's per-service request counter, labels ``code``, ``method``, ``protocol``,
``service``."""

TRAEFIK_SERVICE = "service"
"""The label of :data:`TRAEFIK_REQUESTS` naming the service: ``<name>@<provider>``."""

TRAEFIK_PROVIDER = "kubernetesgateway"
"""The provider of Traefik's Gateway API configuration: the suffix of its services' names."""

ISTIO_REQUESTS = "istio_requests_total"
"""Istio's standard request counter."""

FAILED_CODES = "5..|429"
"""HTTP codes that are failures where a source reports single codes."""

ENVOY_CLUSTER = "envoy_cluster_name"
"""The tag Envoy's stats tag extraction gives the cluster of ``cluster.<name>.*`` stats."""


def router_source(router: str) -> HttpSource:
    """The source of ``router`` by itself (:data:`ROUTER_SOURCES`; ``engine`` when none)."""
    return ROUTER_SOURCES.get(router, "engine")


def http_source(canary: ModelCanary) -> HttpSource:
    """The source the canary's spec alone names: for a router of :data:`GATEWAY_ROUTERS` with
    ``spec.traffic.gateway.implementation``, that implementation's; else the router's. What
    every query uses unless the controller decided otherwise from the GatewayClass
    (:func:`decide`, passed down as ``source``)."""
    traffic = canary.spec.traffic
    implementation = traffic.gateway.implementation if traffic.gateway is not None else None
    if traffic.router in GATEWAY_ROUTERS and implementation is not None:
        return IMPLEMENTATION_SOURCES[implementation]
    return router_source(traffic.router)


def implementation_problems(canary: ModelCanary) -> list[Problem]:
    """A Gateway implementation named for a router whose traffic passes no Gateway API Gateway
    (not in :data:`GATEWAY_ROUTERS`): it would say nothing, so it is a problem."""
    traffic = canary.spec.traffic
    if traffic.gateway is None or traffic.gateway.implementation is None:
        return []
    if traffic.router in GATEWAY_ROUTERS:
        return []
    message = (
        f"router {traffic.router!r} passes no Gateway API Gateway: its error-rate reads "
        f"{router_source(traffic.router)!r} whatever implementation is named; the "
        f"implementation applies to {' and '.join(sorted(GATEWAY_ROUTERS))}"
    )
    return [Problem("spec.traffic.gateway.implementation", message)]


CONTROLLERS: Mapping[str, GatewayImplementation] = {
    "gateway.envoyproxy.io/gatewayclass-controller": "envoy-gateway",
    "istio.io/gateway-controller": "istio",
    "traefik.io/gateway-controller": "traefik",
}
"""GatewayClass ``spec.controllerName`` -> the implementation (each one's default)."""

NAMES: Mapping[GatewayImplementation, str] = {
    "envoy-gateway": "Envoy Gateway",
    "istio": "Istio",
    "traefik": "Traefik",
}


@dataclass(frozen=True)
class Decision:
    """``source``: where ``error-rate`` reads HTTP answers; ``reason``: why, in words (logged);
    ``warning``: the canary's Warning Event when its Gateway could not be read, else None."""

    source: HttpSource
    reason: str
    warning: str | None = None


def gateway_of(canary: ModelCanary) -> tuple[str, str] | None:
    """(namespace, name) of the Gateway API Gateway the canary's traffic passes: for
    ``gateway-api``, the parentRef of our HTTPRoute (``spec.traffic.gateway``, its namespace
    defaulting to the canary's, or KServe's default, ``DEFAULT_GATEWAY``); for ``kserve``, KServe's
    ingress Gateway, which its HTTPRoute attaches to: ``spec.traffic.gateway`` names it when it
    is not the default. None for the routers that pass none."""
    from controlplane.spec.models import DEFAULT_GATEWAY  # here: the CLI's PromQL loads no models

    if canary.spec.traffic.router not in GATEWAY_ROUTERS:
        return None
    gateway = canary.spec.traffic.gateway or DEFAULT_GATEWAY
    return (gateway.namespace or canary.metadata.namespace, gateway.name)


def needs_gateway_class(canary: ModelCanary) -> bool:
    """Whether :func:`decide` needs the GatewayClass: a Gateway is in the way, the spec names no
    implementation and the canary has an ``error-rate`` metric (nothing else reads the
    source)."""
    gateway = canary.spec.traffic.gateway
    return (
        gateway_of(canary) is not None
        and (gateway is None or gateway.implementation is None)
        and any(m.builtin == "error-rate" for m in canary.spec.analysis.metrics)
    )


def decide(
    canary: ModelCanary, controller_name: str | None, unreadable: str | None = None
) -> Decision:
    """The HTTP source of ``canary``'s ``error-rate``, given the ``spec.controllerName`` of its
    Gateway's GatewayClass (None: not read; ``unreadable``: what could not be read and why). In
    order: a router that passes no Gateway reads its own source; the spec's implementation wins;
    a known controller (:data:`CONTROLLERS`) gives its source, an unknown one the engine alone;
    an unread class the router's default."""
    router = canary.spec.traffic.router
    spec_source = http_source(canary)
    where = gateway_of(canary)
    if where is None:
        return Decision(spec_source, f"router {router!r} passes no Gateway API Gateway")
    gateway = canary.spec.traffic.gateway
    if gateway is not None and gateway.implementation is not None:
        return Decision(
            spec_source, f"spec.traffic.gateway.implementation is {gateway.implementation!r}"
        )
    named = f"Gateway {where[0]}/{where[1]}"
    if controller_name is None:
        warning = None
        if unreadable is not None:
            warning = (
                f"{unreadable}; error-rate reads router {router!r}'s default HTTP source "
                f"({spec_source}) until it can: let the controller get gateways and "
                "gatewayclasses (chart value rbac.readGateways), or name the implementation in "
                "spec.traffic.gateway.implementation"
            )
        reason = f"the GatewayClass of {named} was not read: router {router!r}'s default"
        return Decision(spec_source, reason, warning)
    implementation = CONTROLLERS.get(controller_name)
    if implementation is None:
        return Decision(
            "engine",
            f"{named} is run by {controller_name!r}, no implementation known here (known: "
            f"{', '.join(sorted(CONTROLLERS))}): the engine alone; name it in "
            "spec.traffic.gateway.implementation",
        )
    return Decision(
        IMPLEMENTATION_SOURCES[implementation],
        f"{named} is run by {NAMES[implementation]} ({controller_name})",
    )


@dataclass(frozen=True)
class ErrorTerms:
    """``failed`` and ``total`` requests, each a complete aggregated PromQL expression; the
    ``error-rate`` built-in is ``failed / total``. ``sources`` names what was combined."""

    failed: str
    total: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class GatewayBackend:
    """The gateway series of one variant of one canary: those whose ``label`` fully matches
    ``pattern`` (a regular expression; Prometheus anchors it)."""

    label: str
    pattern: str


def _route_of(canary: ModelCanary) -> str:
    """The HTTPRoute the gateway serves the canary from: ours for ``gateway-api``, KServe's
    top-level route, named after the one InferenceService, for ``kserve``."""
    if canary.spec.traffic.router == "kserve":
        return object_names.single_service_name(canary.spec.model.name)
    return object_names.route_name(canary.metadata.name)


def envoy_backend(canary: ModelCanary, variant: str) -> GatewayBackend:
    """The Envoy Gateway clusters that carry ``variant``'s requests of ``canary``, from the
    canary itself: ``httproute/<namespace>/<route>/rule/<r>/backend/<b>``, the stable backend 0
    and the candidate 1 in any rule, with ``spec.quality`` also 2 and 3, the pairer's port for
    each (:func:`_positions`; docs/analysis.md, "Where errors come from"). ValueError for a
    variant that is neither."""
    route = f"httproute/{canary.metadata.namespace}/{_route_of(canary)}/"
    positions = _positions(canary, variant)
    index = str(positions[0]) if len(positions) == 1 else f"({'|'.join(map(str, positions))})"
    return GatewayBackend(ENVOY_CLUSTER, f"{_literal(route)}rule/[0-9]+/backend/{index}")


def _positions(canary: ModelCanary, variant: str) -> tuple[int, ...]:
    """The backend positions of ``variant`` in every rule of the canary's route: KServe's route
    lists the stable predictor then the canary's; the ``gateway-api`` router's are
    :func:`~controlplane.serving.pairer.backend_positions`."""
    role = _role(canary, variant)
    if canary.spec.traffic.router == "kserve":
        return (_backend_index(canary, variant),)
    return pairer.backend_positions(canary, role)


def _backend_index(canary: ModelCanary, variant: str) -> int:
    if variant == canary.spec.stable.name:
        return 0
    if variant == canary.spec.candidate.name:
        return 1
    raise ValueError(f"{variant!r} is neither variant of canary {canary.metadata.name!r}")


def traefik_service(namespace: str, service: str, port: int) -> str:
    """The ``service`` label Traefik v3.6.12 gives the requests it sends to a Service backendRef
    of an HTTPRoute, whichever route points at it: ``<namespace>-<name>-http-<port>`` normalized,
    ``@kubernetesgateway`` (docs/analysis.md, "What was read, and where")."""
    return f"{_normalize(f'{namespace}-{service}-http-{port}')}@{TRAEFIK_PROVIDER}"


def _normalize(name: str) -> str:
    """Traefik's ``provider.Normalize``: every run of characters that are neither letters nor
    digits becomes one ``-``, none at either end."""
    return "-".join(part for part in re.split(r"[^0-9A-Za-z]+", name) if part)


def traefik_services(canary: ModelCanary, variant: str) -> tuple[str, ...]:
    """The ``service`` label values (:func:`traefik_service`) of the Services that carry
    ``variant``'s requests of ``canary`` through Traefik: the variant's predictor Service (for
    ``kserve`` the stable's under both its names, before and after a promotion renamed it;
    docs/analysis.md, "Where errors come from"), and with ``spec.quality`` the pairer's port for
    the variant. ValueError for a variant that is neither."""
    role = _role(canary, variant)
    ns, port = canary.metadata.namespace, object_names.PREDICTOR_PORT
    if canary.spec.traffic.router == "kserve":
        isvc = object_names.single_service_name(canary.spec.model.name)
        found = [object_names.predictor_service(isvc, variant)]
        if role == "stable":
            found.insert(0, object_names.predictor_service(isvc))
        return tuple(traefik_service(ns, service, port) for service in found)
    service = object_names.predictor_service(isvc_name(canary, role))
    found = [traefik_service(ns, service, port)]
    if canary.spec.quality is not None:  # the variant's sample, answered through the pairer
        found.append(traefik_service(ns, pairer.pairer_name(canary), pairer.PORTS[role]))
    return tuple(found)


def _role(canary: ModelCanary, variant: str) -> Literal["stable", "candidate"]:
    return "stable" if _backend_index(canary, variant) == 0 else "candidate"


def traefik_backend(canary: ModelCanary, variant: str) -> GatewayBackend:
    """``variant``'s Traefik services (:func:`traefik_services`) as one :class:`GatewayBackend`."""
    services = traefik_services(canary, variant)
    return GatewayBackend(TRAEFIK_SERVICE, "|".join(_literal(s) for s in services))


def gateway_backends(canary: ModelCanary, variant: str, source: str) -> tuple[GatewayBackend, ...]:
    """``variant``'s series of ``source`` when it is a gateway's (:data:`GATEWAY_SOURCES`: its
    series carry none of the canary's labels), else none (the selector picks them)."""
    if source == "envoy":
        return (envoy_backend(canary, variant),)
    if source == "traefik":
        return (traefik_backend(canary, variant),)
    return ()


def _literal(text: str) -> str:
    """``text`` as a regular expression matching itself (RE2 metacharacters escaped)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_GATEWAY_SERIES: Mapping[str, tuple[str, str, str]] = {
    "envoy": (ENVOY_RQ_BY_CODE, ENVOY_CLUSTER, f'envoy_response_code=~"{FAILED_CODES}"'),
    "traefik": (TRAEFIK_REQUESTS, TRAEFIK_SERVICE, f'code=~"{FAILED_CODES}"'),
}
"""Per gateway source: its counter, the label that names a backend, the failed codes' matcher
(all requests: every code, the sum over them)."""


def _gateway_term(
    source: str, backends: Sequence[GatewayBackend], failed: bool, fn: str, rng: str
) -> str:
    """``source``'s counter summed over the ``backends``' series (joined)."""
    series, label, codes = _GATEWAY_SERIES[source]
    wrong = {b.label for b in backends} - {label}
    if wrong:
        raise ValueError(f"source {source!r} selects its series by {label!r}, not {wrong}")
    pattern = "|".join(f"(?:{b.pattern})" for b in backends)
    if len(backends) == 1:
        pattern = backends[0].pattern
    matchers = f'{label}=~"{_quote(pattern)}"' + (f",{codes}" if failed else "")
    return f"sum({fn}({series}{{{matchers}}}{rng}))"


class GatewayGroup(Protocol):
    """The gateway side of a grouped query (:func:`grouped_sources`): which series to ask,
    summed by the labels that name a backend, and the (canary, variant) each backend carries
    (:func:`fold_sources`). Made by :func:`gateway_group`."""

    @property
    def source(self) -> HttpSource: ...

    def term(self, failed: bool, fn: str, rng: str) -> str:
        """The counter of every backend of the group, one selector, summed per backend."""
        ...

    def member(self, labels: Mapping[str, str]) -> tuple[str, str] | None:
        """The (canary, variant) of one series of :meth:`term`; None when not the group's."""
        ...


ROUTE_LABEL = "envoy_route"
BACKEND_LABEL = "envoy_backend"
SOURCE_TERM = "error_term"
"""The label :func:`grouped_sources` tags each series with: ``<failed|total>/<source>``."""


@dataclass(frozen=True)
class EnvoyRoutes:
    """The Envoy side of a grouped query: the canaries' ``namespace`` and, per (HTTPRoute name,
    backend index), the (canary, variant) whose requests that backend carries
    (:func:`envoy_routes`)."""

    namespace: str
    members: Mapping[tuple[str, int], tuple[str, str]]
    source: HttpSource = "envoy"

    def term(self, failed: bool, fn: str, rng: str) -> str:
        """``envoy_cluster_upstream_rq`` of every backend of the routes, one selector for the
        whole group, summed ``by`` the route and backend index read from the cluster name."""
        names = "|".join(_literal(route) for route in sorted({r for r, _ in self.members}))
        indices = "".join(sorted({str(b) for _, b in self.members}))
        regex = f"httproute/{_literal(self.namespace)}/({names})/rule/[0-9]+/backend/([{indices}])"
        series, label, codes = _GATEWAY_SERIES["envoy"]
        matchers = f'{label}=~"{_quote(regex)}"' + (f",{codes}" if failed else "")
        inner = f"{fn}({series}{{{matchers}}}{rng})"
        for tag, group in ((ROUTE_LABEL, "$1"), (BACKEND_LABEL, "$2")):
            inner = f'label_replace({inner}, "{tag}", "{group}", "{label}", "{_quote(regex)}")'
        return f"sum by ({ROUTE_LABEL}, {BACKEND_LABEL}) ({inner})"

    def member(self, labels: Mapping[str, str]) -> tuple[str, str] | None:
        try:
            backend = int(labels.get(BACKEND_LABEL, ""))
        except ValueError:
            return None
        return self.members.get((labels.get(ROUTE_LABEL, ""), backend))


def envoy_routes(namespace: str, canaries: Sequence[ModelCanary]) -> EnvoyRoutes:
    """The Envoy backends of both variants of every canary of a group (all in ``namespace``),
    named as :func:`envoy_backend` names them: stable backend 0, candidate backend 1, with
    ``spec.quality`` the pairer's ports 2 and 3."""
    members: dict[tuple[str, int], tuple[str, str]] = {}
    for canary in canaries:
        route = _route_of(canary)
        for variant in (canary.spec.stable.name, canary.spec.candidate.name):
            for position in _positions(canary, variant):
                members[(route, position)] = (canary.metadata.name, variant)
    return EnvoyRoutes(namespace, members)


@dataclass(frozen=True)
class TraefikServices:
    """The Traefik side of a grouped query: per ``service`` label value (:func:`traefik_service`),
    the (canary, variant) whose requests that service carries (:func:`traefik_group`)."""

    members: Mapping[str, tuple[str, str]]
    source: HttpSource = "traefik"

    def term(self, failed: bool, fn: str, rng: str) -> str:
        """``traefik_service_requests_total`` of every service of the group, one selector,
        summed ``by (service)``."""
        series, label, codes = _GATEWAY_SERIES["traefik"]
        regex = "|".join(_literal(service) for service in sorted(self.members))
        matchers = f'{label}=~"{_quote(regex)}"' + (f",{codes}" if failed else "")
        return f"sum by ({label}) ({fn}({series}{{{matchers}}}{rng}))"

    def member(self, labels: Mapping[str, str]) -> tuple[str, str] | None:
        return self.members.get(labels.get(TRAEFIK_SERVICE, ""))


def traefik_group(canaries: Sequence[ModelCanary]) -> TraefikServices:
    """The Traefik services of both variants of every canary of a group
    (:func:`traefik_services`)."""
    members: dict[str, tuple[str, str]] = {}
    for canary in canaries:
        for variant in (canary.spec.stable.name, canary.spec.candidate.name):
            for service in traefik_services(canary, variant):
                members[service] = (canary.metadata.name, variant)
    return TraefikServices(members)


def gateway_group(
    source: str, namespace: str, canaries: Sequence[ModelCanary]
) -> EnvoyRoutes | TraefikServices:
    """The gateway side of a grouped query over ``canaries`` (all in ``namespace``) for a source
    of :data:`GATEWAY_SOURCES`; ValueError for another."""
    if source == "envoy":
        return envoy_routes(namespace, canaries)
    if source == "traefik":
        return traefik_group(canaries)
    raise ValueError(f"source {source!r} is not a gateway's: its series carry the canary labels")


def grouped_sources(
    sel: str,
    window: str,
    by: Sequence[str],
    gateway: GatewayGroup,
    *,
    terms: Sequence[Literal["failed", "total"]] = ("failed", "total"),
    fn: Literal["rate", "increase"] = "rate",
    modifier: str = "",
    vllm_version: str | None = None,
) -> str:
    """A gateway source's ``error-rate`` terms for a group of canaries, unfolded: each source's
    ``terms`` as its own series, tagged ``error_term="<term>/<source>"`` — the engine's summed
    ``by`` (``canary``, ``variant``), the gateway's by backend (``gateway.term``). The query's
    size is one selector per source and term, whatever the group's size (the alternative, one
    relabelled sum per canary, grew with the group until Prometheus refused it at 1,000
    canaries). :func:`fold_sources` turns the answer into (canary, variant) values."""
    contract = contract_for(vllm_version)
    rng = f"[{window}]{modifier}"
    engine_sel = {
        "failed": f'{sel},finished_reason=~"{"|".join(contract.error_reasons)}"',
        "total": sel,
    }
    parts = []
    for name in terms:
        engine = _agg("sum", by, f"{fn}({contract.requests}{{{engine_sel[name]}}}{rng})")
        http = gateway.term(name == "failed", fn, rng)
        for source, expr in ((gateway.source, http), ("engine", engine)):
            parts.append(f'label_replace({expr}, "{SOURCE_TERM}", "{name}/{source}", "", "")')
    return " or ".join(parts)


def fold_sources(
    samples: Iterable[tuple[Mapping[str, str], float]], gateway: GatewayGroup
) -> dict[tuple[str, str], dict[str, float]]:
    """A :func:`grouped_sources` answer as ``{(canary, variant): {term: value}}``: a source's
    series of one variant summed (a variant the gateway knows under two names), then each term
    the larger of its sources (a source with no series falls out), as the plain form's ``max``.
    Series of a backend not in ``gateway`` are ignored."""
    sums: dict[tuple[tuple[str, str], str, str], float] = {}
    for labels, value in samples:
        term, _, source = labels.get(SOURCE_TERM, "").partition("/")
        if source == gateway.source:
            ident = gateway.member(labels)
        elif source:
            ident = (labels.get("canary", ""), labels.get("variant", ""))
        else:
            ident = None
        if ident is None or not term:
            continue
        key = (ident, term, source)
        sums[key] = sums.get(key, 0.0) + value
    out: dict[tuple[str, str], dict[str, float]] = {}
    for (ident, term, _source), value in sums.items():
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
    source: str,
    sel: str,
    window: str,
    by: Sequence[str] = (),
    *,
    fn: Literal["rate", "increase"] = "rate",
    modifier: str = "",
    vllm_version: str | None = None,
    backends: Sequence[GatewayBackend] = (),
) -> ErrorTerms:
    """The failed and all-requests terms of ``error-rate`` from ``source`` (an
    :data:`HttpSource`; any other is the engine alone) and the engine (see the module
    docstring), label matchers ``sel`` (no braces), ``window`` (a Prometheus duration), grouped
    ``by`` these labels when given. ``vllm_version`` picks the engine's metric contract
    (:func:`~controlplane.promql.contract.contract_for`; ValueError when unknown).
    ``backends``: the variants' :func:`gateway_backends` (the gateway sources need them:
    ValueError without). The gateway sources' grouped form is :func:`grouped_sources`
    (ValueError here)."""
    contract = contract_for(vllm_version)
    requests = contract.requests
    rng = f"[{window}]{modifier}"

    def term(series: str, extra: str = "") -> str:
        matchers = f"{sel},{extra}" if extra else sel
        return _agg("sum", by, f"{fn}({series}{{{matchers}}}{rng})")

    engine_failed = term(requests, f'finished_reason=~"{"|".join(contract.error_reasons)}"')
    engine_total = term(requests)
    if source in GATEWAY_SOURCES:
        if not backends:
            raise ValueError(f"source {source!r}: the gateway's series need the variants' backends")
        if by:
            raise ValueError(f"source {source!r}: the grouped form is grouped_sources")
        http_failed = _gateway_term(source, backends, True, fn, rng)
        http_total = _gateway_term(source, backends, False, fn, rng)
    elif source == "istio":
        dest = 'reporter="destination"'
        http_failed = term(ISTIO_REQUESTS, f'{dest},response_code=~"{FAILED_CODES}"')
        http_total = term(ISTIO_REQUESTS, dest)
    elif source == "vllm-http":
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
