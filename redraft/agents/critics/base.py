"""A critic is anything that judges a draft and returns a `Critique`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from redraft.agents.base import AgentContext
from redraft.types import Critique, Draft, Task


@runtime_checkable
class Critic(Protocol):
    @property
    def name(self) -> str: ...

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique: ...
