"""In-process profiling: a random-weight model of a real architecture's shape, on this machine.

Owns building a Llama-shaped model from ``profiles/architectures.yaml`` (random weights, no
download) in bf16, NF4, int8 or FP8 on CPU or CUDA, and measuring its memory and per-batch
timings. Optional (the ``local-cpu`` extra); called by ``canaryctl profile --in-process``.
Method and limits: docs/profiles.md, "Measured profiles: ``canaryctl profile``".
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from controlplane.errors import ProfileError, UsageError
from controlplane.profiles.catalog import QuantMethod
from controlplane.profiles.catalog_schema import validate as _validate
from controlplane.profiles.fit import weight_bytes
from controlplane.profiles.measured import RequestSample

if TYPE_CHECKING:
    import torch

QUANTIZATIONS = ("none", "bitsandbytes-nf4", "bitsandbytes-int8", "fp8")
GIB = float(2**30)


class Architecture(BaseModel):
    """One transformer shape (a Llama: RMSNorm, rotary embeddings, grouped KV heads)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )
    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    layers: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    tie_word_embeddings: bool
    rope_theta: float = Field(gt=0)
    source: str = Field(min_length=1)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    architectures: dict[str, Architecture] = Field(min_length=1)


def parameters(arch: Architecture) -> tuple[float, float]:
    """(parameters of the full shape, those that stay bf16: embeddings, lm_head, norms)."""
    h, i, v = arch.hidden_size, arch.intermediate_size, arch.vocab_size
    q = h * arch.heads * arch.head_dim
    kv = 2 * h * arch.kv_heads * arch.head_dim
    o = arch.heads * arch.head_dim * h
    per_layer = q + kv + o + 3 * h * i + 2 * h
    embed = v * h * (1 if arch.tie_word_embeddings else 2)
    norms = 2 * h * arch.layers + h
    return float(per_layer * arch.layers + embed + h), float(embed + norms)


def predicted_weights_gib(arch: Architecture, method: QuantMethod) -> float:
    """fit.py's weights for the full shape in ``method`` (what a measured entry is held to)."""
    params, unquantized = parameters(arch)
    return weight_bytes(params, method.bytes_per_weight, unquantized) / GIB


def architectures() -> dict[str, Architecture]:
    """The packaged shapes (``profiles/architectures.yaml``), by name."""
    text = resources.files("controlplane.profiles").joinpath("data", "architectures.yaml")
    parsed = _validate(_File, text.read_text(encoding="utf-8"), "architectures.yaml (packaged)")
    return dict(parsed.architectures)


def architecture(name: str) -> Architecture:
    """The shape called ``name``; UsageError naming the known ones."""
    known = architectures()
    if name not in known:
        raise UsageError(f"--arch: unknown architecture {name!r}; known: {', '.join(known)}")
    return known[name]


@dataclass(frozen=True)
class Built:
    """A built model and what its tensors hold."""

    model: Any
    device: str
    device_name: str
    layers_run: int
    weights_bytes_run: int
    weights_bytes_full: int
    allocated_bytes: int | None
    libraries: dict[str, str]


def require(quantization: str, device: str) -> None:
    """Raise an error naming what is missing to run ``quantization`` on ``device``."""
    if quantization not in QUANTIZATIONS:
        raise UsageError(
            f"--quantization: {quantization!r} cannot run in-process; known: "
            f"{', '.join(QUANTIZATIONS)} (awq/gptq need a prepared checkpoint: profile them "
            "through --endpoint)"
        )
    needed = ["torch", "transformers"]
    if quantization.startswith("bitsandbytes"):
        needed.append("bitsandbytes")
    if quantization == "fp8":
        needed.append("torchao")
    for name in needed:
        try:
            with _quiet_import():
                importlib.import_module(name)
        except ImportError:
            raise ProfileError(
                f"--in-process --quantization {quantization} needs {name}, which is not "
                "installed (pip install 'controlplane[local-cpu]')"
            ) from None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ProfileError("--device cuda: torch sees no CUDA device on this machine")


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """What importing torchao 0.18 (directly, or through transformers 5.23's quantizers) says
    that is not the user's business: an invalid escape in a docstring of its ``quant_api.py`` (a
    SyntaxWarning, when compiled) and torch's pytree logger warning that its Enum registrations
    are deprecated."""
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # a DeprecationWarning up to Python 3.11
            warnings.filterwarnings("ignore", "invalid escape sequence", SyntaxWarning)
            warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
            yield
    finally:
        pytree.setLevel(level)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of ``module``, plus bitsandbytes' quantization states
    (NF4 absmax and code, int8 row scales), which are attributes, not parameters."""
    total = 0
    seen: set[int] = set()

    def add(t: Any) -> None:
        nonlocal total
        if t is None or not hasattr(t, "element_size") or id(t) in seen:
            return
        seen.add(id(t))
        flatten = getattr(t, "__tensor_flatten__", None)
        if flatten is not None:  # a wrapper (torchao's Float8Tensor): its own dtype is the
            for name in flatten()[0]:  # original one; the bytes are in its inner tensors
                add(getattr(t, name))
            return
        total += int(t.numel() * t.element_size())

    for p in module.parameters():
        add(p)
        state = getattr(p, "quant_state", None)
        if state is not None:
            add(getattr(state, "absmax", None))
            add(getattr(state, "code", None))
            nested = getattr(state, "state2", None)
            if nested is not None:
                add(getattr(nested, "absmax", None))
                add(getattr(nested, "code", None))
        add(getattr(p, "SCB", None))
    for b in module.buffers():
        add(b)
    return total


def build(
    arch: Architecture,
    quantization: str,
    *,
    device: str = "cpu",
    layers: int | None = None,
    seed: int = 0,
) -> Built:
    """Build ``arch`` (``layers`` of its decoder layers, default all) with random weights."""
    require(quantization, device)
    import torch
    import transformers

    run_layers = arch.layers if layers is None else layers
    if not 1 <= run_layers <= arch.layers:
        raise UsageError(f"--layers must be within 1..{arch.layers}, got {run_layers}")
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=arch.vocab_size,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_hidden_layers=run_layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.kv_heads,
        head_dim=arch.head_dim,
        tie_word_embeddings=arch.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": arch.rope_theta},
    )
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        # bf16 on the device: no float32 copy, no CPU init; quiet: transformers' model classes
        # import torchao's prototypes when it is installed
        with torch.device(device), _quiet_import():
            model: Any = transformers.LlamaForCausalLM(config)  # random, as transformers inits
    finally:
        torch.set_default_dtype(default)
    model.eval()
    if quantization.startswith("bitsandbytes"):
        _bitsandbytes(model, "nf4" if quantization.endswith("nf4") else "int8", device)
    if quantization == "fp8":
        _fp8(model, device)
    allocated = None
    name = "cpu"
    if device == "cuda":
        torch.cuda.synchronize()
        allocated = int(torch.cuda.memory_allocated() - before)
        name = f"cuda: {torch.cuda.get_device_name()}"
    run = tensor_bytes(model)
    per_layer = tensor_bytes(model.model.layers[0])
    full = run + per_layer * (arch.layers - run_layers)
    return Built(
        model=model,
        device=device,
        device_name=name,
        layers_run=run_layers,
        weights_bytes_run=run,
        weights_bytes_full=full,
        allocated_bytes=allocated,
        libraries=_versions(quantization),
    )


def _bitsandbytes(model: Any, method: str, device: str) -> None:
    import torch
    from bitsandbytes.nn.modules import Int8Params, Linear4bit, Linear8bitLt, Params4bit

    for layer in model.model.layers:
        for parent in layer.children():  # the attention and the MLP hold the projections
            for child_name, child in list(parent.named_children()):
                if not isinstance(child, torch.nn.Linear):
                    continue
                weight = child.weight.data
                q: torch.nn.Module
                if method == "nf4":
                    q = Linear4bit(
                        child.in_features,
                        child.out_features,
                        bias=child.bias is not None,
                        quant_type="nf4",
                        compute_dtype=torch.bfloat16,
                    )
                    q.weight = Params4bit(weight, requires_grad=False, quant_type="nf4")
                else:
                    q = Linear8bitLt(
                        child.in_features,
                        child.out_features,
                        bias=child.bias is not None,
                        has_fp16_weights=False,
                    )
                    # Int8Params quantizes only on a move from the CPU (bitsandbytes 0.50.2
                    # nn/modules.py Int8Params.to)
                    q.weight = Int8Params(weight.cpu(), requires_grad=False, has_fp16_weights=False)
                setattr(parent, child_name, q.to(device))  # quantizes on .to()
    model.to(device)


def fp8_scheme(device: str) -> str:
    """What ``fp8`` means on ``device``: on a GPU vLLM's online FP8 (``--quantization fp8`` /
    ``fp8_per_tensor``: FP8 weights with one scale per tensor, activations quantized per tensor
    on each forward, FP8 matrix products), on a CPU, which has no FP8 matrix product, FP8 weights
    dequantized to bf16."""
    if device == "cuda":
        return "W8A8 FP8 e4m3, per-tensor scales, dynamic activations (torchao)"
    return "FP8 e4m3 weights only, per-row scales, bf16 compute (torchao)"


def _fp8(model: Any, device: str) -> None:
    with _quiet_import():  # quantize_ imports more of torchao
        torchao = importlib.import_module("torchao.quantization")
        config = (
            torchao.Float8DynamicActivationFloat8WeightConfig()  # per-tensor by default
            if device == "cuda"
            else torchao.Float8WeightOnlyConfig()
        )
        torchao.quantize_(model.model.layers, config)


def _versions(quantization: str) -> dict[str, str]:
    found = {}
    names = ["torch", "transformers"]
    if quantization.startswith("bitsandbytes"):
        names.append("bitsandbytes")
    if quantization == "fp8":
        names.append("torchao")
    for name in names:
        found[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    return found


@dataclass(frozen=True)
class BatchRun:
    """One batch: the requests it stands for, how long it took, what memory it used."""

    samples: list[RequestSample]
    duration_s: float
    kv_bytes: int
    peak_bytes: int | None


def kv_cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers cache's key and value tensors."""
    total = 0
    for layer in getattr(cache, "layers", []) or []:
        for attr in ("keys", "values"):
            t = getattr(layer, attr, None)
            if t is not None and hasattr(t, "element_size"):
                total += int(t.numel() * t.element_size())
    return total


def run_batch(built: Built, batch: int, input_len: int, output_len: int, seed: int = 0) -> BatchRun:
    """Prefill ``batch`` prompts of ``input_len`` random tokens, then decode greedily exactly
    ``output_len`` tokens each (no end-of-sequence stop: the lengths are fixed)."""
    import torch

    model = built.model
    sync: Callable[[], None] = torch.cuda.synchronize if built.device == "cuda" else _nothing
    gen = torch.Generator().manual_seed(seed)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(0, vocab, (batch, input_len), generator=gen).to(built.device)
    if built.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    gaps: list[float] = []
    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        sync()
        first = time.perf_counter()
        past = out.past_key_values
        last = first
        for _ in range(output_len - 1):
            out = model(input_ids=token, past_key_values=past, use_cache=True)
            token = out.logits[:, -1].argmax(dim=-1, keepdim=True)
            past = out.past_key_values
            sync()
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    e2e = last - start
    sample = RequestSample(
        ttft_s=first - start, e2e_s=e2e, output_tokens=output_len, gaps_s=tuple(gaps)
    )
    peak = int(torch.cuda.max_memory_allocated()) if built.device == "cuda" else None
    return BatchRun([sample] * batch, e2e, kv_cache_bytes(past), peak)


def _nothing() -> None:
    return None
