"""Runs that meet failures keep what they made: a batch keeps every other task's result, a
server answering without a reply is retried and then ends the run with its best draft, a
critic's own CancelledError is a failed critique, and an interrupt stops a run in one line.

Model faults are scripted on the local OpenAI-compatible server, over real HTTP; the loop's
own logic uses ScriptedModel.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from redraft import (
    ConfigError,
    Critique,
    FunctionCritic,
    LiteLLMModel,
    LLMCritic,
    LLMEditor,
    ModelError,
    Refiner,
    Result,
    ScriptedModel,
    StopReason,
    Task,
    arefine,
    refine,
)
from redraft.agents.base import AgentContext
from redraft.strategies import BestOfN
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply
from redraft.types import Draft
from tests.test_loop_http import FIRST, REVISED, judge_by_draft, loop_handler, role_of

MODEL = "openai/test-model"
ROOT = Path(__file__).resolve().parents[1]


def http_model(server: OpenAIServer, attempts: int = 2) -> LiteLLMModel:
    return LiteLLMModel(MODEL, api_base=server.base_url, max_attempts=attempts)


def with_editor(reply: Callable[[ChatRequest], ServerReply | str]) -> Callable[..., object]:
    """The usual loop (vague first draft, revised one passes), with the editor's replies given."""
    normal = loop_handler(judge_by_draft)

    def handle(request: ChatRequest) -> ServerReply | str:
        return reply(request) if role_of(request) == "editor" else normal(request)

    return handle


# -- a batch keeps every result --------------------------------------------------------------


def test_a_batch_keeps_every_other_result_when_one_tasks_model_always_fails() -> None:
    normal = loop_handler(judge_by_draft)

    def handler(request: ChatRequest) -> ServerReply | str:
        if role_of(request) == "actor" and "#3" in request.prompt:
            return ServerReply("the model is down", status=500)
        return normal(request)

    with OpenAIServer(handler) as server:
        refiner = Refiner(http_model(server), critics=[LLMCritic()])
        results = refiner.batch([f"Describe tide pools #{i}" for i in range(6)], concurrency=3)
    assert len(results) == 6
    failed = results[3]
    assert failed.final is None and failed.rounds == [] and failed.text == ""
    assert failed.stop_reason is StopReason.ERROR and not failed.passed
    assert failed.error is not None and "500" in failed.error and "\n" not in failed.error
    assert failed.task.instruction == "Describe tide pools #3"
    others = [r for i, r in enumerate(results) if i != 3]
    assert all(r.passed and r.final is not None and r.final.text == REVISED for r in others)
    # A failed result survives storage like any other.
    assert Result.model_validate_json(failed.model_dump_json()) == failed


async def test_abatch_turns_any_task_failure_into_its_result() -> None:
    def reply(messages: object, call: object) -> str:
        text = str(getattr(call, "prompt", ""))
        if "boom" in text:
            raise RuntimeError("actor crashed")
        return "draft"

    refiner = Refiner(ScriptedModel(reply), critics=[FunctionCritic(lambda t: True)])
    results = await refiner.abatch(["a", "boom", "c"], concurrency=1)
    assert [r.passed for r in results] == [True, False, True]
    assert results[1].error == "RuntimeError: actor crashed" and results[1].final is None
    # Asked for, the exception itself takes the failed task's place.
    raw = await refiner.abatch(["a", "boom"], return_exceptions=True)
    assert isinstance(raw[0], Result) and isinstance(raw[1], RuntimeError)


async def test_a_search_whose_every_first_draft_fails_is_a_failed_result_of_that_search() -> None:
    def reply(messages: object, call: object) -> str:
        if "boom" in str(getattr(call, "prompt", "")):
            raise RuntimeError("actor crashed")
        return f"draft {getattr(call, 'index', 0)}"

    refiner = Refiner(
        ScriptedModel(reply), critics=[FunctionCritic(lambda t: True)], strategy=BestOfN(3)
    )
    ok, failed = await refiner.abatch(["a", "boom"])
    assert ok.passed and ok.strategy == "best-of-n"
    assert failed.final is None and failed.strategy == "best-of-n"
    assert failed.error == "every first draft failed: RuntimeError: actor crashed"
    with pytest.raises(ModelError, match="every first draft failed"):
        await refiner.arun("boom")


def test_a_single_run_whose_actor_fails_still_raises() -> None:
    # Nothing was made, so there is nothing to lose: the caller gets the error itself.
    with pytest.raises(ModelError, match="down"):
        refine("t", model=ScriptedModel([ModelError("down")]), critics=[lambda t: True])


# -- HTTP 200 without a reply ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "said"),
    [("no_choices", "empty 'choices' list"), ("no_message", "choice without a message")],
)
def test_an_answer_without_a_reply_keeps_the_best_draft(fault: str, said: str) -> None:
    handler = with_editor(lambda request: ServerReply(REVISED, fault=fault))  # type: ignore[arg-type]
    with OpenAIServer(handler) as server:  # type: ignore[arg-type]
        result = Refiner(http_model(server, attempts=3), critics=[LLMCritic()]).run("Tide pools")
    assert result.stop_reason is StopReason.ERROR
    assert result.final is not None and result.final.text == FIRST  # nothing lost
    assert len(result.rounds) == 1
    assert result.error is not None and "\n" not in result.error
    assert "without a reply" in result.error and said in result.error
    assert "after 3 attempts" in result.error
    # Retried like a server error, every attempt made.
    assert sum(role_of(r) == "editor" for r in server.requests) == 3


def test_one_answer_without_choices_is_retried_and_the_run_goes_on() -> None:
    editor_calls: list[ChatRequest] = []

    def editor(request: ChatRequest) -> ServerReply:
        editor_calls.append(request)
        return ServerReply(REVISED, fault="no_choices" if len(editor_calls) == 1 else None)

    with OpenAIServer(with_editor(editor)) as server:  # type: ignore[arg-type]
        result = Refiner(http_model(server, attempts=3), critics=[LLMCritic()]).run("Tide pools")
    assert result.passed and result.final is not None and result.final.text == REVISED
    assert len(editor_calls) == 2 and result.error is None


def test_an_actor_answer_without_choices_is_a_model_error_not_an_index_error() -> None:
    with (
        OpenAIServer(lambda request: ServerReply("x", fault="no_choices")) as server,
        pytest.raises(ModelError, match="without a reply"),
    ):
        Refiner(http_model(server), critics=[FunctionCritic(lambda t: True)]).run("t")


def test_an_empty_editor_reply_is_not_judged() -> None:
    judged: list[str] = []

    def check(text: str) -> float:
        judged.append(text)
        return 0.5

    result = refine(
        "task",
        model=ScriptedModel(["first"]),
        critics=[FunctionCritic(check)],
        editor=LLMEditor(ScriptedModel(["", "  \n"]), mode="rewrite"),
    )
    assert judged == ["first"]  # neither empty reply became a round
    assert result.stop_reason is StopReason.ERROR and len(result.rounds) == 1
    assert result.final is not None and result.final.text == "first"
    assert result.error is not None and "empty draft" in result.error
    assert result.usage.editor.calls == 2  # what the empty replies cost is still counted


def test_one_empty_editor_reply_is_retried() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["first"]),
        critics=[FunctionCritic(lambda text: text == "second")],
        editor=LLMEditor(ScriptedModel(["", "second"]), mode="rewrite"),
    )
    assert result.passed and [r.draft.text for r in result.rounds] == ["first", "second"]


def test_an_editor_that_raises_keeps_the_best_draft() -> None:
    class BrokenEditor:
        async def edit(self, *args: object, **kwargs: object) -> Draft:
            raise ValueError("no edit today")

    result = refine("t", model=ScriptedModel(["a"]), critics=[lambda t: 0.4], editor=BrokenEditor())
    assert result.stop_reason is StopReason.ERROR
    assert result.error == "ValueError: no edit today"
    assert result.final is not None and result.final.text == "a"


# -- cancellation -----------------------------------------------------------------------------


class CancellingCritic:
    """Raises CancelledError itself, as a critic does whose own timeout or helper task ends."""

    name = "cancels"
    weight = 2.0

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        helper = asyncio.ensure_future(asyncio.sleep(10))
        helper.cancel()
        await helper  # raises CancelledError
        raise AssertionError("unreachable")


def test_a_critic_raising_cancelled_error_is_a_failed_critique() -> None:
    result = refine(
        "t",
        model=ScriptedModel(["a", "b"]),
        critics=[CancellingCritic(), FunctionCritic(lambda t: 1.0, name="fine")],
        max_rounds=1,
    )
    failed = result.rounds[0].critiques[0]
    assert failed.critic == "cancels" and failed.error is not None
    assert failed.error.startswith("CancelledError") and failed.weight == 2.0
    assert result.rounds[0].critiques[1].error is None
    assert result.rounds[0].score == pytest.approx(1 / 3)
    assert not result.passed


async def test_cancelling_the_run_still_cancels_its_critics() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(text: str) -> float:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1.0

    run = asyncio.ensure_future(
        arefine("t", model=ScriptedModel(["a"]), critics=[FunctionCritic(slow)])
    )
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert cancelled.is_set()


# -- interrupts -------------------------------------------------------------------------------

INTERRUPT_SCRIPT = """
    import os, signal, sys
    from redraft import FunctionCritic, LiteLLMModel, LLMCritic, refine
    from redraft.testing.openai_server import OpenAIServer
    from tests.test_loop_http import judge_by_draft, loop_handler, role_of

    how = sys.argv[1]
    normal = loop_handler(judge_by_draft)

    def handler(request):
        if how == "sigint" and role_of(request) == "editor":
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the editor's call is in flight
        return normal(request)

    def check(text):
        if how == "keyboard":
            raise KeyboardInterrupt
        if how == "exit":
            sys.exit(4)
        return 0.5

    with OpenAIServer(handler) as server:
        model = LiteLLMModel("openai/test-model", api_base=server.base_url)
        refine("Tide pools", model=model, critics=[FunctionCritic(check), LLMCritic()])
    print("not interrupted")
"""


def run_interrupted(how: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(INTERRUPT_SCRIPT), how],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


NOISE = ("Exception ignored", "different Context", "never awaited", "was destroyed", "During")


@pytest.mark.parametrize("how", ["keyboard", "sigint"])
def test_an_interrupt_stops_the_run_with_one_clean_traceback(how: str) -> None:
    ran = run_interrupted(how)
    assert ran.returncode != 0 and "not interrupted" not in ran.stdout
    lines = ran.stderr.strip().splitlines()
    assert lines[-1] == "KeyboardInterrupt"
    assert ran.stderr.count("Traceback") == 1
    assert not [line for line in lines if any(noise in line for noise in NOISE)]
    assert len(lines) < 15, ran.stderr  # the caller's frames, not the run's internals


def test_system_exit_inside_a_run_exits_quietly_with_its_code() -> None:
    ran = run_interrupted("exit")
    assert ran.returncode == 4
    assert ran.stderr.strip() == "" and "not interrupted" not in ran.stdout


# -- keys and endpoints -------------------------------------------------------------------------


def test_a_missing_key_is_refused_when_the_refiner_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("REDRAFT_API_BASE", raising=False)
    with pytest.raises(ConfigError) as caught:
        Refiner("openai/gpt-4o-mini", critics=[lambda t: True])
    assert str(caught.value) == "missing API key for openai/gpt-4o-mini: set OPENAI_API_KEY"


def test_a_server_that_says_credentials_are_missing_is_not_retried() -> None:
    def handler(request: ChatRequest) -> ServerReply:
        return ServerReply("Missing credentials. Please pass an `api_key`", status=500)

    with OpenAIServer(handler) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, max_attempts=4)
        with pytest.raises(ConfigError, match="wants an API key"):
            refine("t", model=model, critics=[lambda t: True])
    assert len(server.requests) == 1


def test_api_base_on_refine_reaches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRAFT_API_BASE", raising=False)
    with OpenAIServer(loop_handler(judge_by_draft)) as server:
        result = refine("Tide pools", model=MODEL, api_base=server.base_url + "/")
        assert result.passed and len(server.requests) == 4


async def test_api_base_on_arefine_applies_to_the_role_model_strings() -> None:
    with OpenAIServer(loop_handler(judge_by_draft)) as server:
        result = await arefine(
            "Tide pools",
            model=ScriptedModel([FIRST]),  # an instance keeps its own way of answering
            critic_model=MODEL,
            editor_model=MODEL,
            api_base=server.base_url,
        )
    assert result.passed and result.rounds[0].critiques[0].model == MODEL
    assert [role_of(r) for r in server.requests] == ["critic", "editor", "critic"]


def test_redraft_api_base_applies_to_an_openai_compatible_model_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OpenAIServer(loop_handler(judge_by_draft)) as server:
        monkeypatch.setenv("REDRAFT_API_BASE", server.base_url)
        result = refine("Tide pools", model=MODEL)  # given, not read from REDRAFT_MODEL
        assert result.passed and len(server.requests) == 4
