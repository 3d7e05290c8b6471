"""A tiny Llama made here, the same bytes every time: the model the real vLLM engine serves.

Two layers, hidden size 128, random weights from a fixed seed, a byte-level BPE tokenizer trained
on a few fixed sentences, and a chat template that takes text parts; no download. Run as a script
by the real engine's own python (``python harness/tiny_model.py DIR``), which has torch,
transformers and tokenizers; called by :func:`harness.vllm_cpu.tiny_model`.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def build(out: Path) -> None:
    """Write the model and its tokenizer into ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(fast),
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
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)  # float32


if __name__ == "__main__":
    build(Path(sys.argv[1]))
