"""Refine: one chain of revisions, draft -> judge -> revise -> judge ... -> finish.

Each revision revises the best candidate so far (so a worse revision is not built on); the
run stops when a budget says so. Every node is a plain async function over `RefineState`.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from redraft.engine.budgets import Budgets
from redraft.engine.operations import Operations, total_usage, usage_report
from redraft.engine.selection import best_index, selected_because
from redraft.errors import ConfigError
from redraft.events import emit
from redraft.strategies.channels import appended, latest, merged
from redraft.strategies.judged import JudgedCandidates
from redraft.types import (
    Candidate,
    Judgment,
    Result,
    RoundEvent,
    StopEvent,
    StopReason,
    Task,
    Usage,
)


class RefineState(TypedDict, total=False):
    """The graph's state. Only `task` is needed to start a run.

    Each candidate's draft (in `drafts`) and what the critics said of it (in `judgments`) are
    written once each, so a checkpoint holds every draft once (see `channels`).
    """

    task: Annotated[Task, latest()]
    drafts: Annotated[dict[str, Candidate], merged()]  # every candidate made, unjudged, by id
    judgments: Annotated[list[Judgment], appended()]  # the main line, in the order judged
    pending_id: str  # the candidate waiting to be judged
    reviewing: Judgment  # with a person among the critics: what the others said of it
    discarded: Annotated[Usage, operator.add]  # spent on edits that never became a candidate
    final_id: str  # the best candidate so far
    stop_reason: StopReason | None
    error: str | None
    result: Annotated[Result, latest()]


class _MainLine:
    """The judged candidates of a state, in the order judged."""

    def __init__(self) -> None:
        self._join = JudgedCandidates()

    def __call__(self, state: RefineState) -> list[Candidate]:
        if not state.get("drafts"):  # every step after the first draft has them
            raise ConfigError(
                "this run was checkpointed by an earlier redraft, whose state this one cannot "
                "resume: run the task again under a new thread_id"
            )
        return self._join(state["drafts"], state.get("judgments", []))


class Refine:
    """Today's loop as a strategy: draft once, then revise the best candidate until a budget
    or target stops the run."""

    name = "refine"

    def build(self, operations: Operations, budgets: Budgets) -> StateGraph[Any, None, Any, Any]:
        nodes = _Nodes(operations, budgets)
        graph: StateGraph[RefineState, None, RefineState, RefineState] = StateGraph(RefineState)
        graph.add_node("draft", nodes.draft)
        graph.add_node("judge", nodes.judge)
        graph.add_node("revise", nodes.revise)
        graph.add_node("finish", nodes.finish)
        graph.add_edge(START, "draft")
        graph.add_edge("draft", "judge")
        if operations.pauses:  # a person reviews each candidate in a step of its own
            graph.add_node("review", nodes.review)
            graph.add_edge("judge", "review")
            graph.add_conditional_edges("review", decide, ["revise", "finish"])
        else:
            graph.add_conditional_edges("judge", decide, ["revise", "finish"])
        graph.add_edge("finish", END)
        return graph

    def recursion_limit(self, budgets: Budgets) -> int:
        """Draft, two steps a round, finish, and some slack. (A person's review adds one a
        round, but LangGraph counts steps from each resume, and each review is one.)"""
        return 2 * budgets.max_rounds + 5

    def __repr__(self) -> str:
        return "Refine()"


class _Nodes:
    def __init__(self, operations: Operations, budgets: Budgets) -> None:
        self.ops = operations
        self.budgets = budgets
        self.main_line = _MainLine()

    async def draft(self, state: RefineState) -> dict[str, Any]:
        first = await self.ops.draft(state["task"], 0)
        return {"drafts": {first.id: first}, "pending_id": first.id}

    async def judge(self, state: RefineState) -> dict[str, Any]:
        line = self.main_line(state)
        pending = state["drafts"][state["pending_id"]]
        judged = await self.ops.judge(state["task"], pending, line)
        if self.ops.pauses:
            return {"reviewing": judged.judgment()}
        return self._settle(state, line, judged)

    async def review(self, state: RefineState) -> dict[str, Any]:
        line = self.main_line(state)
        pending = state["drafts"][state["pending_id"]].judged_as(state["reviewing"])
        return self._settle(state, line, await self.ops.review(state["task"], pending, line))

    def _settle(
        self, state: RefineState, line: list[Candidate], judged: Candidate
    ) -> dict[str, Any]:
        """The judged candidate onto the main line, and whether a budget stops the run."""
        history = [*line, judged]
        spent = total_usage(history, state.get("discarded", Usage()))
        reason = self.budgets.check(
            history,
            spent,
            elapsed_s=sum(c.draft.duration_s + c.duration_s for c in history),
        )
        best = best_index(history, self.budgets.select)
        shown = judged.as_round(len(line))
        emit(RoundEvent(round=shown.index, judged=shown, best_round=best, stop_reason=reason))
        return {
            "judgments": [judged.judgment()],
            "final_id": history[best].id,
            "stop_reason": reason,
        }

    async def revise(self, state: RefineState) -> Command[Literal["judge", "finish"]]:
        line = self.main_line(state)
        target = next(c for c in line if c.id == state["final_id"])
        revised = await self.ops.revise(state["task"], target, line, len(line))
        if (revision := revised.candidate) is not None:
            made = {"drafts": {revision.id: revision}, "pending_id": revision.id}
            return Command(update=made, goto="judge")
        reason = StopReason.REPEATED if revised.stop == "repeated" else StopReason.ERROR
        update: dict[str, Any] = {"stop_reason": reason, "discarded": revised.spent}
        if revised.error is not None:
            update["error"] = revised.error
        return Command(update=update, goto="finish")

    async def finish(self, state: RefineState, config: RunnableConfig) -> dict[str, Any]:
        line = self.main_line(state)
        final_id = state["final_id"]
        best = next(i for i, c in enumerate(line) if c.id == final_id)
        result = Result(
            task=state["task"],
            final=line[best].draft,
            final_id=final_id,
            best_round=best,
            stop_reason=state.get("stop_reason") or StopReason.MAX_ROUNDS,
            candidates=line,
            chain=[c.id for c in line],
            usage=usage_report(line, state.get("discarded", Usage())),
            wall_time_s=sum(c.draft.duration_s + c.duration_s for c in line),
            error=state.get("error"),
            thread_id=config.get("configurable", {}).get("thread_id"),
            selected_because=selected_because(line, final_id, self.budgets.select),
        )
        # Learned before the stop is reported, so a run that follows finds it.
        result = await self.ops.learn(result)
        emit(StopEvent(result=result))
        return {"result": result}


# Async, so that LangGraph runs the edge inline rather than in a thread pool.
async def decide(state: RefineState) -> Literal["revise", "finish"]:
    """Stop when a budget or target said so, else revise."""
    return "finish" if state.get("stop_reason") else "revise"
