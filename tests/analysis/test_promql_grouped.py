"""Property: the grouped (batched) query's (canary, variant) series equals the per-canary query.

Against a real Prometheus: seeded random vLLM-shaped metrics (the contract's names and buckets,
several engines per variant, every ``finished_reason``, a variant without traffic, a canary in
another namespace) are backfilled once; hypothesis then draws the built-in, quantile, window,
evaluation time and the set of canaries grouped, and every (canary, variant) of the grouped
answer must equal the per-canary query's value (both absent/NaN, or equal to 1e-9).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.prometheus import PrometheusServer, start_shared

from controlplane.analysis import queries
from controlplane.analysis.metric_contract import LATENCY_BUILTINS, contract_for
from controlplane.analysis.providers.prometheus import PrometheusProvider, from_url
from controlplane.controller.batch import GroupKey, group_key, grouped_query, samples_key
from controlplane.errors import NoData
from controlplane.spec.models import MetricSpec

pytestmark = pytest.mark.binary

START = 1_700_000_000.0
STEP = 60.0
POINTS = 181  # three hours
NAMESPACE = "ns"
CANARIES = ("c0", "c1", "c2", "c3", "c4")
VARIANTS = ("stable", "cand")
SILENT = ("c3", "cand")  # no traffic at all: NaN on both sides
CONTRACT = contract_for()


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
    server: PrometheusServer = start_shared("grouped-random", START, tmp_path_factory, _write)
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
    quantile=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    window=st.sampled_from([60.0, 300.0, 900.0, 3600.0]),
    minute=st.integers(min_value=2, max_value=POINTS - 1),
    grouped=st.sets(st.sampled_from(CANARIES), min_size=1),
    samples=st.booleans(),
)
def test_grouped_series_equal_the_per_canary_query(
    prometheus: PrometheusProvider,
    builtin: str,
    quantile: float,
    window: float,
    minute: int,
    grouped: set[str],
    samples: bool,
) -> None:
    at = START + STEP * minute
    metric = MetricSpec.model_validate({"name": "m", "builtin": builtin, "quantile": quantile})
    key: GroupKey = (
        samples_key(window, NAMESPACE) if samples else group_key(metric, window, NAMESPACE)
    )
    answer = {
        (labels["canary"], labels["variant"]): value
        for labels, value in prometheus.vector(grouped_query(key, sorted(grouped)), at)
    }
    assert {c for c, _ in answer} <= grouped  # the other namespace and canaries stay out
    for canary in sorted(grouped):
        for variant in VARIANTS:
            sel = f'namespace="{NAMESPACE}",canary="{canary}",variant="{variant}"'
            if samples:
                single = queries.samples_query(sel, window)
            else:
                single = queries.builtin_query(builtin, sel, window, quantile)  # type: ignore[arg-type]
            expected = _per_canary(prometheus, single, at)
            got = answer.get((canary, variant), math.nan)
            assert _same(got, expected), (key, canary, variant, got, expected)
