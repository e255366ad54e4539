"""The actor writes the first draft."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redraft.agents.base import AgentContext, describe_rubric, optional_model, rubric_of
from redraft.checks import number
from redraft.models.base import ChatModel, ModelRequest, ModelSettings, system, user
from redraft.tools.base import Tool, tools_from
from redraft.types import Draft, Task


class Actor(Protocol):
    """Anything that writes a first draft for a task."""

    async def draft(self, task: Task, ctx: AgentContext) -> Draft: ...


class LLMActor:
    """Drafts with a chat model from the task, its context and the rubric it will be judged by."""

    def __init__(
        self,
        model: ChatModel | str | None = None,
        *,
        temperature: float | None = None,
        tools: Sequence[Tool | Callable[..., Any]] | None = None,
    ) -> None:
        self.model = optional_model(model)
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        self.settings = ModelSettings(temperature=temperature)
        # None: the Refiner's tools; [] for none at all.
        self.tools = None if tools is None else tools_from(tools, "LLMActor tools")

    async def draft(self, task: Task, ctx: AgentContext) -> Draft:
        model = ctx.pick_model(self.model, "actor")
        rubric_text = describe_rubric(rubric_of(task)) if task.rubric is not None else ""
        messages = [
            system(ctx.prompts.render("actor_system.md")),
            user(
                ctx.prompts.render(
                    "actor.md",
                    task=task,
                    rubric_text=rubric_text,
                    lessons=ctx.lessons,
                    reflections=ctx.reflections,
                    variant=ctx.variant,
                )
            ),
        ]
        started = time.perf_counter()
        request = ModelRequest(messages=messages, settings=ctx.settings(self.settings))
        run = await ctx.complete(model, request, self.tools, role="actor", task=task)
        return Draft(
            text=run.completion.text.strip(),
            round=0,
            author="actor",
            model=model.name,
            usage=run.usage,
            duration_s=time.perf_counter() - started,
            tool_calls=run.invocations,
        )
