"""The tool loop's overhead per tool call, against calling the function directly.

Three ways to run the same conversation of `--calls` tool calls (one a model turn) with an
instant model (a `ScriptedModel` that proposes the next call at once):

- direct: a hand-written loop that parses the arguments and calls the function itself;
- redraft, async tool: `complete_with_tools` with an `async def` tool;
- redraft, sync tool: the same with a plain `def` tool (run in a reused daemon thread, so
  that a slow one can be abandoned at its timeout).

All three are CPU-bound, so each is timed by this process's CPU time (`time.process_time`),
which load from other processes does not skew; the ratio is per call, against direct.

    python benchmarks/tools.py [--calls 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from redraft.models.base import (
    Completion,
    Message,
    ModelRequest,
    ToolCall,
    assistant,
    user,
)
from redraft.models.scripted import ScriptedCall, ScriptedModel
from redraft.tools import Tool, ToolContext, ToolLimits, complete_with_tools, tool


def add_numbers(a: int, b: int) -> int:
    return a + b


async def add_numbers_async(a: int, b: int) -> int:
    return a + b


def model_making(calls: int) -> ScriptedModel:
    """A model that asks for `calls` tool calls, one a turn, then answers."""

    def reply(messages: list[Message], call: ScriptedCall) -> Completion:
        made = sum(1 for m in messages if m.role == "assistant")
        if made >= calls:
            return Completion(text="done")
        arguments = {"a": made, "b": 1}
        name = call.request.tools[0].name if call.request.tools else "add"
        return Completion(
            text="", tool_calls=[ToolCall(id=f"c{made}", name=name, arguments=arguments)]
        )

    return ScriptedModel(reply)


async def direct(calls: int) -> None:
    """The baseline: the same conversation, the function called by hand."""
    model = model_making(calls)
    messages = [user("add")]
    spec = tool(add_numbers).spec
    while True:
        completion = await model.complete(ModelRequest(messages=messages, tools=[spec]))
        if not completion.tool_calls:
            return
        results = [
            Message(
                role="tool",
                content=json.dumps({"output": add_numbers(**call.arguments)}),
                tool_call_id=call.id,
            )
            for call in completion.tool_calls
        ]
        messages = [*messages, assistant(completion.text), *results]


def through_redraft(made: Tool) -> Callable[[int], Awaitable[None]]:
    async def run(calls: int) -> None:
        limits = ToolLimits(max_steps=calls + 1, tool_time_s=3600)
        request = ModelRequest(messages=[user("add")])
        await complete_with_tools(model_making(calls), request, [made], ToolContext(), limits)

    return run


def cpu_time(run: Callable[[int], Awaitable[None]], calls: int, runs: int) -> float:
    """The median CPU seconds of one run of `calls` calls."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        asyncio.run(run(calls))
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    ways = {
        "direct (hand-written loop)": direct,
        "redraft, async tool": through_redraft(Tool(add_numbers_async, name="add")),
        "redraft, sync tool": through_redraft(Tool(add_numbers, name="add")),
    }
    cpu_time(direct, 10, 1)  # imports and first-call costs out of the figures
    baseline = None
    print(f"{args.calls} tool calls a run, median of {args.runs} runs (CPU time)")
    for label, run in ways.items():
        seconds = cpu_time(run, args.calls, args.runs)
        per_call_ms = 1000 * seconds / args.calls
        baseline = baseline or per_call_ms
        print(f"  {label:28s} {per_call_ms:7.3f} ms a call   {per_call_ms / baseline:5.2f}x")
    print("the direct loop's figure includes the scripted model's own time per turn")


if __name__ == "__main__":
    main()
