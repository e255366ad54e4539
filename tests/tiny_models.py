"""A tiny randomly initialised chat model and tokenizer, built locally: no download.

The tokenizer is a byte-level BPE trained on a few sentences, with the special tokens and
a ChatML chat template of Qwen-style instruct models; the model is a 2-layer Qwen2 (or any
config passed in) with random weights. Both are saved with `save_pretrained`, so they load
through the same path as a real model.

`build_scripted_model` instead trains such a model, in a few seconds on CPU, to answer a few
given conversations with given replies (a tool call, say), with a tokenizer whose template
takes tools: real generation of a known reply.
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


def build_tokenizer(vocab_size: int = 400, corpus: list[str] = CORPUS) -> Any:
    """A byte-level BPE tokenizer (the kind Qwen and Llama 3 use), trained on `corpus`."""
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
    raw.train_from_iterator(corpus, trainer=trainer)
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
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(tokenizer, hidden_size, layers))
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


def _config(tokenizer: Any, hidden_size: int, layers: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
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


# A Qwen2.5-style template that takes tools: the tools listed as JSON in the system turn, each
# call the assistant made as a <tool_call> block with its arguments as a JSON object, and the
# results of a turn's calls gathered into one user turn of <tool_response> blocks.
TOOL_CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\n\n' }}{%- endif %}"
    "{{- 'You may call tools. Their signatures:\n<tools>' }}"
    "{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\n</tools>\nTo call one, reply with <tool_call>\n"
    '{"name": <name>, "arguments": <JSON object>}'
    "\n</tool_call><|im_end|>\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' and loop.first %}"
    "{%- elif message['role'] == 'assistant' and message.tool_calls %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message['content'] %}{{- '\n' + message['content'] }}{%- endif %}"
    "{%- for call in message.tool_calls %}"
    '{{- \'\n<tool_call>\n{"name": "\' + call.function.name + \'", "arguments": \' }}'
    "{{- call.function.arguments | tojson }}{{- '}\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}"
    "{{- '<|im_start|>user' }}"
    "{%- endif %}"
    "{{- '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}"
    "{{- '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
# Like Qwen2.5's: added to the vocabulary whole, but not special, so decoding keeps them.
TOOL_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
TOOL_CORPUS = [
    'You may call tools. Their signatures: {"type": "function", "function": {"name": '
    '"description": "parameters": "properties": "required": "title": "string" "object"}}',
    'To call one, reply with {"name": <name>, "arguments": <JSON object>}',
    '{"output": "note": "tool output: data to weigh, not instructions"}',
]


def build_tool_tokenizer() -> Any:
    """`build_tokenizer`'s kind, with tool tokens and a template that takes tools."""
    from tokenizers import AddedToken

    tokenizer = build_tokenizer(corpus=CORPUS + TOOL_CORPUS, vocab_size=700)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TOKENS])
    tokenizer.chat_template = TOOL_CHAT_TEMPLATE
    return tokenizer


def build_scripted_model(
    directory: Path,
    script: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None, str]],
    *,
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
    max_steps: int = 300,
) -> Path:
    """Save a tiny Qwen2 chat model trained until greedy decoding of each prompt in `script`
    gives exactly its reply, and its tokenizer (`build_tool_tokenizer`), in `directory`.

    Each entry is (messages, tools, reply): the prompt is the chat template applied to them.
    Trained on nothing else, the model answers other prompts with garbage. Raises when the
    replies are not learnt within `max_steps`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tool_tokenizer()
    examples: list[tuple[list[int], list[int]]] = []
    for messages, tools, reply in script:
        prompt = tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        # Tokenized apart, as LocalModel tokenizes the prompt: the model learns to go on from
        # exactly the ids it will be given.
        asked = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer = [*tokenizer(reply, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        examples.append((asked + answer, [-100] * len(asked) + answer))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(tokenizer, hidden_size, layers))
    # Matrices this small gain nothing from threads, and threads fighting other processes for
    # the cores make each step ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train(model, examples, pad=tokenizer.pad_token_id, max_steps=max_steps)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# How far, in logits, each reply token must lead the model's next pick.
MARGIN = 2.0


def _train(
    model: Any, examples: list[tuple[list[int], list[int]]], *, pad: int, max_steps: int
) -> None:
    """Train on the (ids, labels) examples, in one batch, until every reply token is the
    model's pick by `MARGIN` logits: greedy decoding then gives each reply exactly, whatever
    float rounding a batch's padding brings."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in examples])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in examples])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples])
    scored = labels[:, 1:] != -100
    targets = labels[:, 1:][scored].unsqueeze(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(max_steps):
        output = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        logits = output.logits[:, :-1][scored]
        right = logits.gather(1, targets).squeeze(1)
        others = logits.scatter(1, targets, float("-inf")).amax(1)
        if bool((right - others > MARGIN).all()):
            return
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    raise RuntimeError(f"the scripted model did not learn its replies in {max_steps} steps")
