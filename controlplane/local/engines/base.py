"""What a model server asks of an inference engine: the :class:`Engine` protocol and its records.

Owns the seam between :mod:`controlplane.local.server` (HTTP, the OpenAI API, metrics, faults)
and the engines that produce tokens: ``simulated`` (:mod:`.simulated`, the default),
``transformers`` (:mod:`.transformers_engine`, real CPU inference of a tiny random model) and
``vllm`` (:mod:`.vllm_engine`, a ``vllm serve`` process behind the server). An engine streams
:class:`Chunk` records; the server times them, so every engine exports the same metrics, and
reads the scheduler gauges (running, waiting, KV-cache use) from the engine.

Owns the clocks answers are timed by (:class:`HostClock`, :class:`ModelClock`): the server reads
an engine's ``clock`` for every latency it exports, so a simulated engine's numbers are the
model's and not the host's (a busy or stalled host does not show as a slow model).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from controlplane.errors import ControlPlaneError

EngineKind = Literal["simulated", "transformers", "vllm"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("simulated", "transformers", "vllm")
FinishReason = Literal["stop", "length"]


class HostClock:
    """The host's monotonic clock: what a real engine's answers take, host stalls included (a
    model that runs on this machine's CPU, or a ``vllm serve`` process, is slowed by them).

    ``monotonic`` and ``sleep`` are the time source (tests give fakes)."""

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._monotonic = monotonic
        self._sleep = sleep

    def now(self) -> float:
        """Seconds on this clock (only differences mean anything)."""
        return self._monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock (an engine step, the overhead, an injected delay)."""
        await self._sleep(seconds)


class ModelClock(HostClock):
    """The time a simulated model lives in: the host's clock less the host's stalls.

    A simulated engine sleeps what its GPU would compute, step by step. When the host is busy
    (another job on the cores, the demo's own processes, a laptop's power saving) or the
    server's own work holds the event loop, a sleep wakes late, and every request in flight
    would be charged the lateness as if the model had been slow: a one-second stall of a
    two-core machine read as a one-second TTFT, and failed a healthy candidate. Here any
    :meth:`sleep` that wakes after its deadline adds the lateness to :attr:`stalled` (the late
    spans of overlapping sleeps merged, so a stall counts once) and :meth:`now` leaves it out:
    the simulated engine stands for a GPU's compute, which the demo's busy CPU cores do not
    slow (a choice of this simulation, not a claim about vLLM's processes: a real server's host
    stalls are the real server's, and the analysis on a cluster sees them).
    A sleep lasts its seconds of this clock: it sleeps again for what a stall found meanwhile
    took away, so a step or an injected delay lasts what it says. :meth:`now` never goes back (a
    stall found after it was read freezes it until the clock has caught up).
    """

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        super().__init__(monotonic, sleep)
        self.stalled = 0.0
        """Host seconds left out so far."""
        self._late_until = -math.inf
        self._last = -math.inf

    def now(self) -> float:
        self._last = max(self._last, self._monotonic() - self.stalled)
        return self._last

    async def sleep(self, seconds: float) -> None:
        until = self.now() + seconds
        left = seconds
        while True:
            deadline = self._monotonic() + max(0.0, left)
            await self._sleep(max(0.0, left))
            self.woke(deadline, self._monotonic())
            left = until - self.now()
            if left <= 0:
                return

    def woke(self, deadline: float, at: float) -> None:
        """A sleep due at host time ``deadline`` ended at ``at``: the part of ``[deadline, at]``
        not already counted is a stall of the host."""
        late = at - max(deadline, self._late_until)
        if late > 0:
            self.stalled += late
        self._late_until = max(self._late_until, at)


class EngineError(ControlPlaneError):
    """An engine cannot run here (a missing dependency, no GPU) or failed while generating."""


@dataclass(frozen=True)
class Generation:
    """One sequence as the engine sees it: the full prompt text (system prompt included), or the
    token ids a ``/v1/completions`` prompt was given as (then ``prompt`` is empty and
    ``prompt_tokens`` is their count). A request with ``n`` choices is ``n`` of these, as vLLM
    v1 runs a child request per choice."""

    prompt: str
    prompt_tokens: int
    max_tokens: int
    temperature: float = 1.0
    chat: bool = True
    ignore_eos: bool = False
    """vLLM's ``ignore_eos`` extension: generate exactly ``max_tokens`` (no natural stop)."""
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Chunk:
    """Some generated text. ``tokens`` it holds; ``finish_reason`` set on the last chunk."""

    text: str
    tokens: int
    finish_reason: FinishReason | None = None
    at: float | None = None
    """When the chunk's last token was produced, on the engine's clock; None: when the server
    receives it. A simulated engine stamps its tokens as each step ends, so a host that stalls
    the server before it reads them does not lengthen them."""


class Engine(Protocol):
    """Produces tokens for one variant. ``kind`` is shown in every output (``simulated``...)."""

    kind: EngineKind
    clock: HostClock
    """What the server times this engine's answers by (:class:`ModelClock` for a simulated one)."""

    @property
    def description(self) -> str:
        """One line saying what runs: engine, model, quantization (shown by ``up``)."""
        ...

    async def start(self) -> None:
        """Load the model / start the process; return when ready to generate."""
        ...

    async def stop(self) -> None:
        """Release everything (processes included). Safe to call twice."""
        ...

    def count_tokens(self, text: str) -> int:
        """Prompt tokens of ``text`` as this engine counts them."""
        ...

    def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        """Stream the answer; the last chunk carries the finish reason."""
        ...

    def load(self) -> float:
        """KV-cache use in [0, 1] right now (exported as ``vllm:kv_cache_usage_perc``)."""
        ...

    def running(self) -> int:
        """Sequences in the running batch right now (exported as ``vllm:num_requests_running``)."""
        ...

    def waiting(self) -> int:
        """Sequences queued, not yet admitted (exported as ``vllm:num_requests_waiting``)."""
        ...
