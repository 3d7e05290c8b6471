"""The ``transformers`` engine: real CPU inference of a tiny model, quantized for real.

Owns a tiny random-weight Llama (:data:`TINY`, nothing downloaded) whose decoder is quantized with
bitsandbytes for the NF4 and int8 variants, so speed and outputs really differ; a byte-level
tokenizer, one request at a time on a worker thread. Answers are gibberish. Optional (torch,
transformers, bitsandbytes). See docs/local.md, "Engines".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.local.engines.base import Chunk, EngineError, EngineKind, Generation, HostClock

if TYPE_CHECKING:  # typed against the real stack when the local-cpu extra is installed
    import torch
    from transformers import LlamaForCausalLM
    from transformers.cache_utils import Cache

BNB_METHODS = {"bitsandbytes-nf4": "nf4", "bitsandbytes-int8": "int8"}
MAX_PROMPT_TOKENS = 256


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the random model (a Llama: RMSNorm, rotary embeddings, grouped KV heads)."""

    vocab_size: int = 256
    hidden_size: int = 128
    intermediate_size: int = 256
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    max_positions: int = 1024


TINY = TinyConfig()


def require_stack() -> None:
    """Return when torch, transformers and bitsandbytes import; else an EngineError naming them."""
    try:
        import bitsandbytes  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineError(
            f"--engine transformers needs torch, transformers and bitsandbytes ({exc.name} is "
            "missing): pip install 'controlplane[local-cpu]' (torch's CPU build is enough)"
        ) from None


def build_model(quantization: str, seed: int = 0, shape: TinyConfig = TINY) -> LlamaForCausalLM:
    """The random tiny model, with its decoder's linear layers quantized when asked. Blocking."""
    if quantization not in ("none", *BNB_METHODS):
        raise EngineError(
            f"--engine transformers runs 'none' and bitsandbytes nf4/int8 on CPU; "
            f"{quantization!r} needs a GPU (use --engine simulated, or vllm on a GPU)"
        )
    require_stack()
    import torch
    import transformers

    torch.manual_seed(seed)  # stable and candidate share the same random weights
    config = transformers.LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_positions,
    )
    model = transformers.LlamaForCausalLM(config)
    model.eval()  # returns untyped in transformers; the model itself stays typed
    method = BNB_METHODS.get(quantization)
    if method is not None:
        for layer in model.model.layers:
            for parent in layer.children():  # the attention and the MLP hold the projections
                for name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Linear):
                        setattr(parent, name, _quantized(child, method))
    return model


def _quantized(linear: torch.nn.Linear, method: str) -> torch.nn.Module:
    """A bitsandbytes layer holding ``linear``'s weights; quantization happens on ``.to()``."""
    import torch
    from bitsandbytes.nn.modules import Int8Params, Linear4bit, Linear8bitLt, Params4bit

    bias = linear.bias is not None
    weight = linear.weight.data.clone()
    layer: torch.nn.Module
    if method == "nf4":
        layer = Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=bias,
            quant_type="nf4",
            compute_dtype=torch.float32,
        )
        layer.weight = Params4bit(weight, requires_grad=False, quant_type="nf4")
    else:
        layer = Linear8bitLt(
            linear.in_features, linear.out_features, bias=bias, has_fp16_weights=False
        )
        layer.weight = Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    if bias:
        layer.bias = linear.bias
    return layer.to("cpu")


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes held by the model's parameters (quantized ones count their packed size)."""
    return int(sum(p.numel() * p.element_size() for p in model.parameters()))


class TransformersEngine:
    """A tiny random Llama on the CPU, optionally bitsandbytes-quantized."""

    kind: EngineKind = "transformers"
    clock: HostClock = HostClock()
    """Real inference: the host's time is the model's."""

    def __init__(self, quantization: str, seed: int = 0, shape: TinyConfig = TINY) -> None:
        self.quantization = quantization
        self.seed = seed
        self.shape = shape
        self.model: LlamaForCausalLM | None = None
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def description(self) -> str:
        size = f", {weight_bytes(self.model) / 1024:.0f} KiB of weights" if self.model else ""
        return f"transformers (tiny random Llama on CPU, {self.quantization}{size})"

    async def start(self) -> None:
        if self.model is None:
            self.model = await asyncio.to_thread(build_model, self.quantization, 0, self.shape)

    async def stop(self) -> None:
        self.model = None

    def count_tokens(self, text: str) -> int:
        return max(1, min(len(text.encode()), MAX_PROMPT_TOKENS))

    def load(self) -> float:
        return min(1.0, self._busy / 8)

    def abort_all(self) -> None:
        """Nothing to do: its generations run to their end: stopping it waits for them."""

    def running(self) -> int:
        return self._busy  # every request in flight takes its turn token by token

    def waiting(self) -> int:
        return 0  # no admission limit: nothing queues before the lock

    def _encode(self, text: str, token_ids: tuple[int, ...] | None = None) -> list[int]:
        if token_ids:  # a token-id prompt: the ids as given, folded into the tiny vocabulary
            return [t % self.shape.vocab_size for t in token_ids[-MAX_PROMPT_TOKENS:]]
        data = text.encode()[-MAX_PROMPT_TOKENS:] or b" "
        return [b % self.shape.vocab_size for b in data]

    def _next(
        self,
        model: LlamaForCausalLM,
        ids: list[int],
        past: Cache | None,
        temperature: float,
        gen: torch.Generator,
    ) -> tuple[int, Cache | None]:
        import torch

        with self._lock, torch.inference_mode():
            out = model(torch.tensor([ids]), past_key_values=past, use_cache=True)
            logits = out.logits[0, -1]
            if temperature <= 0:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=gen))
        return token, out.past_key_values

    async def generate(self, request: Generation) -> AsyncIterator[Chunk]:
        model = self.model
        if model is None:
            raise EngineError("transformers engine is not started")
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        ids = self._encode(request.prompt, request.prompt_token_ids)
        limit = max(1, min(request.max_tokens, self.shape.max_positions - len(ids) - 1))
        past: Cache | None = None
        self._busy += 1
        try:
            for i in range(limit):
                token, past = await asyncio.to_thread(
                    self._next, model, ids, past, request.temperature, gen
                )
                ids = [token]
                text = chr(token) if 32 <= token < 127 else " "
                yield Chunk(text, 1, "length" if i == limit - 1 else None)
        finally:
            self._busy -= 1
