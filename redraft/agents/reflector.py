"""The reflector: after a failed attempt, says what went wrong and what to do differently
(Reflexion's verbal reflection), for the next attempt to start afresh with."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from redraft.agents.base import AgentContext, optional_model
from redraft.checks import number
from redraft.models.base import ChatModel, ModelRequest, ModelSettings, system, user
from redraft.models.limits import call_model
from redraft.types import Candidate, Reflection, Task

_SHOWN_CHARS = 4000  # of each version: the reflection needs its gist, not every line
_PROBLEMS_SHOWN = 8


class Reflector(Protocol):
    """Anything that reflects on a failed attempt (its candidates, in the order made)."""

    async def reflect(
        self, attempt: Sequence[Candidate], task: Task, ctx: AgentContext
    ) -> Reflection: ...


class LLMReflector:
    """Reflects with a chat model (by default the run's editor model) on the attempt's
    drafts and what the critics said of each."""

    def __init__(
        self, model: ChatModel | str | None = None, *, temperature: float | None = None
    ) -> None:
        self.model = optional_model(model)
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        self.settings = ModelSettings(temperature=temperature)

    async def reflect(
        self, attempt: Sequence[Candidate], task: Task, ctx: AgentContext
    ) -> Reflection:
        model = ctx.pick_model(self.model, "reflector")
        messages = [
            system(ctx.prompts.render("reflector_system.md")),
            user(
                ctx.prompts.render(
                    "reflect.md",
                    task=task,
                    attempts=[_shown(candidate) for candidate in attempt],
                    reflections=ctx.reflections,
                )
            ),
        ]
        started = time.perf_counter()
        request = ModelRequest(messages=messages, settings=self.settings)
        completion = await call_model(model, request)
        return Reflection(
            text=completion.text.strip(),
            model=model.name,
            usage=completion.usage,
            duration_s=time.perf_counter() - started,
        )


def _shown(candidate: Candidate) -> dict[str, object]:
    text = candidate.draft.text
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + f"\n[... {len(text) - _SHOWN_CHARS} more characters]"
    problems = [
        f"{critique.critic}: {issue.problem}"
        for critique in candidate.critiques
        for issue in critique.issues
    ]
    problems += [
        f"{critique.critic}: {critique.summary or critique.error or 'did not pass'}"
        for critique in candidate.critiques
        if not critique.passed and not critique.issues
    ]
    return {
        "text": text,
        "score": candidate.score,
        "passed": candidate.passed,
        "problems": problems[:_PROBLEMS_SHOWN],
    }
