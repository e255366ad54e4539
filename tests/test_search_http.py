"""Every search strategy end to end over real HTTP: LiteLLM against the local
OpenAI-compatible server, which answers each role from what the request shows it."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from redraft import LiteLLMModel, Refiner, Result, StopReason
from redraft.strategies import BestOfN, Reflexion, Strategy, TreeSearch
from redraft.testing.openai_server import ChatRequest, OpenAIServer, role_of
from redraft.types import Origin

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")
REFLECTION = "Reflection: the draft named nothing; start from what lives in the pool."


def variant_of(request: ChatRequest) -> int:
    """Which of several drafts or revisions asked for at once (from 1)."""
    found = _VARIANT.search(request.last_user_content)
    return int(found.group(1)) if found else 1


def shown(request: ChatRequest) -> str:
    found = _ANSWER.search(request.last_user_content)
    assert found, "no <answer> in the request"
    return found.group(1)


def verdict(score: int) -> str:
    issues = [] if score >= 4 else [{"problem": "too vague", "suggestion": "be specific"}]
    return json.dumps(
        {"feedback": "Judged.", "summary": f"score {score}", "issues": issues, "score": score}
    )


def handler(scores: dict[str, int]) -> Callable[[ChatRequest], str]:
    """Actor: "Draft k" (k of a fan-out), or "Fresh draft" after a reflection. Editor: the
    draft shown plus " (revised k)". Critic: `scores` of the draft shown, else 2 (of 5)."""

    def handle(request: ChatRequest) -> str:
        role = role_of(request)
        if role == "actor":
            if REFLECTION in request.last_user_content:
                return "Fresh draft"
            return f"Draft {variant_of(request)}"
        if role == "editor":
            return f"{shown(request)} (revised {variant_of(request)})"
        if role == "reflector":
            return REFLECTION
        return verdict(scores.get(shown(request), 2))

    return handle


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(latency_s=0.1) as running:
        yield running


def search(
    server: OpenAIServer, strategy: Strategy, scores: dict[str, int], **options: object
) -> Result:
    server.handler = handler(scores)
    model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)
    refiner = Refiner(model, strategy=strategy, patience=None, **options)  # type: ignore[arg-type]
    return refiner.run("Describe tide pools")


def roles(server: OpenAIServer) -> Counter[str]:
    return Counter(role_of(r) for r in server.requests)


def tree(result: Result) -> list[tuple[str, str | None, str]]:
    return [(c.id, c.parent_id, c.draft.text) for c in result.candidates]


def test_best_of_n_over_http(server: OpenAIServer) -> None:
    result = search(server, BestOfN(3), {"Draft 2": 3, "Draft 2 (revised 1)": 5})
    assert result.stop_reason is StopReason.PASSED and result.strategy == "best-of-n"
    assert tree(result) == [
        ("c0", None, "Draft 1"),
        ("c1", None, "Draft 2"),
        ("c2", None, "Draft 3"),
        ("c3", "c1", "Draft 2 (revised 1)"),
    ]
    assert result.chain == ["c1", "c3"] and result.final_id == "c3"
    assert roles(server) == {"actor": 3, "critic": 4, "editor": 1}
    # The three drafts were asked for at once, each variant at its own temperature.
    assert server.max_in_flight >= 3
    actor = sorted((r for r in server.requests if role_of(r) == "actor"), key=variant_of)
    assert [r.body.get("temperature") for r in actor] == [None, 0.7, 1.1]
    assert "This is attempt 3 of 3" in actor[2].last_user_content
    assert (result.usage.actor.calls, result.usage.critic.calls) == (3, 4)
    assert result.candidates[0].draft.model == "openai/test-model"


def test_beam_search_over_http(server: OpenAIServer) -> None:
    strategy = TreeSearch(policy="beam", width=2, expand=2, max_depth=3)
    result = search(server, strategy, {"Draft 2": 3, "Draft 2 (revised 2)": 5})
    assert result.stop_reason is StopReason.PASSED and result.strategy == "beam"
    assert tree(result) == [
        ("c0", None, "Draft 1"),
        ("c1", None, "Draft 2"),
        ("c2", "c1", "Draft 2 (revised 1)"),  # the better first draft is expanded first
        ("c3", "c1", "Draft 2 (revised 2)"),
        ("c4", "c0", "Draft 1 (revised 1)"),
        ("c5", "c0", "Draft 1 (revised 2)"),
    ]
    assert result.final_id == "c3" and result.chain == ["c1", "c3"]
    assert roles(server) == {"actor": 2, "critic": 6, "editor": 4}
    assert server.max_in_flight >= 4  # a depth's four revisions at once
    editor = [r for r in server.requests if role_of(r) == "editor"]
    assert sorted(r.body.get("temperature") for r in editor if variant_of(r) == 2) == [0.7, 0.7]


def test_mcts_over_http(server: OpenAIServer) -> None:
    strategy = TreeSearch(policy="mcts", expand=2, max_depth=3)
    scores = {"Draft 1 (revised 1)": 3, "Draft 1 (revised 1) (revised 2)": 5}
    result = search(server, strategy, scores)
    assert result.stop_reason is StopReason.PASSED and result.strategy == "mcts"
    assert tree(result) == [
        ("c0", None, "Draft 1"),
        ("c1", "c0", "Draft 1 (revised 1)"),
        ("c2", "c0", "Draft 1 (revised 2)"),
        ("c3", "c1", "Draft 1 (revised 1) (revised 1)"),
        ("c4", "c1", "Draft 1 (revised 1) (revised 2)"),
    ]
    assert result.final_id == "c4" and result.chain == ["c0", "c1", "c4"]
    assert roles(server) == {"actor": 1, "critic": 5, "editor": 4}
    # The second expansion's revisions were shown the draft they revise.
    second = [r for r in server.requests if role_of(r) == "editor"][2:]
    assert {shown(r) for r in second} == {"Draft 1 (revised 1)"}


def test_reflexion_over_http(server: OpenAIServer) -> None:
    result = search(server, Reflexion(trials=2), {"Fresh draft (revised 1)": 5}, max_rounds=2)
    assert result.stop_reason is StopReason.PASSED and result.strategy == "reflexion"
    assert tree(result) == [
        ("c0", None, "Draft 1"),
        ("c1", "c0", "Draft 1 (revised 1)"),
        ("c2", "c1", "Fresh draft"),
        ("c3", "c2", "Fresh draft (revised 1)"),
    ]
    assert result.candidates[2].origin is Origin.REFLECT
    assert result.candidates[2].draft.reflections == [REFLECTION]
    assert [role_of(r) for r in server.requests] == [
        "actor", "critic", "editor", "critic",  # trial 1
        "reflector", "actor", "critic", "editor", "critic",  # trial 2
    ]  # fmt: skip
    reflect, fresh = server.requests[4], server.requests[5]
    assert "Draft 1 (revised 1)" in reflect.last_user_content and "too vague" in reflect.prompt
    assert REFLECTION in fresh.last_user_content
    assert result.final_id == "c3"
    # The reflection is accounted with the draft it led to.
    assert result.candidates[2].draft.usage.calls == 2
