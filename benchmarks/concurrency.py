"""Throughput of many concurrent loops against a local OpenAI-compatible server.

500 loops x 3 rounds (actor, 3 critic calls, 2 edits: 6 calls a loop), each call answered
after 50 ms, all in one event loop through LiteLLM over real HTTP. The ideal is what the
latency alone allows: with every loop running at once, 6 x 50 ms for the whole batch.

    python benchmarks/concurrency.py [--loops 500] [--latency 0.05] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time

from redraft import LiteLLMModel, LLMCritic, LLMEditor, Refiner, Result
from redraft.testing.openai_server import ChatRequest, OpenAIServer

ROUNDS = 3
CALLS_PER_LOOP = 1 + ROUNDS + (ROUNDS - 1)  # actor, one critic per round, edits between
VERDICT = json.dumps(
    {
        "feedback": "The draft is vague.",
        "summary": "Too vague.",
        "issues": [{"problem": "vague", "suggestion": "be specific", "severity": "major"}],
        "score": 2,
    }
)


def handler(request: ChatRequest) -> str:
    if "strict, fair reviewer" in request.messages[0]["content"]:
        return VERDICT
    # A new text every time, so no loop stops early on a repeated draft.
    return f"Draft {request.index}: a paragraph about tide pools."


async def run_batch(server: OpenAIServer, loops: int, concurrency: int) -> tuple[float, float]:
    model = LiteLLMModel("openai/bench", api_base=server.base_url, timeout_s=60)
    refiner = Refiner(
        model,
        critics=[LLMCritic()],
        editor=LLMEditor(mode="rewrite"),
        max_rounds=ROUNDS,
        patience=None,
    )
    tasks = [f"Describe tide pool number {i}" for i in range(loops)]
    cpu, started = time.process_time(), time.perf_counter()
    results = await refiner.abatch(tasks, concurrency=concurrency)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finished = [r for r in results if isinstance(r, Result) and len(r.rounds) == ROUNDS]
    assert len(finished) == loops, f"only {len(finished)} of {loops} loops ran {ROUNDS} rounds"
    return wall, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    calls = args.loops * CALLS_PER_LOOP
    waves = math.ceil(args.loops / args.concurrency)
    ideal_s = waves * CALLS_PER_LOOP * args.latency
    with OpenAIServer(handler, latency_s=args.latency) as server:
        await run_batch(server, min(args.loops, 20), args.concurrency)  # warm up imports
        server.reset()
        wall, cpu = await run_batch(server, args.loops, args.concurrency)
        assert len(server.requests) == calls
        peak = server.max_in_flight
    print(
        f"{args.loops} loops x {ROUNDS} rounds = {calls} calls, {args.latency * 1000:.0f} ms "
        f"per call, concurrency {args.concurrency}, {os.cpu_count()} CPUs"
    )
    print(f"ideal    {ideal_s:8.2f} s   {calls / ideal_s:9.0f} calls/s")
    print(f"achieved {wall:8.2f} s   {calls / wall:9.0f} calls/s   ({ideal_s / wall:.0%} of ideal)")
    print(f"client CPU per call {cpu / calls * 1000:.2f} ms; peak requests in flight {peak}")


if __name__ == "__main__":
    asyncio.run(main())
