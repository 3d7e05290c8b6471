"""A busy host is not a slow model: the simulated engine and its server time answers by the
engine's :class:`~controlplane.local.engines.base.ModelClock`, which leaves out the host's stalls.

The host here is a fake clock: a sleep advances it by what was asked plus a stall the test plants,
so every figure is exact and nothing depends on this machine's speed.
"""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest

from controlplane.local.engines.base import Generation, HostClock, ModelClock
from controlplane.local.engines.simulated import SimulatedEngine, Speed
from controlplane.local.inject import Faults
from controlplane.local.server import Identity, ModelServer

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
    """A host clock that only moves when slept on; the first non-zero sleep after
    :meth:`stall` wakes that much late (the host did not run the process meanwhile)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._stall = 0.0

    def monotonic(self) -> float:
        return self.t

    def stall(self, seconds: float) -> None:
        self._stall = seconds

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        if seconds > 0:
            self.t += seconds + self._stall
            self._stall = 0.0


def test_late_spans_are_merged_and_now_never_goes_back() -> None:
    host = FakeHost()
    clock = ModelClock(host.monotonic, host.sleep)
    # two sleeps due at 10 and 10.5 both woke at 12 (one stall): counted once, from 10
    clock.woke(10.0, 12.0)
    clock.woke(10.5, 12.0)
    assert clock.stalled == pytest.approx(2.0)
    # a later sleep late from 11 to 13 adds only what lies beyond 12
    clock.woke(11.0, 13.0)
    assert clock.stalled == pytest.approx(3.0)
    clock.woke(20.0, 19.0)  # on time: nothing
    assert clock.stalled == pytest.approx(3.0)
    host.t = 14.0
    assert clock.now() == pytest.approx(11.0)
    clock.woke(13.5, 14.0)  # the stall is found after now() was read: now() holds, never drops
    assert clock.now() == pytest.approx(11.0)


def test_a_host_clock_counts_the_stall() -> None:
    async def main() -> float:
        host = FakeHost()
        clock = HostClock(host.monotonic, host.sleep)
        start = clock.now()
        host.stall(STALL_S)
        await clock.sleep(STEP_S)
        return clock.now() - start

    assert asyncio.run(main()) == pytest.approx(STEP_S + STALL_S)


def test_a_stall_of_the_host_is_not_charged_to_the_simulated_model() -> None:
    prompt = 100

    async def main() -> tuple[float, float, float]:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        engine = SimulatedEngine(SPEED, "test", seed=1, clock=clock)
        await engine.start()
        try:
            start, host_start = clock.now(), host.t
            host.stall(STALL_S)  # the first step (the prefill) wakes 1.5 s late
            gen = Generation("hi", prompt, max_tokens=1, ignore_eos=True)
            async for _chunk in engine.generate(gen):
                pass
            return clock.now() - start, host.t - host_start, clock.stalled
        finally:
            await engine.stop()

    model, host_seconds, stalled = asyncio.run(main())
    first_step = STEP_S + prompt * PREFILL_S
    assert host_seconds == pytest.approx(first_step + STALL_S)
    assert stalled == pytest.approx(STALL_S)
    assert model == pytest.approx(first_step)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}")


def _served_ttft(faults: Faults | None) -> tuple[float, float]:
    """TTFT and end-to-end latency the server exports for one request whose first step was
    stalled by the host for STALL_S."""

    async def main() -> tuple[float, float]:
        host = FakeHost()
        clock = ModelClock(host.monotonic, host.sleep)
        engine = SimulatedEngine(SPEED, "test", seed=1, clock=clock)
        server = ModelServer(WHO, engine, faults, seed=1)
        await server.start()
        try:
            body = {"model": "demo-llm", "prompt": [1] * 50, "max_tokens": 3, "ignore_eos": True}
            async with aiohttp.ClientSession(base_url=server.url) as session:
                host.stall(STALL_S)
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


def test_an_injected_latency_still_counts_on_a_stalled_host() -> None:
    ttft, _ = _served_ttft(Faults(latency_s=0.3))
    # the stall lands on the injected delay's sleep and is left out; the 300 ms are the model's
    assert ttft == pytest.approx(0.3 + STEP_S + 50 * PREFILL_S)
    assert not math.isclose(ttft, 0.3 + STALL_S, rel_tol=0.1)
