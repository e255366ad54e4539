"""The result of a run paused for a person: what it has so far, and what it waits for.

A paused run has not reached its `finish` step, so its `Result` is made here from the
checkpointed state of any strategy (every one keeps `drafts` and `judgments`): every
candidate made so far, the one waiting and those queued for the person among them; the final
is the best of those every critic has judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.types import Interrupt

from redraft.engine.operations import usage_report
from redraft.engine.selection import Selection, best_of, selected_because
from redraft.strategies.base import Strategy
from redraft.strategies.judged import JudgedCandidates
from redraft.strategies.search import Search, Tree, number_of, unreviewed
from redraft.types import Candidate, Result, StopReason, Usage, Waiting


class Paused:
    """Makes the waiting `Result` of a paused run of `strategy`."""

    def __init__(self, strategy: Strategy, select: Selection) -> None:
        self.strategy = strategy
        self.select = select

    def result(
        self, state: Mapping[str, Any], interrupts: Sequence[Interrupt], thread_id: str | None
    ) -> Result:
        waiting = Waiting.model_validate(interrupts[0].value)
        pending = waiting.candidate
        drafts = state.get("drafts", {})
        judged = JudgedCandidates()(drafts, state.get("judgments", []))
        judged = sorted(judged, key=lambda c: number_of(c.id))
        # Made and judged by every other critic, but not yet by a person (a fan-out's).
        queued = [
            drafts[r.candidate_id].judged_as(r)
            for r in unreviewed(state)
            if r.candidate_id != pending.id
        ]
        candidates = sorted([*judged, *queued, pending], key=lambda c: number_of(c.id))
        if judged:  # the best so far; the one waiting is not judged by everyone yet
            final = judged[-1] if self.select == "last" else best_of(judged)
            because = selected_because(judged, final.id, self.select)
        else:
            final = pending
            because = "no candidate is judged by every critic yet (waiting for a person)"
        chain = self._main_line(candidates, final)
        discarded = state.get("discarded", Usage())
        return Result(
            task=state["task"],
            final=final.draft,
            final_id=final.id,
            best_round=next(i for i, c in enumerate(chain) if c.id == final.id),
            stop_reason=StopReason.WAITING,
            candidates=candidates,
            chain=[c.id for c in chain],
            usage=usage_report(candidates, discarded),
            wall_time_s=_elapsed(state, candidates),
            thread_id=thread_id,
            strategy=self.strategy.name,
            selected_because=because,
            waiting=waiting,
        )

    def _main_line(self, candidates: list[Candidate], final: Candidate) -> list[Candidate]:
        if isinstance(self.strategy, Search):
            return self.strategy.main_line(Tree(candidates), final.id)
        return candidates  # a chain: every candidate, in the order judged


def _elapsed(state: Mapping[str, Any], candidates: list[Candidate]) -> float:
    """The run's time so far, a person's waiting aside."""
    if "elapsed_s" in state:  # a search: each fan-out's longest job
        return float(state["elapsed_s"])
    return sum(c.draft.duration_s + c.duration_s for c in candidates)
