"""The local router: the observed split matches the weights, cohort and mirror rules, and
changing weights under load loses no request. Real HTTP servers on loopback on both sides."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from support.local import Backend, demo

from controlplane.local.router import Backend as Target
from controlplane.local.router import LocalRouter
from controlplane.local.server import VARIANT_HEADER
from controlplane.routing.memory import MemoryRouter
from controlplane.spec.models import CohortSpec, SessionSpec

CANARY = demo()


def with_router(
    test: Callable[[LocalRouter, MemoryRouter, Backend, Backend], Awaitable[None]],
    *,
    cohort: CohortSpec | None = None,
    keep: SessionSpec | None = None,
    delay: float = 0.0,
    chunks: int = 1,
    seed: int = 7,
) -> None:
    async def main() -> None:
        stable, candidate = Backend("bf16", delay, chunks), Backend("nf4", delay, chunks)
        await stable.start()
        await candidate.start()
        memory = MemoryRouter(check_capabilities=False)
        memory.set_weights(CANARY, 0, False)
        router = LocalRouter(
            "local-demo",
            "default",
            Target("bf16", stable.url),
            Target("nf4", candidate.url),
            lambda: memory.get_weights(CANARY),
            cohort=cohort,
            seed=seed,
            session=keep,
        )
        await router.start()
        try:
            await test(router, memory, stable, candidate)
        finally:
            await router.stop()
            await stable.stop()
            await candidate.stop()

    asyncio.run(main())


async def send(
    session: aiohttp.ClientSession, url: str, n: int, headers: dict[str, str] | None = None
) -> list[tuple[int, str, str]]:
    """``n`` requests, 50 at a time: (status, variant header, body) each."""
    gate = asyncio.Semaphore(50)

    async def one() -> tuple[int, str, str]:
        async with (
            gate,
            session.post(url + "/v1/chat/completions", data=b"{}", headers=headers) as r,
        ):
            return r.status, r.headers.get(VARIANT_HEADER, ""), await r.text()

    return await asyncio.gather(*(one() for _ in range(n)))


@pytest.mark.parametrize("weight", [0, 5, 30, 75, 100], ids=lambda w: f"weight-{w}")
def test_split_matches_weights(weight: int) -> None:
    n = 600

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        memory.set_weights(CANARY, weight, False)
        async with aiohttp.ClientSession() as session:
            results = await send(session, router.url, n)
        assert all(status == 200 for status, _, _ in results)
        to_candidate = sum(1 for _, variant, _ in results if variant == "nf4")
        assert to_candidate == c.received
        assert n - to_candidate == s.received
        p = weight / 100
        tolerance = 4.5 * math.sqrt(n * p * (1 - p))  # exact at 0 and 100
        assert abs(to_candidate - n * p) <= tolerance
        async with aiohttp.ClientSession() as session, session.get(router.url + "/metrics") as r:
            text = await r.text()
        gauge = 'controlplane_router_candidate_weight{canary="local-demo",namespace="default"}'
        assert f"{gauge} {float(weight)}" in text

    with_router(check)


def test_cohort_only_reaches_candidate() -> None:
    cohort = CohortSpec(header="x-customer-tier", values=["tier_1"])

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        memory.set_weights(CANARY, 100, False)
        async with aiohttp.ClientSession() as session:
            outside = await send(session, router.url, 50, {"x-customer-tier": "tier_2"})
            missing = await send(session, router.url, 50)
            inside = await send(session, router.url, 50, {"x-customer-tier": "tier_1"})
        assert {v for _, v, _ in outside + missing} == {"bf16"}
        assert {v for _, v, _ in inside} == {"nf4"}

    with_router(check, cohort=cohort)


def test_a_session_stays_on_its_variant_as_the_weight_grows() -> None:
    """Sessions by ``x-session-id``: each request of a session goes to the variant of its bucket
    at that weight; raising the weight only moves sessions to the candidate; keyless requests
    are split by the weights."""
    keys = [f"conversation-{i:04x}" for i in range(0, 256, 5)]

    async def seen(router: LocalRouter) -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        async with aiohttp.ClientSession() as session:
            for key in keys:
                answers = await send(session, router.url, 4, {"x-session-id": key})
                got[key] = {v for _, v, _ in answers}
        return got

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        before: dict[str, set[str]] = {}
        for weight in (0, 25, 75, 100):
            memory.set_weights(CANARY, weight, False)
            now = await seen(router)
            assert all(len(v) == 1 for v in now.values()), now  # no session on two variants
            cutoff = round(weight * 256 / 100)
            for key, variants in now.items():
                want = "nf4" if int(key[-2:], 16) < cutoff else "bf16"
                assert variants == {want}, (weight, key, variants)
                if before.get(key) == {"nf4"}:
                    assert variants == {"nf4"}  # never back to the stable while the weight grows
            before = now
        memory.set_weights(CANARY, 50, False)
        async with aiohttp.ClientSession() as session:
            keyless = await send(session, router.url, 200)
        assert {v for _, v, _ in keyless} == {"bf16", "nf4"}

    with_router(check, keep=SessionSpec(header="x-session-id"))


def test_shadow_mirrors_and_discards() -> None:
    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        memory.set_weights(CANARY, 0, True)
        async with aiohttp.ClientSession() as session:
            results = await send(session, router.url, 100)
        for _ in range(100):
            if c.received == 100:
                break
            await asyncio.sleep(0.02)
        assert {(status, variant) for status, variant, _ in results} == {(200, "bf16")}
        assert all(body.startswith("bf16:") for _, _, body in results)  # never the shadow's
        assert s.received == 100
        assert c.received == 100
        assert router.mirrored[200] == 100

    with_router(check)


def test_weight_changes_under_load_lose_no_request() -> None:
    n = 800

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        done = asyncio.Event()

        async def flip() -> int:
            changes = 0
            while not done.is_set():
                memory.set_weights(CANARY, (0, 10, 50, 90, 100)[changes % 5], False)
                changes += 1
                await asyncio.sleep(0.005)
            return changes

        flipper = asyncio.create_task(flip())
        async with aiohttp.ClientSession() as session:
            results = await send(session, router.url, n)
        done.set()
        changes = await flipper
        assert changes > 50
        assert [status for status, _, _ in results] == [200] * n
        # every answer arrived whole (3 streamed chunks) from the variant it names
        for _, variant, body in results:
            assert body == "".join(f"{variant}:{i};" for i in range(3))
        assert s.received + c.received == n
        assert s.received > 0
        assert c.received > 0
        assert router.served["bf16"] + router.served["nf4"] == n

    with_router(check, delay=0.03, chunks=3)


def test_unreachable_backend_is_a_503_charged_to_its_cluster() -> None:
    """As Envoy: an upstream that cannot be reached is answered 503 and charged to that
    backend's cluster (``upstream_rq_503``) but not to ``upstream_rq_total`` (no upstream
    request was attached to a connection); the healthy backend's cluster has its 200s."""

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        async with aiohttp.ClientSession() as session:
            await send(session, router.url, 2)  # weight 0: stable
            await c.stop()
            memory.set_weights(CANARY, 100, False)
            results = await send(session, router.url, 3)
            async with session.get(router.url + "/metrics") as r:
                text = await r.text()
        assert {(status, variant) for status, variant, _ in results} == {(503, "nf4")}
        stable = "httproute/default/local-demo/rule/0/backend/0"
        candidate = "httproute/default/local-demo/rule/0/backend/1"
        lines = set(text.splitlines())
        assert "# TYPE envoy_cluster_upstream_rq counter" in lines
        code = 'envoy_cluster_upstream_rq{{envoy_response_code="{}",envoy_cluster_name="{}"}} {}'
        assert code.format(503, candidate, 3) in lines
        assert code.format(200, stable, 2) in lines
        xx = f'envoy_response_code_class="5",envoy_cluster_name="{candidate}"'
        assert f"envoy_cluster_upstream_rq_xx{{{xx}}} 3" in lines
        assert f'envoy_cluster_upstream_rq_total{{envoy_cluster_name="{stable}"}} 2' in lines
        assert f'envoy_cluster_name="{candidate}"}} ' not in text.split("rq_total", 1)[1]

    with_router(check)


def test_cohort_rest_goes_through_the_second_rule() -> None:
    """With a cohort, Envoy Gateway's second rule (stable only) is its own cluster."""

    async def check(router: LocalRouter, memory: MemoryRouter, s: Backend, c: Backend) -> None:
        memory.set_weights(CANARY, 100, False)
        async with aiohttp.ClientSession() as session:
            await send(session, router.url, 2, headers={"x-tier": "beta"})
            await send(session, router.url, 3)
            async with session.get(router.url + "/metrics") as r:
                text = await r.text()
        rq = 'envoy_cluster_upstream_rq{{envoy_response_code="200",envoy_cluster_name="{}"}} {}'
        assert rq.format("httproute/default/local-demo/rule/0/backend/1", 2) in text
        assert rq.format("httproute/default/local-demo/rule/1/backend/0", 3) in text

    with_router(check, cohort=CohortSpec(header="x-tier", values=["beta"]))
