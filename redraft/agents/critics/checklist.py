"""A checklist critic (DeCRIM; WildBench checklists): the instruction as atomic constraints,
each checked on its own, so that the editor is told exactly which ones a draft misses."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, cast

from pydantic import BaseModel, Field

from redraft.agents.base import AgentContext, optional_model
from redraft.agents.critics.base import failed_critique
from redraft.agents.critics.per_task import PerTask
from redraft.agents.structured import StructuredAnswerError, ask_structured
from redraft.checks import kind_of, number, shown, text
from redraft.errors import ConfigError, ModelError
from redraft.models.base import ChatModel, Message, ModelSettings, assistant, system, user
from redraft.types import ConstraintCheck, Critique, Draft, Issue, Task, Usage

CHECKLIST_KEY = "checklist"  # a task's own checklist, in Task.metadata


class DerivedChecklist(BaseModel):
    """The JSON a checklist is derived as."""

    constraints: list[str] = Field(min_length=1)


class CheckVerdict(BaseModel):
    number: int
    passed: bool
    quote: str | None = None
    reason: str = ""


class ChecklistVerdict(BaseModel):
    """The JSON a draft is checked with: one verdict per constraint, by number."""

    checks: list[CheckVerdict]


class ChecklistCritic:
    """Judges a draft by a checklist of the instruction's atomic constraints.

    The checklist is, in this order: `checklist` given here, the task's own
    (`Task.metadata["checklist"]`, a list of strings), or derived from the instruction by the
    model, once per task: every draft of the task is checked against the same list, which
    each critique shows in `checks`. The score is the share of constraints met; the draft
    passes when that share reaches `pass_share` (default: all of them). Each constraint not
    met is one `Issue`, quoting the passage at fault.
    """

    def __init__(
        self,
        model: ChatModel | str | None = None,
        *,
        name: str = "checklist",
        checklist: Sequence[str] | None = None,
        pass_share: float = 1.0,
        weight: float = 1.0,
        temperature: float | None = 0.0,
    ) -> None:
        self.model = optional_model(model)
        self._name = cast(str, text("name", name))
        self.checklist = None if checklist is None else constraints_of(checklist, "checklist")
        number("pass_share", pass_share, minimum=0.0, maximum=1.0, meaning="the share to pass")
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        self.pass_share = pass_share
        self.weight = weight
        self.settings = ModelSettings(temperature=temperature)
        self._derived: PerTask[list[str]] = PerTask()

    @property
    def name(self) -> str:
        return self._name

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        started = time.perf_counter()
        model = ctx.pick_model(self.model, f"critic '{self.name}'")
        spent = Usage()
        try:
            constraints, spent = await self._constraints(task, ctx, model)
            checks, used = await self._check(draft, task, constraints, ctx, model)
            spent = spent + used
        except StructuredAnswerError as exc:
            return failed_critique(
                self.name, str(exc), model, spent + exc.usage, self.weight, started
            )
        except ModelError as exc:
            return failed_critique(self.name, str(exc), model, spent, self.weight, started)
        met = sum(check.passed for check in checks)
        share = met / len(checks)
        missed = [check for check in checks if not check.passed]
        return Critique(
            critic=self.name,
            score=share,
            raw_score=float(met),
            passed=share >= self.pass_share,
            summary=f"{met} of {len(checks)} constraints met",
            feedback="\n".join(
                f"{'MET' if c.passed else 'NOT MET'}: {c.constraint}"
                + (f" ({c.reason})" if c.reason else "")
                for c in checks
            ),
            issues=[
                Issue(
                    problem=f"Not met: {c.constraint}" + (f" ({c.reason})" if c.reason else ""),
                    quote=c.quote,
                    suggestion=f"Change the answer so that it meets: {c.constraint}",
                )
                for c in missed
            ],
            checks=checks,
            weight=self.weight,
            model=model.name,
            usage=spent,
            duration_s=time.perf_counter() - started,
        )

    async def _constraints(
        self, task: Task, ctx: AgentContext, model: ChatModel
    ) -> tuple[list[str], Usage]:
        """The checklist for `task`, and what deriving it cost this call."""
        if self.checklist is not None:
            return self.checklist, Usage()
        own = task.metadata.get(CHECKLIST_KEY)
        if own is not None:
            return constraints_of(own, f"task.metadata[{CHECKLIST_KEY!r}]"), Usage()
        if self._derived.known(task) is None:
            earlier = self._shown_before(ctx)  # a resumed run's, after a restart
            if earlier:
                self._derived.keep(task, earlier)

        async def derive() -> tuple[list[str], Usage]:
            messages = [
                system(ctx.prompts.render("checklist_system.md")),
                user(ctx.prompts.render("checklist_derive.md", task=task)),
            ]
            derived, usage = await ask_structured(
                model, messages, DerivedChecklist, ctx.prompts, self.settings
            )
            found = [c.strip() for c in derived.constraints if c.strip()]
            if not found:
                raise StructuredAnswerError(f"{model.name} derived an empty checklist", usage)
            return found, usage

        return await self._derived.get(task, derive)

    def _shown_before(self, ctx: AgentContext) -> list[str]:
        """The checklist on this critic's critique of an earlier draft of the run."""
        judged = [r.critiques for r in ctx.rounds]
        if ctx.parent is not None:
            judged.append(ctx.parent.critiques)
        for critiques in judged:
            for critique in critiques:
                if critique.critic == self.name and critique.checks and critique.error is None:
                    return [check.constraint for check in critique.checks]
        return []

    async def _check(
        self,
        draft: Draft,
        task: Task,
        constraints: list[str],
        ctx: AgentContext,
        model: ChatModel,
    ) -> tuple[list[ConstraintCheck], Usage]:
        messages: list[Message] = [
            system(ctx.prompts.render("checklist_system.md")),
            user(
                ctx.prompts.render(
                    "checklist_check.md", task=task, draft=draft.text, constraints=constraints
                )
            ),
        ]
        spent = Usage()
        for attempt in range(2):  # an answer that skips constraints is asked for once more
            verdict, usage = await ask_structured(
                model, messages, ChecklistVerdict, ctx.prompts, self.settings
            )
            spent = spent + usage
            by_number = {v.number: v for v in verdict.checks if 1 <= v.number <= len(constraints)}
            missing = [n for n in range(1, len(constraints) + 1) if n not in by_number]
            if not missing:
                return [
                    ConstraintCheck(
                        constraint=constraint,
                        passed=by_number[n].passed,
                        reason=by_number[n].reason.strip(),
                        quote=_found_in(by_number[n].quote, draft.text),
                    )
                    for n, constraint in enumerate(constraints, start=1)
                ], spent
            if attempt == 0:
                messages = [
                    *messages,
                    assistant(verdict.model_dump_json()),
                    user(
                        "You did not check constraint(s) "
                        f"{', '.join(map(str, missing))}. Reply again with one entry for each "
                        f"of the {len(constraints)} constraints, numbered 1 to "
                        f"{len(constraints)}."
                    ),
                ]
        raise StructuredAnswerError(
            f"{model.name} did not check constraint(s) {', '.join(map(str, missing))} of "
            f"{len(constraints)}, asked twice",
            spent,
        )


_SPACE = re.compile(r"\s+")


def _found_in(quote: str | None, text: str) -> str | None:
    """The quote, if `text` holds it (whitespace aside): a quote the answer does not contain
    would send the editor looking for a passage that is not there."""
    if quote is None or not quote.strip():
        return None
    wanted = _SPACE.sub(" ", quote).strip()
    return quote if wanted in _SPACE.sub(" ", text) else None


def constraints_of(given: Any, what: str) -> list[str]:
    """A checklist as given by a user: a list of non-empty strings, else a ConfigError."""
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
        raise ConfigError(
            f"{what} must be a list of constraints (strings), not {kind_of(given)} {shown(given)}"
        )
    found = [c.strip() for c in given if isinstance(c, str) and c.strip()]
    if len(found) != len(given) or not found:
        raise ConfigError(
            f"{what} must be a non-empty list of constraints, each a non-empty string; got "
            f"{shown(given)}"
        )
    return found
