"""LiteLLMModel over real HTTP, against the local OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from pydantic import BaseModel

from redraft.errors import ConfigError, ModelError
from redraft.models.base import ModelRequest, ModelSettings, ToolSpec, system, user
from redraft.models.litellm import (
    PLACEHOLDER_API_KEY,
    LiteLLMModel,
    load_litellm,
    retry_after_s,
)
from redraft.testing import ChatRequest, OpenAIServer, ServerReply

MODEL = "openai/test-model"
HI = ModelRequest(messages=[user("hi")])


class Verdict(BaseModel):
    score: int
    reason: str


JUDGE_IT = ModelRequest(messages=[user("judge it")], output_schema=Verdict)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def gaps(server: OpenAIServer) -> list[float]:
    times = [request.received_at for request in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_completion_text_usage_and_request() -> None:
    reply = ServerReply("hello there", usage={"prompt_tokens": 11, "completion_tokens": 3})
    with OpenAIServer.scripted([reply]) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, temperature=0.3, max_tokens=50)
        completion = await model.complete(
            ModelRequest(
                messages=[system("be brief"), user("say hello")],
                settings=ModelSettings(stop=["END"]),
            )
        )
        await model.aclose()
    assert completion.text == "hello there"
    assert completion.usage.input_tokens == 11
    assert completion.usage.output_tokens == 3
    assert completion.usage.calls == 1
    assert completion.usage.cost_usd == 0.0  # a model without a price
    assert completion.usage.latency_s > 0
    assert completion.finish_reason == "stop"
    assert completion.model.endswith("test-model")
    assert model.name == MODEL
    [request] = server.requests
    assert request.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "say hello"},
    ]
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 50
    assert request.body["stop"] == ["END"]
    assert "response_format" not in request.body
    # no key configured for a local server: a placeholder satisfies the SDK
    assert request.headers["Authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


async def test_per_call_settings_override_model_defaults(server: OpenAIServer) -> None:
    model = LiteLLMModel(MODEL, api_base=server.base_url, api_key="sk-local", temperature=0.9)
    settings = ModelSettings(temperature=0.0, max_tokens=7)
    await model.complete(ModelRequest(messages=[user("hi")], settings=settings))
    body = server.requests[0].body
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 7
    assert server.requests[0].headers["Authorization"] == "Bearer sk-local"


async def test_tool_calls_are_parsed() -> None:
    reply = ServerReply(
        content=None,
        tool_calls=[
            {"name": "search", "arguments": {"query": "redraft", "limit": 3}},
            {"name": "broken", "arguments": "{not json"},
        ],
    )
    tool = ToolSpec(
        name="search",
        description="Search the web.",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}},
    )
    with OpenAIServer.scripted([reply]) as server:
        completion = await LiteLLMModel(MODEL, api_base=server.base_url).complete(
            ModelRequest(messages=[user("find it")], tools=[tool])
        )
    assert server.requests[0].tools == [tool.to_openai()]
    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    first, second = completion.tool_calls
    assert first.name == "search"
    assert first.arguments == {"query": "redraft", "limit": 3}
    assert first.id
    assert second.arguments == {"_raw": "{not json"}


async def test_rate_limit_retry_after_is_honoured() -> None:
    replies = [ServerReply("slow down", status=429, headers={"Retry-After": "1"}), "done"]
    with OpenAIServer.scripted(replies) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, max_attempts=3)
        completion = await model.complete(HI)
    assert completion.text == "done"
    assert len(server.requests) == 2
    assert gaps(server)[0] >= 0.95
    assert completion.usage.latency_s >= 0.95  # the wait counts as the call's time


async def test_retry_after_ms_replaces_backoff() -> None:
    replies = [ServerReply("busy", status=503, headers={"retry-after-ms": "150"}), "done"]
    with OpenAIServer.scripted(replies) as server:
        completion = await LiteLLMModel(MODEL, api_base=server.base_url).complete(HI)
    assert completion.text == "done"
    [gap] = gaps(server)
    # backoff alone would wait at least 0.5 s before the first retry
    assert 0.14 <= gap < 0.45


async def test_server_error_storm_gives_up_after_max_attempts() -> None:
    def always_fail(request: ChatRequest) -> ServerReply:
        return ServerReply("boom", status=500, headers={"retry-after-ms": "20"})

    with OpenAIServer(always_fail) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, max_attempts=3)
        with pytest.raises(ModelError) as caught:
            await model.complete(HI)
    message = str(caught.value)
    assert len(server.requests) == 3
    assert "\n" not in message
    assert message.startswith(f"{MODEL}: server error 500 after 3 attempts in ")
    assert message.endswith(": boom")


async def test_retrying_stops_at_max_retry_s() -> None:
    def always_busy(request: ChatRequest) -> ServerReply:
        return ServerReply("busy", status=503, headers={"retry-after-ms": "200"})

    with OpenAIServer(always_busy) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, max_attempts=50, max_retry_s=0.5)
        started = time.monotonic()
        with pytest.raises(ModelError, match="server error 503"):
            await model.complete(HI)
    assert 2 <= len(server.requests) <= 4
    assert time.monotonic() - started < 2.0


async def test_timeouts_are_retried_then_reported() -> None:
    with OpenAIServer(lambda request: ServerReply("late", delay_s=2.0)) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url, timeout_s=0.3, max_attempts=2)
        with pytest.raises(ModelError) as caught:
            await model.complete(HI)
    assert len(server.requests) == 2
    assert str(caught.value) == f"{MODEL}: timed out after 0.3s (2 attempts)"


async def test_unauthorised_is_a_config_error_and_not_retried() -> None:
    with OpenAIServer(lambda request: ServerReply("bad key", status=401)) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url)
        with pytest.raises(ConfigError) as caught:
            await model.complete(HI)
        assert len(server.requests) == 1
        assert str(caught.value) == (
            f"{MODEL}: the server at {server.base_url} wants an API key: "
            "set OPENAI_API_KEY (in Python, api_key=... works too)"
        )
        keyed = LiteLLMModel(MODEL, api_base=server.base_url, api_key="sk-wrong")
        with pytest.raises(ConfigError, match="the API key was rejected: bad key"):
            await keyed.complete(HI)
        assert len(server.requests) == 2


async def test_missing_provider_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = LiteLLMModel("openai/gpt-4o-mini", max_attempts=3)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        await model.complete(HI)
    assert str(caught.value) == "missing API key for openai/gpt-4o-mini: set OPENAI_API_KEY"
    assert time.monotonic() - started < 2.0  # not retried


async def test_bad_request_is_not_retried() -> None:
    with OpenAIServer(lambda request: ServerReply("no such parameter", status=400)) as server:
        model = LiteLLMModel(MODEL, api_base=server.base_url)
        with pytest.raises(ModelError) as caught:
            await model.complete(HI)
    assert len(server.requests) == 1
    assert str(caught.value) == f"{MODEL}: request rejected (400): no such parameter"


async def test_connection_refused_names_the_api_base() -> None:
    api_base = f"http://127.0.0.1:{free_port()}/v1"
    model = LiteLLMModel(MODEL, api_base=api_base, max_attempts=2)
    with pytest.raises(ModelError) as caught:
        await model.complete(HI)
    message = str(caught.value)
    assert message.startswith(f"{MODEL}: cannot connect to {api_base}: connection refused (")
    assert "after 2 attempts" in message
    assert "\n" not in message


async def test_unknown_model_string_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        await LiteLLMModel("no-such-model").complete(HI)


async def test_structured_output_from_a_json_fence(server: OpenAIServer) -> None:
    server.handler = lambda request: (
        'Here you go:\n```json\n{"score": 4, "reason": "clear"}\n```\nAnything else?'
    )
    completion = await LiteLLMModel(MODEL, api_base=server.base_url).complete(JUDGE_IT)
    assert completion.parsed == Verdict(score=4, reason="clear")
    assert completion.parse_error is None
    # LiteLLM does not know this model supports schemas, so none is requested
    assert "response_format" not in server.requests[0].body


async def test_malformed_json_sets_parse_error(server: OpenAIServer) -> None:
    server.handler = lambda request: '{"score": 4, "reason": '
    completion = await LiteLLMModel(MODEL, api_base=server.base_url).complete(JUDGE_IT)
    assert completion.parsed is None
    assert completion.parse_error
    assert completion.text == '{"score": 4, "reason": '


async def test_schema_requested_from_models_that_support_it(server: OpenAIServer) -> None:
    server.handler = lambda request: '{"score": 5, "reason": "fine"}'
    model = LiteLLMModel("openai/gpt-4o-mini", api_base=server.base_url)
    completion = await model.complete(JUDGE_IT)
    response_format = server.requests[0].response_format
    assert response_format is not None
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == Verdict.model_json_schema()
    assert completion.parsed == Verdict(score=5, reason="fine")
    assert completion.usage.cost_usd > 0  # a priced model


def usage_reply(request: ChatRequest) -> ServerReply:
    return ServerReply("ok", usage={"prompt_tokens": 1000, "completion_tokens": 500})


async def test_priced_model_cost_comes_from_litellm_price_table() -> None:
    prices = load_litellm().model_cost["gpt-4o-mini"]
    expected = 1000 * prices["input_cost_per_token"] + 500 * prices["output_cost_per_token"]
    with OpenAIServer(usage_reply) as server:
        model = LiteLLMModel("openai/gpt-4o-mini", api_base=server.base_url)
        for _ in range(3):  # every call priced, not only the first
            completion = await model.complete(HI)
            assert completion.usage.cost_usd == pytest.approx(expected)
            assert completion.usage.cost_usd > 0


async def test_litellm_stops_pricing_a_model_it_has_no_price_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    litellm = load_litellm()
    name = "openai/redraft-unpriced"
    pricing = litellm.response_cost_calculator
    priced: list[str] = []

    def counting(**kwargs: object) -> object:
        if str(kwargs.get("model")).endswith("redraft-unpriced"):
            priced.append(str(kwargs.get("model")))
        return pricing(**kwargs)

    monkeypatch.setattr(litellm, "response_cost_calculator", counting)
    with OpenAIServer(usage_reply) as server:
        model = LiteLLMModel(name, api_base=server.base_url)
        costs = [(await model.complete(HI)).usage.cost_usd for _ in range(4)]
        await asyncio.sleep(0.1)  # LiteLLM's background success logging prices again
    assert costs == [0.0] * 4
    # LiteLLM tried (and failed) to price the first response, twice at most; after that redraft
    # knows the model has no price and LiteLLM is spared the attempts: not 2 per call.
    assert 1 <= len(priced) <= 2


async def test_prices_registered_after_a_failed_pricing_are_used() -> None:
    litellm = load_litellm()
    name = "openai/redraft-priced-later"
    with OpenAIServer(usage_reply) as server:
        model = LiteLLMModel(name, api_base=server.base_url)
        assert (await model.complete(HI)).usage.cost_usd == 0.0
        price = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
        litellm.register_model({name: {**price, "litellm_provider": "openai", "mode": "chat"}})
        try:
            completion = await model.complete(HI)
        finally:
            litellm.model_cost.pop(name, None)
    assert completion.usage.cost_usd == pytest.approx(1000 * 1e-6 + 500 * 2e-6)


async def test_max_concurrency_caps_calls_in_flight() -> None:
    with OpenAIServer(latency_s=0.1) as server:
        capped = LiteLLMModel(MODEL, api_base=server.base_url, max_concurrency=3)
        results = await asyncio.gather(
            *(capped.complete(ModelRequest(messages=[user(f"q{i}")])) for i in range(10))
        )
        assert sorted(r.text for r in results) == sorted(f"q{i}" for i in range(10))
        assert server.max_in_flight == 3
        server.reset()
        free = LiteLLMModel(MODEL, api_base=server.base_url)
        await asyncio.gather(
            *(free.complete(ModelRequest(messages=[user(f"q{i}")])) for i in range(10))
        )
        assert server.max_in_flight > 3  # the cap above was the model's doing


def test_one_instance_across_successive_event_loops(server: OpenAIServer) -> None:
    model = LiteLLMModel(MODEL, api_base=server.base_url, max_concurrency=2)

    async def ask(text: str) -> str:
        request = ModelRequest(messages=[user(text)])
        first, _ = await asyncio.gather(model.complete(request), model.complete(request))
        return first.text

    assert asyncio.run(ask("first")) == "first"
    assert asyncio.run(ask("second")) == "second"

    async def ask_and_close(text: str) -> str:
        try:
            return await ask(text)
        finally:
            await model.aclose()

    def cached_clients() -> int:
        cache = load_litellm().in_memory_llm_clients_cache.cache_dict
        return sum(f"api_base={server.base_url}" in key for key in cache)

    assert cached_clients() == 2  # one per loop so far, left open by LiteLLM
    assert asyncio.run(ask_and_close("third")) == "third"
    assert asyncio.run(ask_and_close("fourth")) == "fourth"
    assert cached_clients() == 2  # aclose dropped the clients of the loops it ran on
    assert len(server.requests) == 8


def test_retry_after_header_forms() -> None:
    class Failure(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            super().__init__("failed")
            self.litellm_response_headers = headers

    assert retry_after_s(Failure({"Retry-After": "2"})) == 2.0
    assert retry_after_s(Failure({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    in_three = formatdate(time.time() + 3, usegmt=True)
    assert 1.5 < (retry_after_s(Failure({"Retry-After": in_three})) or 0) <= 3.0
    assert retry_after_s(Failure({"Retry-After": "soon"})) is None
    assert retry_after_s(Exception("no headers")) is None
