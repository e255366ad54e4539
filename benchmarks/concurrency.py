"""Throughput of many concurrent loops against a local OpenAI-compatible server.

500 loops x 3 rounds (actor, 3 critic calls, 2 edits: 6 calls a loop), each call answered
after 50 ms, all in one event loop through LiteLLM over real HTTP. The ideal is what the
latency alone allows: with every loop running at once, 6 x 50 ms for the whole batch.

The baselines replay the very requests redraft sent, in the same pattern (as many loops, each
making its 6 calls one after another, at most `--concurrency` loops at once): through
`LiteLLMModel.complete` alone (LiteLLM without redraft's loop), then with the `openai` SDK's
`AsyncOpenAI` alone, over the aiohttp-backed httpx client LiteLLM gives it and over the SDK's
default httpx client. The SDK over LiteLLM's client is the same HTTP stack without LiteLLM, so
redraft against it shows what redraft and LiteLLM add; the two SDK lines show what the HTTP
client stack alone does.

    python benchmarks/concurrency.py [--loops 500] [--latency 0.05] [--concurrency 500]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redraft import LiteLLMModel, LLMCritic, LLMEditor, Refiner, Result
from redraft.models.base import Message, ModelRequest, ModelSettings
from redraft.models.litellm import load_litellm
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


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # the whole process: this loop, LiteLLM's worker threads and the server's
    server_cpu_s: float  # the test server's thread alone
    peak: int


class _Measure:
    """Wall time, process CPU time and the test server thread's CPU time of a block."""

    def __init__(self, server: OpenAIServer) -> None:
        self.server = server
        self.run = Run(0.0, 0.0, 0.0, 0)

    def __enter__(self) -> _Measure:
        self.server.reset()
        self._server_cpu = _server_cpu_s()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.run = Run(
            wall_s=time.perf_counter() - self._wall,
            cpu_s=time.process_time() - self._cpu,
            server_cpu_s=_server_cpu_s() - self._server_cpu,
            peak=self.server.max_in_flight,
        )


def _server_cpu_s() -> float:
    """CPU time of OpenAIServer's thread (0 where the platform cannot tell)."""
    for thread in threading.enumerate():
        if thread.name == "OpenAIServer" and thread.ident is not None:
            try:
                return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AttributeError, OSError):
                return 0.0
    return 0.0


async def run_batch(server: OpenAIServer, loops: int, concurrency: int) -> Run:
    model = LiteLLMModel("openai/bench", api_base=server.base_url, timeout_s=60)
    refiner = Refiner(
        model,
        critics=[LLMCritic()],
        editor=LLMEditor(mode="rewrite"),
        max_rounds=ROUNDS,
        patience=None,
    )
    tasks = [f"Describe tide pool number {i}" for i in range(loops)]
    with _Measure(server) as measure:
        results = await refiner.abatch(tasks, concurrency=concurrency)
    finished = [r for r in results if isinstance(r, Result) and len(r.rounds) == ROUNDS]
    assert len(finished) == loops, f"only {len(finished)} of {loops} loops ran {ROUNDS} rounds"
    assert len(server.requests) == loops * CALLS_PER_LOOP
    return measure.run


Send = Callable[[dict[str, Any]], Awaitable[None]]


async def replay(
    server: OpenAIServer, send: Send, bodies: list[dict[str, Any]], concurrency: int
) -> Run:
    """`send` each body: a loop per CALLS_PER_LOOP bodies, in turn, `concurrency` loops at once."""
    gate = asyncio.Semaphore(concurrency)

    async def loop(calls: list[dict[str, Any]]) -> None:
        async with gate:
            for body in calls:
                await send(body)

    loops = [bodies[i : i + CALLS_PER_LOOP] for i in range(0, len(bodies), CALLS_PER_LOOP)]
    with _Measure(server) as measure:
        await asyncio.gather(*(loop(calls) for calls in loops))
    assert len(server.requests) == len(bodies)
    return measure.run


async def replay_twice(
    server: OpenAIServer, send: Send, bodies: list[dict[str, Any]], args: argparse.Namespace
) -> Run:
    """Like run_batch: a first, short batch warms the client up, the second one counts."""
    warm_up = bodies[: min(args.loops, 20) * CALLS_PER_LOOP]
    await replay(server, send, warm_up, args.concurrency)
    return await replay(server, send, bodies, args.concurrency)


async def model_baseline(
    server: OpenAIServer, bodies: list[dict[str, Any]], args: argparse.Namespace
) -> Run:
    """The requests through LiteLLMModel.complete alone: LiteLLM, without redraft's loop."""
    model = LiteLLMModel("openai/bench", api_base=server.base_url, timeout_s=60)

    async def send(body: dict[str, Any]) -> None:
        messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
        settings = ModelSettings(
            temperature=body.get("temperature"),
            max_tokens=body.get("max_tokens"),
            stop=body.get("stop"),
        )
        completion = await model.complete(ModelRequest(messages=messages, settings=settings))
        assert completion.text

    return await replay_twice(server, send, bodies, args)


async def sdk_baseline(
    server: OpenAIServer,
    bodies: list[dict[str, Any]],
    args: argparse.Namespace,
    make_http_client: Callable[[], Any] | None,
) -> Run:
    """The requests sent with the openai SDK's AsyncOpenAI client alone."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="sk-redraft-no-key",
        timeout=60,
        max_retries=0,  # as LiteLLMModel asks of it
        http_client=make_http_client() if make_http_client else None,
    )
    accepted = set(inspect.signature(client.chat.completions.create).parameters)

    async def send(body: dict[str, Any]) -> None:
        params = {key: value for key, value in body.items() if key in accepted}
        response = await client.chat.completions.create(**params)
        assert response.choices[0].message.content

    try:
        return await replay_twice(server, send, bodies, args)
    finally:
        await client.close()


def _aiohttp() -> Any:
    """The httpx client (over aiohttp) that LiteLLM hands the OpenAI SDK."""
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    return BaseOpenAILLM.get_async_http_client()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    calls = args.loops * CALLS_PER_LOOP
    waves = math.ceil(args.loops / args.concurrency)
    ideal_s = waves * CALLS_PER_LOOP * args.latency
    load_litellm()
    with OpenAIServer(handler, latency_s=args.latency) as server:
        await run_batch(server, min(args.loops, 20), args.concurrency)  # warm up imports
        redraft = await run_batch(server, args.loops, args.concurrency)
        bodies = [request.body for request in server.requests]
        baselines = [
            ("LiteLLMModel alone (LiteLLM)", await model_baseline(server, bodies, args)),
            ("AsyncOpenAI, LiteLLM's client", await sdk_baseline(server, bodies, args, _aiohttp)),
            ("AsyncOpenAI, default client", await sdk_baseline(server, bodies, args, None)),
        ]
    print(
        f"{args.loops} loops x {ROUNDS} rounds = {calls} calls, {args.latency * 1000:.0f} ms "
        f"per call, concurrency {args.concurrency}, {os.cpu_count()} CPUs"
    )
    print(f"ideal    {ideal_s:8.2f} s   {calls / ideal_s:9.0f} calls/s")
    wall = redraft.wall_s
    print(f"achieved {wall:8.2f} s   {calls / wall:9.0f} calls/s   ({ideal_s / wall:.0%} of ideal)")
    print(
        f"client CPU per call {redraft.cpu_s / calls * 1000:.2f} ms "
        f"(the test server's thread {redraft.server_cpu_s / calls * 1000:.2f} ms of it); "
        f"peak requests in flight {redraft.peak}"
    )
    print(
        f"baselines: the same {calls} requests replayed, {args.loops} loops of "
        f"{CALLS_PER_LOOP} calls in turn, {args.concurrency} loops at once"
    )
    print(f"  {'':30} {'wall':>8}   {'calls/s':>7}   {'CPU/call':>8}   redraft takes")
    for label, run in [("redraft: Refiner + LiteLLM", redraft), *baselines]:
        ratio = "" if run is redraft else f"{redraft.wall_s / run.wall_s:5.2f}x as long"
        print(
            f"  {label:30} {run.wall_s:6.2f} s   {calls / run.wall_s:7.0f}   "
            f"{run.cpu_s / calls * 1000:5.2f} ms   {ratio}"
        )


if __name__ == "__main__":
    asyncio.run(main())
