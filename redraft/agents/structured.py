"""Structured answers from any model: parse, and re-ask once with the error when invalid."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel

from redraft.agents.prompts import PromptLibrary
from redraft.errors import StructuredOutputError
from redraft.models.base import ChatModel, Message, ModelRequest, ModelSettings, assistant, user
from redraft.models.limits import call_model
from redraft.types import Usage

SchemaT = TypeVar("SchemaT", bound=BaseModel)


class StructuredAnswerError(StructuredOutputError):
    """Carries the usage spent on the failed attempts, so it is still accounted for."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


async def ask_structured(
    model: ChatModel,
    messages: list[Message],
    schema: type[SchemaT],
    prompts: PromptLibrary,
    settings: ModelSettings | None = None,
) -> tuple[SchemaT, Usage]:
    """Ask for a `schema` answer; on invalid output, re-ask once showing what was wrong."""
    if getattr(model, "schema_in_prompt", False):
        messages = with_schema_instruction(messages, schema, prompts)
    request = ModelRequest(messages=messages, output_schema=schema, settings=settings)
    completion = await call_model(model, request)
    usage = completion.usage
    if isinstance(completion.parsed, schema):
        return completion.parsed, usage
    repair = [
        *messages,
        assistant(completion.text),
        user(prompts.render("repair.md", error=completion.parse_error)),
    ]
    retry = await call_model(model, request.model_copy(update={"messages": repair}))
    usage = usage + retry.usage
    if isinstance(retry.parsed, schema):
        return retry.parsed, usage
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
