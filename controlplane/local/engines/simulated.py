"""The ``simulated`` engine: no model runs; requests are scheduled as vLLM 0.24.0's v1 scheduler.

Owns one engine loop of steps (chunked prefill, FCFS admission and preemption, 16-token KV blocks,
vLLM's defaults) timed by :mod:`controlplane.profiles.speed` on the engine's model clock, so an
overloaded replica queues and the gauges are its own. Answers are placeholder text. The vLLM facts
and their sources: docs/local.md, "Scheduling as vLLM does" and "A busy host".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from controlplane.local.engines.base import (
    Chunk,
    EngineError,
    EngineKind,
    FinishReason,
    Generation,
    HostClock,
    ModelClock,
)
from controlplane.profiles.speed import (
    BANDWIDTH_UTILISATION,
    BATCH_SLOWDOWN,
    BLOCK_SIZE,
    COMPUTE_UTILISATION,
    DEFAULT_PARAMETERS,
    DEQUANT_OVERHEAD,
    GPU_DEFAULTS,
    LARGE_GPU_DEFAULTS,
    LARGE_GPU_GIB,
    OVERHEAD_S,
    Speed,
    batch_defaults,
    scheduler_limits,
    speed_for,
)

__all__ = [
    "BANDWIDTH_UTILISATION",
    "BATCH_SLOWDOWN",
    "BLOCK_SIZE",
    "CHUNK_INTERVAL_S",
    "COMPUTE_UTILISATION",
    "DEFAULT_PARAMETERS",
    "DEQUANT_OVERHEAD",
    "GPU_DEFAULTS",
    "LARGE_GPU_DEFAULTS",
    "LARGE_GPU_GIB",
    "OVERHEAD_S",
    "SimulatedEngine",
    "Speed",
    "batch_defaults",
    "scheduler_limits",
    "speed_for",
]

CHUNK_INTERVAL_S = 0.05
"""Streaming sends at most one chunk per this many seconds (tokens are coalesced)."""

_TEXT = (
    "thanks for reaching out I checked your account and the order shipped yesterday "
    "the refund should appear within five business days please restart the device and "
    "try again if the problem persists we can escalate to the support team here are the "
    "steps to reset your password open settings select security and follow the prompts "
    "your ticket has been updated the invoice is attached let me know if anything else"
)
_WORDS = tuple(_TEXT.split())


class _Aborted:
    """Ended by :meth:`SimulatedEngine.abort_all` at ``at`` (the engine's clock)."""

    def __init__(self, at: float) -> None:
        self.at = at


@dataclass(eq=False)
class _Request:
    """One sequence in the engine: vLLM's ``Request`` reduced to what the scheduler reads."""

    prompt_tokens: int
    output_tokens: int
    """How many tokens it will generate in all."""
    tokens: asyncio.Queue[float | EngineError | _Aborted]
    """One item per token sampled: when (the engine's clock, as its step ended); an EngineError
    when the engine stops under it; :class:`_Aborted` when :meth:`abort_all` ends it."""
    arrived: float = 0.0
    """When it reached the queue (the engine's clock): steps that began before do not admit it."""
    generated: int = 0
    computed: int = 0
    """``num_computed_tokens``: tokens whose KV is in the cache."""
    blocks: int = 0
    done: bool = False

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.generated


class SimulatedEngine:
    """Steps like the variant's vLLM would, sleeping what each step would compute; yields
    placeholder words."""

    kind: EngineKind = "simulated"

    def __init__(
        self, speed: Speed, label: str, seed: int | None = None, clock: HostClock | None = None
    ) -> None:
        self.speed = speed
        self.label = label
        self.clock: HostClock = clock if clock is not None else ModelClock()
        """Every wait and timestamp: the host's time, each wait a deadline (:class:`ModelClock`)."""
        self._rng = random.Random(seed)
        self._waiting: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._used_blocks = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._free_at = -math.inf
        """When the last step ended (the engine's clock): the next one begins then, or when its
        first request arrived if none was running."""
        self._stopped = False
        self.preemptions = 0
        """Requests preempted so far (vLLM's ``num_preemptions``, summed)."""

    @property
    def description(self) -> str:
        return f"simulated ({self.label}: {self.speed.describe()})"

    async def start(self) -> None:
        self._stopped = False
        self._ensure_loop()

    async def stop(self) -> None:
        """End the loop; every request still queued or running gets an EngineError (none hangs).
        Safe to call twice."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(EngineError("the simulated engine stopped"))

    def count_tokens(self, text: str) -> int:
        return max(1, math.ceil(len(text.split()) * 4 / 3))

    def load(self) -> float:
        """KV-cache blocks in use over all blocks (``vllm:kv_cache_usage_perc``)."""
        return min(1.0, self._used_blocks / self.speed.kv_blocks)

    def running(self) -> int:
        """Requests in the running batch (``vllm:num_requests_running``)."""
        return len(self._running)

    def waiting(self) -> int:
        """Requests queued for admission (``vllm:num_requests_waiting``)."""
        return len(self._waiting)

    def _jitter(self) -> float:
        return self._rng.lognormvariate(0.0, self.speed.jitter_sigma)

    def _length(self, max_tokens: int, rng: random.Random) -> tuple[int, bool]:
        """Tokens the answer would naturally have (lognormal around 70% of max_tokens)."""
        natural = max(1, round(rng.lognormvariate(math.log(0.7 * max_tokens), 0.5)))
        return min(natural, max_tokens), natural >= max_tokens

    def _answers(self, request: Generation) -> random.Random:
        """What draws the answer's length and words: at temperature 0 a generator seeded by the
        prompt (salted for a wrong answer), so the same prompt gets the same answer; else the
        engine's own."""
        if request.temperature > 0:
            return self._rng
        text = ("wrong\0" if request.wrong else "") + request.prompt
        if request.prompt_token_ids is not None:
            text += "\0" + ",".join(map(str, request.prompt_token_ids))
        return random.Random(hashlib.sha256(text.encode()).digest())

    # ----------------------------------------------------------------- requests

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        if self._stopped:
            raise EngineError("the simulated engine is stopped")
        answers = self._answers(request)
        n, truncated = self._length(request.max_tokens, answers)
        if request.ignore_eos:  # vLLM's ignore_eos: no natural stop, exactly max_tokens
            n, truncated = request.max_tokens, True
        req = _Request(max(1, request.prompt_tokens), n, asyncio.Queue())
        since = request.arrived if request.arrived is not None else self.clock.now()
        try:
            req.arrived = await self.clock.wait(since, self.speed.overhead_s * self._jitter())
            self._submit(req)
            sent = 0
            pending: list[str] = []
            last_sent = 0.0
            while sent + len(pending) < n:
                item = await req.tokens.get()
                if isinstance(item, EngineError):
                    raise item
                if isinstance(item, _Aborted):  # what was sampled goes out, then the end
                    text = (" " if sent else "") + " ".join(pending)
                    yield Chunk(text, len(pending), "abort", at=item.at)
                    return
                pending.append(answers.choice(_WORDS))
                now = item  # when the step that sampled it ended, not when it is read here
                last = sent + len(pending) == n
                if sent == 0 or last or now - last_sent >= CHUNK_INTERVAL_S:
                    text = (" " if sent else "") + " ".join(pending)
                    reason: FinishReason | None = None
                    if last:
                        reason = "length" if truncated else "stop"
                    yield Chunk(text, len(pending), reason, at=now)
                    sent += len(pending)
                    pending = []
                    last_sent = now
        finally:
            self._abort(req)  # a closed generator / cancelled task frees its slot and blocks

    def _submit(self, req: _Request) -> None:
        if self._stopped:
            raise EngineError("the simulated engine is stopped")
        self._waiting.append(req)
        self._ensure_loop()
        assert self._wake is not None
        self._wake.set()

    def _abort(self, req: _Request) -> None:
        """Take ``req`` out of the scheduler, freeing its blocks (no-op once finished)."""
        if req.done:
            return
        req.done = True
        if req in self._running:
            self._running.remove(req)
        elif req in self._waiting:
            self._waiting.remove(req)
        self._free(req)

    def abort_all(self) -> None:
        now = self.clock.now()
        for req in [*self._running, *self._waiting]:
            req.done = True
            self._free(req)
            req.tokens.put_nowait(_Aborted(now))
        self._running.clear()
        self._waiting.clear()

    def _fail_all(self, error: EngineError) -> None:
        for req in [*self._running, *self._waiting]:
            req.done = True
            self._free(req)
            req.tokens.put_nowait(error)
        self._running.clear()
        self._waiting.clear()

    # ----------------------------------------------------------------- the KV cache

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.speed.block_size)

    def _free_blocks(self) -> int:
        return self.speed.kv_blocks - self._used_blocks

    def _fits(self, req: _Request, tokens: int) -> bool:
        return self._blocks_for(tokens) - req.blocks <= self._free_blocks()

    def _grow(self, req: _Request, tokens: int) -> None:
        need = self._blocks_for(tokens)
        if need > req.blocks:
            self._used_blocks += need - req.blocks
            req.blocks = need

    def _free(self, req: _Request) -> None:
        self._used_blocks -= req.blocks
        req.blocks = 0

    def _preempt(self, req: _Request) -> None:
        """vLLM's ``_preempt_request``: free the blocks, recompute from scratch, head of queue."""
        self._free(req)
        req.computed = 0
        self.preemptions += 1
        self._waiting.appendleft(req)

    # ----------------------------------------------------------------- the loop

    def _ensure_loop(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(self._wake))

    def _start(self) -> float:
        """When the next step begins: as the last one ended, or as the first waiting request
        arrived when none is running (the model was idle until then)."""
        if not self._running and self._waiting:
            return max(self._free_at, self._waiting[0].arrived)
        return self._free_at

    def _schedule(self, start: float = math.inf) -> list[tuple[_Request, int]]:
        """One step of ``Scheduler.schedule()`` (module docstring) beginning at ``start``:
        ``(request, new tokens)``; a request that arrived after ``start`` waits for a later
        step (a step the engine catches up after a host stall does not admit the requests the
        server took in after it)."""
        budget = self.speed.max_num_batched_tokens
        scheduled: list[tuple[_Request, int]] = []
        preempted = False
        i = 0
        while i < len(self._running) and budget > 0:
            req = self._running[i]
            new = min(req.num_tokens - req.computed, budget)
            if new <= 0:
                i += 1
                continue
            target = req.computed + new
            while not self._fits(req, target) and len(self._running) > 1:
                victim = self._running.pop()  # FCFS: the most recently admitted
                self._preempt(victim)
                preempted = True
                if victim is req:
                    break
            if preempted and req not in self._running:
                break  # it preempted itself: nothing more runs this step
            self._grow(req, target)  # alone and still too big: runs over (module docstring)
            scheduled.append((req, new))
            budget -= new
            i += 1
        if preempted:
            return scheduled
        while self._waiting and budget > 0 and len(self._running) < self.speed.max_num_seqs:
            req = self._waiting[0]
            if req.arrived > start:
                break
            # full_sequence_must_fit: the whole sequence so far must fit, not the first chunk
            if self._running and not self._fits(req, req.num_tokens):
                break
            new = min(req.num_tokens - req.computed, budget)
            self._waiting.popleft()
            self._running.append(req)
            self._grow(req, req.computed + new)
            scheduled.append((req, new))
            budget -= new
        return scheduled

    def _step_seconds(self, scheduled: list[tuple[_Request, int]]) -> float:
        prefill = sum(
            new
            for req, new in scheduled
            if not (req.generated and req.num_tokens - req.computed == 1)
        )
        decode = self.speed.step_s(len(scheduled))
        return (decode + prefill * self.speed.prefill_s_per_token) * self._jitter()

    def _advance(self, scheduled: list[tuple[_Request, int]], at: float) -> None:
        """After a step that ended at ``at``: the scheduled tokens are computed; each request
        whose tokens are all computed samples one (stamped ``at``); a request with all its
        tokens finishes and frees its blocks."""
        for req, new in scheduled:
            if req.done:
                continue  # aborted while the step ran (preemption happens before it runs)
            req.computed += new
            if req.computed < req.num_tokens:
                continue  # a prefill chunk: no token yet
            req.generated += 1
            req.tokens.put_nowait(at)
            if req.generated >= req.output_tokens:
                req.done = True
                self._running.remove(req)
                self._free(req)

    async def _loop(self, wake: asyncio.Event) -> None:
        try:
            while True:
                if not self._running and not self._waiting:
                    wake.clear()
                    await wake.wait()
                    continue
                start = self._start()
                scheduled = self._schedule(start)
                if not scheduled:  # everything was preempted: the next step admits again
                    await asyncio.sleep(0)
                    continue
                # a step lasts its seconds from its start, however late the host wakes us
                self._free_at = await self.clock.wait(start, self._step_seconds(scheduled))
                self._advance(scheduled, self._free_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave requests waiting forever
            self._fail_all(EngineError(f"simulated engine failed: {exc!r}"))
