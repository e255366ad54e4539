"""The refinement loop as a LangGraph graph: actor -> critics -> decide -> editor -> critics ...

Every node is a plain async function over `LoopState`. The stop rules run at the end of the
critics node (they need the round it just judged); `decide` is the edge that routes on them.
The editor routes itself (a `Command`) since it alone knows when an edit repeated or failed.
Usage and time are derived from the rounds, so the state carries little besides them.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from redraft import stopping
from redraft._interrupts import RunInterrupted, contained
from redraft.agents.actor import Actor
from redraft.agents.base import AgentContext
from redraft.agents.critics.base import Critic
from redraft.agents.editor import Editor
from redraft.agents.prompts import PromptLibrary
from redraft.errors import describe
from redraft.events import emit
from redraft.models.base import ChatModel
from redraft.stopping import StopRules, aggregate, best_round, repeated_round
from redraft.types import (
    Critique,
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    Lesson,
    Result,
    Round,
    RoundEvent,
    StopEvent,
    StopReason,
    Task,
    Usage,
    UsageReport,
)

if TYPE_CHECKING:  # needs the [memory] extra; a loop without a memory never loads it
    from redraft.memory import CorrectionMemory

T = TypeVar("T")


class LoopState(TypedDict, total=False):
    """The graph's state. Only `task` is needed to start a run."""

    task: Task
    draft: Draft  # the draft waiting to be judged
    rounds: Annotated[list[Round], operator.add]
    discarded: Annotated[Usage, operator.add]  # spent on edits that never became a round
    best_round: int
    stop_reason: StopReason | None
    error: str | None
    result: Result


def usage_report(rounds: Sequence[Round], discarded: Usage) -> UsageReport:
    """Usage per role, from the drafts and critiques of every round."""
    drafts = [r.draft for r in rounds]
    return UsageReport(
        actor=Usage.total_of(d.usage for d in drafts if d.author == "actor"),
        critic=Usage.total_of(c.usage for r in rounds for c in r.critiques),
        editor=Usage.total_of([discarded, *(d.usage for d in drafts if d.author == "editor")]),
    )


def total_usage(rounds: Sequence[Round], discarded: Usage) -> Usage:
    return Usage.total_of(
        [
            discarded,
            *(r.draft.usage for r in rounds),
            *(c.usage for r in rounds for c in r.critiques),
        ]
    )


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
    memory: CorrectionMemory | None = None
    lessons: int = 3  # most past corrections given to the actor or editor per call


class LoopNodes:
    """The node functions of one loop configuration."""

    def __init__(self, agents: LoopAgents, rules: StopRules) -> None:
        self.agents = agents
        self.rules = rules

    async def actor(self, state: LoopState) -> dict[str, Any]:
        started = time.perf_counter()
        task = state["task"]
        lessons: list[Lesson] = []
        if task.draft is not None:
            draft = Draft(text=task.draft, round=0, author="user")
        else:
            lessons = await self._recall(task)
            ctx = AgentContext(self.agents.actor_model, self.agents.prompts, lessons=lessons)
            draft = await contained(self.agents.actor.draft(task, ctx))
        draft = draft.model_copy(
            update={"duration_s": time.perf_counter() - started, "lessons": lessons}
        )
        emit(DraftEvent(round=0, draft=draft))
        return {"draft": draft}

    async def critics(self, state: LoopState) -> dict[str, Any]:
        started = time.perf_counter()
        task, draft = state["task"], state["draft"]
        rounds = state.get("rounds", [])
        ctx = AgentContext(self.agents.critic_model, self.agents.prompts, rounds)

        async def judge(critic: Critic) -> Critique:
            critique = await _verdict(critic, draft, task, ctx)
            emit(CritiqueEvent(round=draft.round, critique=critique))
            return critique

        critiques = await _all_of([judge(c) for c in self.agents.critics])
        score, passed = aggregate(critiques)
        judged = Round(
            index=len(rounds),
            draft=draft,
            critiques=critiques,
            score=score,
            passed=passed,
            duration_s=time.perf_counter() - started,
        )
        history = [*rounds, judged]
        spent = total_usage(history, state.get("discarded", Usage()))
        reason = stopping.decide(history, spent, self.rules)
        best = best_round(history, self.rules.select)
        emit(RoundEvent(round=judged, best_round=best, stop_reason=reason))
        return {"rounds": [judged], "best_round": best, "stop_reason": reason}

    async def editor(self, state: LoopState) -> Command[Literal["critics", "finish"]]:
        started = time.perf_counter()
        rounds = state["rounds"]
        target = rounds[state["best_round"]]
        lessons = await self._recall(state["task"], target.critiques)
        ctx = AgentContext(self.agents.editor_model, self.agents.prompts, rounds, lessons)
        spent, repeat_of, empty = Usage(), None, False
        # One retry when the edit repeats an earlier draft (told so) or is empty; a second
        # such edit stops the run. An empty draft is never judged as a round.
        for _ in range(2):
            try:
                draft = await contained(
                    self.agents.editor.edit(
                        target.draft, target.critiques, state["task"], ctx, repeat_of=repeat_of
                    )
                )
            except RunInterrupted:
                raise
            except Exception as exc:  # the best draft so far is kept, with why it stopped
                return _stop(StopReason.ERROR, discarded=spent, error=describe(exc))
            spent = spent + draft.usage
            empty = not draft.text.strip()
            repeat_of = None if empty else repeated_round(draft.text, rounds)
            if not empty and repeat_of is None:
                draft = draft.model_copy(
                    update={
                        "usage": spent,
                        "round": len(rounds),
                        "duration_s": time.perf_counter() - started,
                        "revises": target.index,
                        "lessons": lessons,
                    }
                )
                emit(EditEvent(round=draft.round, draft=draft))
                return Command(update={"draft": draft}, goto="critics")
        if empty:
            who = f" ({draft.model})" if draft.model else ""
            return _stop(
                StopReason.ERROR,
                discarded=spent,
                error=f"the editor{who} returned an empty draft twice; the best draft so far "
                "is kept",
            )
        return _stop(StopReason.REPEATED, discarded=spent)

    async def finish(self, state: LoopState, config: RunnableConfig) -> dict[str, Any]:
        rounds = state["rounds"]
        best = state["best_round"]
        result = Result(
            task=state["task"],
            final=rounds[best].draft,
            best_round=best,
            stop_reason=state["stop_reason"] or StopReason.MAX_ROUNDS,
            rounds=rounds,
            usage=usage_report(rounds, state.get("discarded", Usage())),
            wall_time_s=sum(r.draft.duration_s + r.duration_s for r in rounds),
            error=state.get("error"),
            thread_id=config.get("configurable", {}).get("thread_id"),
        )
        if self.agents.memory is not None:
            # Learned before the stop is reported, so a run that follows finds it.
            try:
                await contained(asyncio.to_thread(self.agents.memory.learn, result))
            except RunInterrupted:
                raise
            except Exception as exc:  # the run's own result must survive a failed write-back
                note = f"memory write-back failed ({type(exc).__name__}: {exc})"
                error = f"{result.error}; {note}" if result.error else note
                result = result.model_copy(update={"error": error})
        emit(StopEvent(result=result))
        return {"result": result}

    async def _recall(self, task: Task, critiques: Sequence[Critique] = ()) -> list[Lesson]:
        memory = self.agents.memory
        if memory is None or self.agents.lessons < 1:
            return []
        # Embedding and SQLite block: off the event loop, so concurrent runs keep going.
        return await contained(
            asyncio.to_thread(memory.recall, task, critiques, self.agents.lessons)
        )


async def _verdict(critic: Critic, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
    """The critic's critique; whatever the critic itself raises is a failed critique.

    The critic runs as a task of its own so that a `CancelledError` it raises (a timeout
    inside it, a cancelled helper task) is told apart from the run being cancelled: only
    the latter cancels this coroutine while it waits.
    """

    async def run() -> object:  # even a critic that fails before awaiting fails in here
        return await critic.critique(draft, task, ctx)

    attempt = asyncio.ensure_future(contained(run()))
    try:
        await asyncio.wait({attempt})
    except asyncio.CancelledError:
        attempt.cancel()
        await asyncio.wait({attempt})
        raise
    if attempt.cancelled():
        error = "CancelledError: the critic was cancelled while the run was not"
    else:
        exc = attempt.exception()
        verdict = attempt.result() if exc is None else None
        if isinstance(verdict, Critique):
            return verdict
        if isinstance(exc, RunInterrupted):
            raise exc
        error = (
            f"{type(exc).__name__}: {exc}"
            if exc is not None
            else f"returned {type(verdict).__name__}, not a Critique"
        )
    critique = Critique.failed(critic.name, error)
    weight = getattr(critic, "weight", None)  # it counts as 0 with its own weight
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        critique = critique.model_copy(update={"weight": float(weight)})
    return critique


async def _all_of(steps: Sequence[Awaitable[T]]) -> list[T]:
    """Every step's result, run concurrently; when one fails, the others are cancelled
    (and awaited) before the failure goes on, so no step outlives its node."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# Async, so that LangGraph runs the edge inline rather than in a thread pool.
async def decide(state: LoopState) -> Literal["editor", "finish"]:
    """The `decide` edge: stop when a rule fired, else revise."""
    return "finish" if state.get("stop_reason") else "editor"


def _stop(reason: StopReason, **update: Any) -> Command[Literal["critics", "finish"]]:
    return Command(update={"stop_reason": reason, **update}, goto="finish")


def build_graph(
    agents: LoopAgents, rules: StopRules
) -> StateGraph[LoopState, None, LoopState, LoopState]:
    """The uncompiled loop graph, for users who want to add nodes before compiling."""
    nodes = LoopNodes(agents, rules)
    graph: StateGraph[LoopState, None, LoopState, LoopState] = StateGraph(LoopState)
    graph.add_node("actor", nodes.actor)
    graph.add_node("critics", nodes.critics)
    graph.add_node("editor", nodes.editor)
    graph.add_node("finish", nodes.finish)
    graph.add_edge(START, "actor")
    graph.add_edge("actor", "critics")
    graph.add_conditional_edges("critics", decide, ["editor", "finish"])
    graph.add_edge("finish", END)
    return graph


def recursion_limit(rules: StopRules) -> int:
    """Graph steps a run may take: actor, two per round, finish, and some slack."""
    return 2 * rules.max_rounds + 5
