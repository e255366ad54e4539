"""One `ModelRequest` per model call: what it holds, that wrappers pass all of it on, and that a
model still written for the old `complete(messages, *, ...)` is refused when it is given."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import redraft
from redraft import (
    Completion,
    ConfigError,
    FunctionCritic,
    LLMActor,
    LLMEditor,
    ModelRequest,
    ModelSettings,
    ScriptedModel,
    ToolSpec,
    refine,
)
from redraft.agents.prompts import DEFAULT_PROMPTS
from redraft.agents.structured import ask_structured
from redraft.models.base import user
from redraft.models.limits import call_model, model_limits
from redraft.models.resolve import resolve_model


class Verdict(BaseModel):
    score: int


def test_a_request_needs_only_messages_and_is_frozen() -> None:
    request = ModelRequest(messages=[user("hi")])
    assert request.output_schema is None and request.tools is None and request.settings is None
    with pytest.raises(ValidationError):
        request.settings = ModelSettings(temperature=0.0)  # type: ignore[misc]
    assert redraft.ModelRequest is ModelRequest and "ModelRequest" in redraft.__all__


@pytest.mark.parametrize("per_model", [None, 2])
async def test_call_model_passes_the_whole_request_through(per_model: int | None) -> None:
    inner = ScriptedModel([{"score": 3}])
    request = ModelRequest(
        messages=[user("judge it")],
        output_schema=Verdict,
        tools=[ToolSpec(name="search", description="look it up")],
        settings=ModelSettings(temperature=0.2, max_tokens=9, stop=["END"]),
    )
    with model_limits(per_model):
        completion = await call_model(inner, request)
    [call] = inner.calls
    assert call.request is request
    assert call.tools == request.tools and call.output_schema is Verdict
    assert call.settings == ModelSettings(temperature=0.2, max_tokens=9, stop=["END"])
    assert completion.parsed == Verdict(score=3)


async def test_the_structured_repair_asks_again_with_the_same_schema_and_settings() -> None:
    model = ScriptedModel(["no JSON here", {"score": 4}])
    settings = ModelSettings(temperature=0.0)
    verdict, usage = await ask_structured(
        model, [user("judge it")], Verdict, DEFAULT_PROMPTS, settings
    )
    assert verdict == Verdict(score=4)
    assert usage.calls == 2
    first, repair = (call.request for call in model.calls)
    assert repair.output_schema is Verdict and repair.settings is settings
    assert repair.messages[: len(first.messages)] == first.messages
    assert repair.messages[len(first.messages)].content == "no JSON here"


class RequestModel:
    """A user's own model, written against the protocol."""

    name = "mine"

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        return Completion(text=f"draft {len(self.requests)}", model=self.name)


def test_a_custom_model_taking_a_request_runs_a_loop() -> None:
    model = RequestModel()
    result = refine(
        "Write a haiku",
        model=model,
        critics=[FunctionCritic(lambda text: text == "draft 2")],
        max_rounds=3,
    )
    assert result.passed and result.text == "draft 2"
    assert len(model.requests) == 2
    assert all(isinstance(r, ModelRequest) and r.messages for r in model.requests)


class OldModel:
    name = "old"

    async def complete(
        self,
        messages: list[Any],
        *,
        output_schema: type[BaseModel] | None = None,
        tools: list[ToolSpec] | None = None,
        settings: ModelSettings | None = None,
    ) -> Completion:
        raise AssertionError("a refused model must not be called")


class RenamedOldModel:
    """The old signature with its first parameter named differently."""

    name = "renamed"

    async def complete(self, history: list[Any], *, settings: Any = None) -> Completion:
        raise AssertionError("a refused model must not be called")


def test_a_model_with_the_old_signature_is_refused_naming_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model(OldModel())  # type: ignore[arg-type]
    assert str(caught.value) == (
        "OldModel.complete() takes messages, output_schema, tools, settings: a ChatModel's "
        "method is complete(request: ModelRequest) -> Completion; read request.messages, "
        "request.output_schema, request.tools and request.settings"
    )
    with pytest.raises(ConfigError, match=r"^RenamedOldModel\.complete\(\) takes settings: "):
        resolve_model(RenamedOldModel())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        lambda model: LLMActor(model),
        lambda model: LLMEditor(model),
        lambda model: redraft.LLMCritic(model),
        lambda model: redraft.Refiner(ScriptedModel(), editor_model=model),
    ],
    ids=["actor", "editor", "critic", "editor_model"],
)
def test_every_place_a_model_is_given_checks_it(build: Any) -> None:
    with pytest.raises(ConfigError, match="complete\\(request: ModelRequest\\)"):
        build(OldModel())


class PassThrough:
    """A wrapper that forwards whatever it is given: nothing to read from its signature."""

    name = "pass-through"

    def __init__(self, inner: ScriptedModel) -> None:
        self.inner = inner

    async def complete(self, *args: Any, **kwargs: Any) -> Completion:
        return await self.inner.complete(*args, **kwargs)


def test_a_model_taking_anything_is_accepted() -> None:
    wrapper = PassThrough(ScriptedModel(["ok"]))
    assert resolve_model(wrapper) is wrapper
