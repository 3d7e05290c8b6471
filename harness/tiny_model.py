"""A tiny Llama made here, the same bytes every time: the model the real vLLM engine serves.

Two layers, hidden size 128, random weights from a fixed seed, a byte-level BPE tokenizer trained
on a few fixed sentences, and a chat template that takes text parts; no download. Its quantized
twins (:func:`build_quantized`) are the same weights rounded to nearest into the formats vLLM
loads (compressed-tensors, AutoAWQ, GPTQ). Run as a script by the real engine's own python
(``python harness/tiny_model.py DIR [SCHEME]``), which has torch, transformers, tokenizers and
compressed-tensors; called by :func:`harness.vllm_cpu.tiny_model`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A canary shifts traffic in steps.",
    "Latency, errors and tokens per second are watched.",
    "Hello, how can I help you today?",
)
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{{ m['content'] if m['content'] is string "
    "else m['content'] | map(attribute='text') | join('') }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
SEED = 0


def _tokenizer(out: Path) -> Any:
    """Train the tokenizer and save it into ``out``; the fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(SENTENCES) * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def _model(vocab_size: int) -> Any:
    """The float32 model, its weights drawn from :data:`SEED`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


TRAIN_STEPS = 200
"""Adam steps of :func:`_train` on :data:`SENTENCES`: enough that the model continues each
sentence it was taught, so its next token is one clear choice that a faithful quantization
keeps and a broken one loses (random weights give near-even choices any rounding may flip)."""
TRAIN_LR = 3e-3


def _train(model: Any, fast: Any) -> None:
    """Teach ``model`` :data:`SENTENCES` (next-token loss, one batch of all four), on one
    thread so that every build gives the same bytes."""
    import torch

    torch.manual_seed(SEED)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        batch = fast(list(SENTENCES), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        optimiser = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
        model.train()
        for _ in range(TRAIN_STEPS):
            optimiser.zero_grad()
            model(**batch, labels=labels).loss.backward()
            optimiser.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)


def _built(out: Path, trained: bool) -> tuple[Any, Any]:
    """The tokenizer (saved into ``out``) and the float32 model, taught :data:`SENTENCES` when
    ``trained``."""
    fast = _tokenizer(out)
    model = _model(len(fast))
    if trained:
        _train(model, fast)
    return fast, model


def build(out: Path, trained: bool = False) -> None:
    """Write the model (taught :data:`SENTENCES` when ``trained``) and its tokenizer into
    ``out``."""
    _fast, model = _built(out, trained)
    model.save_pretrained(out, safe_serialization=True)  # float32


SCHEMES = ("w8a8", "w8a8-broken", "w4a16", "w8a16", "awq", "gptq")
"""The quantized twins :func:`build_quantized` writes, each as its quantizer saves it:

- ``w8a8``: compressed-tensors ``int-quantized`` (llm-compressor's W8A8 preset): int8 weights with
  one scale per output channel, int8 activations quantized per token at run time;
- ``w8a8-broken``: the same checkpoint with each saved per-channel scale multiplied by a seeded
  factor between :data:`BROKEN_SCALES` (a quantizer that wrote the wrong scales): the int8
  weights are right, what they dequantize to is not;
- ``w4a16`` and ``w8a16``: compressed-tensors ``pack-quantized`` (the W4A16 and W8A16 presets):
  symmetric int4 or int8 weights in groups of :data:`GROUP_SIZE`, activations unquantized;
- ``awq``: AutoAWQ's GEMM layout, asymmetric 4-bit with zero points, groups of :data:`GROUP_SIZE`;
- ``gptq``: GPTQ's layout (``desc_act`` false), symmetric 4-bit, groups of :data:`GROUP_SIZE`.
"""
GROUP_SIZE = 32
"""Every grouped twin's group: divides each Linear's input (128 and 256), where the presets' 128
would make the 128-wide layers one group."""
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
"""Where AutoAWQ's GEMM packing puts the eight 4-bit values of each int32."""
PRESETS = {"w8a8": ("W8A8", "int-quantized"), "w4a16": ("W4A16", "pack-quantized")}
PRESETS["w8a8-broken"] = PRESETS["w8a8"]
PRESETS["w8a16"] = ("W8A16", "pack-quantized")
BROKEN_SCALES = (0.5, 1.5)
"""The range of the factors ``w8a8-broken``'s saved scales are multiplied by."""


def _round_to_nearest(module: Any) -> None:
    """Set the weight scale (and zero point) of a module compressed-tensors initialised from the
    weight's own minimum and maximum: round to nearest, no calibration data."""
    import torch
    from compressed_tensors.quantization import QuantizationStrategy
    from compressed_tensors.quantization.utils import calculate_qparams

    args = module.quantization_scheme.weights
    weight = module.weight.data
    if args.strategy == QuantizationStrategy.GROUP:
        rows, columns = weight.shape
        grouped = weight.reshape(rows, columns // args.group_size, args.group_size)
        low, high = grouped.amin(dim=-1), grouped.amax(dim=-1)
    elif args.strategy == QuantizationStrategy.CHANNEL:
        low, high = weight.amin(dim=1, keepdim=True), weight.amax(dim=1, keepdim=True)
    else:
        raise ValueError(f"no round to nearest for {args.strategy}")
    scale, zero_point = calculate_qparams(low, high, args)
    with torch.no_grad():
        module.weight_scale.copy_(scale.to(module.weight_scale.dtype))
        if hasattr(module, "weight_zero_point"):
            module.weight_zero_point.copy_(zero_point.to(module.weight_zero_point.dtype))


def _compressed_tensors(out: Path, model: Any, scheme: str) -> None:
    """Quantize ``model`` with compressed-tensors' own preset and compressor, as llm-compressor
    does, and save it into ``out``."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationScheme,
        QuantizationStatus,
        apply_quantization_config,
        preset_name_to_scheme,
    )

    preset, form = PRESETS[scheme]
    quant = preset_name_to_scheme(preset, ["Linear"])
    if quant.weights is not None and quant.weights.group_size is not None:
        quant.weights.group_size = GROUP_SIZE
    config = QuantizationConfig(
        config_groups={"group_0": QuantizationScheme.model_validate(quant)},
        ignore=["lm_head"],
        quantization_status=QuantizationStatus.INITIALIZED,
    )
    apply_quantization_config(model, config)
    for module in model.modules():
        if getattr(module, "quantization_scheme", None) is not None:
            _round_to_nearest(module)
            module.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format=form)
    compressor.compress_model(model)
    if scheme.endswith("-broken"):
        _break_scales(model)
    model.save_pretrained(out, safe_serialization=True)
    compressor.update_config(str(out))


def _break_scales(model: Any) -> None:
    """Multiply every saved weight scale by a factor drawn uniformly from
    :data:`BROKEN_SCALES`, per output channel, from :data:`SEED`."""
    import torch

    generator = torch.Generator().manual_seed(SEED)
    low, high = BROKEN_SCALES
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if name.endswith("weight_scale"):
                factor = torch.rand(tensor.shape, generator=generator) * (high - low) + low
                tensor.mul_(factor.to(tensor.dtype))


def _pack(values: Any, order: tuple[int, ...] = tuple(range(8))) -> Any:
    """Eight 4-bit values along the last axis into one int32, value ``order[i]`` in bits 4i."""
    import torch

    grouped = values.to(torch.int64).reshape(*values.shape[:-1], -1, 8)
    packed = torch.zeros(grouped.shape[:-1], dtype=torch.int64)
    for bits, index in enumerate(order):
        packed |= grouped[..., index] << (4 * bits)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)


def _int4(weight: Any, symmetric: bool) -> tuple[Any, Any, Any]:
    """``weight`` (``[out, in]``) rounded to nearest in 4-bit groups of :data:`GROUP_SIZE` along
    its input: the values 0..15 ``[in, out]``, the scales and the zero points ``[in/group, out]``
    (GPTQ's symmetric grid: scale max/7.5, zero point 8)."""
    import torch

    rows, columns = weight.shape
    grouped = weight.t().reshape(columns // GROUP_SIZE, GROUP_SIZE, rows)
    if symmetric:
        scale = grouped.abs().amax(dim=1) / 7.5
        zero = torch.full_like(scale, 8, dtype=torch.int64)
    else:
        low, high = grouped.amin(dim=1).clamp(max=0), grouped.amax(dim=1).clamp(min=0)
        scale = (high - low) / 15
        zero = torch.round(-low / scale).clamp(0, 15).to(torch.int64)
    values = torch.round(grouped / scale[:, None, :]) + zero[:, None, :]
    return values.clamp(0, 15).to(torch.int64).reshape(columns, rows), scale, zero


def _int4_checkpoint(out: Path, model: Any, scheme: str) -> None:
    """Write ``model`` into ``out`` in AutoAWQ's GEMM layout (``awq``: asymmetric, zero points)
    or GPTQ's (``gptq``: symmetric, ``desc_act`` false, zero points stored minus one), float16
    scales, ``dtype`` float16 in ``config.json``; embeddings, norms and ``lm_head`` stay
    float32."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    for name, tensor in model.state_dict().items():
        if not name.endswith("_proj.weight"):
            tensors[name] = tensor.contiguous()
            continue
        layer = name.removesuffix(".weight")
        values, scale, zero = _int4(tensor, symmetric=scheme == "gptq")
        if scheme == "awq":
            tensors[f"{layer}.qweight"] = _pack(values, AWQ_ORDER)
            tensors[f"{layer}.qzeros"] = _pack(zero, AWQ_ORDER)
        else:
            tensors[f"{layer}.qweight"] = _pack(values.t()).t().contiguous()
            tensors[f"{layer}.qzeros"] = _pack(zero - 1)
            index = torch.arange(values.shape[0], dtype=torch.int32) // GROUP_SIZE
            tensors[f"{layer}.g_idx"] = index
        tensors[f"{layer}.scales"] = scale.to(torch.float16).contiguous()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    common = {"bits": 4, "group_size": GROUP_SIZE}
    model.config.architectures = [type(model).__name__]
    model.config.dtype = torch.float16  # as AutoAWQ and AutoGPTQ save; vLLM takes no float32
    model.config.quantization_config = (
        {"quant_method": "awq", **common, "zero_point": True, "version": "gemm"}
        if scheme == "awq"
        else {"quant_method": "gptq", **common, "desc_act": False, "sym": True}
    )
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)


def build_quantized(out: Path, scheme: str, trained: bool = False) -> None:
    """Write the quantized twin of :func:`build`'s model (``trained`` or not) into ``out``: the
    same tokenizer, the same weights, every Linear but ``lm_head`` rounded to nearest into
    ``scheme`` (one of :data:`SCHEMES`); the same bytes every time."""
    if scheme not in SCHEMES:
        raise ValueError(f"no quantized twin {scheme!r}: one of {', '.join(SCHEMES)}")
    _fast, model = _built(out, trained)
    if scheme in PRESETS:
        _compressed_tensors(out, model, scheme)
    else:
        _int4_checkpoint(out, model, scheme)


if __name__ == "__main__":
    TRAINED = "--trained" in sys.argv
    ARGS = [a for a in sys.argv[1:] if a != "--trained"]
    if len(ARGS) > 1:
        build_quantized(Path(ARGS[0]), ARGS[1], TRAINED)
    else:
        build(Path(ARGS[0]), TRAINED)
