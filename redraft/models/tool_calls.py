"""Tool calls read out of a local model's generated text, in the formats chat templates teach.

A model served through an API returns its calls as data; one run in this process writes them
as text, in the markup its chat template showed it:

- Qwen2.5 / Hermes: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one block per
  call, text around them allowed. A block left open at the end of the reply is read too.
- Llama 3.1: `{"name": ..., "parameters": {...}}` as the whole reply, or after
  `<|python_tag|>`; several may be separated by `;`.
- Mistral: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`, and the newer
  `[TOOL_CALLS]name[ARGS]{...}` (with an optional `[CALL_ID]id`).

The first of these markers found decides the format; a reply with none is a call only when it
is wholly Llama-style JSON objects of that exact shape (so a JSON answer is not taken for one).

A call that cannot be read is still returned, so that the tool loop tells the model what was
wrong rather than ending on garbled text: its arguments are `{RAW_ARGUMENTS: <the text>}`
(the name too is recovered where it can be, else it is ""), which a tool's argument check
reports as JSON that does not parse. `ParsedReply.errors` says, one line each, what failed.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

from redraft.models.base import RAW_ARGUMENTS, ToolCall

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"
# What a tokenizer may hold as special tokens that decoding must keep, for the parser to see.
TOOL_MARKUP = frozenset(
    {HERMES_OPEN, HERMES_CLOSE, PYTHON_TAG, MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID}
)
# Mistral's templates refuse any tool call id but 9 letters and digits; the others take any.
_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 9
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')
_LLAMA_KEYS = frozenset({"name", "parameters", "arguments", "type"})
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedReply:
    """A reply split into its text (the call markup taken out) and the calls it made."""

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def new_call_id() -> str:
    """An id for a call the model wrote without one: 9 letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def parse_tool_calls(text: str) -> ParsedReply:
    """The tool calls in `text` (in any of the formats above), and the text without them."""
    if HERMES_OPEN in text:
        return _hermes(text)
    if MISTRAL_CALLS in text:
        return _mistral(text)
    if PYTHON_TAG in text:
        before, _, after = text.partition(PYTHON_TAG)
        return _llama(after, before)
    bare = _llama(text, "", strict=True)
    return bare if bare.calls else ParsedReply(text.strip())


class _Reader:
    """Collects the calls and errors of one reply."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.errors: list[str] = []

    def add(self, value: Any, source: str) -> None:
        """One call from its decoded JSON `value`; `source` is its text, kept if unreadable."""
        if isinstance(value, dict) and isinstance(value.get("function"), dict):
            value = value["function"]  # the OpenAI shape, which some fine-tunes copy
        if not isinstance(value, dict):
            self.bad(f"a tool call must be a JSON object, not {_kind(value)}", source, "")
            return
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            self.bad("a tool call has no name", source, "")
            return
        arguments = value.get("arguments", value.get("parameters", {}))
        self.named(name.strip(), arguments)

    def named(self, name: str, arguments: Any) -> None:
        """A call of `name` whose arguments are an object, or text to decode as one."""
        if isinstance(arguments, str):  # some models encode the arguments as a JSON string
            try:
                decoded = json.loads(arguments) if arguments.strip() else {}
            except (ValueError, RecursionError):
                decoded = None
            if not isinstance(decoded, dict):
                self.bad(f"the arguments of {name} are not a JSON object", arguments, name)
                return
            arguments = decoded
        if not isinstance(arguments, dict):
            raw = json.dumps(arguments, ensure_ascii=False)
            self.bad(f"the arguments of {name} are not a JSON object", raw, name)
            return
        self.calls.append(ToolCall(id=new_call_id(), name=name, arguments=arguments))

    def bad(self, why: str, source: str, name: str | None = None) -> None:
        """A call that cannot be read: kept, with its text, for the tool loop to report. With
        no `name`, one is looked for in the text: its JSON may be broken after the name."""
        source = source.strip()
        if name is None:
            found = _NAME.search(source)
            name = found.group(1) if found else ""
        self.errors.append(f"{why}: {_clip(source)}")
        self.calls.append(ToolCall(id=new_call_id(), name=name, arguments={RAW_ARGUMENTS: source}))

    def json(self, source: str) -> None:
        """One call written as a JSON object, perhaps with stray text after it."""
        try:
            value, _ = _DECODER.raw_decode(source.strip())
        except (ValueError, RecursionError) as exc:
            self.bad(f"a tool call is not valid JSON ({exc})", source)
            return
        self.add(value, source)

    def reply(self, pieces: list[str]) -> ParsedReply:
        text = "\n".join(piece.strip() for piece in pieces if piece.strip())
        return ParsedReply(text, self.calls, self.errors)


def _hermes(text: str) -> ParsedReply:
    reader, pieces, at = _Reader(), [], 0
    while (start := text.find(HERMES_OPEN, at)) >= 0:
        pieces.append(text[at:start])
        body_start = start + len(HERMES_OPEN)
        end = text.find(HERMES_CLOSE, body_start)
        # An unclosed block: the model stopped (its end token, or max_tokens) before closing it.
        body_end = len(text) if end < 0 else end
        at = len(text) if end < 0 else end + len(HERMES_CLOSE)
        body = text[body_start:body_end]
        if body.strip():
            reader.json(body)
        else:
            reader.bad("a tool call block is empty", body)
    pieces.append(text[at:])
    return reader.reply(pieces)


def _mistral(text: str) -> ParsedReply:
    reader = _Reader()
    head, *blocks = text.split(MISTRAL_CALLS)
    pieces = [head]
    for block in blocks:
        body = block.lstrip()
        if body.startswith("["):  # the JSON list of calls, every call at once
            try:
                value, used = _DECODER.raw_decode(body)
            except (ValueError, RecursionError) as exc:
                reader.bad(f"the tool calls are not valid JSON ({exc})", body)
                continue
            for item in value if isinstance(value, list) else [value]:
                reader.add(item, json.dumps(item, ensure_ascii=False))
            pieces.append(body[used:])
            continue
        name, marker, rest = body.partition(MISTRAL_ARGS)
        if not marker:
            reader.bad(f"a tool call has no {MISTRAL_ARGS}", body)
            continue
        name = name.partition(MISTRAL_CALL_ID)[0].strip()
        if not name:
            reader.bad("a tool call has no name", body)
            continue
        try:
            arguments, used = _DECODER.raw_decode(rest.lstrip())
        except (ValueError, RecursionError) as exc:
            reader.bad(f"the arguments of {name} are not valid JSON ({exc})", rest, name)
            continue
        reader.named(name, arguments)
        pieces.append(rest.lstrip()[used:])
    return reader.reply(pieces)


def _llama(text: str, before: str, *, strict: bool = False) -> ParsedReply:
    """JSON calls separated by `;`. `strict` (no `<|python_tag|>`): only text that is wholly
    objects of the call shape counts as calls, for a JSON answer must stay an answer."""
    reader, after = _Reader(), ""
    rest = text.strip()
    while rest:
        try:
            value, used = _DECODER.raw_decode(rest)
        except (ValueError, RecursionError) as exc:
            if strict:
                return ParsedReply(text.strip())
            if reader.calls:  # text after the calls
                after = rest
            else:  # not JSON at all (Llama's own built-in tools are called in Python)
                reader.bad(f"a tool call is not valid JSON ({exc})", rest)
            break
        if strict and not (
            isinstance(value, dict)
            and "name" in value
            and ("parameters" in value or "arguments" in value)
            and set(value) <= _LLAMA_KEYS
        ):
            return ParsedReply(text.strip())
        reader.add(value, rest[:used])
        rest = rest[used:].lstrip().removeprefix(";").lstrip()
    return reader.reply([before, after])


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


def _clip(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
