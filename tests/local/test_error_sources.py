"""The local stack's error rate sees real failures, through a real Prometheus.

Two local model servers (simulated engine) behind the local router, scraped by the real
``prometheus`` binary with the local stack's own scrape configuration (:func:`scrape_config`:
the router's Envoy cluster stats as Envoy exports them, no per-variant relabeling). The canary's
own ``error-rate`` query (:func:`controlplane.promql.queries.metric_query`, which takes the
router and, for Envoy, each variant's clusters from the canary) must see an injected HTTP 500
(which vLLM never counts as a finish: the engine-only query is blind to it) and a killed candidate
server (the engine has nothing left to say; the gateway answers 503).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from support.canaries import model_canary
from support.local import demo

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.prometheus import PrometheusServer, start_prometheus_with_config
from controlplane.local.router import Backend, LocalRouter
from controlplane.local.server import Identity, ModelServer
from controlplane.local.stack import scrape_config
from controlplane.promql import queries
from controlplane.routing.memory import MemoryRouter
from controlplane.spec.models import MetricSpec

pytestmark = [pytest.mark.binary, pytest.mark.slow]

CANARY = demo()
DEMO = CANARY.model_dump(by_alias=True, exclude_none=True, mode="json")
FAST = Speed(
    decode_s_per_token=0.0005, prefill_s_per_token=1e-6, kv_capacity_tokens=1e5, overhead_s=0.001
)
SCRAPE_S = 0.5
WINDOW_S = 4.0
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def _query(url: str, expr: str) -> float | None:
    """The single value of ``expr`` now, or None when it has no sample."""
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as response:
        result = json.load(response)["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


ERRORS = MetricSpec(name="errors", builtin="error-rate")


def _ratio(url: str, router: str, variant: str) -> float | None:
    """The error ratio of ``variant`` of the demo canary on ``router``."""
    on = model_canary(base=DEMO, traffic={"router": router, "gateway": {"name": "gw"}})
    return _query(url, queries.metric_query(on, ERRORS, variant, WINDOW_S))


async def _load(url: str, seconds: float, rps: float = 60.0) -> list[int]:
    statuses: list[int] = []
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.post(url + "/v1/chat/completions", json=CHAT) as r:
                await r.read()
                statuses.append(r.status)

        tasks = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / rps)
        await asyncio.gather(*tasks)
    return statuses


def test_error_rate_sees_an_injected_500_and_a_killed_candidate() -> None:
    stable_name, candidate_name = CANARY.spec.stable.name, CANARY.spec.candidate.name

    async def main(tmp: Path) -> None:
        servers: dict[str, ModelServer] = {}
        for role, name, faults in (
            ("stable", stable_name, Faults()),
            ("candidate", candidate_name, Faults(error_fraction=0.5)),
        ):
            who = Identity(CANARY.spec.model.name, "default", CANARY.metadata.name, name)
            servers[role] = ModelServer(who, SimulatedEngine(FAST, name, seed=1), faults, seed=1)
            await servers[role].start()
        memory = MemoryRouter(check_capabilities=False)
        memory.set_weights(CANARY, 50, False)
        router = LocalRouter(
            CANARY.metadata.name,
            CANARY.metadata.namespace,
            Backend(stable_name, servers["stable"].url),
            Backend(candidate_name, servers["candidate"].url),
            lambda: memory.get_weights(CANARY),
            seed=1,
        )
        await router.start()
        prometheus: PrometheusServer | None = None
        try:
            config = scrape_config(CANARY, servers, router.port, SCRAPE_S)
            prometheus = await asyncio.to_thread(start_prometheus_with_config, tmp / "tsdb", config)
            url = prometheus.url
            await _load(router.url, 6.0)
            await asyncio.sleep(3 * SCRAPE_S)
            # Envoy's stats arrive as Envoy exports them: by cluster name, no variant label
            assert await asyncio.to_thread(_query, url, "count(envoy_cluster_upstream_rq)")
            unlabelled = 'count(envoy_cluster_upstream_rq{variant!=""})'
            assert await asyncio.to_thread(_query, url, unlabelled) is None
            # an injected 500: seen by the gateway and by vLLM's HTTP counter, not as a finish
            for router_kind in ("gateway-api", "llmisvc"):
                seen = await asyncio.to_thread(_ratio, url, router_kind, candidate_name)
                assert seen is not None, router_kind
                assert 0.3 <= seen <= 0.7, (router_kind, seen)
                assert await asyncio.to_thread(_ratio, url, router_kind, stable_name) == 0
            engine_only = await asyncio.to_thread(_ratio, url, "kserve-knative", candidate_name)
            assert engine_only == 0  # what the finish-reason query alone sees: nothing

            # the candidate dies: the gateway's 503s, where the engine has no data at all
            await servers["candidate"].stop()
            statuses = await _load(router.url, 6.0)
            assert 503 in statuses
            await asyncio.sleep(3 * SCRAPE_S)
            dead = await asyncio.to_thread(_ratio, url, "gateway-api", candidate_name)
            assert dead is not None
            assert dead > 0.95
            assert await asyncio.to_thread(_ratio, url, "kserve-knative", candidate_name) is None
            assert await asyncio.to_thread(_ratio, url, "gateway-api", stable_name) == 0
        finally:
            await router.stop()
            for server in servers.values():
                await server.stop()
            if prometheus is not None:
                await asyncio.to_thread(prometheus.stop)

    with tempfile.TemporaryDirectory(prefix="error-sources-") as tmp:
        asyncio.run(main(Path(tmp)))
