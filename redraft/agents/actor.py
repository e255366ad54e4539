"""The actor writes the first draft."""

from __future__ import annotations

import time
from typing import Protocol

from redraft.agents.base import AgentContext, describe_rubric, optional_model, rubric_of
from redraft.checks import number
from redraft.models.base import ChatModel, ModelRequest, ModelSettings, system, user
from redraft.models.limits import call_model
from redraft.types import Draft, Task


class Actor(Protocol):
    """Anything that writes a first draft for a task."""

    async def draft(self, task: Task, ctx: AgentContext) -> Draft: ...


class LLMActor:
    """Drafts with a chat model from the task, its context and the rubric it will be judged by."""

    def __init__(
        self, model: ChatModel | str | None = None, *, temperature: float | None = None
    ) -> None:
        self.model = optional_model(model)
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        self.settings = ModelSettings(temperature=temperature)

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
        completion = await call_model(
            model, ModelRequest(messages=messages, settings=ctx.settings(self.settings))
        )
        return Draft(
            text=completion.text.strip(),
            round=0,
            author="actor",
            model=model.name,
            usage=completion.usage,
            duration_s=time.perf_counter() - started,
        )
