"""A critic is anything that judges a draft and returns a `Critique`."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from redraft.agents.base import AgentContext
from redraft.models.base import ChatModel
from redraft.types import Critique, Draft, Task, Usage


@runtime_checkable
class Critic(Protocol):
    @property
    def name(self) -> str: ...

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique: ...


# Two optional class attributes change when the engine runs a critic:
#   compares = True  it judges a revision against its parent (`ctx.parent`), so a first
#                    draft, which has none, is not given to it;
#   pauses = True    it waits for a person (a LangGraph interrupt), so it runs after every
#                    other critic, in a step of its own that a resumed run repeats alone.


def compares(critic: object) -> bool:
    """The critic judges a draft against its parent only."""
    return getattr(critic, "compares", False) is True


def pauses(critic: object) -> bool:
    """The critic pauses the run for a person."""
    return getattr(critic, "pauses", False) is True


def failed_critique(
    critic: str, error: str, model: ChatModel, usage: Usage | None, weight: float, started: float
) -> Critique:
    """A model-backed critic's critique when its model failed or never answered validly: it
    counts as 0 with the critic's weight, and what the attempts cost is kept."""
    critique = Critique.failed(critic, error, usage=usage)
    return critique.model_copy(
        update={"model": model.name, "weight": weight, "duration_s": time.perf_counter() - started}
    )
