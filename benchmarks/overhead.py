"""Per-round orchestration overhead of redraft's loop against a minimal hand-written graph.

Both loops call the same instant model (a `ScriptedModel` that answers at once), so what is
measured is everything else: graph steps, prompt rendering, parsing, accounting, events.
Both loops are CPU-bound, so each run is timed by the CPU time of this process
(`time.process_time`): load from other processes on the machine does not skew the ratio.
Target: redraft at most 1.3x the hand-written LangGraph generate/critique/revise graph.

    python benchmarks/overhead.py [--rounds 20] [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import statistics
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from redraft import FunctionCritic, LLMCritic, LLMEditor, Refiner, ScriptedModel
from redraft.models.base import Message, ModelRequest
from redraft.models.scripted import ScriptedCall

VERDICT = json.dumps(
    {
        "feedback": "The opening is vague and the second claim is unsupported.",
        "summary": "Needs a concrete opening.",
        "issues": [
            {
                "quote": "draft",
                "problem": "vague",
                "suggestion": "be concrete",
                "severity": "major",
            }
        ],
        "score": 2,
    }
)


def instant_writer() -> ScriptedModel:
    """Answers every call at once with a new text, so no two drafts repeat."""
    counter = iter(range(10**9))

    def reply(messages: list[Message], call: ScriptedCall) -> str:
        return f"draft number {next(counter)}: a short paragraph of text to be judged."

    return ScriptedModel(reply, model_name="instant-writer")


def instant_judge() -> ScriptedModel:
    return ScriptedModel(lambda messages, call: VERDICT, model_name="instant-judge")


async def redraft_loop(rounds: int, critics: str) -> float:
    writer = instant_writer()
    chosen = (
        [LLMCritic(instant_judge())]
        if critics == "llm"
        else [FunctionCritic(lambda text: 0.3, in_thread=False)]
    )
    refiner = Refiner(
        writer,
        critics=chosen,
        editor=LLMEditor(writer, mode="rewrite"),
        max_rounds=rounds,
        patience=None,
    )
    started = time.process_time()
    result = await refiner.arun("Write a paragraph about tide pools.")
    elapsed = time.process_time() - started
    assert len(result.rounds) == rounds, result.stop_reason
    return elapsed


class HandState(TypedDict, total=False):
    task: str
    draft: str
    score: float
    feedback: str
    history: Annotated[list[tuple[str, float]], operator.add]


def hand_written_graph(rounds: int, critics: str) -> Any:
    """What a user would write by hand: three nodes and a conditional edge."""
    writer, judge = instant_writer(), instant_judge()

    async def generate(state: HandState) -> dict[str, Any]:
        task = [Message(role="user", content=state["task"])]
        reply = await writer.complete(ModelRequest(messages=task))
        return {"draft": reply.text}

    async def critique(state: HandState) -> dict[str, Any]:
        if critics == "llm":
            prompt = f"Task: {state['task']}\nAnswer: {state['draft']}\nReply with JSON."
            reply = await judge.complete(
                ModelRequest(messages=[Message(role="user", content=prompt)])
            )
            verdict = json.loads(reply.text)
            score, feedback = (verdict["score"] - 1) / 4, verdict["feedback"]
        else:
            score, feedback = 0.3, ""
        return {"score": score, "feedback": feedback, "history": [(state["draft"], score)]}

    async def revise(state: HandState) -> dict[str, Any]:
        prompt = f"Task: {state['task']}\nDraft: {state['draft']}\nFeedback: {state['feedback']}"
        reply = await writer.complete(ModelRequest(messages=[Message(role="user", content=prompt)]))
        return {"draft": reply.text}

    def route(state: HandState) -> str:
        return END if len(state["history"]) >= rounds else "revise"

    graph = StateGraph(HandState)
    graph.add_node("generate", generate)
    graph.add_node("critique", critique)
    graph.add_node("revise", revise)
    graph.add_edge(START, "generate")
    graph.add_edge("generate", "critique")
    graph.add_conditional_edges("critique", route, ["revise", END])
    graph.add_edge("revise", "critique")
    return graph.compile()


async def hand_loop(rounds: int, critics: str) -> float:
    graph = hand_written_graph(rounds, critics)
    started = time.process_time()
    state = await graph.ainvoke(
        {"task": "Write a paragraph about tide pools."}, {"recursion_limit": 4 * rounds}
    )
    elapsed = time.process_time() - started
    assert len(state["history"]) == rounds
    return elapsed


async def paired_ms(rounds: int, runs: int, critics: str) -> tuple[float, float, float]:
    """Median ms per round of each loop, and the median of the per-pair ratios.

    Runs alternate between the two loops so that load from other processes hits both alike.
    """
    await hand_loop(rounds, critics)
    await redraft_loop(rounds, critics)
    hand, ours = [], []
    for _ in range(runs):
        hand.append(await hand_loop(rounds, critics) / rounds * 1000)
        ours.append(await redraft_loop(rounds, critics) / rounds * 1000)
    ratio = statistics.median(o / h for o, h in zip(ours, hand, strict=True))
    return statistics.median(hand), statistics.median(ours), ratio


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    print(f"per-round orchestration overhead, instant model, {args.rounds} rounds x {args.runs}")
    print(f"{'critic':<10}{'hand-written':>16}{'redraft':>12}{'ratio':>9}   target <= 1.3x")
    for critics in ("llm", "function"):
        hand, ours, ratio = await paired_ms(args.rounds, args.runs, critics)
        print(f"{critics:<10}{hand:>13.3f} ms{ours:>9.3f} ms{ratio:>8.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
