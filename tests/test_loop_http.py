"""The whole loop over real HTTP: LiteLLM against a local OpenAI-compatible server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from redraft import LiteLLMModel, LLMCritic, LLMEditor, Refiner, StopReason, Task
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply, role_of

FIRST = "Tide pools are wet places."
REVISED = "Tide pools are rocky hollows the sea refills twice a day, home to anemones."


def verdict(score: int) -> str:
    issues = (
        []
        if score >= 4
        else [
            {
                "quote": FIRST,
                "location": "sentence 1",
                "problem": "says nothing specific about tide pools",
                "suggestion": "say what they are and what lives in them",
                "severity": "major",
            }
        ]
    )
    return json.dumps(
        {"feedback": "Judged.", "summary": f"score {score}", "issues": issues, "score": score}
    )


def loop_handler(critic_reply: Callable[[ChatRequest], str]) -> Callable[[ChatRequest], str]:
    def handle(request: ChatRequest) -> str:
        role = role_of(request)
        if role == "actor":
            return FIRST
        if role == "editor":
            return REVISED
        return critic_reply(request)

    return handle


def judge_by_draft(request: ChatRequest) -> str:
    return verdict(5 if REVISED in request.last_user_content else 2)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(loop_handler(judge_by_draft)) as running:
        yield running


def refiner_for(server: OpenAIServer, **options: object) -> Refiner:
    model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)
    return Refiner(model, **options)  # type: ignore[arg-type]


def test_a_full_loop_runs_through_litellm_and_http(server: OpenAIServer) -> None:
    result = refiner_for(server).run(Task(instruction="Describe tide pools", rubric="Specific."))
    assert result.stop_reason is StopReason.PASSED
    assert [r.draft.text for r in result.rounds] == [FIRST, REVISED]
    assert [r.critiques[0].raw_score for r in result.rounds] == [2, 5]
    issue = result.rounds[0].critiques[0].issues[0]
    assert issue.quote == FIRST and issue.location == "sentence 1"
    roles = [role_of(r) for r in server.requests]
    assert roles == ["actor", "critic", "editor", "critic"]
    # The editor saw the critic's issue and the draft it was revising.
    editor_prompt = server.requests[2].prompt
    assert "says nothing specific about tide pools" in editor_prompt
    assert FIRST in editor_prompt
    usage = result.usage
    assert (usage.actor.calls, usage.critic.calls, usage.editor.calls) == (1, 2, 1)
    assert usage.total.input_tokens > 0 and usage.total.output_tokens > 0
    assert result.rounds[0].draft.model == "openai/test-model"


def test_malformed_critic_json_is_repaired_once() -> None:
    critic_calls: list[ChatRequest] = []

    def first_broken(request: ChatRequest) -> str:
        critic_calls.append(request)
        return "Score: 5, looks great" if len(critic_calls) == 1 else verdict(5)

    with OpenAIServer(loop_handler(first_broken)) as server:
        result = refiner_for(server).run("Describe tide pools")
    assert result.stop_reason is StopReason.PASSED
    assert len(critic_calls) == 2
    repair = critic_calls[1]
    assert repair.messages[-2] == {"role": "assistant", "content": "Score: 5, looks great"}
    assert "could not be used" in repair.messages[-1]["content"]
    assert result.rounds[0].critiques[0].usage.calls == 2


def test_a_critic_that_stays_malformed_is_recorded_as_an_error() -> None:
    def always_broken(request: ChatRequest) -> str:
        return '{"feedback": "fine", "score": 9}'

    with OpenAIServer(loop_handler(always_broken)) as server:
        result = refiner_for(server).run("Describe tide pools")
    critique = result.rounds[0].critiques[0]
    assert critique.error is not None
    assert "no valid RubricVerdict after one repair" in critique.error
    assert "score" in critique.error
    assert result.stop_reason is StopReason.CRITICS_FAILED
    assert sum(role_of(r) == "critic" for r in server.requests) == 2


def test_a_server_error_storm_ends_the_run_with_a_clear_error() -> None:
    def handler(request: ChatRequest) -> ServerReply | str:
        if role_of(request) == "editor":
            return ServerReply("upstream exploded", status=500)
        return loop_handler(judge_by_draft)(request)

    with OpenAIServer(handler) as server:
        model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=3)
        result = Refiner(model, critics=[LLMCritic()], editor=LLMEditor()).run("Tide pools")
    assert result.stop_reason is StopReason.ERROR
    assert result.error is not None and "500" in result.error and "\n" not in result.error
    assert result.final.text == FIRST  # the best draft so far is kept
    assert sum(role_of(r) == "editor" for r in server.requests) == 3


async def test_many_loops_share_one_event_loop_over_http() -> None:
    with OpenAIServer(loop_handler(judge_by_draft), latency_s=0.05) as server:
        refiner = refiner_for(server)
        results = await refiner.abatch([f"Describe tide pools #{i}" for i in range(20)])
    assert all(not isinstance(r, BaseException) and r.passed for r in results)
    assert len(server.requests) == 80
    assert server.max_in_flight > 1
