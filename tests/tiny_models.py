"""A tiny randomly initialised chat model and tokenizer, built locally: no download.

The tokenizer is a byte-level BPE trained on a few sentences, with the special tokens and
a ChatML chat template of Qwen-style instruct models; the model is a 2-layer Qwen2 (or any
config passed in) with random weights. Both are saved with `save_pretrained`, so they load
through the same path as a real model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|unk|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "system user assistant",
    "Write a haiku about the sea and the tide pools at dawn.",
    "The draft is vague: name one concrete detail, and fix the second line.",
    'Reply with JSON: {"score": 3, "feedback": "good", "passed": true, "issues": []}',
    "def mean(xs): return sum(xs) / len(xs) if xs else 0.0",
    "You are a strict, fair reviewer. Judge the answer against the rubric.",
    'one two three four five six seven eight nine ten . , ; ! ? ( ) [ ] { } : "',
]


def build_tokenizer(vocab_size: int = 400) -> Any:
    """A byte-level BPE tokenizer (the kind Qwen and Llama 3 use), trained on `CORPUS`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<|unk|>",
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(
    directory: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Save a random Qwen2 chat model and its tokenizer in `directory`, and return it."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random weights are nearly flat; scaled up, greedy picks are well separated, so batched
    # and single runs agree despite float rounding that differs with the batch shape.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.5)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
