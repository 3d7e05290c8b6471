"""The simulated engine schedules as vLLM 0.24.0 does: at most ``max_num_seqs`` running, a FIFO
waiting queue, admission gated by free KV blocks, preemption when the cache is full, and the
batch limits of ``vllm serve`` (flags, else its defaults for the GPU's memory).

Every speed here is tiny (milliseconds per step, no jitter) so the file runs in a few seconds.
Times are the engine's own stamps (``Chunk.at``, on its model clock: a step ends its seconds
after the one before, however late a busy host runs it), so they are asserted to the step, with
no allowance for the machine's load; the only bound on the host's seconds is :func:`run`'s, and
it only stops a hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import aiohttp
import pytest

from controlplane.errors import ProfileError
from controlplane.local.engines.base import Chunk, EngineError, Generation
from controlplane.local.engines.simulated import (
    BLOCK_SIZE,
    SimulatedEngine,
    Speed,
    scheduler_limits,
    speed_for,
)
from controlplane.local.server import Identity, ModelServer
from controlplane.profiles.catalog import load_catalog
from controlplane.spec.models import ModelSpec, VariantSpec

T = TypeVar("T")
DECODE_S = 0.002
BASE = Speed(
    decode_s_per_token=DECODE_S,
    prefill_s_per_token=1e-6,
    kv_capacity_tokens=1e5,
    overhead_s=0.0,
    jitter_sigma=0.0,
)


HANG_S = 60.0
"""How long :func:`run` lets a test run: a bound on a hang, never part of what is asserted."""


def run(test: Callable[[], Awaitable[T]], timeout: float = HANG_S) -> T:
    """Run ``test`` in a fresh event loop; a hang fails it instead of stalling the suite."""

    async def main() -> T:
        return await asyncio.wait_for(test(), timeout)

    return asyncio.run(main())


@dataclass
class Watch:
    """The highest ``running()`` / ``waiting()`` / ``load()`` seen, sampled every millisecond."""

    engine: SimulatedEngine
    running: int = 0
    waiting: int = 0
    load: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def sample(self) -> None:
        self.running = max(self.running, self.engine.running())
        self.waiting = max(self.waiting, self.engine.waiting())
        self.load = max(self.load, self.engine.load())

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.001)

    def __enter__(self) -> Watch:
        self.task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def first_token_and_count(
    engine: SimulatedEngine,
    start: float,
    prompt: int,
    tokens: int,
    watch: Watch | None = None,
    arrived: float | None = None,
) -> tuple[float, int]:
    """Seconds from ``start`` to the first chunk's stamp, and the tokens generated (exactly
    ``tokens``). ``arrived``: when the request reached the engine (None: when ``generate`` is
    called)."""
    first: float | None = None
    count = 0
    gen = Generation("x", prompt, tokens, ignore_eos=True, arrived=arrived)
    async for chunk in engine.generate(gen):
        if first is None:  # when the model made it (the engine's clock is the host's)
            first = (chunk.at if chunk.at is not None else time.monotonic()) - start
        count += chunk.tokens
        if watch is not None:
            watch.sample()
    assert first is not None
    return first, count


def test_max_num_seqs_caps_the_batch_and_ttft_climbs_past_it() -> None:
    """12 requests at once on ``max_num_seqs=4``: 4 run, 8 wait; they run in three waves, so the
    last four wait for the two waves before them (vLLM's ``len(self.running) <
    max_num_running_reqs`` admission). "At once": all arrive at ``start`` (a step admits only
    the requests that arrived before it began, and calls a few microseconds apart would not)."""
    tokens = 40
    speed = replace(BASE, max_num_seqs=4)
    engine = SimulatedEngine(speed, "t", seed=1)

    async def check() -> list[tuple[float, int]]:
        start = time.monotonic()
        with Watch(engine) as watch:
            results = await asyncio.gather(
                *(
                    first_token_and_count(engine, start, 100, tokens, watch, arrived=start)
                    for _ in range(12)
                )
            )
        assert watch.running == 4
        assert watch.waiting == 8
        assert engine.running() == engine.waiting() == 0
        assert engine.load() == 0.0
        return results

    results = run(check)
    assert all(count == tokens for _, count in results)
    ttft = sorted(first for first, _ in results)
    first_wave, last_wave = ttft[:4], ttft[-4:]
    # a wave's first step prefills its four prompts and samples their first tokens; each of
    # the next ``tokens - 1`` steps samples one more
    first_step = speed.step_s(4) + 4 * 100 * speed.prefill_s_per_token
    wave_s = first_step + (tokens - 1) * speed.step_s(4)
    assert first_wave == pytest.approx([first_step] * 4, abs=1e-9)  # the first four at once
    # the last four wait for the 2 x 40 steps of the two waves before them, to the step
    assert last_wave == pytest.approx([2 * wave_s + first_step] * 4, abs=1e-9)


def test_below_capacity_ttft_stays_near_the_unloaded_value() -> None:
    """8 requests at once on ``max_num_seqs=8``: none waits for another's answer. Their
    overheads end together (model time), and the step after admits them all; but the
    overheads' timers are the host's, and a busy host wakes its loop for them in more than one
    pass: the first pass steps alone and each later one joins at the next step (two passes on a
    quiet machine; a third, one more step, was seen under a full ``make test``). So a first
    token comes a step or a few later than unloaded, where a queue would add a whole answer
    (``tokens`` steps): the bound is half of that, which no number of passes short of ten
    reaches."""
    speed = replace(BASE, max_num_seqs=8, overhead_s=0.005)
    tokens = 20

    async def check() -> tuple[float, list[float], int]:
        alone = SimulatedEngine(speed, "t", seed=1)
        start = time.monotonic()
        unloaded, _ = await first_token_and_count(alone, start, 100, tokens, arrived=start)
        engine = SimulatedEngine(speed, "t", seed=1)
        start = time.monotonic()
        with Watch(engine) as watch:
            results = await asyncio.gather(
                *(
                    first_token_and_count(engine, start, 100, tokens, watch, arrived=start)
                    for _ in range(8)
                )
            )
        return unloaded, [first for first, _ in results], watch.running

    unloaded, ttfts, running = run(check)
    prefill = 100 * speed.prefill_s_per_token
    assert unloaded == pytest.approx(speed.overhead_s + speed.step_s(1) + prefill, abs=1e-9)
    assert running == 8  # all running together
    # a step more per wake-up pass of the host's loop (8 share a step: 7 % slower decoding,
    # 7 more prompts), never the answer a queue would add before the next could start
    one_step_more = speed.step_s(8) + 7 * prefill
    assert max(ttfts) < unloaded + tokens / 2 * one_step_more
    assert one_step_more < tokens * DECODE_S / 4  # far from a queue's wait


def test_a_kv_cache_too_small_for_every_prompt_admits_fewer_than_max_num_seqs() -> None:
    """10 blocks of 16 tokens; 40-token prompts need 3 blocks each: 3 are admitted of
    ``max_num_seqs=8``, the rest wait (vLLM's ``allocate_slots`` with
    ``full_sequence_must_fit``); as they grow past 48 tokens the cache runs out and the latest
    admitted is preempted and recomputed, and every request still gets all its tokens."""
    speed = replace(BASE, max_num_seqs=8, kv_capacity_tokens=10 * BLOCK_SIZE)
    engine = SimulatedEngine(speed, "t", seed=1)
    tokens = 20

    async def check() -> tuple[Watch, list[tuple[float, int]]]:
        start = time.monotonic()
        with Watch(engine) as watch:
            results = await asyncio.gather(
                *(first_token_and_count(engine, start, 40, tokens, watch) for _ in range(6))
            )
        return watch, results

    watch, results = run(check)
    assert watch.running == 3 < speed.max_num_seqs
    assert watch.waiting >= 3
    assert 0.9 <= watch.load <= 1.0
    assert engine.preemptions > 0
    assert all(count == tokens for _, count in results)
    assert engine.load() == 0.0


def test_a_request_larger_than_the_whole_cache_runs_alone_rather_than_waiting_forever() -> None:
    engine = SimulatedEngine(replace(BASE, kv_capacity_tokens=2 * BLOCK_SIZE), "t", seed=1)

    async def check() -> list[tuple[float, int]]:
        start = time.monotonic()
        return await asyncio.gather(
            *(first_token_and_count(engine, start, 100, 5) for _ in range(2))
        )

    assert [count for _, count in run(check)] == [5, 5]


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_a_client_that_goes_away_frees_its_slot_for_a_waiting_request(how: str) -> None:
    """The waiter's first token is stamped (the engine's model clock) at most two steps after
    the long request went away: the step under way, then the waiter's own. Were the slot kept,
    the waiter would wait for the long request's 200 s, and :func:`run`'s hang bound fails the
    test; a host stall shorter than that changes nothing here."""
    engine = SimulatedEngine(replace(BASE, max_num_seqs=1), "t", seed=1)

    async def check() -> tuple[float, float]:
        request = Generation("x", 50, 100_000, ignore_eos=True)  # 200 s alone
        long = cast(AsyncGenerator[Chunk, None], engine.generate(request))
        await long.__anext__()
        task: asyncio.Task[Any] | None = None
        if how == "cancel":

            async def drain() -> None:
                async for _ in long:
                    pass

            task = asyncio.create_task(drain())
        assert engine.running() == 1
        assert engine.load() > 0
        # start 0.0: the first token's stamp itself, on the engine's clock
        waiter = asyncio.create_task(first_token_and_count(engine, 0.0, 50, 3))
        while engine.waiting() == 0:
            await asyncio.sleep(0.001)
        assert engine.running() == 1
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        else:
            await long.aclose()
        gone = engine.clock.now()
        # freed at once, slot and blocks: only the waiter is left, queued or (an engine catching
        # up steps on a loaded machine runs meanwhile) already admitted in the freed slot
        assert engine.running() + engine.waiting() == 1
        assert engine.load() == 0.0 or engine.running() == 1
        first, count = await waiter
        assert count == 3
        assert engine.running() == engine.waiting() == 0
        return gone, first

    gone, first = run(check)
    # the step under way (the long request's, alone: one decode step) ends by gone + one
    # step; the waiter's own step (one request, 50 prompt tokens) samples its first token
    step = BASE.step_s(1)
    assert first <= gone + step + (step + 50 * BASE.prefill_s_per_token) + 1e-9


def test_stop_fails_what_is_queued_instead_of_hanging() -> None:
    engine = SimulatedEngine(replace(BASE, max_num_seqs=1), "t", seed=1)

    async def check() -> list[BaseException | tuple[float, int]]:
        start = time.monotonic()
        tasks = [
            asyncio.create_task(first_token_and_count(engine, start, 10, 1000)) for _ in range(3)
        ]
        while engine.waiting() < 2:
            await asyncio.sleep(0.001)
        await engine.stop()
        await engine.stop()  # twice is fine
        done = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(EngineError):
            await first_token_and_count(engine, start, 10, 1)
        await engine.start()  # a restarted engine serves again
        _, count = await first_token_and_count(engine, start, 10, 2)
        assert count == 2
        await engine.stop()
        return done

    outcomes = run(check)
    assert all(isinstance(o, EngineError) for o in outcomes)


def test_the_same_seed_gives_the_same_answer() -> None:
    async def text(seed: int) -> str:
        engine = SimulatedEngine(BASE, "t", seed=seed)
        out = [c.text async for c in engine.generate(Generation("x", 10, 30))]
        await engine.stop()
        return "".join(out)

    assert run(lambda: text(7)) == run(lambda: text(7))


# ----------------------------------------------------------------- the batch limits


CATALOG = load_catalog()


def _variant(gpu: str, args: list[str]) -> VariantSpec:
    return VariantSpec.model_validate(
        {"name": "v", "storage_uri": "hf://org/m", "gpu": gpu, "args": args}
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--max-num-seqs", "8"],
        ["--max-num-seqs=8"],
        ["--max_num_seqs", "8"],
        ["--max-num-seqs=64", "--max-num-seqs", "8"],  # the last one wins, as in argparse
    ],
    ids=["space", "equals", "underscores", "last-wins"],
)
def test_max_num_seqs_from_args(args: list[str]) -> None:
    speed = speed_for(ModelSpec(name="m"), _variant("nvidia-l4", args), CATALOG)
    assert speed.max_num_seqs == 8
    assert speed.max_num_batched_tokens == 2048  # still the default


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        ("nvidia-l4", (256, 2048)),  # 22.49 GiB
        ("nvidia-a100-40gb", (256, 2048)),
        ("nvidia-a100-80gb", (256, 2048)),  # >= 70 GiB, but vLLM leaves A100s out
        ("nvidia-h100-80gb", (1024, 8192)),  # 79.65 GiB
        ("nvidia-h200", (1024, 8192)),
    ],
)
def test_the_defaults_follow_the_gpus_memory_as_vllm_0_24_0s(
    gpu: str, expected: tuple[int, int]
) -> None:
    speed = speed_for(ModelSpec(name="m"), _variant(gpu, []), CATALOG)
    assert (speed.max_num_seqs, speed.max_num_batched_tokens) == expected


def test_the_defaults_are_adjusted_as_vllm_adjusts_them() -> None:
    l4, h100 = CATALOG.require_gpu("nvidia-l4"), CATALOG.require_gpu("nvidia-h100-80gb")
    assert scheduler_limits(["--max-num-batched-tokens=512"], l4, 4096) == (256, 512)
    # a defaulted budget is at most max_num_seqs x max_model_len; then seqs at most the budget
    assert scheduler_limits([], l4, 4) == (256, 1024)
    assert scheduler_limits(["--max-num-seqs", "2"], h100, 100) == (2, 200)
    assert scheduler_limits(["--max-num-batched-tokens", "100"], h100, 4096) == (100, 100)
    # --performance-mode throughput doubles what was defaulted
    assert scheduler_limits(["--performance-mode=throughput"], l4, 4096) == (512, 4096)
    assert scheduler_limits(
        ["--performance-mode", "throughput", "--max-num-seqs=3"], h100, 4096
    ) == (
        3,
        12288,
    )


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_max_num_seqs_vllm_would_refuse_is_a_profile_error(value: str) -> None:
    with pytest.raises(ProfileError, match="max-num-seqs"):
        speed_for(ModelSpec(name="m"), _variant("nvidia-l4", [f"--max-num-seqs={value}"]), CATALOG)


# ----------------------------------------------------------------- the server's gauges


def _sample(text: str, name: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    ]
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def test_metrics_show_the_engines_queue_under_overload() -> None:
    who = Identity("demo-llm", "default", "local-demo", "nf4")
    engine = SimulatedEngine(replace(BASE, max_num_seqs=2), "t", seed=1)
    body = {"model": "demo-llm", "prompt": "hi", "max_tokens": 60, "ignore_eos": True}

    async def check() -> tuple[dict[str, float], dict[str, float]]:
        server = ModelServer(who, engine, seed=1)
        await server.start()
        try:
            async with aiohttp.ClientSession(base_url=server.url) as session:

                async def one() -> int:
                    async with session.post("/v1/completions", json=body) as r:
                        return (await r.json())["usage"]["completion_tokens"]  # type: ignore[no-any-return]

                async def scrape() -> dict[str, float]:
                    async with session.get("/metrics") as r:
                        text = await r.text()
                    names = ("running", "waiting")
                    got = {n: _sample(text, f"vllm:num_requests_{n}") for n in names}
                    got["kv"] = _sample(text, "vllm:kv_cache_usage_perc")
                    return got

                calls = [asyncio.create_task(one()) for _ in range(8)]
                # a request that arrives after a step began waits for the next one (as in
                # vLLM), so on a busy host the first step may run one: wait until two run
                while engine.waiting() < 6 or engine.running() < 2:
                    await asyncio.sleep(0.001)
                busy = await scrape()
                assert await asyncio.gather(*calls) == [60] * 8
                idle = await scrape()
        finally:
            await server.stop()
        return busy, idle

    busy, idle = run(check)
    assert busy["running"] == 2
    assert busy["waiting"] > 0
    assert 0 < busy["kv"] <= 1
    assert idle == {"running": 0, "waiting": 0, "kv": 0}
