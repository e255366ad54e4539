"""Generated tokens/s of the local model for 1, 8 and 32 concurrent loops, batched or not.

Each "loop" is a coroutine making `--calls` calls one after another (a refinement loop makes
many short calls), all loops in one event loop against one `LocalModel`. Batched: the model's
scheduler as shipped (up to 32 requests a batch). Unbatched: the same scheduler with
`max_batch_size=1`, so requests run one `generate` at a time in arrival order: the same code
path and worker thread, without the batching. Decoding is greedy with EOS ignored by the
model (a random model would otherwise stop at random), so every call generates exactly
`--tokens` tokens and both modes do the same work.

    python benchmarks/local_batching.py                   # small random model (CPU-sized)
    python benchmarks/local_batching.py --size 0.5b       # Qwen2.5-0.5B-shaped random model
    python benchmarks/local_batching.py --model PATH      # a real model folder

Random models are built from a config (no download) with a locally trained tokenizer, saved
to a temporary folder and loaded through `hf:<folder>` like any model.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redraft.models.base import ModelRequest, ModelSettings, user
from redraft.models.local import LocalModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tiny_models import build_tokenizer

CONCURRENCY = (1, 8, 32)
GPU_TARGET = 8.0
TOPICS = ["the sea", "tide pools", "a lighthouse", "rain", "a harbour at dawn", "gulls"]
# (hidden, intermediate, layers, heads, kv heads): the 0.5b one is Qwen2.5-0.5B's shape.
SIZES = {"small": (256, 768, 4, 4, 2), "0.5b": (896, 4864, 24, 14, 2)}


def build_random_model(directory: Path, size: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    hidden, intermediate, layers, heads, kv_heads = SIZES[size]
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=151936 if size == "0.5b" else 8192,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=None,  # generate every requested token: equal work in both modes
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(directory)
    tokenizer.eos_token = None
    tokenizer.save_pretrained(directory)
    return directory


async def run_loops(model: LocalModel, loops: int, calls: int, tokens: int) -> tuple[int, float]:
    settings = ModelSettings(temperature=0.0, max_tokens=tokens)

    async def one_loop(index: int) -> int:
        generated = 0
        for call in range(calls):
            topic = TOPICS[(index + call) % len(TOPICS)]
            prompt = f"Write a haiku about {topic}. " * (1 + index % 3)  # prompts vary in length
            request = ModelRequest(messages=[user(prompt)], settings=settings)
            completion = await model.complete(request)
            generated += completion.usage.output_tokens
        return generated

    started = time.perf_counter()
    counts = await asyncio.gather(*(one_loop(i) for i in range(loops)))
    return sum(counts), time.perf_counter() - started


def measure(path: Path, args: argparse.Namespace, batch_size: int) -> dict[int, float]:
    model = LocalModel(str(path), max_batch_size=batch_size, batch_wait_ms=args.wait_ms)
    model.load()
    asyncio.run(run_loops(model, 2, 1, 4))  # warm-up: kernels, allocator, thread start
    rates: dict[int, float] = {}
    for loops in CONCURRENCY:
        generated, wall = asyncio.run(run_loops(model, loops, args.calls, args.tokens))
        rates[loops] = generated / wall
    model.close()
    model.unload()
    return rates


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: a random model)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--calls", type=int, default=2, help="calls per loop")
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated per call")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="batch_wait_ms")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path: Any = args.model or build_random_model(Path(scratch) / "model", args.size)
        what = str(args.model) if args.model else f"random Qwen2 ({args.size})"
        print(f"model: {what}; device: {device_name()}")
        print(f"each loop: {args.calls} calls x {args.tokens} tokens, greedy")
        print("unbatched = the same scheduler with max_batch_size=1 (one generate per call)\n")
        batched = measure(path, args, 32)
        unbatched = measure(path, args, 1)

    print(f"{'loops':>5}  {'batched tok/s':>14}  {'unbatched tok/s':>16}  {'ratio':>6}")
    for loops in CONCURRENCY:
        ratio = batched[loops] / unbatched[loops]
        print(f"{loops:>5}  {batched[loops]:>14.1f}  {unbatched[loops]:>16.1f}  {ratio:>5.1f}x")
    ratio = batched[32] / unbatched[32]
    import torch

    if torch.cuda.is_available():
        verdict = "met" if ratio >= GPU_TARGET else "NOT met"
        print(f"\nat 32 loops: {ratio:.1f}x; GPU target >= {GPU_TARGET:g}x: {verdict}")
    else:
        print(
            f"\nat 32 loops: {ratio:.1f}x; GPU target >= {GPU_TARGET:g}x: not measured here: no GPU"
        )


if __name__ == "__main__":
    main()
