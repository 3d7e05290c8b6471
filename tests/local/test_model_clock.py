"""A busy host is neither a slow model nor a busier one: the simulated engine and its server
wait and time answers by the engine's :class:`~controlplane.local.engines.base.ModelClock`, on
which a step or a delay lasts its seconds from when it began, however late the host wakes them.

The host here is a fake clock: a sleep advances it by what was asked plus a stall the test plants
(:class:`FakeHost`), or a scheduler of virtual time whose process runs late after every wait
(:class:`harness.virtual_host.VirtualHost`), so every figure is exact and nothing depends on
this machine's speed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import aiohttp
import pytest

from controlplane.local.engines.base import Chunk, Generation, HostClock, ModelClock
from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.server import Identity, ModelServer
from harness.virtual_host import VirtualHost

STEP_S = 0.01
PREFILL_S = 1e-4
SPEED = Speed(
    decode_s_per_token=STEP_S,
    prefill_s_per_token=PREFILL_S,
    kv_capacity_tokens=1e5,
    overhead_s=0.0,
    jitter_sigma=0.0,
)
STALL_S = 1.5
WHO = Identity("demo-llm", "default", "local-demo", "nf4")


class FakeHost:
    """A host clock that moves when slept on or when a test moves ``t``; after
    :meth:`stall`, the first sleep of at most ``up_to`` seconds wakes that much late (the host
    did not run the process meanwhile)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._stall = 0.0
        self._up_to = 0.0

    def monotonic(self) -> float:
        return self.t

    def stall(self, seconds: float, up_to: float = math.inf) -> None:
        self._stall, self._up_to = seconds, up_to

    async def sleep(self, seconds: float) -> None:
        start = self.t
        await asyncio.sleep(0)  # others run meanwhile, and may move the host's time on
        if seconds > 0:
            self.t = max(self.t, start + seconds)
            if self._stall and seconds <= self._up_to:
                self.t += self._stall
                self._stall = 0.0


def test_a_host_clock_counts_the_stall() -> None:
    async def main() -> tuple[float, float]:
        host = FakeHost()
        clock = HostClock(host.monotonic, host.sleep)
        start = clock.now()
        host.stall(STALL_S)
        ended = await clock.wait(start, STEP_S)
        return ended - start, clock.now() - start

    assert asyncio.run(main()) == pytest.approx((STEP_S + STALL_S, STEP_S + STALL_S))


def test_a_model_wait_ends_at_its_deadline_however_late_the_host_wakes_it() -> None:
    async def main() -> tuple[float, float, float]:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        start = clock.now()
        host.stall(STALL_S)
        ended = await clock.wait(start, 0.3)
        # a wait whose deadline has passed returns at once with it (a step caught up)
        again = await clock.wait(ended, STEP_S)
        return ended - start, again - start, host.t - start

    ended, again, host_seconds = asyncio.run(main())
    assert ended == pytest.approx(0.3)
    assert again == pytest.approx(0.3 + STEP_S)
    assert host_seconds == pytest.approx(0.3 + STALL_S)


def test_a_stall_during_the_overhead_of_an_idle_engine_is_left_out() -> None:
    """An idle engine has no step under way: the request's own overhead sleep finds the stall."""

    async def main() -> float:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        speed = Speed(
            decode_s_per_token=STEP_S,
            prefill_s_per_token=PREFILL_S,
            kv_capacity_tokens=1e5,
            overhead_s=0.015,
            jitter_sigma=0.0,
        )
        engine = SimulatedEngine(speed, "test", seed=1, clock=clock)
        await engine.start()
        try:
            start = clock.now()
            host.stall(STALL_S, up_to=0.015)  # lands on the overhead, before the engine
            gen = Generation("hi", 100, max_tokens=1, ignore_eos=True)
            async for chunk in engine.generate(gen):
                assert chunk.at is not None
                return chunk.at - start
            raise AssertionError("no chunk")
        finally:
            await engine.stop()

    assert asyncio.run(main()) == pytest.approx(0.015 + STEP_S + 100 * PREFILL_S)


def test_a_stall_of_the_host_is_not_charged_to_the_simulated_model() -> None:
    prompt = 100

    async def main() -> tuple[list[float], float]:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        engine = SimulatedEngine(SPEED, "test", seed=1, clock=clock)
        await engine.start()
        try:
            start, host_start = clock.now(), host.t
            host.stall(STALL_S)  # the first step (the prefill) wakes 1.5 s late
            gen = Generation("hi", prompt, max_tokens=3, ignore_eos=True)
            stamps = [chunk.at - start async for chunk in engine.generate(gen) if chunk.at]
            return stamps, host.t - host_start
        finally:
            await engine.stop()

    stamps, host_seconds = asyncio.run(main())
    first_step = STEP_S + prompt * PREFILL_S
    assert host_seconds == pytest.approx(first_step + STALL_S)  # the host did stall
    # the steps due meanwhile were caught up: each token when the model made it
    assert stamps[0] == pytest.approx(first_step)
    assert stamps[-1] == pytest.approx(first_step + 2 * STEP_S)


def _ttfts_under_open_loop(late: float) -> list[float]:
    """Times to first token, on the engine's clock, of requests sent every ``GAP_S`` of the
    host's time (open loop, as ``up --load`` sends) to an engine that serves one at a time, on a
    host that runs the process ``late`` seconds after each of its waits."""
    gap, tokens, requests = 0.08, 5, 20
    speed = Speed(
        decode_s_per_token=STEP_S,
        prefill_s_per_token=0.0,
        kv_capacity_tokens=1e5,
        overhead_s=0.0,
        jitter_sigma=0.0,
        max_num_seqs=1,
    )

    async def main() -> list[float]:
        host = VirtualHost(late)
        clock = ModelClock(host.monotonic, host.sleep)
        engine = SimulatedEngine(speed, "test", seed=1, clock=clock)
        ttfts: list[float] = []

        async def one() -> None:
            start = clock.now()
            gen = Generation("hi", 1, max_tokens=tokens, ignore_eos=True)
            stamps = [chunk.at async for chunk in engine.generate(gen) if chunk.at is not None]
            ttfts.append(stamps[0] - start)  # every token read: the request runs to its end

        async def users() -> None:
            sent = []
            for i in range(requests):
                await host.sleep(gap * i - host.t)  # open loop: on the host's schedule
                sent.append(asyncio.create_task(one()))
            await asyncio.gather(*sent)

        await engine.start()
        try:
            done = asyncio.ensure_future(users())
            await host.run(done)
            await done
        finally:
            await engine.stop()
        return ttfts

    return asyncio.run(asyncio.wait_for(main(), 10))


def test_a_busy_host_does_not_load_the_simulated_gpu_more() -> None:
    """Each request takes 5 steps of 10 ms and one comes every 80 ms: the model never queues.
    A host that runs the process 10 ms late after every wait (half of a busy engine's time)
    must not change that: a model clock that left the host's stalls out fell behind the
    host's, so the same arrivals came faster than the model served them and queued."""
    quiet = _ttfts_under_open_loop(late=0.0)
    busy = _ttfts_under_open_loop(late=STEP_S)
    assert quiet == pytest.approx([STEP_S] * 20)
    assert busy == pytest.approx(quiet)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}")


class PreemptedServer(SimulatedEngine):
    """The host takes the CPU from the server after each chunk the engine produces, before the
    server reads it (while the engine sleeps its next step): the stall lands in the server's
    work, not in an engine sleep that is already late."""

    def __init__(self, host: FakeHost) -> None:
        super().__init__(SPEED, "test", seed=1, clock=ModelClock(host.monotonic, host.sleep))
        self.host = host

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        async for chunk in super().generate(request):
            self.host.t += STALL_S
            yield chunk


def _served_ttft(faults: Faults | None, preempt: bool = False) -> tuple[float, float]:
    """TTFT and end-to-end latency the server exports for one request of three tokens whose
    first step was stalled by the host for STALL_S (``preempt``: the server is stalled before it
    reads each chunk instead)."""

    async def main() -> tuple[float, float]:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        engine = (
            PreemptedServer(host)
            if preempt
            else SimulatedEngine(SPEED, "test", seed=1, clock=clock)
        )
        server = ModelServer(WHO, engine, faults, seed=1)
        await server.start()
        try:
            body = {"model": "demo-llm", "prompt": [1] * 50, "max_tokens": 3, "ignore_eos": True}
            async with aiohttp.ClientSession(base_url=server.url) as session:
                if not preempt:
                    host.stall(STALL_S, up_to=STEP_S * 2)  # on the first step, not the delay
                async with session.post("/v1/completions", json=body) as r:
                    assert r.status == 200
                async with session.get("/metrics") as r:
                    text = await r.text()
        finally:
            await server.stop()
        return (
            _metric(text, "vllm:time_to_first_token_seconds_sum"),
            _metric(text, "vllm:e2e_request_latency_seconds_sum"),
        )

    return asyncio.run(asyncio.wait_for(main(), 10))


def test_the_server_exports_the_models_latency_not_the_hosts() -> None:
    ttft, e2e = _served_ttft(None)
    first_step = STEP_S + 50 * PREFILL_S
    assert ttft == pytest.approx(first_step)
    assert e2e == pytest.approx(first_step + 2 * STEP_S)


def test_a_server_stalled_before_it_reads_a_token_times_it_when_it_was_made() -> None:
    ttft, e2e = _served_ttft(None, preempt=True)
    first_step = STEP_S + 50 * PREFILL_S
    assert ttft == pytest.approx(first_step)
    assert e2e == pytest.approx(first_step + 2 * STEP_S)


def test_an_injected_latency_still_counts_on_a_stalled_host() -> None:
    ttft, _ = _served_ttft(Faults(latency_s=0.3))
    # the stall lands on the first step and is left out; the 300 ms before it count in full
    assert ttft == pytest.approx(0.3 + STEP_S + 50 * PREFILL_S)
