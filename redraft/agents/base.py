"""What every agent (actor, critic, editor) is given besides its own inputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redraft.agents.prompts import PromptLibrary
from redraft.errors import ConfigError
from redraft.events import emit
from redraft.models.base import ChatModel, ModelRequest, ModelSettings
from redraft.models.resolve import resolve_model
from redraft.tools.base import Tool, ToolContext
from redraft.tools.loop import DEFAULT_TOOL_LIMITS, ToolLimits, ToolRun, complete_with_tools
from redraft.types import (
    Candidate,
    Draft,
    Lesson,
    Round,
    Rubric,
    Task,
    ToolEvent,
    ToolInvocation,
    Variant,
)


@dataclass(frozen=True)
class AgentContext:
    """The run's defaults and history, handed to an agent for each call."""

    model: ChatModel | None
    prompts: PromptLibrary
    rounds: Sequence[Round] = ()
    lessons: Sequence[Lesson] = ()  # past corrections retrieved from memory for this call
    # Drafts already made that a revision must not repeat (a rejected repeat, its siblings).
    avoid: Sequence[Draft] = ()
    # What earlier failed attempts taught: for a fresh attempt, and for the next reflection.
    reflections: Sequence[str] = ()
    # Set when a strategy asks for several drafts or revisions at once (best-of-N, a tree).
    variant: Variant | None = None
    # Revisions of the same draft that already exist, which this one should differ from.
    siblings: Sequence[Draft] = ()
    # For critics: the judged candidate the draft revises (None for a first draft), and the
    # candidate being judged, with what the critics before this one said (for a person).
    parent: Candidate | None = None
    candidate: Candidate | None = None
    # The run's tools, for an agent that has none of its own, and the bounds of its loop.
    tools: Sequence[Tool] = ()
    tool_limits: ToolLimits = DEFAULT_TOOL_LIMITS

    async def complete(
        self,
        model: ChatModel,
        request: ModelRequest,
        own_tools: Sequence[Tool] | None,
        *,
        role: str,
        task: Task,
        draft: Draft | None = None,
        round: int = 0,
    ) -> ToolRun:
        """`request` answered by `model`, free to call the agent's tools (its own, else the
        run's); each call is streamed as a `ToolEvent`."""
        return await complete_with_tools(
            model,
            request,
            self.tools_for(own_tools),
            ToolContext(task=task, draft=draft, role=role),
            self.tool_limits,
            observe=self.tool_observer(role, round),
        )

    def tools_for(self, own_tools: Sequence[Tool] | None) -> Sequence[Tool]:
        """An agent's tools: its own if it was given any (even none), else the run's."""
        return self.tools if own_tools is None else own_tools

    @staticmethod
    def tool_observer(role: str, round: int) -> Callable[[ToolInvocation], None]:
        """Streams each tool call of `role` as a `ToolEvent`."""
        return lambda done: emit(ToolEvent(round=round, role=role, invocation=done))

    def settings(self, own: ModelSettings) -> ModelSettings:
        """An agent's own settings for this call: a variant's temperature replaces its own."""
        if self.variant is None or self.variant.temperature is None:
            return own
        return own.model_copy(update={"temperature": self.variant.temperature})

    def pick_model(self, own: ChatModel | None, role: str) -> ChatModel:
        """The agent's own model if it has one, else the run's model for its role."""
        model = own or self.model
        if model is None:
            raise ConfigError(
                f"no model for the {role}: pass model=... to it or to the Refiner, "
                "or set REDRAFT_MODEL"
            )
        return model


def optional_model(model: ChatModel | str | None) -> ChatModel | None:
    """Resolve an agent's own model, keeping `None` to mean 'use the run's model'."""
    return None if model is None else resolve_model(model)


def rubric_of(task: Task, fallback: str | Rubric | None = None) -> Rubric:
    """The rubric to judge `task` by: the task's own, else the critic's, else a generic one."""
    rubric = task.rubric if task.rubric is not None else fallback
    if rubric is None:
        return Rubric(description="Does the answer do exactly what the task asks, correctly?")
    if isinstance(rubric, str):
        return Rubric(description=rubric)
    return rubric


def describe_rubric(rubric: Rubric) -> str:
    """A short text of the rubric for the actor, so the first draft aims at it."""
    lines = [rubric.description] if rubric.description else []
    lines.extend(f"- {criterion}" for criterion in rubric.criteria)
    return "\n".join(lines)
