"""A person as a critic: the run pauses at each candidate until they answer.

The pause is a LangGraph interrupt, so it is checkpointed like any step: the run can be
resumed in the same process or after a restart, and what was done before the pause (the
draft, the other critics' critiques) is not done again. `Refiner.resume(thread_id,
feedback=..., score=..., accept=...)` gives the answer.
"""

from __future__ import annotations

from typing import Any, cast

from langgraph.types import interrupt
from pydantic import ValidationError

from redraft.agents.base import AgentContext
from redraft.checks import number, text
from redraft.types import Candidate, Critique, Draft, HumanAnswer, Issue, Task, Waiting

DEFAULT_QUESTION = "Accept this draft, or say what to change (and score it from 0 to 1)?"


class HumanCritic:
    """A person judges each candidate, after every other critic has.

    Their answer is a `HumanAnswer`: `feedback` (what to change: it goes to the editor like
    any critic's), `score` in 0..1, and `accept=True` to pass the draft. An answer without a
    score does not count toward the candidate's score (its weight is 0); one with
    `accept=True` and no score scores 1.

    With a person as the only critic, a run follows them: each revision revises the draft
    they last answered on (`select="last"`), and no patience rule stops it early: it ends
    when they accept a draft, or at `max_rounds`.
    """

    pauses = True  # the engine runs it after the other critics, in a step of its own

    def __init__(
        self, *, name: str = "human", question: str = DEFAULT_QUESTION, weight: float = 1.0
    ) -> None:
        self._name = cast(str, text("name", name))
        self.question = cast(str, text("question", question))
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        self.weight = weight

    @property
    def name(self) -> str:
        return self._name

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        candidate = ctx.candidate or Candidate(id="draft", draft=draft)
        waiting = Waiting(critic=self.name, candidate=candidate, question=self.question)
        # Raises to pause the run; once resumed, returns the answer given.
        answer = answer_of(interrupt(waiting.model_dump(mode="json")))
        return to_critique(answer, self.name, self.weight)


def answer_of(given: Any) -> HumanAnswer:
    """The resume value as an answer (it crossed a checkpoint as plain data)."""
    if isinstance(given, HumanAnswer):
        return given
    try:
        return HumanAnswer.model_validate(given)
    except ValidationError as exc:
        raise ValueError(f"the person's answer is not a HumanAnswer: {exc}") from None


def to_critique(answer: HumanAnswer, critic: str, weight: float) -> Critique:
    """The critique an answer amounts to."""
    accepted = answer.accept is True
    score = answer.score if answer.score is not None else (1.0 if accepted else 0.0)
    feedback = answer.feedback or ""
    if accepted:
        summary = "accepted" + (f": {feedback}" if feedback else "")
    elif feedback:
        summary = feedback.strip().splitlines()[0]
    else:
        summary = "not accepted"
    return Critique(
        critic=critic,
        score=score,
        raw_score=answer.score,
        passed=accepted,
        summary=summary,
        feedback=feedback,
        issues=[] if accepted or not feedback else [Issue(problem=feedback)],
        weight=weight if answer.score is not None or accepted else 0.0,
    )
