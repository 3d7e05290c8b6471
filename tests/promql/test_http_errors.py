"""The error-rate terms per router: which source each router reads, failures as decided (5xx,
429 where told apart, engine ``error``; not other 4xx nor ``abort``), no double counting (the
larger of the HTTP and the engine source), plain and grouped forms, rate and increase; the Envoy
source selected by the canary's own route and backend index (no relabeling).

The PromQL is checked for what it means, and evaluated by the real ``promtool`` on series that
hold one engine error seen twice, a streamed engine error, a dead candidate, client errors,
``abort`` finishes and another route's failures, Envoy's series carrying ``envoy_cluster_name``
only (as Envoy exports them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.canaries import ANALYSIS, model_canary

from controlplane.promql.contract import UnknownEngineVersion, contract_for
from controlplane.promql.http_errors import (
    EnvoyBackend,
    EnvoyRoutes,
    ErrorTerms,
    envoy_backend,
    envoy_routes,
    error_terms,
    fold_sources,
    grouped_sources,
)
from controlplane.routing import gateway_api, kserve
from controlplane.serving import names

SEL = 'namespace="ml",canary="c",variant="nf4"'
NF4 = EnvoyBackend("httproute/ml/c/rule/[0-9]+/backend/1")


# These tests' canary is the example as ``c`` in ``ml`` (stable bf16, candidate nf4), routed
# through this gateway.
GATEWAY = {"name": "gw", "namespace": "gateway-system"}


def _envoy(router: str) -> tuple[EnvoyBackend, ...]:
    return (NF4,) if router in ("gateway-api", "kserve") else ()


@pytest.mark.parametrize(
    ("router", "source", "failed_series", "failed_matcher"),
    [
        ("gateway-api", "envoy", "envoy_cluster_upstream_rq{", 'envoy_response_code=~"5..|429"'),
        ("kserve", "envoy", "envoy_cluster_upstream_rq{", 'envoy_response_code=~"5..|429"'),
        ("istio", "istio", "istio_requests_total{", 'response_code=~"5..|429"'),
        ("llmisvc", "vllm-http", "http_requests_total{", 'status="5xx"'),
    ],
)
def test_http_source_per_router(
    router: str, source: str, failed_series: str, failed_matcher: str
) -> None:
    terms = error_terms(router, SEL, "5m", envoy=_envoy(router))
    assert terms.sources == (source, "engine")
    for text in (terms.failed, terms.total):
        assert text.startswith("max(")
        assert f'"source", "{source}"' in text
        assert '"source", "engine"' in text
        # Envoy's series have none of SEL's labels: they are selected by cluster name alone
        assert text.count(SEL) == (1 if source == "envoy" else 2)
        assert text.count('envoy_cluster_name=~"httproute/ml/c/rule/[0-9]+/backend/1"') == (
            1 if source == "envoy" else 0
        )
        assert text.count("[5m]") == 2
    assert failed_series in terms.failed
    assert failed_matcher in terms.failed
    assert "vllm:request_success_total{" + SEL + ',finished_reason=~"error"}' in terms.failed
    assert "abort" not in terms.failed
    assert "finished_reason" not in terms.total


def test_abort_is_not_a_failure_in_one_place() -> None:
    """The metric contract owns the failed finish reasons; the router terms take them."""
    assert contract_for().error_reasons == ("error",)
    assert contract_for("0.33.0").error_reasons == ("error",)
    assert "abort" in contract_for().finished_reasons
    for router in ("gateway-api", "istio", "llmisvc", "kserve-knative"):
        assert "abort" not in error_terms(router, SEL, "5m", envoy=_envoy(router)).failed


@pytest.mark.parametrize("router", ["gateway-api", "kserve"])
def test_the_envoy_routers_need_the_backends(router: str) -> None:
    with pytest.raises(ValueError, match="backends"):
        error_terms(router, SEL, "5m")


def test_istio_reads_the_destination_sidecar() -> None:
    terms = error_terms("istio", SEL, "5m")
    assert terms.failed.count('reporter="destination"') == 1
    assert terms.total.count('reporter="destination"') == 1


def test_vllm_http_counts_inference_handlers_only() -> None:
    terms = error_terms("llmisvc", SEL, "1m")
    handlers = 'handler=~"/v1/chat/completions|/v1/completions|/v1/responses"'
    assert handlers in terms.failed
    assert handlers in terms.total


@pytest.mark.parametrize("router", ["kserve-knative", "something-else"])
def test_engine_only_elsewhere(router: str) -> None:
    terms = error_terms(router, SEL, "5m")
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
            assert re.fullmatch(envoy_backend(c, variant).clusters, cluster)


def test_the_plain_form_refuses_to_group_envoy() -> None:
    with pytest.raises(ValueError, match="grouped_sources"):
        error_terms("kserve", SEL, "5m", ("canary", "variant"), envoy=(EnvoyBackend("x"),))


def _clusters(route: str, ns: str, rules: list[dict[str, object]]) -> dict[str, str]:
    """Envoy Gateway's per-backendRef cluster names (``irDestinationSettingName``, v1.8.1) ->
    the backendRef's Service name, for every rule of an HTTPRoute."""
    found = {}
    for r, rule in enumerate(rules):
        refs = rule["backendRefs"]
        assert isinstance(refs, list)
        for b, ref in enumerate(refs):
            found[f"httproute/{ns}/{route}/rule/{r}/backend/{b}"] = ref["name"]
    return found


@pytest.mark.parametrize("cohort", [False, True], ids=["split", "cohort"])
@pytest.mark.parametrize("weight", [0, 30, 100])
def test_envoy_backends_are_the_gateway_api_routes_backend_refs(cohort: bool, weight: int) -> None:
    traffic: dict[str, object] = {"router": "gateway-api", "gateway": GATEWAY}
    if cohort:
        traffic["cohort"] = {"header": "x-tier", "values": ["beta"]}
    c = model_canary("c", "ml", traffic=traffic)
    route = gateway_api.build_httproute(c, weight, mirror=False)
    meta = route["metadata"]
    clusters = _clusters(meta["name"], meta["namespace"], route["spec"]["rules"])
    services = {
        "bf16": names.predictor_service(names.variant_service_name(c.spec.model.name, "bf16")),
        "nf4": names.predictor_service(names.variant_service_name(c.spec.model.name, "nf4")),
    }
    for variant, service in services.items():
        pattern = re.compile(envoy_backend(c, variant).clusters)
        matched = {name for name in clusters if pattern.fullmatch(name)}
        assert matched == {name for name, svc in clusters.items() if svc == service}, variant
        assert matched  # every variant has a cluster in every route of the router


def test_kserve_envoy_backends_are_on_kserves_route() -> None:
    c = model_canary("c", "ml", traffic={"router": "kserve", "gateway": GATEWAY})
    ref = kserve.route_ref(c)
    stable, cand = envoy_backend(c, "bf16"), envoy_backend(c, "nf4")
    prefix = f"httproute/{ref.namespace}/{ref.name}/rule/0/backend/"
    assert re.fullmatch(stable.clusters, prefix + "0")
    assert re.fullmatch(cand.clusters, prefix + "1")
    assert not re.fullmatch(cand.clusters, prefix + "0")
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
        error_terms("gateway-api", SEL, "5m", vllm_version="0.1.0")


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
"""


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


def _ratio_is(router: str, variant: str, expected: float | None) -> bool:
    from controlplane.promql import queries

    terms = error_terms(
        router,
        f'namespace="ml",canary="c",variant="{variant}"',
        "1m",
        envoy=queries.envoy_backends(
            model_canary("c", "ml", traffic={"router": router, "gateway": GATEWAY}), variant
        ),
    )
    return _holds(f"({terms.failed}) / ({terms.total})", expected)


@pytest.mark.binary
def test_gateway_counts_each_failure_once() -> None:
    # 2 engine errors seen twice + 1 streamed one = 3 engine failures; the gateway sees 2 x 500
    # and 1 x 429: 3 failures of 20 requests, never 5 (the sum of both sources), and never the
    # other routes' 500s (53 / 70 if their clusters matched).
    assert _ratio_is("gateway-api", "nf4", 3 / 20)
    assert not _ratio_is("gateway-api", "nf4", 5 / 20)  # the check can fail


@pytest.mark.binary
def test_gateway_sees_a_dead_candidate_the_engine_cannot() -> None:
    assert _ratio_is("gateway-api", "bf16", 1.0)
    assert _ratio_is("kserve-knative", "bf16", None)  # the engine alone has no data at all


@pytest.mark.binary
def test_engine_only_misses_the_429_and_abort_is_no_failure() -> None:
    assert _ratio_is("kserve-knative", "nf4", 3 / 19)  # 3 errors of 15 + 3 + 1 finishes
    assert not _ratio_is("kserve-knative", "nf4", 4 / 19)  # abort counted: the old rule


@pytest.mark.parametrize("by", [(), ("canary", "variant")], ids=["plain", "grouped"])
def test_the_builder_takes_error_rate_from_here_for_a_router(by: tuple[str, ...]) -> None:
    from controlplane.promql.builtins import builtin_expr

    terms = error_terms("istio", SEL, "5m", by)
    assert builtin_expr("error-rate", SEL, "5m", by=by, router="istio") == (
        f"{terms.failed} / {terms.total}"
    )
    if not by:
        envoy = error_terms("kserve", SEL, "5m", envoy=(NF4,))
        assert builtin_expr("error-rate", SEL, "5m", router="kserve", envoy=(NF4,)) == (
            f"{envoy.failed} / {envoy.total}"
        )
