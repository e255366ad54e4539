"""A rubric critic in the Prometheus style: reasoned feedback first, then a 1-5 score."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from pydantic import BaseModel, Field

from redraft.agents.base import AgentContext, optional_model, rubric_of
from redraft.agents.critics.base import failed_critique
from redraft.agents.structured import StructuredAnswerError, ask_structured_with_tools
from redraft.checks import flag, kind_of, number, shown, text
from redraft.errors import ConfigError, ModelError
from redraft.models.base import ChatModel, ModelSettings, system, user
from redraft.tools.base import Tool, ToolContext, tools_from
from redraft.types import Critique, Draft, Issue, Rubric, Task


class RubricVerdict(BaseModel):
    """The JSON a rubric critic answers with. Field order matters: reasoning before score."""

    feedback: str
    summary: str = ""
    issues: list[Issue] = Field(default_factory=list)
    score: int = Field(ge=1, le=5)


class LLMCritic:
    """Judges a draft against a rubric (the task's, else this critic's) with a chat model.

    A reference answer on the task is shown to the judge. Invalid JSON is re-asked once; a
    critic that still fails returns a `Critique` with `error` set instead of raising.
    """

    def __init__(
        self,
        model: ChatModel | str | None = None,
        *,
        name: str = "rubric",
        rubric: str | Rubric | None = None,
        criteria: list[str] | None = None,
        pass_score: int | None = None,
        use_reference: bool = True,
        weight: float = 1.0,
        temperature: float | None = 0.0,
        tools: Sequence[Tool | Callable[..., Any]] | None = None,
    ) -> None:
        self.model = optional_model(model)
        # None: the Refiner's tools; [] for none at all.
        self.tools = None if tools is None else tools_from(tools, "LLMCritic tools")
        self._name = cast(str, text("name", name))
        if rubric is not None and not isinstance(rubric, (str, Rubric)):
            raise ConfigError(
                f"rubric must be a text or a redraft.Rubric, not {kind_of(rubric)} {shown(rubric)}"
            )
        if criteria is not None and (
            isinstance(criteria, str) or not all(isinstance(c, str) and c.strip() for c in criteria)
        ):
            raise ConfigError(
                f"criteria must be a list of strings, each saying what it asks for; got "
                f"{shown(criteria)}"
            )
        flag("use_reference", use_reference)
        if pass_score is not None and (
            isinstance(pass_score, bool)
            or not isinstance(pass_score, int)
            or not 1 <= pass_score <= 5
        ):
            raise ConfigError(
                "pass_score is the lowest passing score on the rubric's 1-5 scale: give 1, "
                f"2, 3, 4 or 5, or None for the rubric's own; got {shown(pass_score)}"
            )
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        if criteria:
            base = rubric if isinstance(rubric, Rubric) else Rubric(description=rubric or "")
            rubric = base.model_copy(update={"criteria": [*base.criteria, *criteria]})
        self.rubric = rubric
        self.pass_score = pass_score
        self.use_reference = use_reference
        self.weight = weight
        self.settings = ModelSettings(temperature=temperature)

    @property
    def name(self) -> str:
        return self._name

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        model = ctx.pick_model(self.model, f"critic '{self.name}'")
        rubric = rubric_of(task, self.rubric)
        tools = ctx.tools_for(self.tools)
        messages = [
            system(ctx.prompts.render("critic_system.md")),
            user(
                ctx.prompts.render(
                    "critic_rubric.md",
                    task=task,
                    draft=draft.text,
                    rubric=rubric,
                    reference=task.reference if self.use_reference else None,
                    tools=[t.name for t in tools],
                )
            ),
        ]
        started = time.perf_counter()
        try:
            run = await ask_structured_with_tools(
                model,
                messages,
                RubricVerdict,
                ctx.prompts,
                self.settings,
                tools=tools,
                tool_ctx=ToolContext(task=task, draft=draft, role=self.name),
                limits=ctx.tool_limits,
                observe=ctx.tool_observer(self.name, draft.round),
            )
        except StructuredAnswerError as exc:
            return failed_critique(self.name, str(exc), model, exc.usage, self.weight, started)
        except ModelError as exc:
            return failed_critique(self.name, str(exc), model, None, self.weight, started)
        verdict, usage = run.parsed, run.usage
        pass_score = self.pass_score or rubric.pass_score
        return Critique(
            critic=self.name,
            score=(verdict.score - 1) / 4,
            raw_score=verdict.score,
            passed=verdict.score >= pass_score,
            summary=verdict.summary or _first_sentence(verdict.feedback),
            feedback=verdict.feedback,
            issues=verdict.issues,
            weight=self.weight,
            model=model.name,
            usage=usage,
            duration_s=time.perf_counter() - started,
            tool_calls=run.invocations,
        )


def _first_sentence(text: str) -> str:
    head = text.strip().split("\n", 1)[0]
    end = head.find(". ")
    return head if end < 0 else head[: end + 1]
