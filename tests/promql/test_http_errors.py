"""The error-rate terms per HTTP source: which source each router and Gateway implementation
reads, failures as decided (5xx, 429 where told apart, engine ``error``; not other 4xx nor
``abort``), no double counting (the larger of the HTTP and the engine source), plain and grouped
forms, rate and increase; the Envoy source selected by the canary's own route and backend index,
Traefik's by the names Traefik gives the canary's own Services (no relabeling).

The PromQL is checked for what it means, and evaluated by the real ``promtool`` on series that
hold one engine error seen twice, a streamed engine error, a dead candidate, client errors,
``abort`` finishes and another route's (Service's) failures, Envoy's series carrying
``envoy_cluster_name`` only and Traefik's ``service`` and ``code`` only (as they export them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support.canaries import ANALYSIS, MODEL, model_canary

from controlplane.promql.contract import UnknownEngineVersion, contract_for
from controlplane.promql.http_errors import (
    BACKEND_LABEL,
    ENVOY_CLUSTER,
    ROUTE_LABEL,
    TRAEFIK_SERVICE,
    EnvoyRoutes,
    ErrorTerms,
    GatewayBackend,
    TraefikServices,
    envoy_backend,
    envoy_routes,
    error_terms,
    fold_sources,
    gateway_backends,
    gateway_group,
    grouped_sources,
    http_source,
    traefik_backend,
    traefik_group,
    traefik_service,
    traefik_services,
)
from controlplane.routing import gateway_api, kserve
from controlplane.serving import object_names
from controlplane.serving.pairer import PORTS, pairer_name
from controlplane.spec.models import ModelCanary

SEL = 'namespace="ml",canary="c",variant="nf4"'
NF4 = GatewayBackend(ENVOY_CLUSTER, "httproute/ml/c/rule/[0-9]+/backend/1")
NF4_TRAEFIK = GatewayBackend(
    TRAEFIK_SERVICE, r"ml-support-triage-llm-nf4-predictor-http-80@kubernetesgateway"
)


# These tests' canary is the example as ``c`` in ``ml`` (stable bf16, candidate nf4), routed
# through this gateway.
GATEWAY = {"name": "gw", "namespace": "gateway-system"}


def _backends(source: str) -> tuple[GatewayBackend, ...]:
    return {"envoy": (NF4,), "traefik": (NF4_TRAEFIK,)}.get(source, ())


def _traffic(router: str, implementation: str | None = None) -> dict[str, object]:
    """``spec.traffic``: ``router`` through :data:`GATEWAY`, of ``implementation`` if named."""
    gateway = {**GATEWAY, "implementation": implementation} if implementation else GATEWAY
    return {"router": router, "gateway": gateway}


@pytest.mark.parametrize(
    ("router", "implementation", "source"),
    [
        ("gateway-api", None, "envoy"),
        ("kserve", None, "envoy"),
        ("istio", None, "istio"),
        ("llmisvc", None, "vllm-http"),
        ("kserve-knative", None, "engine"),
        ("gateway-api", "envoy-gateway", "envoy"),
        ("gateway-api", "istio", "istio"),
        ("gateway-api", "traefik", "traefik"),
        ("kserve", "traefik", "traefik"),
        # no Gateway API Gateway in the way: the implementation says nothing about the source
        ("istio", "traefik", "istio"),
        ("kserve-knative", "traefik", "engine"),
    ],
)
def test_the_spec_names_the_source(router: str, implementation: str | None, source: str) -> None:
    assert http_source(model_canary("c", "ml", traffic=_traffic(router, implementation))) == source


@pytest.mark.parametrize(
    ("source", "failed_series", "failed_matcher", "backend"),
    [
        ("envoy", "envoy_cluster_upstream_rq{", 'envoy_response_code=~"5..|429"', NF4),
        ("traefik", "traefik_service_requests_total{", 'code=~"5..|429"', NF4_TRAEFIK),
        ("istio", "istio_requests_total{", 'response_code=~"5..|429"', None),
        ("vllm-http", "http_requests_total{", 'status="5xx"', None),
    ],
)
def test_http_source_terms(
    source: str, failed_series: str, failed_matcher: str, backend: GatewayBackend | None
) -> None:
    terms = error_terms(source, SEL, "5m", backends=_backends(source))
    assert terms.sources == (source, "engine")
    for text in (terms.failed, terms.total):
        assert text.startswith("max(")
        assert f'"source", "{source}"' in text
        assert '"source", "engine"' in text
        # a gateway's series have none of SEL's labels: they are selected by its own label alone
        assert text.count(SEL) == (1 if backend is not None else 2)
        if backend is not None:
            assert text.count(f'{backend.label}=~"{backend.pattern}"') == 1
        assert text.count("[5m]") == 2
    assert failed_series in terms.failed
    assert failed_matcher in terms.failed
    assert "vllm:request_success_total{" + SEL + ',finished_reason=~"error"}' in terms.failed
    assert "abort" not in terms.failed
    assert "finished_reason" not in terms.total


def test_abort_is_not_a_failure_in_one_place() -> None:
    """The metric contract owns the failed finish reasons; the source terms take them."""
    assert contract_for().error_reasons == ("error",)
    assert contract_for("0.33.0").error_reasons == ("error",)
    assert "abort" in contract_for().finished_reasons
    for source in ("envoy", "traefik", "istio", "vllm-http", "engine"):
        assert "abort" not in error_terms(source, SEL, "5m", backends=_backends(source)).failed


@pytest.mark.parametrize("source", ["envoy", "traefik"])
def test_the_gateway_sources_need_the_backends(source: str) -> None:
    with pytest.raises(ValueError, match="backends"):
        error_terms(source, SEL, "5m")


def test_a_backend_of_another_gateway_is_refused() -> None:
    with pytest.raises(ValueError, match="service"):
        error_terms("traefik", SEL, "5m", backends=(NF4,))


def test_istio_reads_the_destination_sidecar() -> None:
    terms = error_terms("istio", SEL, "5m")
    assert terms.failed.count('reporter="destination"') == 1
    assert terms.total.count('reporter="destination"') == 1


def test_vllm_http_counts_inference_handlers_only() -> None:
    terms = error_terms("vllm-http", SEL, "1m")
    handlers = 'handler=~"/v1/chat/completions|/v1/completions|/v1/responses"'
    assert handlers in terms.failed
    assert handlers in terms.total


@pytest.mark.parametrize("source", ["engine", "something-else"])
def test_engine_only_elsewhere(source: str) -> None:
    terms = error_terms(source, SEL, "5m")
    assert terms == ErrorTerms(
        failed=f'sum(rate(vllm:request_success_total{{{SEL},finished_reason=~"error"}}[5m]))',
        total=f"sum(rate(vllm:request_success_total{{{SEL}}}[5m]))",
        sources=("engine",),
    )


def test_grouped_increase_and_modifier() -> None:
    routes = EnvoyRoutes("ml", {("c-route", 0): ("c", "bf16"), ("c-route", 1): ("c", "nf4")})
    failed = grouped_sources(
        'namespace="ml"', "10m", ("canary", "variant"), routes, terms=("failed",),
        fn="increase", modifier=" @ 1700000000.000",
    )  # fmt: skip
    assert failed.count('"error_term", "failed/envoy"') == 1
    assert failed.count('"error_term", "failed/engine"') == 1
    assert "total/" not in failed
    assert failed.count("[10m] @ 1700000000.000") == 2  # Envoy's one selector, the engine's
    assert "sum by (envoy_route, envoy_backend) (" in failed
    assert "sum by (canary, variant) (" in failed
    assert "rate(" not in failed


def test_the_grouped_query_does_not_grow_with_the_group() -> None:
    """One selector per source and term whatever the group's size: a ``label_replace`` per
    canary made the text (and Prometheus's work) grow with the group until it failed at 1,000."""
    members = {
        (f"r{i}", b): (f"c{i}", v) for i in range(1000) for b, v in enumerate(("bf16", "nf4"))
    }
    query = grouped_sources(
        'namespace="ml"', "5m", ("canary", "variant"), EnvoyRoutes("ml", members)
    )
    assert query.count("envoy_cluster_upstream_rq{") == 2  # failed, total
    assert query.count("label_replace(") == 4 + 4  # route + backend per Envoy term; 4 tags


def test_fold_takes_the_larger_source_per_variant() -> None:
    routes = EnvoyRoutes("ml", {("c-route", 0): ("c", "bf16"), ("c-route", 1): ("c", "nf4")})
    samples = [
        ({"error_term": "failed/envoy", "envoy_route": "c-route", "envoy_backend": "1"}, 5.0),
        ({"error_term": "failed/engine", "canary": "c", "variant": "nf4"}, 3.0),
        ({"error_term": "total/envoy", "envoy_route": "c-route", "envoy_backend": "1"}, 90.0),
        ({"error_term": "total/engine", "canary": "c", "variant": "nf4"}, 100.0),
        ({"error_term": "failed/engine", "canary": "c", "variant": "bf16"}, 1.0),  # no Envoy
        ({"error_term": "total/engine", "canary": "c", "variant": "bf16"}, 50.0),
        ({"error_term": "total/envoy", "envoy_route": "other", "envoy_backend": "0"}, 7.0),
    ]
    assert fold_sources(samples, routes) == {
        ("c", "nf4"): {"failed": 5.0, "total": 100.0},
        ("c", "bf16"): {"failed": 1.0, "total": 50.0},
    }


def test_envoy_routes_name_each_backend_as_envoy_backend_does() -> None:
    for router in ("gateway-api", "kserve"):
        c = model_canary("c", "ml", traffic={"router": router, "gateway": GATEWAY})
        routes = envoy_routes("ml", [c])
        for (route, index), (name, variant) in routes.members.items():
            assert name == "c"
            cluster = f"httproute/ml/{route}/rule/0/backend/{index}"
            assert re.fullmatch(envoy_backend(c, variant).pattern, cluster)


def test_the_plain_form_refuses_to_group_envoy() -> None:
    for source, backends in (("envoy", (NF4,)), ("traefik", (NF4_TRAEFIK,))):
        with pytest.raises(ValueError, match="grouped_sources"):
            error_terms(source, SEL, "5m", ("canary", "variant"), backends=backends)


def _clusters(c: ModelCanary, route: dict[str, Any]) -> dict[str, str]:
    """Envoy Gateway's per-backendRef cluster names -> the variant the backendRef carries, for
    every rule of an HTTPRoute: ``irDestinationSettingName(destName, i)``, ``i`` the backendRef's
    position in its rule; a weight-0 backendRef gets no cluster and the others keep their
    positions (``internal/gatewayapi/route.go``, v1.8.1). A pairer's port carries the variant
    it answers from."""
    variants = {
        object_names.predictor_service(object_names.variant_service_name(c.spec.model.name, v)): v
        for v in (c.spec.stable.name, c.spec.candidate.name)
    }
    by_port = {PORTS["stable"]: c.spec.stable.name, PORTS["candidate"]: c.spec.candidate.name}
    meta = route["metadata"]
    found = {}
    for r, rule in enumerate(route["spec"]["rules"]):
        for b, ref in enumerate(rule["backendRefs"]):
            if ref.get("weight", 1) == 0:
                continue
            name = f"httproute/{meta['namespace']}/{meta['name']}/rule/{r}/backend/{b}"
            pairer = ref["name"] == pairer_name(c)
            found[name] = by_port[ref["port"]] if pairer else variants[ref["name"]]
    return found


SHAPES: dict[str, dict[str, Any]] = {
    "split": {},
    "cohort": {"cohort": {"header": "x-tier", "values": ["beta"]}},
    "sessions": {"session": {"header": "x-session-id"}},
    "cookie-sessions": {"session": {"cookie": "sid"}},
    "quality": {"quality": True},
    "quality-sessions": {"quality": True, "session": {"header": "x-session-id"}},
    "quality-cohort": {"quality": True, "cohort": {"header": "x-tier", "values": ["beta"]}},
}
"""The shapes of the ``gateway-api`` router's HTTPRoute: its traffic options, and a quality
judge whose pairer takes a sample of each variant's share."""


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize(
    ("weight", "mirror"),
    [(0, False), (0, True), (1, False), (30, False), (99, False), (100, False)],
)
def test_envoy_backends_are_the_gateway_api_routes_backend_refs(
    shape: str, weight: int, mirror: bool
) -> None:
    """Whatever rules the route holds at a weight (a session's rules come and go with it), each
    variant's pattern matches exactly the clusters that carry its requests."""
    options = dict(SHAPES[shape])
    quality = options.pop("quality", False)
    traffic: dict[str, object] = {"router": "gateway-api", "gateway": GATEWAY, **options}
    judge = {"sample": "5%", "tolerance": 0.1} if quality else None
    c = model_canary("c", "ml", traffic=traffic, quality=judge)
    clusters = _clusters(c, gateway_api.build_httproute(c, weight, mirror=mirror))
    for variant in (c.spec.stable.name, c.spec.candidate.name):
        pattern = re.compile(envoy_backend(c, variant).pattern)
        matched = {name for name in clusters if pattern.fullmatch(name)}
        assert matched == {name for name, v in clusters.items() if v == variant}, variant
    assert clusters  # the stable serves at every weight but 100, the candidate there


def test_the_grouped_envoy_term_names_each_cluster_by_the_same_positions() -> None:
    """The grouped query reads the backend position from the cluster name: with a quality judge
    the pairer's ports (2 and 3) are their variants', as :func:`envoy_backend` says."""
    traffic = {"router": "gateway-api", "gateway": GATEWAY, "session": {"header": "x-sid"}}
    c = model_canary("c", "ml", traffic=traffic, quality={"sample": "5%", "tolerance": 0.1})
    routes = envoy_routes("ml", [c])
    assert "/backend/([0123])" in routes.term(False, "rate", "[5m]")
    clusters = _clusters(c, gateway_api.build_httproute(c, 30, mirror=False))
    assert len(clusters) == 8  # two session rules and the split, the pairer's ports in each
    for cluster, variant in clusters.items():
        found = re.fullmatch(r"httproute/ml/(.+)/rule/[0-9]+/backend/([0-9]+)", cluster)
        assert found is not None
        route, backend = found.groups()
        assert routes.member({ROUTE_LABEL: route, BACKEND_LABEL: backend}) == ("c", variant)


def test_kserve_envoy_backends_are_on_kserves_route() -> None:
    c = model_canary("c", "ml", traffic={"router": "kserve", "gateway": GATEWAY})
    ref = kserve.route_ref(c)
    stable, cand = envoy_backend(c, "bf16"), envoy_backend(c, "nf4")
    prefix = f"httproute/{ref.namespace}/{ref.name}/rule/0/backend/"
    assert re.fullmatch(stable.pattern, prefix + "0")
    assert re.fullmatch(cand.pattern, prefix + "1")
    assert not re.fullmatch(cand.pattern, prefix + "0")
    with pytest.raises(ValueError, match="neither variant"):
        envoy_backend(c, "fp8")


def test_a_custom_selector_keeps_the_envoy_backend_of_the_canary() -> None:
    traffic = {"router": "gateway-api", "gateway": GATEWAY}
    plain = model_canary("c", "ml", traffic=traffic)
    selector = 'kubernetes_namespace="{{namespace}}",app="{{variant}}"'
    custom = model_canary("c", "ml", traffic=traffic, analysis={**ANALYSIS, "selector": selector})
    assert envoy_backend(custom, "nf4") == envoy_backend(plain, "nf4")


def test_unknown_engine_version_is_refused() -> None:
    with pytest.raises(UnknownEngineVersion):
        error_terms("envoy", SEL, "5m", backends=(NF4,), vllm_version="0.1.0")


# --------------------------------------------------------------------------- Traefik's services


def test_traefik_names_a_service_backend_as_its_provider_does() -> None:
    """``loadService`` (v3.6.12 ``httproute.go``): ``Normalize(ns-name-http)``, then the port,
    qualified with the provider; ``Normalize`` turns every run of non-alphanumerics into one
    ``-`` and drops them at the ends."""
    assert traefik_service("ml", "m-nf4-predictor", 80) == (
        "ml-m-nf4-predictor-http-80@kubernetesgateway"
    )
    assert traefik_service("a--b", "x.y-", 8080) == "a-b-x-y-http-8080@kubernetesgateway"


@pytest.mark.parametrize("cohort", [False, True], ids=["split", "cohort"])
@pytest.mark.parametrize("weight", [0, 30, 100])
def test_traefik_services_are_the_gateway_api_routes_backend_refs(
    cohort: bool, weight: int
) -> None:
    """Every Service backendRef of our HTTPRoute, named as Traefik names it, is one variant's."""
    traffic: dict[str, object] = {"router": "gateway-api", "gateway": GATEWAY}
    if cohort:
        traffic["cohort"] = {"header": "x-tier", "values": ["beta"]}
    c = model_canary("c", "ml", traffic=traffic)
    route = gateway_api.build_httproute(c, weight, mirror=False)
    ns = route["metadata"]["namespace"]
    named = {
        traefik_service(ns, ref["name"], ref["port"]): ref["name"]
        for rule in route["spec"]["rules"]
        for ref in rule["backendRefs"]
    }
    for variant in ("bf16", "nf4"):
        service = object_names.predictor_service(
            object_names.variant_service_name(c.spec.model.name, variant)
        )
        assert traefik_services(c, variant) == (traefik_service(ns, service, gateway_api.PORT),)
        (found,) = traefik_services(c, variant)
        assert named[found] == service


def test_kserve_traefik_services_are_the_predictors_of_kserves_route() -> None:
    """KServe's route points at ``<isvc>-predictor`` (``<isvc>-<name>-predictor`` once a
    promotion renamed it) and ``<isvc>-<candidate>-predictor``, port 80
    (``PredictorServiceName``, ``CommonDefaultHttpPort``)."""
    c = model_canary("c", "ml", traffic=_traffic("kserve", "traefik"))
    isvc = kserve.single_ref(c).name
    assert traefik_services(c, "nf4") == (
        traefik_service("ml", object_names.predictor_service(isvc, "nf4"), 80),
    )
    assert traefik_services(c, "bf16") == (
        traefik_service("ml", object_names.predictor_service(isvc), 80),
        traefik_service("ml", object_names.predictor_service(isvc, "bf16"), 80),
    )
    stable = re.compile(traefik_backend(c, "bf16").pattern)
    assert all(stable.fullmatch(s) for s in traefik_services(c, "bf16"))
    assert not any(stable.fullmatch(s) for s in traefik_services(c, "nf4"))
    with pytest.raises(ValueError, match="neither variant"):
        traefik_services(c, "fp8")


def test_only_the_gateway_sources_have_backends() -> None:
    c = model_canary("c", "ml", traffic=_traffic("gateway-api", "traefik"))
    assert gateway_backends(c, "nf4", "traefik") == (traefik_backend(c, "nf4"),)
    assert gateway_backends(c, "nf4", "envoy") == (envoy_backend(c, "nf4"),)
    for source in ("istio", "vllm-http", "engine"):
        assert gateway_backends(c, "nf4", source) == ()
    with pytest.raises(ValueError, match="gateway"):
        gateway_group("istio", "ml", [c])


def test_traefik_grouped_selects_the_group_in_one_selector_summed_by_service() -> None:
    traffic = {"router": "gateway-api", "gateway": {**GATEWAY, "implementation": "traefik"}}
    canaries = [
        model_canary(f"c{i}", "ml", model={**MODEL, "name": f"m{i}"}, traffic=traffic)
        for i in range(1000)
    ]
    group = traefik_group(canaries)
    assert gateway_group("traefik", "ml", canaries) == group
    assert len(group.members) == 2000
    query = grouped_sources('namespace="ml"', "5m", ("canary", "variant"), group)
    assert query.count("traefik_service_requests_total{") == 2  # failed, total
    assert query.count("sum by (service) (") == 2
    assert query.count('"error_term", "failed/traefik"') == 1
    assert query.count('"error_term", "total/traefik"') == 1
    assert query.count('code=~"5..|429"') == 1


def test_traefik_fold_sums_a_variants_names_then_takes_the_larger_source() -> None:
    """KServe's stable predictor may answer under two names (before and after a renaming
    promotion): one source's series of a variant add up; the sources' terms are compared."""
    c = model_canary("c", "ml", traffic=_traffic("kserve", "traefik"))
    group = traefik_group([c])
    old, renamed = traefik_services(c, "bf16")
    (cand,) = traefik_services(c, "nf4")
    samples = [
        ({"error_term": "failed/traefik", "service": old}, 2.0),
        ({"error_term": "failed/traefik", "service": renamed}, 3.0),
        ({"error_term": "failed/engine", "canary": "c", "variant": "bf16"}, 4.0),
        ({"error_term": "total/traefik", "service": old}, 40.0),
        ({"error_term": "total/traefik", "service": renamed}, 60.0),
        ({"error_term": "total/engine", "canary": "c", "variant": "bf16"}, 90.0),
        ({"error_term": "failed/traefik", "service": cand}, 1.0),
        ({"error_term": "total/traefik", "service": cand}, 10.0),
        ({"error_term": "total/traefik", "service": "elsewhere@kubernetesgateway"}, 7.0),
    ]
    assert fold_sources(samples, group) == {
        ("c", "bf16"): {"failed": 5.0, "total": 100.0},
        ("c", "nf4"): {"failed": 1.0, "total": 10.0},
    }
    assert fold_sources(samples, TraefikServices({})) == {
        ("c", "bf16"): {"failed": 4.0, "total": 90.0},
    }


# --------------------------------------------------------------------------- evaluated by promtool

# One minute of counters at 15 s steps (series notation: start+increment x steps).
_SERIES = """
load 15s
  # nf4: 20 requests a step through the gateway; 2 non-streamed engine errors (HTTP 500 and
  # finished error: the same requests), 1 streamed engine error (HTTP 200, finished error),
  # 1 client error (400, never reaching the engine) and 1 overloaded answer (429); 1 abort
  # finish (engine housekeeping, not a failure). Envoy's series: its own labels only.
  envoy_cluster_upstream_rq{E1,envoy_response_code="200"} 0+16x4
  envoy_cluster_upstream_rq{E1,envoy_response_code="500"} 0+2x4
  envoy_cluster_upstream_rq{E1,envoy_response_code="400"} 0+1x4
  envoy_cluster_upstream_rq{E1,envoy_response_code="429"} 0+1x4
  vllm:request_success_total{V,finished_reason="stop"} 0+15x4
  vllm:request_success_total{V,finished_reason="error"} 0+3x4
  vllm:request_success_total{V,finished_reason="abort"} 0+1x4
  # bf16: dead: the gateway answers 503 (the split rule and the cohort's stable-only rule),
  # the engine counts nothing.
  envoy_cluster_upstream_rq{E0,envoy_response_code="503"} 0+6x4
  envoy_cluster_upstream_rq{R1,envoy_response_code="503"} 0+4x4
  # another canary's route in the same namespace, and another namespace: never counted.
  envoy_cluster_upstream_rq{O1,envoy_response_code="500"} 0+50x4
  envoy_cluster_upstream_rq{O2,envoy_response_code="500"} 0+50x4
  # The same requests as Traefik counts them (``service``, ``code`` and its own labels only):
  # nf4's as Envoy's; bf16's pods refuse connections (Traefik's proxy answers 502).
  traefik_service_requests_total{T1,code="200",method="POST",protocol="http"} 0+16x4
  traefik_service_requests_total{T1,code="500",method="POST",protocol="http"} 0+2x4
  traefik_service_requests_total{T1,code="400",method="POST",protocol="http"} 0+1x4
  traefik_service_requests_total{T1,code="429",method="POST",protocol="http"} 0+1x4
  traefik_service_requests_total{T0,code="502",method="POST",protocol="http"} 0+10x4
  # KServe's stable predictor before its renaming: only the kserve router's stable reads it.
  traefik_service_requests_total{TK,code="200",method="POST",protocol="http"} 0+10x4
  # another canary's Service in the same namespace, and another namespace's: never counted.
  traefik_service_requests_total{TO1,code="500",method="POST",protocol="http"} 0+50x4
  traefik_service_requests_total{TO2,code="500",method="POST",protocol="http"} 0+50x4
"""

_TRAEFIK = {
    "{T1,": "ml-support-triage-llm-nf4-predictor-http-80",
    "{T0,": "ml-support-triage-llm-bf16-predictor-http-80",
    "{TK,": "ml-support-triage-llm-predictor-http-80",
    "{TO1,": "ml-other-llm-nf4-predictor-http-80",
    "{TO2,": "mlx-support-triage-llm-nf4-predictor-http-80",
}


def _holds(expr: str, expected: float | None) -> bool:
    """Does ``expr`` evaluate to ``expected`` (None: no sample) at 1m over :data:`_SERIES`, in
    the real promtool's rule-test engine?"""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is needed (apt-get install -y prometheus)"
    series = _SERIES.replace("{V,", '{namespace="ml",canary="c",variant="nf4",')
    series = series.replace("{S,", '{namespace="ml",canary="c",variant="bf16",')
    series = series.replace("{E1,", '{envoy_cluster_name="httproute/ml/c/rule/0/backend/1",')
    series = series.replace("{E0,", '{envoy_cluster_name="httproute/ml/c/rule/0/backend/0",')
    series = series.replace("{R1,", '{envoy_cluster_name="httproute/ml/c/rule/1/backend/0",')
    series = series.replace("{O1,", '{envoy_cluster_name="httproute/ml/cc/rule/0/backend/1",')
    series = series.replace("{O2,", '{envoy_cluster_name="httproute/mlx/c/rule/0/backend/1",')
    for short, service in _TRAEFIK.items():
        series = series.replace(short, f'{{service="{service}@kubernetesgateway",')
    lines = [ln.strip() for ln in series.splitlines()[2:]]
    inputs = [
        {"series": ln.rsplit(" ", 1)[0], "values": ln.rsplit(" ", 1)[1]}
        for ln in lines
        if ln and not ln.startswith("#")
    ]
    if expected is None:
        probe, samples = expr, []
    else:  # 1 when within 1e-9 of ``expected`` (rates are floats), 0 otherwise
        probe, samples = f"abs(({expr}) - {expected!r}) < bool 1e-9", [{"labels": "{}", "value": 1}]
    test = {
        "interval": "15s",
        "input_series": inputs,
        "promql_expr_test": [{"expr": probe, "eval_time": "1m", "exp_samples": samples}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test.yml").write_text(json.dumps({"rule_files": [], "tests": [test]}))
        done = subprocess.run(
            [promtool, "test", "rules", "test.yml"], cwd=root, capture_output=True, text=True
        )
    return done.returncode == 0


def _ratio_is(
    router: str, variant: str, expected: float | None, implementation: str | None = None
) -> bool:
    canary = model_canary("c", "ml", traffic=_traffic(router, implementation))
    source = http_source(canary)
    terms = error_terms(
        source,
        f'namespace="ml",canary="c",variant="{variant}"',
        "1m",
        backends=gateway_backends(canary, variant, source),
    )
    return _holds(f"({terms.failed}) / ({terms.total})", expected)


@pytest.mark.binary
@pytest.mark.parametrize("implementation", [None, "traefik"])
def test_gateway_counts_each_failure_once(implementation: str | None) -> None:
    # 2 engine errors seen twice + 1 streamed one = 3 engine failures; the gateway sees 2 x 500
    # and 1 x 429: 3 failures of 20 requests, never 5 (the sum of both sources), and never the
    # other routes' (Services') 500s (53 / 70 if their series matched).
    assert _ratio_is("gateway-api", "nf4", 3 / 20, implementation)
    assert not _ratio_is("gateway-api", "nf4", 5 / 20, implementation)  # the check can fail


@pytest.mark.binary
@pytest.mark.parametrize("implementation", [None, "traefik"])
def test_gateway_sees_a_dead_candidate_the_engine_cannot(implementation: str | None) -> None:
    assert _ratio_is("gateway-api", "bf16", 1.0, implementation)
    assert _ratio_is("kserve-knative", "bf16", None)  # the engine alone has no data at all


@pytest.mark.binary
def test_traefik_adds_up_kserves_two_names_of_the_stable() -> None:
    # 10 x 502 under the renamed predictor's Service, 10 x 200 under the unnamed one's
    assert _ratio_is("kserve", "bf16", 0.5, "traefik")
    assert _ratio_is("kserve", "nf4", 3 / 20, "traefik")  # KServe names it as we do


@pytest.mark.binary
def test_engine_only_misses_the_429_and_abort_is_no_failure() -> None:
    assert _ratio_is("kserve-knative", "nf4", 3 / 19)  # 3 errors of 15 + 3 + 1 finishes
    assert not _ratio_is("kserve-knative", "nf4", 4 / 19)  # abort counted: the old rule


@pytest.mark.parametrize("by", [(), ("canary", "variant")], ids=["plain", "grouped"])
def test_the_builder_takes_error_rate_from_here_for_a_source(by: tuple[str, ...]) -> None:
    from controlplane.promql.builtins import builtin_expr

    terms = error_terms("istio", SEL, "5m", by)
    assert builtin_expr("error-rate", SEL, "5m", by=by, source="istio") == (
        f"{terms.failed} / {terms.total}"
    )
    if not by:
        for source, backend in (("envoy", NF4), ("traefik", NF4_TRAEFIK)):
            gateway = error_terms(source, SEL, "5m", backends=(backend,))
            assert builtin_expr("error-rate", SEL, "5m", source=source, backends=(backend,)) == (
                f"{gateway.failed} / {gateway.total}"
            )
