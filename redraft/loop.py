"""The refinement loop as a LangGraph graph: actor -> critics -> decide -> editor -> critics ...

Every node is a plain async function over `LoopState`. The stop rules run at the end of the
critics node (they need the round it just judged); `decide` is the edge that routes on them.
Events for live progress go through LangGraph's custom stream.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph

from redraft.agents.actor import Actor
from redraft.agents.base import AgentContext
from redraft.agents.critics.base import Critic
from redraft.agents.editor import Editor
from redraft.agents.prompts import PromptLibrary
from redraft.errors import ModelError
from redraft.models.base import ChatModel
from redraft import stopping
from redraft.stopping import StopRules, aggregate, best_round, repeated_round
from redraft.types import (
    Critique,
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    Result,
    Round,
    RoundEvent,
    StopEvent,
    StopReason,
    Task,
    Usage,
    UsageReport,
)


def _add_usage(left: UsageReport, right: UsageReport) -> UsageReport:
    return UsageReport(
        actor=left.actor + right.actor,
        critic=left.critic + right.critic,
        editor=left.editor + right.editor,
    )


class LoopState(TypedDict, total=False):
    """The graph's state. Only `task` is needed to start a run."""

    task: Task
    draft: Draft  # the draft waiting to be judged
    rounds: Annotated[list[Round], operator.add]
    usage: Annotated[UsageReport, _add_usage]
    elapsed_s: Annotated[float, operator.add]  # time spent in nodes; survives a resume
    best_round: int
    stop_reason: StopReason | None
    error: str | None
    result: Result


@dataclass(frozen=True)
class LoopAgents:
    """Who does what in a run, and the models each role falls back to."""

    actor: Actor
    critics: Sequence[Critic]
    editor: Editor
    actor_model: ChatModel | None
    critic_model: ChatModel | None
    editor_model: ChatModel | None
    prompts: PromptLibrary


class LoopNodes:
    """The node functions of one loop configuration."""

    def __init__(self, agents: LoopAgents, rules: StopRules) -> None:
        self.agents = agents
        self.rules = rules

    async def actor(self, state: LoopState) -> dict[str, Any]:
        started = time.perf_counter()
        task = state["task"]
        if task.draft is not None:
            draft = Draft(text=task.draft, round=0, author="user")
        else:
            ctx = AgentContext(self.agents.actor_model, self.agents.prompts)
            draft = await self.agents.actor.draft(task, ctx)
        get_stream_writer()(DraftEvent(round=0, draft=draft))
        return {
            "draft": draft,
            "usage": UsageReport(actor=draft.usage),
            "elapsed_s": time.perf_counter() - started,
        }

    async def critics(self, state: LoopState) -> dict[str, Any]:
        started = time.perf_counter()
        task, draft = state["task"], state["draft"]
        rounds = state.get("rounds", [])
        ctx = AgentContext(self.agents.critic_model, self.agents.prompts, rounds)
        emit = get_stream_writer()

        async def judge(critic: Critic) -> Critique:
            try:
                critique = await critic.critique(draft, task, ctx)
            except Exception as exc:  # a broken critic is reported, never ends the run
                critique = Critique.failed(critic.name, f"{type(exc).__name__}: {exc}")
            emit(CritiqueEvent(round=draft.round, critique=critique))
            return critique

        critiques = list(await asyncio.gather(*(judge(c) for c in self.agents.critics)))
        score, passed = aggregate(critiques)
        judged = Round(
            index=len(rounds), draft=draft, critiques=critiques, score=score, passed=passed
        )
        history = [*rounds, judged]
        critic_usage = sum((c.usage for c in critiques), Usage())
        spent = state.get("usage", UsageReport()).total + critic_usage
        reason = stopping.decide(history, spent, self.rules)
        best = best_round(history, self.rules.select)
        emit(RoundEvent(round=judged, best_round=best, stop_reason=reason))
        return {
            "rounds": [judged],
            "usage": UsageReport(critic=critic_usage),
            "best_round": best,
            "stop_reason": reason,
            "elapsed_s": time.perf_counter() - started,
        }

    async def editor(self, state: LoopState) -> dict[str, Any]:
        started = time.perf_counter()
        rounds = state["rounds"]
        target = rounds[state["best_round"]]
        ctx = AgentContext(self.agents.editor_model, self.agents.prompts, rounds)
        spent, repeat_of = Usage(), None
        update: dict[str, Any] = {}
        # One retry when the edit repeats an earlier draft, told so; a second repeat stops.
        for _ in range(2):
            try:
                draft = await self.agents.editor.edit(
                    target.draft, target.critiques, state["task"], ctx, repeat_of=repeat_of
                )
            except ModelError as exc:
                update = {"stop_reason": StopReason.ERROR, "error": str(exc)}
                break
            spent = spent + draft.usage
            repeat_of = repeated_round(draft.text, rounds)
            if repeat_of is None:
                draft = draft.model_copy(update={"usage": spent, "round": len(rounds)})
                get_stream_writer()(EditEvent(round=draft.round, draft=draft))
                update = {"draft": draft}
                break
        else:
            update = {"stop_reason": StopReason.REPEATED}
        return {
            **update,
            "usage": UsageReport(editor=spent),
            "elapsed_s": time.perf_counter() - started,
        }

    def finish(self, state: LoopState, config: RunnableConfig) -> dict[str, Any]:
        rounds = state["rounds"]
        best = state["best_round"]
        result = Result(
            task=state["task"],
            final=rounds[best].draft,
            best_round=best,
            stop_reason=state["stop_reason"] or StopReason.MAX_ROUNDS,
            rounds=rounds,
            usage=state["usage"],
            wall_time_s=state["elapsed_s"],
            error=state.get("error"),
            thread_id=config.get("configurable", {}).get("thread_id"),
        )
        get_stream_writer()(StopEvent(result=result))
        return {"result": result}


def decide(state: LoopState) -> Literal["editor", "finish"]:
    """The `decide` edge: stop when a rule fired, else revise."""
    return "finish" if state.get("stop_reason") else "editor"


def after_edit(state: LoopState) -> Literal["critics", "finish"]:
    return "finish" if state.get("stop_reason") else "critics"


def build_graph(agents: LoopAgents, rules: StopRules) -> StateGraph:
    """The uncompiled loop graph, for users who want to add nodes before compiling."""
    nodes = LoopNodes(agents, rules)
    graph = StateGraph(LoopState)
    graph.add_node("actor", nodes.actor)
    graph.add_node("critics", nodes.critics)
    graph.add_node("editor", nodes.editor)
    graph.add_node("finish", nodes.finish)
    graph.add_edge(START, "actor")
    graph.add_edge("actor", "critics")
    graph.add_conditional_edges("critics", decide, ["editor", "finish"])
    graph.add_conditional_edges("editor", after_edit, ["critics", "finish"])
    graph.add_edge("finish", END)
    return graph


def recursion_limit(rules: StopRules) -> int:
    """Graph steps a run may take: actor, two per round, finish, and some slack."""
    return 2 * rules.max_rounds + 5
