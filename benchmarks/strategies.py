"""What each strategy spends per task, and its orchestration overhead per candidate.

Part 1, over real HTTP: every strategy (Refine, BestOfN, TreeSearch beam and MCTS,
Reflexion) runs the same few tasks through LiteLLM against the local OpenAI-compatible test
server, which answers each call after `--latency` (50 ms). Its critic scores a draft higher
for each revision it has had (and each reflection it was written after), less the task's
difficulty, plus a bonus for some texts: no first draft passes, so every strategy revises and
the searches branch. The table gives calls, tokens, wall time and candidates per task.
Target: `BestOfN(8, refine=False)` (eight first drafts, each judged, all at once) at most 1.3x
the wall time of one judged draft (a Refiner with `max_rounds=1`), timed in alternation. The
very requests of both are then replayed through `LiteLLMModel` alone, in the same pattern: the
ratio the HTTP client stack allows without redraft's loop, and the CPU time each costs.

Part 2, no network: the orchestration overhead, measured as `overhead.py` does: the same
instant writer (a `ScriptedModel` that answers at once) and a cheap function critic, so what
is timed is everything else. Each run is timed by this process's CPU time
(`time.process_time`), runs alternate between the loops, and the ratio is the median of the
per-run ratios. Target: TreeSearch (beam and MCTS) at most 1.2x the plain Refine loop's CPU
time per round, per candidate. The instant model's own cost per call is measured alone and
shown, with the overhead net of it. `--profile` adds a cProfile summary of each measured run.

    python benchmarks/strategies.py [--tasks 3] [--pairs 15] [--runs 30] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import json
import pstats
import re
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redraft import FunctionCritic, LiteLLMModel, LLMCritic, LLMEditor, Refiner, ScriptedModel
from redraft.models.base import Message, ModelRequest, ModelSettings
from redraft.models.litellm import load_litellm
from redraft.strategies import BestOfN, Refine, Reflexion, Strategy, TreeSearch
from redraft.testing.openai_server import ChatRequest, OpenAIServer, role_of

BEST_OF_N_TARGET = 1.3
TREE_TARGET = 1.2

# -- part 1: the scripted server ------------------------------------------------------------

# Each task's difficulty: points off every score. 0 passes after 2-3 revisions, 2 needs a
# deeper tree or a reflection.
TASKS = {
    "Describe the life of a tide pool over one day.": 0,
    "Explain how a bicycle's gears trade speed for force.": 1,
    "Summarise what caused the stock market crash of 1929.": 2,
}
BODY = (
    "It opens with a plain statement of the subject, gives two concrete examples with the "
    "numbers that matter, and closes on what a reader should take away from them."
)
HEADER = re.compile(r"^Answer (\w+) \(revisions: (\d+), reflections: (\d+)\)", re.M)
ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.S)


def answer(key: str, revisions: int, reflections: int) -> str:
    """A text that says how it was made; `key` tells apart texts made alike."""
    tag = f"{zlib.crc32(key.encode()):08x}"
    return f"Answer {tag} (revisions: {revisions}, reflections: {reflections})\n{BODY}"


def quality(text: str, task: str) -> int:
    """The critic's score, 1-5 (4 passes): one point per revision and per reflection, less
    the task's difficulty, plus one for a third of the texts."""
    found = HEADER.search(text)
    if found is None:
        return 1
    tag, revisions, reflections = found.group(1), int(found.group(2)), int(found.group(3))
    bonus = int(int(tag, 16) % 3 == 0)
    points = 1 + revisions + reflections + bonus - TASKS.get(task, 0)
    return max(1, min(5, points))


def verdict(score: int) -> str:
    issues = (
        []
        if score >= 4
        else [
            {
                "quote": "two concrete examples",
                "location": "paragraph 1",
                "problem": "the examples are too general to check",
                "suggestion": "name the place, the date and the figure",
                "severity": "major",
            }
        ]
    )
    return json.dumps(
        {
            "feedback": "Accurate but thin: the examples need specifics.",
            "summary": f"score {score}",
            "issues": issues,
            "score": score,
        }
    )


def task_of(prompt: str) -> str:
    return next((task for task in TASKS if task in prompt), "")


def handler(request: ChatRequest) -> str:
    """Deterministic replies: the same tree of prompts gets the same texts every run."""
    role, prompt = role_of(request), request.last_user_content
    if role == "critic":
        shown = ANSWER.search(prompt)
        return verdict(quality(shown.group(1) if shown else "", task_of(prompt)))
    if role == "reflector":
        return "The examples stayed general. Next time start from one named case with figures."
    if role == "editor":
        shown = ANSWER.search(prompt)
        found = HEADER.search(shown.group(1) if shown else "")
        revisions, reflections = (int(found.group(2)), int(found.group(3))) if found else (0, 0)
        # The same parent gets a new text per variant and per sibling shown to the editor.
        return answer(prompt, revisions + 1, reflections)
    reflections = prompt.count("- The examples stayed general.")
    return answer(prompt, 0, reflections)


def strategies() -> list[tuple[str, Callable[[], Strategy]]]:
    return [
        ("Refine", Refine),
        ("BestOfN(4)", lambda: BestOfN(4)),
        ("BestOfN(8, refine=False)", lambda: BestOfN(8, refine=False)),
        ("TreeSearch beam", lambda: TreeSearch(policy="beam")),
        ("TreeSearch mcts", lambda: TreeSearch(policy="mcts")),
        ("Reflexion(3)", lambda: Reflexion(3)),
    ]


@dataclass
class Spent:
    """What one strategy spent over the tasks, summed."""

    calls: int = 0
    requests: int = 0  # as the server counted them
    tokens: int = 0
    wall_s: float = 0.0
    candidates: int = 0
    passed: int = 0


def refiner_for(server: OpenAIServer, strategy: Strategy, max_rounds: int = 4) -> Refiner:
    model = LiteLLMModel("openai/bench", api_base=server.base_url, timeout_s=60, max_attempts=1)
    return Refiner(
        model,
        critics=[LLMCritic()],
        editor=LLMEditor(mode="rewrite"),
        max_rounds=max_rounds,
        strategy=strategy,
    )


async def timed_run(refiner: Refiner, task: str) -> tuple[float, int, int, int, bool]:
    started = time.perf_counter()
    result = await refiner.arun(task)
    wall = time.perf_counter() - started
    if result.error is not None:
        raise RuntimeError(f"{refiner.strategy.name} failed on {task!r}: {result.error}")
    usage = result.usage.total
    return wall, usage.calls, usage.total_tokens, len(result.candidates), result.passed


async def spend(server: OpenAIServer, make: Callable[[], Strategy], tasks: list[str]) -> Spent:
    refiner = refiner_for(server, make())
    spent = Spent()
    for task in tasks:
        server.reset()
        wall, calls, tokens, candidates, passed = await timed_run(refiner, task)
        spent.requests += len(server.requests)
        spent.calls += calls
        spent.tokens += tokens
        spent.wall_s += wall
        spent.candidates += candidates
        spent.passed += passed
    return spent


@dataclass
class Timing:
    """Median wall time and process CPU time (the server's thread included) of one run."""

    wall_s: float
    cpu_s: float


async def timed(run: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    return time.perf_counter() - wall, time.process_time() - cpu


async def paired(
    single: Callable[[], Awaitable[object]], many: Callable[[], Awaitable[object]], pairs: int
) -> tuple[Timing, Timing, float]:
    """Median timings of each, and the median of the per-pair wall time ratios; the two
    alternate so that load on the machine hits both alike."""
    await single()
    await many()
    ones, manys = [], []
    for _ in range(pairs):
        ones.append(await timed(single))
        manys.append(await timed(many))
    ratio = statistics.median(m[0] / o[0] for m, o in zip(manys, ones, strict=True))

    def median(runs: list[tuple[float, float]]) -> Timing:
        return Timing(statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))

    return median(ones), median(manys), ratio


def replayer(server: OpenAIServer) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """Sends a recorded request body again through LiteLLMModel.complete alone."""
    model = LiteLLMModel("openai/bench", api_base=server.base_url, timeout_s=60, max_attempts=1)

    async def send(body: dict[str, Any]) -> None:
        messages = [Message(role=m["role"], content=m["content"]) for m in body["messages"]]
        settings = ModelSettings(temperature=body.get("temperature"))
        completion = await model.complete(ModelRequest(messages=messages, settings=settings))
        assert completion.text

    return send


async def profiled(label: str, run: Callable[[], Awaitable[object]], runs: int) -> None:
    """cProfile `runs` runs of `run` (this thread only: not the test server's) and print the
    self time by package per run, then the functions with the most self time."""
    await run()
    gc.collect()  # so that no collection of what came before lands in the profile
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(runs):
        await run()
    profile.disable()
    stats = pstats.Stats(profile)
    by_package: dict[str, float] = {}
    by_function: list[tuple[float, str]] = []
    for (file, line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        self_s = row[2]
        if function == "<method 'poll' of 'select.epoll' objects>":
            continue  # waiting for the server: idle, not CPU
        name = _package(file)
        by_package[name] = by_package.get(name, 0.0) + self_s
        by_function.append((self_s, f"{file.rsplit('/', 1)[-1]}:{line}({function})"))
    total = sum(by_package.values())
    print(f"  profile of {label}: {total / runs * 1000:.1f} ms of self time a run (profiled)")
    ranked = sorted(by_package.items(), key=lambda item: -item[1])[:10]
    print("    " + ", ".join(f"{name} {s / runs * 1000:.1f} ms" for name, s in ranked))
    for self_s, where in sorted(by_function, reverse=True)[:8]:
        print(f"    {self_s / runs * 1000:6.2f} ms  {where}")


def _package(file: str) -> str:
    """The package (or stdlib module) a profiled function is in."""
    for pattern in (r"site-packages/([^/]+)", r"/(redraft)/", r"python3\.\d+/([^/]+)"):
        found = re.search(pattern, file)
        if found:
            return found.group(1).removesuffix(".py")
    return "builtins" if file == "~" else file


async def best_of_8(server: OpenAIServer, task: str, pairs: int, profile: bool) -> None:
    """BestOfN(8, refine=False) against one judged draft; then the very requests each sent,
    replayed through LiteLLMModel alone (each draft then its critique, the eight at once):
    the same ratio without redraft, what the HTTP client stack alone allows."""
    one = refiner_for(server, Refine(), max_rounds=1)
    eight = refiner_for(server, BestOfN(8, refine=False))
    single, many, ratio = await paired(lambda: one.arun(task), lambda: eight.arun(task), pairs)
    verdict = "PASS" if ratio <= BEST_OF_N_TARGET else "FAIL"
    print(
        f"BestOfN(8, refine=False) {many.wall_s:.3f} s vs one judged draft {single.wall_s:.3f} s"
        f" (median of {pairs} pairs): {ratio:.2f}x, target <= {BEST_OF_N_TARGET}x: {verdict}"
    )
    server.reset()
    await one.arun(task)
    first = [request.body for request in server.requests]
    server.reset()
    await eight.arun(task)
    bodies = [request.body for request in server.requests]
    drafts = [body for body in bodies if not _is_critic(body)]
    critiques = [body for body in bodies if _is_critic(body)]
    assert len(first) == 2 and len(drafts) == len(critiques) == 8
    send = replayer(server)

    async def chain(draft: dict[str, Any], critique: dict[str, Any]) -> None:
        await send(draft)
        await send(critique)

    async def chains() -> None:
        await asyncio.gather(*(chain(d, c) for d, c in zip(drafts, critiques, strict=True)))

    alone_one, alone_many, alone = await paired(lambda: chain(*first), chains, pairs)
    print(
        f"  the same requests through LiteLLMModel alone: {alone_many.wall_s:.3f} s vs "
        f"{alone_one.wall_s:.3f} s: {alone:.2f}x"
    )
    print(
        f"  process CPU per run (client and test server): BestOfN(8) {many.cpu_s * 1000:.0f} ms"
        f" ({many.cpu_s * 1000 / 16:.1f} ms a call), LiteLLMModel alone "
        f"{alone_many.cpu_s * 1000:.0f} ms ({alone_many.cpu_s * 1000 / 16:.1f} ms a call); "
        f"one judged draft {single.cpu_s * 1000:.0f} ms, alone {alone_one.cpu_s * 1000:.0f} ms"
    )
    if profile:
        await profiled("BestOfN(8, refine=False)", lambda: eight.arun(task), pairs)
        await profiled("the same requests through LiteLLMModel alone", chains, pairs)


def _is_critic(body: dict[str, Any]) -> bool:
    return "strict, fair reviewer" in body["messages"][0]["content"]


async def http_part(args: argparse.Namespace) -> None:
    tasks = list(TASKS)[: args.tasks]
    load_litellm()
    with OpenAIServer(handler, latency_s=args.latency) as server:
        await spend(server, strategies()[0][1], tasks[:1])  # warm up imports and the client
        print(
            f"per task, over HTTP with {args.latency * 1000:.0f} ms per call, "
            f"{len(tasks)} task{'s' * (len(tasks) != 1)}, max_rounds=4, patience=2"
        )
        print(f"{'strategy':<26}{'calls':>7}{'tokens':>9}{'wall':>10}{'candidates':>12}  passed")
        for name, make in strategies():
            spent = await spend(server, make, tasks)
            assert spent.calls == spent.requests, (name, spent.calls, spent.requests)
            n = len(tasks)
            print(
                f"{name:<26}{spent.calls / n:>7.1f}{spent.tokens / n:>9.0f}"
                f"{spent.wall_s / n:>8.3f} s{spent.candidates / n:>12.1f}  {spent.passed}/{n}"
            )
        await best_of_8(server, tasks[0], args.pairs, args.profile)


# -- part 2: orchestration overhead ---------------------------------------------------------


def instant_writer() -> ScriptedModel:
    """Answers every call at once with a new text, so no two drafts repeat."""
    counter = iter(range(10**9))

    def reply(messages: list[Message], call: object) -> str:
        return f"draft number {next(counter)}: a short paragraph of text to be judged."

    return ScriptedModel(reply, model_name="instant-writer")


def cheap_score(text: str) -> float:
    """Varied scores below the pass, so the searches rank and never stop early."""
    return zlib.crc32(text.encode()) % 90 / 100


@dataclass
class Loop:
    cpu_s: float
    candidates: int
    calls: int


def instant_refiner(strategy: Strategy, max_rounds: int) -> Refiner:
    writer = instant_writer()
    return Refiner(
        writer,
        critics=[FunctionCritic(cheap_score, in_thread=False)],
        editor=LLMEditor(writer, mode="rewrite"),
        max_rounds=max_rounds,
        patience=None,
        strategy=strategy,
    )


INSTANT_TASK = "Write a paragraph about tide pools."


async def instant_run(strategy: Strategy, max_rounds: int) -> Loop:
    refiner = instant_refiner(strategy, max_rounds)
    started = time.process_time()
    result = await refiner.arun(INSTANT_TASK)
    elapsed = time.process_time() - started
    assert result.error is None and not result.passed, result.stop_reason
    return Loop(elapsed, len(result.candidates), result.usage.total.calls)


async def model_call_ms(calls: int = 2000) -> float:
    """CPU ms of one instant-writer call alone, with a prompt of the loops' size."""
    writer = instant_writer()
    request = ModelRequest(
        messages=[
            Message(role="system", content="You are a careful expert writer. " * 8),
            Message(role="user", content="Write a paragraph about tide pools. " * 40),
        ]
    )
    started = time.process_time()
    for _ in range(calls):
        await writer.complete(request)
    return (time.process_time() - started) / calls * 1000


async def cpu_part(args: argparse.Namespace) -> None:
    depth = args.depth
    loops: list[tuple[str, Callable[[], Strategy], int]] = [
        ("Refine", Refine, 0),  # its rounds: set below to the trees' size
        ("TreeSearch beam", lambda: TreeSearch(policy="beam", max_depth=depth), 4),
        ("TreeSearch mcts", lambda: TreeSearch(policy="mcts", max_depth=depth), 4),
    ]
    for _, make, rounds in loops[1:]:
        await instant_run(make(), rounds)  # warm up
    sizes = [(await instant_run(make(), rounds)).candidates for _, make, rounds in loops[1:]]
    rounds = round(statistics.mean(sizes))
    loops[0] = ("Refine", Refine, rounds)
    await instant_run(Refine(), rounds)
    per_call = await model_call_ms()
    gross: dict[str, list[float]] = {name: [] for name, _, _ in loops}
    net: dict[str, list[float]] = {name: [] for name, _, _ in loops}
    shape: dict[str, Loop] = {}
    for _ in range(args.runs):
        for name, make, max_rounds in loops:
            loop = await instant_run(make(), max_rounds)
            shape[name] = loop
            gross[name].append(loop.cpu_s * 1000 / loop.candidates)
            net[name].append((loop.cpu_s * 1000 - loop.calls * per_call) / loop.candidates)
    print(
        f"orchestration overhead, instant model, function critic, CPU time, "
        f"median of {args.runs} runs alternating"
    )
    print(f"instant model alone: {per_call * 1000:.1f} us per call")
    print(
        f"{'loop':<18}{'candidates':>11}{'calls':>7}{'per candidate':>16}"
        f"{'net of model':>15}{'ratio':>8}{'net':>8}   target <= {TREE_TARGET}x Refine"
    )
    for name, _, _ in loops:
        loop = shape[name]
        ratio = statistics.median(o / r for o, r in zip(gross[name], gross["Refine"], strict=True))
        net_ratio = statistics.median(o / r for o, r in zip(net[name], net["Refine"], strict=True))
        verdict = "" if name == "Refine" else "PASS" if ratio <= TREE_TARGET else "FAIL"
        print(
            f"{name:<18}{loop.candidates:>11}{loop.calls:>7}"
            f"{statistics.median(gross[name]):>13.3f} ms{statistics.median(net[name]):>12.3f} ms"
            f"{ratio:>7.2f}x{net_ratio:>7.2f}x   {verdict}"
        )
    if args.profile:
        for name, make, max_rounds in loops:
            refiner = instant_refiner(make(), max_rounds)
            await profiled(name, functools.partial(refiner.arun, INSTANT_TASK), args.runs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per HTTP call")
    parser.add_argument("--tasks", type=int, default=len(TASKS), choices=range(1, 4))
    parser.add_argument("--pairs", type=int, default=15, help="runs of BestOfN(8) vs one draft")
    parser.add_argument("--runs", type=int, default=30, help="runs of each loop in part 2")
    parser.add_argument("--depth", type=int, default=4, help="TreeSearch max_depth in part 2")
    parser.add_argument("--profile", action="store_true", help="where the CPU time goes")
    parser.add_argument("--quick", action="store_true", help="one task, few runs: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.pairs, args.runs, args.depth = 1, 2, 3, 2
    await http_part(args)
    print()
    await cpu_part(args)


if __name__ == "__main__":
    asyncio.run(main())
