"""PythonTool: the model's Python runs in a real isolating sandbox, notebook-style, with state
kept per tool loop, through `acall` and through the tool loop over a real OpenAI-style server.

The backends are bubblewrap and Docker, skipped where missing except in CI (see
`sandbox_backends.py`). The subprocess backend does not isolate, so nothing here runs on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redraft import LLMCritic, Refiner
from redraft.errors import ConfigError
from redraft.models.base import ModelRequest, user
from redraft.models.litellm import LiteLLMModel
from redraft.sandboxes import Limits, Sandbox
from redraft.testing import OpenAIServer, ServerReply
from redraft.testing.openai_server import ChatRequest, role_of
from redraft.tools import (
    PythonResult,
    PythonTool,
    ToolContext,
    ToolRun,
    complete_with_tools,
    tool,
)
from tests.sandbox_backends import build_sandbox

TIMEOUT_S = 3.0
LIMITS = Limits(timeout_s=TIMEOUT_S, memory_mb=256, processes=32)
HERE = Path(__file__).resolve()


@pytest.fixture(scope="module", params=("bwrap", "docker"))
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    box = build_sandbox(request.param, limits=LIMITS, pool_size=2)
    yield box
    box.close()


@pytest.fixture(scope="module")
def bwrap() -> Iterator[Sandbox]:
    box = build_sandbox("bwrap", limits=LIMITS, pool_size=2)
    yield box
    box.close()


def conversation(name: str) -> ToolContext:
    return ToolContext(conversation=name)


async def run(tool: PythonTool, code: str, ctx: ToolContext | None = None) -> PythonResult:
    result = await tool.acall({"code": code}, ctx)
    assert isinstance(result, PythonResult)
    return result


# -- through acall, on each isolating backend ----------------------------------------------


async def test_state_is_kept_across_the_calls_of_a_conversation(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    ctx = conversation("one")
    first = await run(tool, "x = 41\ndef twice(n):\n    return 2 * n", ctx)
    assert first.status == "ok" and first.kept and first.value is None
    second = await run(tool, "x + 1", ctx)
    assert second.status == "ok" and second.value == "42"
    assert (await run(tool, "twice(x)", ctx)).value == "82"


async def test_conversations_do_not_share_state(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    await run(tool, "secret_of_a = 1", conversation("a"))
    other = await run(tool, "secret_of_a", conversation("b"))
    assert other.status == "error"
    assert other.error is not None and "NameError" in other.error
    # Outside a loop (no conversation) a call keeps nothing.
    await run(tool, "loose = 1")
    assert "NameError" in ((await run(tool, "loose")).error or "")


async def test_the_last_expression_is_shown_like_a_notebook_cell(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    assert (await run(tool, "y = 6\ny * 7")).value == "42"
    assert (await run(tool, "'a' + 'b'")).value == "'ab'"
    assert (await run(tool, "[1, 2][::-1]")).value == "[2, 1]"
    # None is not shown, and an assignment is not an expression.
    assert (await run(tool, "print('hi')")).value is None
    assert (await run(tool, "z = 3")).value is None


async def test_stdout_and_stderr_come_back_and_earlier_output_is_not_repeated(
    sandbox: Sandbox,
) -> None:
    tool = PythonTool(sandbox)
    ctx = conversation("output")
    code = "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)"
    first = await run(tool, code, ctx)
    assert first.stdout == "to stdout\n" and first.stderr == "to stderr\n"
    second = await run(tool, "print('again')", ctx)
    # The first cell ran again to restore its state, silently.
    assert second.stdout == "again\n" and second.stderr == ""
    text, cut = tool.render(second)
    assert not cut and "again" in text and "to stdout" not in text


async def test_an_exception_comes_back_as_the_cells_traceback(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    ctx = conversation("errors")
    failed = await run(tool, "kept_before = 5\ndef f():\n    return 1 / 0\nf()", ctx)
    assert failed.status == "error" and not failed.kept
    error = failed.error or ""
    assert error.startswith("Traceback (most recent call last):")
    assert 'File "<cell 1>", line 4, in <module>' in error
    assert 'File "<cell 1>", line 3, in f' in error and "return 1 / 0" in error
    assert error.rstrip().endswith("ZeroDivisionError: division by zero")
    # Nothing of the harness that ran it.
    assert "main.py" not in error and "_python_cell" not in error and "exec(" not in error
    # A cell that failed keeps nothing, not even what it defined before the failing line.
    assert "NameError" in ((await run(tool, "kept_before", ctx)).error or "")
    syntax = await run(tool, "x = (", ctx)
    assert syntax.status == "error" and "SyntaxError" in (syntax.error or "")
    assert "<cell 3>" in (syntax.error or "")
    exited = await run(tool, "raise SystemExit(3)", ctx)
    assert exited.status == "exited" and exited.exit_code == 3


async def test_a_thread_the_cell_leaves_running_does_not_hold_the_call(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox)
    started = time.monotonic()
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n1"
    left = await run(tool, code)
    assert left.status == "ok" and left.value == "1"
    assert time.monotonic() - started < TIMEOUT_S


async def test_an_endless_loop_times_out_and_the_state_survives(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox, timeout_s=2.0)
    ctx = conversation("loop")
    await run(tool, "n = 7", ctx)
    started = time.monotonic()
    stuck = await run(tool, "print('before the loop')\nwhile True:\n    pass", ctx)
    assert time.monotonic() - started < 2.0 + 3.0
    assert stuck.status == "timeout" and not stuck.kept
    assert stuck.stdout == "before the loop\n"  # what it printed before it hung
    text, _ = tool.render(stuck)
    assert "timed out after 2 s" in text
    assert (await run(tool, "n * 6", ctx)).value == "42"


async def test_the_code_cannot_see_the_hosts_files_or_environment(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    monkeypatch.setenv("REDRAFT_TEST_SECRET", "hunter2")
    tool = PythonTool(sandbox)
    code = f"""
import os
found = []
for path in ({str(secret)!r}, {str(HERE)!r}, {os.getcwd()!r}):
    try:
        with open(path) as handle:
            found.append(handle.read())
    except OSError as exc:
        found.append(type(exc).__name__)
found, os.environ.get("REDRAFT_TEST_SECRET"), "hunter2" in repr(dict(os.environ))
"""
    result = await run(tool, code)
    assert result.status == "ok", result
    assert "hunter2" not in (result.value or "") + result.stdout + result.stderr
    assert result.value is not None and result.value.endswith(", None, False)")
    assert result.value.count("Error") == 3  # each read refused (not found, or denied)


async def test_output_is_capped_for_the_model(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox, max_output_chars=600)
    result = await run(tool, "print('x' * 100_000)\n1 / 0")
    text, cut = tool.render(result)
    assert cut and len(text) <= 600
    assert "more characters cut" in text
    # The long stdout does not push the traceback out.
    assert "ZeroDivisionError: division by zero" in text
    long_value = await run(tool, "'y' * 50_000")
    assert len(long_value.value or "") < 1_000  # capped in the sandbox already
    text, cut = tool.render(long_value)
    assert cut and len(text) <= 600


async def test_the_sandboxs_memory_and_process_limits_apply(sandbox: Sandbox) -> None:
    tool = PythonTool(sandbox, memory_mb=128)
    big = await run(tool, "block = bytearray(1 << 30)\nlen(block)")
    assert big.status in ("memory", "error") and not big.kept
    assert big.status == "memory" or "MemoryError" in (big.error or "")
    forks = await run(
        tool,
        "import os, time\nmade = 0\ntry:\n    for _ in range(200):\n"
        "        if os.fork() == 0:\n            time.sleep(0.5)\n            os._exit(0)\n"
        "        made += 1\nexcept OSError:\n    pass\nmade",
    )
    assert forks.status == "ok" and int(forks.value or "0") < LIMITS.processes


# -- replay ----------------------------------------------------------------------------------


async def test_replay_gives_random_the_same_values(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap)
    ctx = conversation("random")
    drawn = await run(tool, "import random\nr = random.random()\nr", ctx)
    assert (await run(tool, "r", ctx)).value == drawn.value
    assert (await run(tool, "random.random() != r", ctx)).value == "True"


async def test_files_an_earlier_cell_wrote_are_there_again(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap)
    ctx = conversation("files")
    await run(tool, "with open('notes.txt', 'w') as f:\n    f.write('kept')", ctx)
    assert (await run(tool, "open('notes.txt').read()", ctx)).value == "'kept'"


async def test_an_earlier_cell_that_fails_on_replay_drops_itself_and_later_cells(
    bwrap: Sandbox,
) -> None:
    tool = PythonTool(bwrap)
    ctx = conversation("flaky")
    await run(tool, "a = 1", ctx)
    until = time.time() + 1.5
    assert (await run(tool, f"import time\nassert time.time() < {until}\nb = 2", ctx)).kept
    await run(tool, "c = 3", ctx)
    await asyncio.sleep(max(until - time.time(), 0) + 0.1)
    failed = await run(tool, "print('not run')\na + b + c", ctx)
    assert failed.status == "error" and failed.stdout == ""
    assert "AssertionError" in (failed.error or "") and "<cell 2>" in (failed.error or "")
    assert "cell 2" in (failed.note or "") and "define again" in (failed.note or "")
    assert (await run(tool, "a", ctx)).value == "1"
    assert "NameError" in ((await run(tool, "c", ctx)).error or "")


async def test_a_replay_that_cannot_finish_in_time_resets_the_state(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap, timeout_s=1.5)
    ctx = conversation("slow")
    until = time.time() + 1.0
    await run(tool, f"import time\nslow = 1\ntime.sleep(0 if time.time() < {until} else 30)", ctx)
    await asyncio.sleep(max(until - time.time(), 0) + 0.1)
    reset = await run(tool, "slow", ctx)
    assert reset.status == "timeout" and "reset" in (reset.note or "")
    assert "NameError" in ((await run(tool, "slow", ctx)).error or "")
    assert (await run(tool, "fresh = 1\nfresh", ctx)).value == "1"


# -- its sandbox, and its configuration ------------------------------------------------------


async def test_a_named_sandbox_is_the_tools_to_close_a_given_one_is_not(bwrap: Sandbox) -> None:
    named = PythonTool("bwrap", limits=LIMITS)
    assert (await run(named, "1 + 1")).value == "2"
    first = named.sandbox
    await named.aclose()
    assert getattr(first, "_pool", None) is None  # its workers are stopped
    assert (await run(named, "2 + 2")).value == "4"  # usable again, on a new one
    assert named.sandbox is not first
    named.close()
    given = PythonTool(bwrap)
    await run(given, "1")
    given.close()
    assert bwrap.run("print('still running')").stdout == "still running\n"


async def test_calls_abandoned_by_the_tool_loop_stop_their_run(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap, timeout_s=30.0)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(run(tool, "while True:\n    pass"), 0.5)
    # The run was stopped, not left to its 30 s: the pool's workers are free again.
    started = time.monotonic()
    results = await asyncio.gather(*(run(tool, "1") for _ in range(2)))
    assert [r.value for r in results] == ["1", "1"]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sandbox": "nope"}, "sandbox must be one of"),
        ({"sandbox": 42}, "sandbox must be one of"),
        ({"timeout_s": 0}, "timeout_s must be a number above 0"),
        ({"memory_mb": 8}, "memory_mb must be a whole number"),
        ({"limits": {"timeout_s": 3}}, "limits must be a redraft.sandboxes.Limits"),
        ({"name": "run python"}, "is not one model providers accept"),
        ({"max_output_chars": 10}, "max_output_chars must be at least 100"),
    ],
)
def test_bad_configuration_is_refused_when_the_tool_is_made(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        PythonTool(**kwargs)


def test_limits_with_a_sandbox_of_ones_own_is_refused(bwrap: Sandbox) -> None:
    with pytest.raises(ConfigError, match="a Sandbox passed in keeps its own"):
        PythonTool(bwrap, limits=LIMITS)


def test_the_model_is_told_what_the_tool_does_and_its_limits() -> None:
    tool = PythonTool(timeout_s=4, memory_mb=300)  # "auto": nothing starts until a call
    assert tool.spec.name == "python"
    assert "4 s and 300 MB" in tool.spec.description
    assert tool.spec.parameters["required"] == ["code"]
    assert tool.spec.parameters["properties"]["code"]["type"] == "string"
    assert "notebook" in tool.spec.parameters["properties"]["code"]["description"]


# -- through the tool loop, with a real OpenAI-compatible server -----------------------------


def call(*codes: str) -> ServerReply:
    return ServerReply(
        content=None, tool_calls=[{"name": "python", "arguments": {"code": c}} for c in codes]
    )


def by_loop(scripts: dict[str, list[ServerReply]]) -> Any:
    """A handler that answers each loop (told apart by its prompt) from its own script."""

    def handle(request: ChatRequest) -> ServerReply:
        script = scripts[request.last_user_content.split(":")[0]]
        turns = sum(1 for m in request.messages if m.get("role") == "assistant")
        return script[turns]

    return handle


async def loop(server: OpenAIServer, tool: PythonTool, prompt: str) -> ToolRun:
    model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=1)
    request = ModelRequest(messages=[user(prompt)])
    return await complete_with_tools(model, request, [tool], ToolContext(role="critic"))


def shown(invocation_result: str | None) -> str:
    assert invocation_result is not None
    return invocation_result


async def test_the_loop_keeps_state_across_its_calls_and_not_across_loops(
    bwrap: Sandbox,
) -> None:
    tool = PythonTool(bwrap)
    scripts = {
        "first": [call("x = 41"), call("x + 1"), ServerReply("the answer is 42")],
        "second": [call("x"), ServerReply("no x here")],
    }
    with OpenAIServer(by_loop(scripts)) as server:
        first = await loop(server, tool, "first: compute")
        second = await loop(server, tool, "second: compute")
        assert first.completion.text == "the answer is 42"
        assert [i.ok for i in first.invocations] == [True, True]
        assert "value:\n42" in shown(first.invocations[1].result)
        assert "NameError: name 'x' is not defined" in shown(second.invocations[0].result)
        # The model was shown the result as data in a tool message.
        tool_message = server.requests[2].messages[-1]
        assert tool_message["role"] == "tool" and "value:\\n42" in tool_message["content"]


async def test_two_loops_at_once_keep_to_their_own_variables(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap)
    scripts = {
        "a": [call("v = 'a'"), call("v"), ServerReply("done a")],
        "b": [call("v = 'b'"), call("v"), ServerReply("done b")],
    }
    with OpenAIServer(by_loop(scripts)) as server:
        runs = await asyncio.gather(loop(server, tool, "a: go"), loop(server, tool, "b: go"))
    assert "value:\n'a'" in shown(runs[0].invocations[1].result)
    assert "value:\n'b'" in shown(runs[1].invocations[1].result)


async def test_calls_of_one_turn_run_in_order_on_one_state(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap)
    scripts = {"turn": [call("k = 20", "k = k + 1", "k * 2"), ServerReply("42")]}
    with OpenAIServer(by_loop(scripts)) as server:
        done = await loop(server, tool, "turn: go")
    assert "value:\n42" in shown(done.invocations[2].result)


async def test_a_failing_or_endless_cell_is_a_result_and_the_loop_goes_on(
    bwrap: Sandbox,
) -> None:
    tool = PythonTool(bwrap, timeout_s=1.5)
    scripts = {
        "go": [
            call("import json\njson.loads('{not json')"),
            call("while True:\n    pass"),
            call("print('still here')"),
            ServerReply("finished"),
        ]
    }
    with OpenAIServer(by_loop(scripts)) as server:
        done = await loop(server, tool, "go: try")
    assert done.completion.text == "finished"
    raised, endless, after = done.invocations
    assert raised.ok and "json.decoder.JSONDecodeError" in shown(raised.result)
    assert 'File "<cell 1>", line 2' in shown(raised.result)
    assert endless.ok and "timed out after 1.5 s" in shown(endless.result)
    assert after.ok and "stdout:\nstill here" in shown(after.result)


async def test_the_loop_shows_the_model_capped_output(bwrap: Sandbox) -> None:
    tool = PythonTool(bwrap, max_output_chars=300)
    scripts = {"big": [call("for i in range(10_000):\n    print(i)"), ServerReply("ok")]}
    with OpenAIServer(by_loop(scripts)) as server:
        done = await loop(server, tool, "big: print")
        sent = json.loads(server.requests[1].messages[-1]["content"])
    invocation = done.invocations[0]
    assert invocation.truncated and len(shown(invocation.result)) <= 300
    assert sent["output"] == invocation.result


async def test_each_run_of_the_tool_loop_is_a_conversation_of_its_own() -> None:
    seen: list[ToolContext] = []

    @tool
    def record(ctx: ToolContext) -> str:
        """Record the context."""
        seen.append(ctx)
        return "ok"

    calls = ServerReply(content=None, tool_calls=[{"name": "record", "arguments": {}}])
    with OpenAIServer(lambda request: calls if len(request.messages) == 1 else "done") as s:
        model = LiteLLMModel("openai/test-model", api_base=s.base_url, max_attempts=1)
        request = ModelRequest(messages=[user("go")])
        for _ in range(2):
            await complete_with_tools(model, request, [record], ToolContext(role="critic"))
    first, second = seen
    assert first.conversation and second.conversation and first.conversation != second.conversation
    assert first.role == second.role == "critic"


def test_a_critic_checks_a_claim_by_running_code_and_the_refiner_closes_the_tool() -> None:
    """CRITIC's way: the critic runs code to check the draft's claim, then judges by what
    the code printed; the Refiner owns the sandbox the tool opened and closes it."""
    python = PythonTool("bwrap", limits=LIMITS)
    exact = str(2**100)

    def handle(request: ChatRequest) -> ServerReply | str:
        role = role_of(request)
        if role == "actor":
            return "2**100 is 1267650600228229401496703205000"  # the last digits are wrong
        if role == "editor":
            return f"2**100 is {exact}"
        turns = sum(1 for m in request.messages if m.get("role") == "assistant")
        if turns == 0:
            return call("2**100")
        checked = json.loads(request.messages[-1]["content"])["output"]
        right = exact in checked and exact in request.prompt.split("</answer>")[0]
        problem = [] if right else [{"problem": f"2**100 is {exact}", "suggestion": "fix it"}]
        verdict = {"feedback": f"python says {exact}", "summary": "checked", "issues": problem}
        return json.dumps({**verdict, "score": 5 if right else 1})

    with OpenAIServer(handle) as server:
        model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=1)
        refiner = Refiner(model, critics=[LLMCritic(tools=[python])])
        assert python in refiner.resources()
        with refiner:
            result = refiner.run("What is 2**100?")
    assert result.passed and result.text == f"2**100 is {exact}"
    calls = [r.critiques[0].tool_calls for r in result.rounds]
    assert [[c.arguments for c in round_calls] for round_calls in calls] == [
        [{"code": "2**100"}],
        [{"code": "2**100"}],
    ]
    assert all(exact in (c[0].result or "") for c in calls)
    assert isinstance(python._sandbox, str)  # closed: back to the name it opens next time
