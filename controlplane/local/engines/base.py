"""What a model server asks of an inference engine: the :class:`Engine` protocol and its records.

Owns the seam between :mod:`controlplane.local.server` and the engines (``simulated``,
``transformers``, ``vllm``): engines stream :class:`Chunk` records and report scheduler gauges;
the server times them, so every engine exports the same metrics. Also the clocks
(:class:`HostClock`, :class:`ModelClock`), so a simulated engine's numbers are the model's, not a
busy host's. See docs/local.md, "Engines".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from controlplane.errors import ControlPlaneError

EngineKind = Literal["simulated", "transformers", "vllm"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("simulated", "transformers", "vllm")
FinishReason = Literal["stop", "length", "abort"]


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
        """Wait ``seconds`` of this clock."""
        await self._sleep(seconds)

    async def wait(self, since: float, seconds: float) -> float:
        """Wait ``seconds`` counted from ``since`` (an engine step, the overhead, an injected
        delay, begun at ``since`` on this clock); return when the wait ended on this clock. Here:
        sleep ``seconds`` from now and return the time it woke, so a late wake counts."""
        await self._sleep(seconds)
        return self.now()


class ModelClock(HostClock):
    """The time a simulated model lives in: the host's clock, with every wait a deadline.

    A simulated engine stands for a GPU that this machine's CPU does not slow (a choice of the
    simulation, not a claim about vLLM): :meth:`wait` returns ``since + seconds`` however late the
    sleep woke, steps due during a host stall are caught up back to back, and each token is stamped
    with the time its step ended. A stall delays when the server reads a token, never when the model
    made it. Why not stop the clock during stalls instead: docs/local.md, "A busy host".
    """

    async def wait(self, since: float, seconds: float) -> float:
        """Sleep until ``since + seconds`` on the host's clock (at once, yielding to the other
        tasks, when that has passed) and return that deadline: a late wake is the host's."""
        deadline = since + max(0.0, seconds)
        await self._sleep(max(0.0, deadline - self._monotonic()))
        return deadline


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
    wrong: bool = False
    """The ``wrong-answers`` fault (:mod:`controlplane.local.inject`) drew this request: the
    simulated engine answers other words than a healthy engine would; real engines ignore it."""
    arrived: float | None = None
    """When the request reached the engine, on the engine's clock (the server's start plus an
    injected delay); None: when ``generate`` is called. The simulated engine counts its
    overhead from it, so a host stall before ``generate`` runs is not the model's."""


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

    def abort_all(self) -> None:
        """End every sequence in flight now with finish reason ``abort``, as vLLM's engine does
        on SIGTERM without a ``--shutdown-timeout``."""
        ...

    def waiting(self) -> int:
        """Sequences queued, not yet admitted (exported as ``vllm:num_requests_waiting``)."""
        ...
