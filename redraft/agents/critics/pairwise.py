"""A pairwise critic: is this revision better than the draft it revises? It catches the
regressions that scoring each draft on its own misses, with the known biases of pairwise
judges guarded against: position (both orders, or a random one) and length."""

from __future__ import annotations

import random
import time
from typing import Literal, cast

from pydantic import BaseModel, Field

from redraft.agents.base import AgentContext, describe_rubric, optional_model, rubric_of
from redraft.agents.critics.base import failed_critique
from redraft.agents.critics.per_task import PerTask
from redraft.agents.structured import StructuredAnswerError, ask_structured
from redraft.checks import flag, number, one_of, text
from redraft.errors import ModelError
from redraft.models.base import ChatModel, ModelRequest, ModelSettings, system, user
from redraft.models.limits import call_model
from redraft.types import (
    Candidate,
    Comparison,
    Critique,
    Draft,
    Issue,
    Preference,
    Rubric,
    Task,
    Usage,
)

Order = Literal["both", "random"]
ORDERS: tuple[Order, ...] = ("both", "random")
_SCORES: dict[Preference, float] = {"better": 1.0, "tie": 0.5, "worse": 0.0}


class PairVerdict(BaseModel):
    """The JSON a pairwise judge answers with. Field order matters: reasoning first."""

    reasoning: str
    a_issues: list[Issue] = Field(default_factory=list)
    b_issues: list[Issue] = Field(default_factory=list)
    better: Literal["A", "B", "tie"]


class PairwiseCritic:
    """Compares a revision with its parent (the candidate it revises) and says whether it is
    better, worse, or a tie.

    With `order="both"` the judge sees the pair in both orders, and a verdict that changes
    with the order is reported as a tie; with `order="random"` it sees one order, chosen at
    random (`seed` makes the choice repeatable). The judge is told that length is not
    quality, and a tie is no tie for the longer answer: when one is more than
    `length_margin` longer than the other, the longer one loses.

    A revision judged worse is a regression (`Critique.comparison`): it does not pass, and
    selection prefers its parent whatever the scores say. The score is 1 (better), 0.5
    (tie) or 0 (worse). A first draft has no parent and is not given to this critic, so use
    it beside a critic that judges each draft on its own, e.g. an `LLMCritic`.

    `self_reference=True` has the judge write its own answer to the task first (once per
    task) and compare both answers with it; a task's `reference` is used instead when it has
    one (and `use_reference` is on).
    """

    compares = True  # the engine gives it revisions only, with their parent

    def __init__(
        self,
        model: ChatModel | str | None = None,
        *,
        name: str = "pairwise",
        order: Order = "both",
        length_margin: float = 0.1,
        self_reference: bool = False,
        use_reference: bool = True,
        rubric: str | Rubric | None = None,
        seed: int | None = None,
        weight: float = 1.0,
        temperature: float | None = 0.0,
    ) -> None:
        self.model = optional_model(model)
        self._name = cast(str, text("name", name))
        one_of("order", order, ORDERS)
        number("length_margin", length_margin, minimum=0.0, meaning="how much longer loses a tie")
        flag("self_reference", self_reference)
        flag("use_reference", use_reference)
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        self.order = order
        self.length_margin = length_margin
        self.self_reference = self_reference
        self.use_reference = use_reference
        self.rubric = rubric
        self.weight = weight
        self.settings = ModelSettings(temperature=temperature)
        self._random = random.Random(seed)
        self._own_answers: PerTask[str] = PerTask()

    @property
    def name(self) -> str:
        return self._name

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        started = time.perf_counter()
        parent = ctx.parent
        if parent is None:  # the engine never asks; a direct call gets a neutral answer
            return Critique(
                critic=self.name,
                score=0.5,
                passed=True,
                weight=0.0,
                summary="a first draft: there is nothing to compare it with",
            )
        model = ctx.pick_model(self.model, f"critic '{self.name}'")
        spent = Usage()
        try:
            reference, spent = await self._reference(task, ctx, model)
            first = [True, False] if self.order == "both" else [self._random.random() < 0.5]
            verdicts: list[tuple[bool, PairVerdict]] = []
            for candidate_first in first:
                answer, usage = await self._ask(
                    draft, parent, task, ctx, model, reference, candidate_first=candidate_first
                )
                spent = spent + usage
                verdicts.append((candidate_first, answer))
        except StructuredAnswerError as exc:
            return failed_critique(
                self.name, str(exc), model, spent + exc.usage, self.weight, started
            )
        except ModelError as exc:
            return failed_critique(self.name, str(exc), model, spent, self.weight, started)
        comparison, issues = self._compare(draft, parent, verdicts)
        verdict = comparison.verdict
        summary = {
            "better": f"better than {parent.id}",
            "tie": f"no better than {parent.id} (a tie)",
            "worse": f"a regression: worse than {parent.id}",
        }[verdict]
        if comparison.note:
            summary += f"; {comparison.note}"
        if verdict == "worse":
            issues.insert(
                0,
                Issue(
                    problem=f"This revision is worse than the draft it revises ({parent.id}).",
                    suggestion="Keep what the earlier draft did well while fixing its issues.",
                ),
            )
        return Critique(
            critic=self.name,
            score=_SCORES[verdict],
            raw_score=_SCORES[verdict],
            passed=verdict != "worse",
            summary=summary,
            feedback="\n\n".join(
                f"{_order_label(candidate_first)}: {v.reasoning.strip()}"
                for candidate_first, v in verdicts
            ),
            issues=issues,
            comparison=comparison,
            weight=self.weight,
            model=model.name,
            usage=spent,
            duration_s=time.perf_counter() - started,
        )

    def _compare(
        self, draft: Draft, parent: Candidate, verdicts: list[tuple[bool, PairVerdict]]
    ) -> tuple[Comparison, list[Issue]]:
        """The verdict over every order asked, and the candidate's issues the judge named."""
        orders: list[Preference] = []
        notes: list[str] = []
        issues: list[Issue] = []
        for candidate_first, verdict in verdicts:
            preference = _preference(verdict.better, candidate_first=candidate_first)
            if preference == "tie":
                preference = self._length_guard(draft.text, parent.draft.text)
                if preference != "tie":
                    longer = "the revision" if preference == "worse" else f"{parent.id}"
                    notes.append(f"a tie lost by the longer answer ({longer})")
            orders.append(preference)
            issues.extend(verdict.a_issues if candidate_first else verdict.b_issues)
        final: Preference = orders[0]
        if any(o != final for o in orders):
            final = "tie"
            notes = [f"the orders disagreed ({' / '.join(orders)}): a tie"]
        comparison = Comparison(
            against=parent.id, verdict=final, orders=orders, note="; ".join(dict.fromkeys(notes))
        )
        return comparison, _unique(issues)

    def _length_guard(self, candidate: str, parent: str) -> Preference:
        """Who wins a tie: the shorter answer, when the other is clearly longer."""
        if len(candidate) > len(parent) * (1 + self.length_margin):
            return "worse"
        if len(parent) > len(candidate) * (1 + self.length_margin):
            return "better"
        return "tie"

    async def _ask(
        self,
        draft: Draft,
        parent: Candidate,
        task: Task,
        ctx: AgentContext,
        model: ChatModel,
        reference: str | None,
        *,
        candidate_first: bool,
    ) -> tuple[PairVerdict, Usage]:
        first, second = (draft.text, parent.draft.text)
        if not candidate_first:
            first, second = second, first
        rubric = rubric_of(task, self.rubric) if (task.rubric or self.rubric) else None
        messages = [
            system(ctx.prompts.render("pairwise_system.md")),
            user(
                ctx.prompts.render(
                    "pairwise.md",
                    task=task,
                    rubric=None if rubric is None else describe_rubric(rubric),
                    reference=reference,
                    own_reference=reference is not None and reference != task.reference,
                    first=first,
                    second=second,
                )
            ),
        ]
        return await ask_structured(model, messages, PairVerdict, ctx.prompts, self.settings)

    async def _reference(
        self, task: Task, ctx: AgentContext, model: ChatModel
    ) -> tuple[str | None, Usage]:
        """The answer both are compared with: the task's, the judge's own, or none."""
        if self.use_reference and task.reference:
            return task.reference, Usage()
        if not self.self_reference:
            return None, Usage()

        async def answer() -> tuple[str, Usage]:
            messages = [
                system(ctx.prompts.render("reference_system.md")),
                user(ctx.prompts.render("reference_answer.md", task=task)),
            ]
            completion = await call_model(
                model, ModelRequest(messages=messages, settings=self.settings)
            )
            if not completion.text.strip():
                raise ModelError(f"{model.name} wrote an empty reference answer")
            return completion.text.strip(), completion.usage

        return await self._own_answers.get(task, answer)


def _preference(better: str, *, candidate_first: bool) -> Preference:
    """The judge's "A" / "B" / "tie" as the candidate's side of it."""
    if better == "tie":
        return "tie"
    candidate_label = "A" if candidate_first else "B"
    return "better" if better == candidate_label else "worse"


def _order_label(candidate_first: bool) -> str:
    return "revision shown first" if candidate_first else "revision shown second"


def _unique(issues: list[Issue]) -> list[Issue]:
    seen: dict[str, Issue] = {}
    for issue in issues:
        seen.setdefault(issue.problem.strip(), issue)
    return list(seen.values())
