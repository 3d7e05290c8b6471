"""What a model server asks of an inference engine: the :class:`Engine` protocol and its records.

Owns the seam between :mod:`controlplane.local.server` (HTTP, the OpenAI API, metrics, faults)
and the engines that produce tokens: ``simulated`` (:mod:`.simulated`, the default),
``transformers`` (:mod:`.transformers_engine`, real CPU inference of a tiny random model) and
``vllm`` (:mod:`.vllm_engine`, a ``vllm serve`` process behind the server). An engine streams
:class:`Chunk` records; the server times them, so every engine exports the same metrics, and
reads the scheduler gauges (running, waiting, KV-cache use) from the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

from controlplane.errors import ControlPlaneError

EngineKind = Literal["simulated", "transformers", "vllm"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("simulated", "transformers", "vllm")
FinishReason = Literal["stop", "length"]


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


class Engine(Protocol):
    """Produces tokens for one variant. ``kind`` is shown in every output (``simulated``...)."""

    kind: EngineKind

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
