"""The one interface every model satisfies, and the data that crosses it."""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redraft.types import Usage

# The key under which a tool call's arguments keep the model's text when it is not a JSON
# object: a tool's argument check then tells the model what is wrong. Never a valid argument
# name (pydantic fields cannot start with "_").
RAW_ARGUMENTS = "_raw"


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """A chat message in the OpenAI shape, which LiteLLM accepts for every provider."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            message["name"] = self.name
        return message


def system(content: str) -> Message:
    return Message(role="system", content=content)


def user(content: str) -> Message:
    return Message(role="user", content=content)


def assistant(content: str) -> Message:
    return Message(role="assistant", content=content)


class ToolSpec(BaseModel):
    """A function the model may call, described by a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ModelSettings(BaseModel):
    """Per-call generation settings; `None` means the model's own default."""

    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None


class ModelRequest(BaseModel):
    """Everything one model call is asked: the messages, and how to answer them.

    `output_schema` asks for JSON of that shape, `tools` are functions the model may call,
    `settings` override the model's own generation defaults. A wrapper that changes one field
    passes on a copy: `request.model_copy(update={"messages": [...]})`.
    """

    model_config = ConfigDict(frozen=True)

    messages: list[Message]
    output_schema: type[BaseModel] | None = None
    tools: list[ToolSpec] | None = None
    settings: ModelSettings | None = None


class Completion(BaseModel):
    """What a model returned for one call."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    parsed: BaseModel | None = None
    parse_error: str | None = Field(
        default=None, description="Why `text` did not match the requested schema."
    )
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    finish_reason: str | None = None


@runtime_checkable
class ChatModel(Protocol):
    """Anything that turns a `ModelRequest` into a `Completion`.

    When `request.output_schema` is given the model should ask for JSON of that shape where
    the provider supports it, and fill `Completion.parsed` (or `parse_error`) with
    `parse_structured` (`with_parsed` does both). A model with no such request (a local one)
    sets `schema_in_prompt = True`: the caller then asks for the JSON in the prompt itself, in
    the words of its own (overridable) template.
    """

    @property
    def name(self) -> str: ...

    async def complete(self, request: ModelRequest) -> Completion: ...


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)\n?```", re.DOTALL)


def _json_candidates(text: str) -> list[str]:
    """The whole text, fenced blocks, then the outermost {...} span: models wrap JSON freely."""
    candidates = [text.strip()]
    candidates.extend(match.group(1).strip() for match in _FENCE.finditer(text))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    return candidates


def parse_structured(text: str, schema: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """Parse `text` as JSON for `schema`. Returns (parsed, None) or (None, why it failed)."""
    error = "the answer holds no JSON object"
    for candidate in _json_candidates(text):
        if not candidate:
            continue
        try:
            return schema.model_validate_json(candidate), None
        except ValidationError as exc:
            if all(e["type"] == "json_invalid" for e in exc.errors()):
                error = f"invalid JSON: {exc.errors()[0]['msg']}"
                continue
            error = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
    return None, error


def with_parsed(completion: Completion, schema: type[BaseModel] | None) -> Completion:
    """Fill `parsed`/`parse_error` of a completion when a schema was requested."""
    if schema is None:
        return completion
    parsed, error = parse_structured(completion.text, schema)
    return completion.model_copy(update={"parsed": parsed, "parse_error": error})
