"""Property: the grouped (batched) query's (canary, variant) series equals the per-canary query.

Against a real Prometheus: seeded random vLLM-shaped metrics (the contract's names and buckets,
several engines per variant, every ``finished_reason``, a variant without traffic, a canary in
another namespace) and every HTTP source (Envoy Gateway's per-backendRef cluster stats with
only ``envoy_cluster_name`` on them, for our HTTPRoute and KServe's; Traefik's per-service
``traefik_service_requests_total`` with only ``service`` and ``code``, for our Services and
KServe's, its stable under both its names; Istio's ``istio_requests_total``; ``vllm serve``'s
``http_requests_total``), all independent of the engine's counts, are backfilled once;
hypothesis then draws the built-in, router (and Gateway implementation), quantile, window,
evaluation time and the set of canaries grouped, and every (canary, variant) of the grouped
answer must equal the per-canary query's value (both absent/NaN, or equal to 1e-9). Both sides
are built from the canaries (``queries.metric_query`` and ``grouped_promql.grouped_query``,
``sequential_check.plan`` and ``grouped_promql.sequential_query``), so a path that forgets the
HTTP source (or reads another variant's Envoy cluster or Traefik service) gives a different
number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.canaries import CANDIDATE, MODEL, STABLE, canary_dict, model_canary
from support.prometheus import PrometheusServer, start_shared

from controlplane.analysis.sequential import check as sequential_check
from controlplane.errors import NoData
from controlplane.promql import queries
from controlplane.promql import sequential as sequential_promql
from controlplane.promql.contract import LATENCY_BUILTINS, contract_for
from controlplane.promql.grouped import (
    GroupKey,
    SeqKey,
    canary_keys,
    group_key,
    grouped_query,
    read_grouped,
    read_sequential,
    samples_key,
    sequential_query,
)
from controlplane.providers.prometheus import PrometheusProvider, from_url
from controlplane.spec.models import CheckSpec, MetricSpec

pytestmark = pytest.mark.binary

START = 1_700_000_000.0
STEP = 60.0
POINTS = 181  # three hours
NAMESPACE = "ns"
CANARIES = ("c0", "c1", "c2", "c3", "c4")
VARIANTS = ("stable", "cand")
SILENT = ("c3", "cand")  # no traffic at all: NaN on both sides
CONTRACT = contract_for()
ROUTERS = (
    ("gateway-api", None),
    ("kserve", None),
    ("istio", None),
    ("llmisvc", None),
    ("kserve-knative", None),
    ("gateway-api", "traefik"),
    ("kserve", "traefik"),
)
"""(router, the Gateway's implementation in the spec) of the drawn canaries."""
ENVOY_CODES = ("200", "500", "503", "429", "404")
TRAEFIK_CODES = ("200", "500", "502", "429", "404")
HANDLERS = ("/v1/chat/completions", "/v1/completions", "/v1/models")


# The canaries of these tests: the example with stable ``stable`` and candidate ``cand``; each
# canary ``name`` serves model ``m-<name>``.
BASE = canary_dict(stable={**STABLE, "name": "stable"}, candidate={**CANDIDATE, "name": "cand"})


def _envoy_clusters(namespace: str, canary: str, variant: str) -> list[str]:
    """Envoy Gateway's per-backendRef clusters of ``variant`` (stable: backend 0, candidate: 1)
    on our HTTPRoute (the split rule; the cohort's stable-only rule 1) and on KServe's route."""
    index = VARIANTS.index(variant)
    found = [
        f"httproute/{namespace}/{canary}/rule/0/backend/{index}",
        f"httproute/{namespace}/m-{canary}/rule/0/backend/{index}",
    ]
    if index == 0:
        found.append(f"httproute/{namespace}/{canary}/rule/1/backend/0")
    return found


def _traefik_services(namespace: str, canary: str, variant: str) -> list[str]:
    """Traefik's names of the Services of ``variant`` (``<ns>-<Service>-http-80`` at the
    ``kubernetesgateway`` provider): ours and KServe's candidate ``m-<canary>-<variant>-predictor``;
    KServe's stable predictor before its renaming, ``m-<canary>-predictor``, too."""
    found = [f"m-{canary}-{variant}-predictor"]
    if variant == "stable":
        found.append(f"m-{canary}-predictor")
    return [f"{namespace}-{service}-http-80@kubernetesgateway" for service in found]


def _traffic(router: str, implementation: str | None) -> dict[str, object]:
    gateway = {"name": "gw"} | ({"implementation": implementation} if implementation else {})
    return {"router": router, "gateway": gateway}


def _labels(namespace: str, canary: str, variant: str, engine: int, **extra: str) -> str:
    pairs = {
        "namespace": namespace,
        "canary": canary,
        "variant": variant,
        "model_name": "m",
        "engine": str(engine),
        **extra,
    }
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs.items()) + "}"


def _openmetrics(seed: int) -> Iterator[str]:
    """Random cumulative counters and histograms for every (namespace, canary, variant, engine)."""
    rng = np.random.default_rng(seed)
    stamps = [f" {START + STEP * i:.0f}\n" for i in range(POINTS)]
    targets = [(NAMESPACE, c, v) for c in CANARIES for v in VARIANTS] + [("other", "c0", "cand")]

    def rate_scale(canary: str, variant: str) -> float:
        return 0.0 if (canary, variant) == SILENT else float(rng.uniform(0.5, 20.0))

    def lines(name: str, labels: str, values: Sequence[float]) -> str:
        return "".join(f"{name}{labels} {v!r}{s}" for v, s in zip(values, stamps, strict=True))

    for builtin in LATENCY_BUILTINS:
        hist = CONTRACT.histogram(builtin)
        yield f"# TYPE {hist.name} histogram\n"
        for ns, canary, variant in targets:
            scale = rate_scale(canary, variant)
            for engine in (0, 1):
                # per step: requests spread over the buckets by random weights
                weights = rng.dirichlet(np.full(len(hist.buckets) + 1, 0.3), size=POINTS)
                per_step = rng.poisson(scale * STEP, size=POINTS)[:, None] * weights
                per_step[0] = 0.0
                cumulative = np.cumsum(np.cumsum(per_step, axis=1), axis=0)
                for i, le in enumerate((*map(repr, hist.buckets), "+Inf")):
                    labels = _labels(ns, canary, variant, engine, le=le)
                    yield lines(f"{hist.name}_bucket", labels, cumulative[:, i].tolist())
                labels = _labels(ns, canary, variant, engine)
                yield lines(f"{hist.name}_count", labels, cumulative[:, -1].tolist())
    yield "# TYPE vllm:request_success counter\n"
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for engine in (0, 1):
            for reason in CONTRACT.finished_reasons:
                share = float(rng.uniform(0.0, 0.2)) if reason != "stop" else 1.0
                per_step = rng.poisson(scale * share * STEP, size=POINTS).astype(float)
                per_step[0] = 0.0
                labels = _labels(ns, canary, variant, engine, finished_reason=reason)
                yield lines(CONTRACT.requests, labels, np.cumsum(per_step).tolist())
    yield "# TYPE vllm:generation_tokens counter\n"
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for engine in (0, 1):
            per_step = rng.poisson(scale * 150 * STEP, size=POINTS).astype(float)
            per_step[0] = 0.0
            labels = _labels(ns, canary, variant, engine)
            yield lines("vllm:generation_tokens_total", labels, np.cumsum(per_step).tolist())
    # Every router's HTTP source, independent of the engine's counts.
    yield "# TYPE envoy_cluster_upstream_rq unknown\n"  # Envoy's name has no _total
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for cluster in _envoy_clusters(ns, canary, variant):
            for code in ENVOY_CODES:
                share = float(rng.uniform(0.0, 0.3)) if code != "200" else 1.0
                per_step = rng.poisson(scale * share * STEP, size=POINTS).astype(float)
                per_step[0] = 0.0
                labels = f'{{envoy_cluster_name="{cluster}",envoy_response_code="{code}"}}'
                yield lines("envoy_cluster_upstream_rq", labels, np.cumsum(per_step).tolist())
    yield "# TYPE traefik_service_requests counter\n"
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for service in _traefik_services(ns, canary, variant):
            for code in TRAEFIK_CODES:
                share = float(rng.uniform(0.0, 0.3)) if code != "200" else 1.0
                per_step = rng.poisson(scale * share * STEP, size=POINTS).astype(float)
                per_step[0] = 0.0
                labels = f'{{service="{service}",code="{code}",method="POST",protocol="http"}}'
                yield lines("traefik_service_requests_total", labels, np.cumsum(per_step).tolist())
    yield "# TYPE istio_requests counter\n"
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for reporter in ("destination", "source"):
            for code in ("200", "503", "429", "400"):
                share = float(rng.uniform(0.0, 0.3)) if code != "200" else 1.0
                per_step = rng.poisson(scale * share * STEP, size=POINTS).astype(float)
                per_step[0] = 0.0
                labels = _labels(ns, canary, variant, 0, reporter=reporter, response_code=code)
                yield lines("istio_requests_total", labels, np.cumsum(per_step).tolist())
    yield "# TYPE http_requests counter\n"
    for ns, canary, variant in targets:
        scale = rate_scale(canary, variant)
        for handler in HANDLERS:
            for status in ("2xx", "4xx", "5xx"):
                share = float(rng.uniform(0.0, 0.3)) if status != "2xx" else 1.0
                per_step = rng.poisson(scale * share * STEP, size=POINTS).astype(float)
                per_step[0] = 0.0
                labels = _labels(ns, canary, variant, 0, handler=handler, status=status)
                yield lines("http_requests_total", labels, np.cumsum(per_step).tolist())
    yield "# TYPE vllm:kv_cache_usage_perc gauge\n"
    for ns, canary, variant in targets:
        for engine in (0, 1):
            labels = _labels(ns, canary, variant, engine)
            yield lines("vllm:kv_cache_usage_perc", labels, rng.uniform(0, 1, POINTS).tolist())
    yield "# EOF\n"


def _write(directory: Path) -> list[Path]:
    path = directory / "random.om"
    with path.open("w") as out:
        out.writelines(_openmetrics(seed=20260922))
    return [path]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProvider]:
    server: PrometheusServer = start_shared(
        "grouped-random-routers", START, tmp_path_factory, _write
    )
    try:
        yield PrometheusProvider(from_url(server.url, timeout_s=30))
    finally:
        server.stop()


def _per_canary(provider: PrometheusProvider, query: str, at: float) -> float:
    try:
        return provider.instant(query, at)
    except NoData:
        return math.nan


def _same(grouped: float, single: float) -> bool:
    if math.isnan(grouped) or math.isnan(single):
        return math.isnan(grouped) and math.isnan(single)
    return math.isclose(grouped, single, rel_tol=1e-9, abs_tol=1e-12)


FAMILIES = st.sampled_from(
    [*LATENCY_BUILTINS, "error-rate", "request-rate", "tokens-per-second", "kv-cache-usage"]
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    builtin=FAMILIES,
    routed=st.sampled_from(ROUTERS),
    quantile=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    window=st.sampled_from([60.0, 300.0, 900.0, 3600.0]),
    minute=st.integers(min_value=2, max_value=POINTS - 1),
    grouped=st.sets(st.sampled_from(CANARIES), min_size=1),
    samples=st.booleans(),
)
# every gateway source's error rate at least once (a draw of 40 may miss one)
@example(
    builtin="error-rate",
    routed=("gateway-api", "traefik"),
    quantile=0.95,
    window=300.0,
    minute=120,
    grouped={"c0", "c3", "c4"},
    samples=False,
)
@example(
    builtin="error-rate",
    routed=("kserve", "traefik"),
    quantile=0.95,
    window=900.0,
    minute=150,
    grouped={"c1", "c2", "c3"},
    samples=False,
)
@example(
    builtin="error-rate",
    routed=("kserve", None),
    quantile=0.95,
    window=900.0,
    minute=150,
    grouped={"c1", "c2", "c3"},
    samples=False,
)
def test_grouped_series_equal_the_per_canary_query(
    prometheus: PrometheusProvider,
    builtin: str,
    routed: tuple[str, str | None],
    quantile: float,
    window: float,
    minute: int,
    grouped: set[str],
    samples: bool,
) -> None:
    at = START + STEP * minute
    metric = MetricSpec.model_validate({"name": "m", "builtin": builtin, "quantile": quantile})
    canaries = [
        model_canary(
            name,
            NAMESPACE,
            base=BASE,
            model={**MODEL, "name": f"m-{name}"},
            traffic=_traffic(*routed),
        )
        for name in sorted(grouped)
    ]
    key: GroupKey = (
        samples_key(window, NAMESPACE)
        if samples
        else group_key(metric, window, NAMESPACE, *canary_keys(canaries[0]))
    )
    answer = read_grouped(key, prometheus.vector(grouped_query(key, canaries), at), canaries)
    assert {c for c, _ in answer} <= grouped  # the other namespace and canaries stay out
    for canary in canaries:
        for variant in VARIANTS:
            if samples:
                single = queries.samples_query(queries.selector(canary, variant), window)
            else:
                single = queries.metric_query(canary, metric, variant, window)
            expected = _per_canary(prometheus, single, at)
            got = answer.get((canary.metadata.name, variant), math.nan)
            assert _same(got, expected), (key, canary.metadata.name, variant, got, expected)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    routed=st.sampled_from(ROUTERS),
    step_minutes=st.sampled_from([1, 5, 30, 120]),
    minute=st.integers(min_value=2, max_value=POINTS - 1),
    grouped=st.sets(st.sampled_from(CANARIES), min_size=1),
)
def test_grouped_sequential_error_counts_equal_the_per_canary_counts(
    prometheus: PrometheusProvider,
    routed: tuple[str, str | None],
    step_minutes: int,
    minute: int,
    grouped: set[str],
) -> None:
    """``judge: sequential``'s error counts: ``grouped_promql.sequential_query`` (grouped) against
    ``sequential_check.plan`` (one canary), the failed and the all-requests counts of both
    variants; and in the candidates-only form of an absolute check (``candidate_only``), the
    candidate's, with no engine series of the stable asked."""
    at = START + STEP * minute
    since = at - 60.0 * step_minutes
    canaries = {
        name: model_canary(
            name,
            NAMESPACE,
            base=BASE,
            model={**MODEL, "name": f"m-{name}"},
            traffic=_traffic(*routed),
        )
        for name in sorted(grouped)
    }
    check = CheckSpec.model_validate(
        {"metric": "errors", "above": "10%", "compare": "baseline", "judge": "sequential"}
    )
    source, version = canary_keys(next(iter(canaries.values())))
    # Every other canary's step started a minute earlier: two terms (windows) in one query.
    starts = {name: since - 60.0 * (i % 2) for i, name in enumerate(sorted(grouped))}
    terms: dict[float, set[str]] = {}
    for name, start in starts.items():
        terms.setdefault(sequential_promql.window_seconds(start, at), set()).add(name)
    for kind in ("errors", "requests"):
        key = SeqKey(kind, NAMESPACE, source, version)
        query = sequential_query(key, terms, canaries)
        answer = read_sequential(key, prometheus.vector(query, at), canaries)
        for name, canary in canaries.items():
            plan = sequential_check.plan(canary, check, starts[name], at)
            singles = {
                "cand": plan.cand_events if kind == "errors" else plan.cand_total,
                "stable": plan.stable_events if kind == "errors" else plan.stable_total,
            }
            for variant, single in singles.items():
                assert single is not None
                expected = _per_canary(prometheus, single, at)
                got = answer.get((name, variant), math.nan)
                assert _same(got, expected), (kind, routed, name, variant, got, expected)
        alone = replace(key, candidate_only=True)
        query = sequential_query(alone, terms, canaries)
        assert 'variant=~"cand"' in query
        samples = prometheus.vector(query, at)
        assert not [s for s, _ in samples if s.get("variant") == "stable"]  # engine series
        answer = read_sequential(alone, samples, canaries)
        for name, canary in canaries.items():
            plan = sequential_check.plan(canary, check, starts[name], at)
            single = plan.cand_events if kind == "errors" else plan.cand_total
            assert single is not None
            expected = _per_canary(prometheus, single, at)
            got = answer.get((name, "cand"), math.nan)
            assert _same(got, expected), (kind, routed, name, "alone", got, expected)
