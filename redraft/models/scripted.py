"""A deterministic model for tests and offline demos: replays replies or calls a function."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Union

from pydantic import BaseModel

from redraft.errors import ModelError
from redraft.models.base import (
    Completion,
    Message,
    ModelRequest,
    ModelSettings,
    ToolSpec,
    with_parsed,
)
from redraft.types import Usage

# Union, not |, because these aliases are evaluated at run time on Python 3.10 too.
Reply = Union[str, dict[str, Any], BaseModel, Completion, Exception]  # noqa: UP007
ReplyFunction = Callable[[list[Message], "ScriptedCall"], Union[Reply, Awaitable[Reply]]]  # noqa: UP007


@dataclass
class ScriptedCall:
    """One call the scripted model received: its request, and the text it answered.

    `messages`, `output_schema`, `tools` and `settings` are the request's, for short asserts.
    """

    index: int
    request: ModelRequest
    reply: str = ""

    @property
    def messages(self) -> list[Message]:
        return self.request.messages

    @property
    def output_schema(self) -> type[BaseModel] | None:
        return self.request.output_schema

    @property
    def tools(self) -> list[ToolSpec] | None:
        return self.request.tools

    @property
    def settings(self) -> ModelSettings | None:
        return self.request.settings

    @property
    def prompt(self) -> str:
        """All message contents joined, for asserting on what the model was shown."""
        return "\n\n".join(message.content for message in self.messages)


@dataclass
class ScriptedModel:
    """Replays `replies` in order, or answers with `function(messages, call)`.

    A reply may be text, a dict or pydantic model (sent as JSON), a full `Completion`,
    or an exception to raise. Every call is recorded in `calls`.
    """

    replies: Iterable[Reply] | ReplyFunction = ()
    model_name: str = "scripted"
    delay_s: float = 0.0
    cost_per_call: float = 0.0
    calls: list[ScriptedCall] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if callable(self.replies):
            self._function: ReplyFunction | None = self.replies
            self._queue: list[Reply] = []
        else:
            self._function = None
            self._queue = list(self.replies)
        self._next = 0

    @property
    def name(self) -> str:
        return self.model_name

    @property
    def remaining(self) -> int:
        """How many scripted replies are still unused (0 for a function model)."""
        return len(self._queue) - self._next

    async def complete(self, request: ModelRequest) -> Completion:
        call = ScriptedCall(len(self.calls), request)
        self.calls.append(call)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        reply = await self._reply(call)
        if isinstance(reply, Exception):
            raise reply
        completion = self._to_completion(reply, request.messages)
        call.reply = completion.text
        return with_parsed(completion, request.output_schema)

    async def _reply(self, call: ScriptedCall) -> Reply:
        if self._function is not None:
            reply = self._function(call.messages, call)
            return await reply if inspect.isawaitable(reply) else reply
        if self._next >= len(self._queue):
            raise ModelError(
                f"ScriptedModel '{self.model_name}' ran out of replies after "
                f"{len(self._queue)} calls; script more replies or pass a function"
            )
        reply = self._queue[self._next]
        self._next += 1
        return reply

    def _to_completion(self, reply: Reply, messages: list[Message]) -> Completion:
        if isinstance(reply, Completion):
            return reply
        if isinstance(reply, BaseModel):
            text = reply.model_dump_json()
        elif isinstance(reply, dict):
            text = json.dumps(reply)
        else:
            text = str(reply)
        usage = Usage(
            input_tokens=sum(_count_tokens(m.content) for m in messages),
            output_tokens=_count_tokens(text),
            cost_usd=self.cost_per_call,
            calls=1,
            latency_s=self.delay_s,
        )
        return Completion(text=text, usage=usage, model=self.model_name, finish_reason="stop")


def _count_tokens(text: str) -> int:
    """A rough, deterministic token count: about four characters a token."""
    return (len(text) + 3) // 4
