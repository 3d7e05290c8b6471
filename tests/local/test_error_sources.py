"""The local stack's error rate sees real failures, through a real Prometheus.

Two local model servers (simulated engine) behind the local router, scraped by the real
``prometheus`` binary with the local stack's own scrape configuration (:func:`scrape_config`:
the router's Envoy cluster stats as Envoy exports them, no per-variant relabeling). The canary's
own ``error-rate`` query (:func:`controlplane.promql.queries.metric_query`, which takes the
router and, for Envoy, each variant's clusters from the canary) must see an injected HTTP 500
(which vLLM never counts as a finish: the engine-only query is blind to it) and a killed candidate
server (the engine has nothing left to say; the gateway answers 503).

No figure here depends on how busy the machine is. Each ratio is read over exactly one load of
requests: the query's window runs from a scrape of the target taken before the load (the
target's counters as the test's own servers counted them) to one taken after it (every request
counted), and it is evaluated at that scrape, so it holds those requests and no others, however
long the load or Prometheus' scrapes took. Waits poll for those scrapes, with a 60 s bound
against a hang only. The injected 500s' share is then a binomial proportion over a known number
of requests, and its bound is derived from that number (:func:`binomial_bound`).
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from support.canaries import model_canary
from support.local import demo

from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.prometheus import (
    PrometheusServer,
    scrape_config,
    start_prometheus_with_config,
)
from controlplane.local.router import Backend, LocalRouter
from controlplane.local.server import VARIANT_HEADER, Identity, ModelServer
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
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
REQUESTS = 400
"""Requests of each load through the router: about 200 reach the candidate at 50 %."""
HANG_S = 60.0
"""How long a wait for a scrape may take: a bound on a hang, never part of what is asserted."""
EDGE_S = 0.001
"""How far before the scrape taken before a load a window starts: 1 ms (Prometheus' timestamps
are whole milliseconds), so that scrape is the window's first sample and the one before it
(``SCRAPE_S`` earlier) is out of it."""
FALSE_FAILURE = 1e-6
"""The chance that a correct error rate falls outside :func:`binomial_bound`'s bounds."""


def _query(url: str, expr: str, at: float | None = None) -> float | None:
    """The single value of ``expr`` at ``at`` (None: now), or None when it has no sample."""
    asked = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    q = urllib.parse.urlencode(asked)
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=5) as response:
        result = json.load(response)["data"]["result"]
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None


ERRORS = MetricSpec(name="errors", builtin="error-rate")


def _ratio(url: str, router: str, variant: str, span: tuple[float, float]) -> float | None:
    """The error ratio of ``variant`` of the demo canary on ``router``, over the window from
    ``span[0]`` to ``span[1]`` (:func:`_span`), evaluated at its end."""
    on = model_canary(base=DEMO, traffic={"router": router, "gateway": {"name": "gw"}})
    start, end = span
    expr = queries.metric_query(on, ERRORS, variant, end - start)
    return _query(url, expr, at=end)


def _scraped(url: str, selector: str, count: Callable[[], float], after: float = 0.0) -> float:
    """Poll until Prometheus' newest scrape of ``selector``'s series (one target) sums to
    ``count()`` (what the target itself counted) and was taken after ``after``; that scrape's
    timestamp. Called while no request is on its way, so every later scrape counts the same."""
    deadline = time.monotonic() + HANG_S
    while True:
        total = _query(url, f"sum({selector})")
        stamp = _query(url, f"max(timestamp({selector}))")
        if total == count() and stamp is not None and stamp > after:
            return stamp
        assert time.monotonic() < deadline, (selector, total, count(), stamp, after)
        time.sleep(SCRAPE_S / 5)


def _span(before: float, after: float) -> tuple[float, float]:
    """The window from just before the scrape ``before`` to the scrape ``after`` (both of one
    target): the first and last samples of each of that target's series are those two scrapes,
    so a ratio of two of them is their increases' ratio (Prometheus extrapolates both alike)."""
    return before - EDGE_S, after


def binomial_bound(n: int, p: float = 0.5, false_failure: float = FALSE_FAILURE) -> float:
    """How far the share of ``n`` independent draws of probability ``p`` strays from ``p`` with
    probability at most ``false_failure``: Hoeffding's two-sided bound
    ``P(|X/n - p| >= d) <= 2 exp(-2 n d^2)``, solved for ``d``. For ``n = 200``, 0.19."""
    return math.sqrt(math.log(2 / false_failure) / (2 * n))


async def _load(url: str, count: int, rps: float = 60.0) -> list[tuple[int, str | None]]:
    """``count`` chat completions through the router at about ``rps``; every answer's status
    and the variant that served it, once all have come back."""
    answers: list[tuple[int, str | None]] = []
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            async with session.post(url + "/v1/chat/completions", json=CHAT) as r:
                await r.read()
                answers.append((r.status, r.headers.get(VARIANT_HEADER)))

        tasks = []
        for _ in range(count):
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / rps)
        await asyncio.gather(*tasks)
    return answers


def test_binomial_bound() -> None:
    assert binomial_bound(200) == pytest.approx(0.19, abs=0.005)
    assert binomial_bound(800) == pytest.approx(binomial_bound(200) / 2)
    d = binomial_bound(200, false_failure=0.01)
    assert 2 * math.exp(-2 * 200 * d * d) == pytest.approx(0.01)


def test_error_rate_sees_an_injected_500_and_a_killed_candidate() -> None:
    stable_name, candidate_name = CANARY.spec.stable.name, CANARY.spec.candidate.name
    router_rq = "envoy_cluster_upstream_rq"
    candidate_http = (
        f'http_requests_total{{variant="{candidate_name}",handler="/v1/chat/completions"}}'
    )

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
            sent = 0  # requests through the router

            def routed() -> float:
                return sent

            def served() -> float:
                return servers["candidate"].requests

            # until the candidate has answered a 200 and an injected 500 and the stable a 200:
            # every series the queries read exists before the load they are read over
            primed: set[tuple[int, str | None]] = set()
            want = {(200, stable_name), (200, candidate_name), (500, candidate_name)}
            for _ in range(100):  # a bound on a hang: at 50 % and 50 %, a round nearly always does
                if want <= primed:
                    break
                primed.update(await _load(router.url, 10))
                sent += 10
            assert want <= primed, primed
            router_before = await asyncio.to_thread(_scraped, url, router_rq, routed)
            server_before = await asyncio.to_thread(_scraped, url, candidate_http, served)
            asked_before = servers["candidate"].requests
            answers = await _load(router.url, REQUESTS)
            sent += REQUESTS
            n = servers["candidate"].requests - asked_before
            router_after = await asyncio.to_thread(_scraped, url, router_rq, routed)
            server_after = await asyncio.to_thread(_scraped, url, candidate_http, served)
            spans = {
                "gateway-api": _span(router_before, router_after),  # the router's Envoy stats
                "llmisvc": _span(server_before, server_after),  # the candidate's own counter
            }
            assert n == sum(1 for _, variant in answers if variant == candidate_name)
            # Envoy's stats arrive as Envoy exports them: by cluster name, no variant label
            assert await asyncio.to_thread(_query, url, "count(envoy_cluster_upstream_rq)")
            unlabelled = 'count(envoy_cluster_upstream_rq{variant!=""})'
            assert await asyncio.to_thread(_query, url, unlabelled) is None
            # an injected 500: seen by the gateway and by vLLM's HTTP counter, not as a finish.
            # Each of the candidate's n requests failed with probability 0.5 (error_fraction):
            # the share seen is within binomial_bound(n) of it but once in 10^6 runs (n is
            # about 200: 0.31 to 0.69); a query blind to the 500s reads 0, one that counts
            # every request as failed 1, one that mixes in the stable's requests about 0.25
            bound = binomial_bound(n)
            assert bound < 0.25, n  # enough requests for the bound to tell 0.5 from 0 and 1
            for router_kind, span in spans.items():
                seen = await asyncio.to_thread(_ratio, url, router_kind, candidate_name, span)
                assert seen is not None, router_kind
                assert abs(seen - 0.5) < bound, (router_kind, seen, n, bound)
                stable = await asyncio.to_thread(_ratio, url, router_kind, stable_name, span)
                assert stable == 0, (router_kind, stable)
            engine_only = await asyncio.to_thread(
                _ratio, url, "kserve-knative", candidate_name, spans["llmisvc"]
            )
            assert engine_only == 0  # what the finish-reason query alone sees: nothing

            # the candidate dies: the gateway's 503s, where the engine has no data at all
            await servers["candidate"].stop()
            down = f'up{{job="local-variants",variant="{candidate_name}"}}'
            gone = await asyncio.to_thread(_scraped, url, down, lambda: 0.0)
            # the window starts after the candidate's last successful scrape
            router_before = await asyncio.to_thread(_scraped, url, router_rq, routed, gone)
            statuses = [status for status, _ in await _load(router.url, REQUESTS)]
            sent += REQUESTS
            assert 503 in statuses
            router_after = await asyncio.to_thread(_scraped, url, router_rq, routed)
            span = _span(router_before, router_after)
            dead = await asyncio.to_thread(_ratio, url, "gateway-api", candidate_name, span)
            assert dead == pytest.approx(1.0)  # every request it was sent failed
            engine = await asyncio.to_thread(_ratio, url, "kserve-knative", candidate_name, span)
            assert engine is None
            assert await asyncio.to_thread(_ratio, url, "gateway-api", stable_name, span) == 0
        finally:
            await router.stop()
            for server in servers.values():
                await server.stop()
            if prometheus is not None:
                await asyncio.to_thread(prometheus.stop)

    with tempfile.TemporaryDirectory(prefix="error-sources-") as tmp:
        asyncio.run(main(Path(tmp)))
