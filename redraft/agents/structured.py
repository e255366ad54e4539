"""Structured answers from any model: parse, and re-ask once with the error when invalid."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel

from redraft.agents.prompts import PromptLibrary
from redraft.errors import StructuredOutputError
from redraft.models.base import ChatModel, Message, ModelRequest, ModelSettings, assistant, user
from redraft.models.limits import call_model
from redraft.tools.base import Tool, ToolContext
from redraft.tools.loop import DEFAULT_TOOL_LIMITS, Observer, ToolLimits, complete_with_tools
from redraft.types import ToolInvocation, Usage

SchemaT = TypeVar("SchemaT", bound=BaseModel)


class StructuredAnswerError(StructuredOutputError):
    """Carries the usage spent on the failed attempts, so it is still accounted for."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class StructuredRun(Generic[SchemaT]):
    """A structured answer, what it cost, and the tool calls made on the way to it."""

    parsed: SchemaT
    usage: Usage
    invocations: list[ToolInvocation] = field(default_factory=list)


async def ask_structured(
    model: ChatModel,
    messages: list[Message],
    schema: type[SchemaT],
    prompts: PromptLibrary,
    settings: ModelSettings | None = None,
) -> tuple[SchemaT, Usage]:
    """Ask for a `schema` answer; on invalid output, re-ask once showing what was wrong."""
    run = await ask_structured_with_tools(model, messages, schema, prompts, settings)
    return run.parsed, run.usage


async def ask_structured_with_tools(
    model: ChatModel,
    messages: list[Message],
    schema: type[SchemaT],
    prompts: PromptLibrary,
    settings: ModelSettings | None = None,
    *,
    tools: Sequence[Tool] = (),
    tool_ctx: ToolContext | None = None,
    limits: ToolLimits | None = None,
    observe: Observer | None = None,
) -> StructuredRun[SchemaT]:
    """`ask_structured`, the model free to call `tools` before it answers; the re-ask after
    an invalid answer sees the tool turns but may call no more tools."""
    if getattr(model, "schema_in_prompt", False):
        messages = with_schema_instruction(messages, schema, prompts)
    request = ModelRequest(messages=messages, output_schema=schema, settings=settings)
    run = await complete_with_tools(
        model,
        request,
        tools,
        tool_ctx or ToolContext(),
        limits or DEFAULT_TOOL_LIMITS,
        observe=observe,
    )
    completion, usage = run.completion, run.usage
    if isinstance(completion.parsed, schema):
        return StructuredRun(completion.parsed, usage, run.invocations)
    repair = [
        *run.messages,
        assistant(completion.text),
        user(prompts.render("repair.md", error=completion.parse_error)),
    ]
    retry = await call_model(model, request.model_copy(update={"messages": repair}))
    usage = usage + retry.usage
    if isinstance(retry.parsed, schema):
        return StructuredRun(retry.parsed, usage, run.invocations)
    raise StructuredAnswerError(
        f"{model.name} gave no valid {schema.__name__} after one repair: {retry.parse_error}",
        usage,
    )


def with_schema_instruction(
    messages: list[Message], schema: type[BaseModel], prompts: PromptLibrary
) -> list[Message]:
    """`messages` asking for JSON of `schema` at the end of the last user message, for a model
    that cannot be asked for it any other way."""
    instruction = prompts.render(
        "structured_output.md", schema=json.dumps(schema.model_json_schema())
    )
    if messages and messages[-1].role == "user":
        last = messages[-1]
        return [
            *messages[:-1],
            last.model_copy(update={"content": f"{last.content}\n\n{instruction}"}),
        ]
    return [*messages, user(instruction)]
