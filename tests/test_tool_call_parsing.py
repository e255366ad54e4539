"""Tool calls read from generated text: Qwen2.5/Hermes, Llama 3.1 and Mistral formats, text
around the calls, malformed calls (kept, for the tool loop to report), replies with none."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from redraft.models.base import RAW_ARGUMENTS, Completion, ModelRequest, ToolCall, user
from redraft.models.scripted import ScriptedModel
from redraft.models.tool_calls import ParsedReply, new_call_id, parse_tool_calls
from redraft.tools import ToolContext, ToolError, complete_with_tools, tool


def calls(reply: ParsedReply) -> list[tuple[str, dict[str, object]]]:
    return [(call.name, call.arguments) for call in reply.calls]


def test_one_qwen_call_and_nothing_else() -> None:
    reply = parse_tool_calls(
        '<tool_call>\n{"name": "search", "arguments": {"query": "tide pools", "limit": 3}}\n'
        "</tool_call>"
    )
    assert calls(reply) == [("search", {"query": "tide pools", "limit": 3})]
    assert reply.text == ""
    assert reply.errors == []


def test_several_qwen_calls_with_text_before_between_and_after() -> None:
    reply = parse_tool_calls(
        "Let me look both up.\n"
        '<tool_call>\n{"name": "search", "arguments": {"query": "sea"}}\n</tool_call>\n'
        "and\n"
        '<tool_call>\n{"name": "define", "arguments": {"word": "tide"}}\n</tool_call>\n'
        "Back soon."
    )
    assert calls(reply) == [("search", {"query": "sea"}), ("define", {"word": "tide"})]
    assert reply.text == "Let me look both up.\nand\nBack soon."
    ids = [call.id for call in reply.calls]
    assert len(set(ids)) == 2


def test_qwen_call_variants_models_write() -> None:
    reply = parse_tool_calls(
        # arguments as a JSON string, "parameters" for "arguments", no arguments at all, the
        # OpenAI shape, and a block the model never closed (it stopped at its end token)
        '<tool_call>{"name": "a", "arguments": "{\\"x\\": 1}"}</tool_call>'
        '<tool_call>{"name": "b", "parameters": {"y": [1, 2]}}</tool_call>'
        '<tool_call>{"name": "c"}</tool_call>'
        '<tool_call>{"type": "function", "function": {"name": "d", "arguments": {}}}</tool_call>'
        '<tool_call>\n{"name": "e", "arguments": {"z": "ok"}}\n'
    )
    assert calls(reply) == [
        ("a", {"x": 1}),
        ("b", {"y": [1, 2]}),
        ("c", {}),
        ("d", {}),
        ("e", {"z": "ok"}),
    ]
    assert reply.errors == []


def test_a_malformed_qwen_block_is_kept_and_the_rest_read() -> None:
    broken = '{"name": "search", "arguments": {"query": "sea",}}'
    reply = parse_tool_calls(
        f"<tool_call>\n{broken}\n</tool_call>\n"
        '<tool_call>\n{"name": "define", "arguments": {"word": "tide"}}\n</tool_call>'
    )
    first, second = reply.calls
    assert first.name == "search"  # recovered from the broken JSON
    assert first.arguments == {RAW_ARGUMENTS: broken}
    assert (second.name, second.arguments) == ("define", {"word": "tide"})
    assert len(reply.errors) == 1
    assert reply.errors[0].startswith("a tool call is not valid JSON (")
    assert reply.text == ""


@pytest.mark.parametrize(
    ("block", "error", "name"),
    [
        ("not json at all", "a tool call is not valid JSON", ""),
        ('{"arguments": {"x": 1}}', "a tool call has no name", ""),
        ('{"arguments": {"name": "Bob"}}', "a tool call has no name", ""),
        ('["search"]', "a tool call must be a JSON object, not a list", ""),
        ('{"name": "search", "arguments": [1]}', "the arguments of search are not", "search"),
        ('{"name": "search", "arguments": "x=1"}', "the arguments of search are not", "search"),
        ("  ", "a tool call block is empty", ""),
    ],
)
def test_each_kind_of_unreadable_block(block: str, error: str, name: str) -> None:
    reply = parse_tool_calls(f"<tool_call>{block}</tool_call>")
    (call,) = reply.calls
    assert call.name == name
    assert set(call.arguments) == {RAW_ARGUMENTS}
    (message,) = reply.errors
    assert message.startswith(error)
    assert "\n" not in message


def test_llama_json_reply_is_a_call() -> None:
    reply = parse_tool_calls('{"name": "get_weather", "parameters": {"city": "Oslo"}}')
    assert calls(reply) == [("get_weather", {"city": "Oslo"})]
    assert reply.text == ""
    typed = parse_tool_calls(
        '  {"type": "function", "name": "get_weather", "parameters": {"city": "Oslo"}}\n'
    )
    assert calls(typed) == [("get_weather", {"city": "Oslo"})]


def test_llama_python_tag_calls_separated_by_semicolons() -> None:
    reply = parse_tool_calls(
        "Checking.<|python_tag|>"
        '{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}\n'
        "Then I will answer."
    )
    assert calls(reply) == [("a", {"x": 1}), ("b", {})]
    assert reply.text == "Checking.\nThen I will answer."


def test_llama_python_code_after_the_tag_is_reported() -> None:
    reply = parse_tool_calls('<|python_tag|>brave_search.call(query="sea")')
    (call,) = reply.calls
    assert call.name == ""
    assert call.arguments == {RAW_ARGUMENTS: 'brave_search.call(query="sea")'}
    assert reply.errors[0].startswith("a tool call is not valid JSON")


@pytest.mark.parametrize(
    "answer",
    [
        '{"score": 4, "feedback": "good", "passed": true}',  # a structured answer
        '{"name": "Ada", "age": 36}',  # "name" but not the call shape
        '{"name": "a", "parameters": {}, "extra": 1}',  # keys a call does not have
        'Call it like {"name": "a", "parameters": {}} next time.',  # JSON inside prose
        '{"name": "a", "parameters": {}} and some words',
        "[1, 2, 3]",
        "",
    ],
)
def test_json_that_is_no_call_stays_the_answer(answer: str) -> None:
    reply = parse_tool_calls(answer)
    assert reply.calls == []
    assert reply.errors == []
    assert reply.text == answer.strip()


def test_mistral_list_of_calls() -> None:
    reply = parse_tool_calls(
        "On it. [TOOL_CALLS] "
        '[{"name": "search", "arguments": {"query": "sea"}}, '
        '{"name": "define", "arguments": "{\\"word\\": \\"tide\\"}"}]'
    )
    assert calls(reply) == [("search", {"query": "sea"}), ("define", {"word": "tide"})]
    assert reply.text == "On it."


def test_mistral_name_args_format() -> None:
    reply = parse_tool_calls(
        '[TOOL_CALLS]search[ARGS]{"query": "sea"}'
        '[TOOL_CALLS]define[CALL_ID]a1b2c3d4e[ARGS]{"word": "tide"}'
    )
    assert calls(reply) == [("search", {"query": "sea"}), ("define", {"word": "tide"})]
    assert reply.text == ""


def test_malformed_mistral_calls_are_reported() -> None:
    reply = parse_tool_calls('[TOOL_CALLS] [{"name": "search", "arguments": {"query": }]')
    (call,) = reply.calls
    assert call.name == "search"
    assert reply.errors[0].startswith("the tool calls are not valid JSON")
    args = parse_tool_calls('[TOOL_CALLS]search[ARGS]{"query": oops}')
    assert args.calls[0].name == "search"
    assert args.errors[0].startswith("the arguments of search are not valid JSON")
    no_args = parse_tool_calls("[TOOL_CALLS]search")
    assert no_args.errors[0].startswith("a tool call has no [ARGS]")


def test_no_calls_leaves_the_text_as_it_is() -> None:
    for text in ("A haiku about the sea.", "  padded  ", "tool_call without markup"):
        reply = parse_tool_calls(text)
        assert reply == ParsedReply(text.strip())


def test_call_ids_suit_every_template() -> None:
    # Mistral's templates reject any tool_call_id but 9 letters and digits.
    ids = {new_call_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{9}", i) for i in ids)


@tool
def define(word: str) -> str:
    """Define a word.

    Args:
        word: the word
    """
    return f"{word}: a definition"


def test_the_tool_loop_tells_the_model_what_was_unreadable() -> None:
    reply = parse_tool_calls(
        '<tool_call>{"name": "define", "arguments": {"word": }}</tool_call>'
        "<tool_call>no json here</tool_call>"
    )
    model = ScriptedModel(
        [Completion(text=reply.text, tool_calls=reply.calls), "done"],
    )
    run = asyncio.run(
        complete_with_tools(
            model, ModelRequest(messages=[user("define sea")]), [define], ToolContext()
        )
    )
    assert run.completion.text == "done"
    broken, nameless = run.invocations
    assert broken.error is not None
    assert broken.error.startswith("the arguments are not JSON: ")
    assert nameless.error is not None
    assert nameless.error.startswith("a tool call needs JSON with the tool's name")
    assert "no json here" in nameless.error
    shown = [json.loads(m.content) for m in model.calls[1].messages if m.role == "tool"]
    assert [s["error"] for s in shown] == [broken.error, nameless.error]


def test_raw_arguments_from_an_api_model_are_reported_as_json_errors() -> None:
    with pytest.raises(ToolError, match="the arguments are not JSON"):
        define.validate({RAW_ARGUMENTS: "{not json"})
    with pytest.raises(ToolError, match="must be a JSON object"):
        define.validate({RAW_ARGUMENTS: "[1, 2]"})
    call = ToolCall(id="x", name="define", arguments={"word": "sea"})
    assert define.validate(call.arguments).model_dump() == {"word": "sea"}


@pytest.mark.parametrize("reply", ["[" * 1500, "<tool_call>" + "[" * 1500, "{" * 1500])
def test_json_nested_past_the_recursion_limit_is_an_unreadable_call_not_a_crash(
    reply: str,
) -> None:
    parsed = parse_tool_calls(reply)  # must not raise RecursionError
    assert all(RAW_ARGUMENTS in call.arguments for call in parsed.calls)
