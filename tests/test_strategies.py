"""The core as a tree of candidates: the Refine strategy, the Strategy protocol, operations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from redraft import (
    ConfigError,
    Critique,
    Draft,
    FunctionCritic,
    LLMCritic,
    LLMEditor,
    Refiner,
    Result,
    ScriptedModel,
    StopReason,
    Task,
    refine,
)
from redraft.agents.base import AgentContext
from redraft.engine.budgets import Budgets
from redraft.engine.operations import Operations, total_usage, usage_report
from redraft.strategies import Refine, Strategy
from redraft.types import Candidate, Origin, Usage
from tests.helpers import scores_by_draft


def _regressing_run() -> Result:
    # good (3) -> worse (1): the next revision revises "good" again, not "worse".
    return refine(
        "task",
        model=ScriptedModel(["good"]),
        critics=[LLMCritic(scores_by_draft({"good": 3, "worse": 1, "better": 5}))],
        editor=LLMEditor(ScriptedModel(["worse", "better"]), mode="rewrite"),
        max_rounds=3,
        patience=None,
    )


def test_a_run_is_a_tree_whose_revisions_name_their_parent() -> None:
    result = _regressing_run()
    assert [c.draft.text for c in result.candidates] == ["good", "worse", "better"]
    first, worse, better = result.candidates
    assert first.parent_id is None and first.origin is Origin.DRAFT and first.depth == 0
    assert worse.parent_id == first.id and worse.origin is Origin.REVISE and worse.depth == 1
    # The best so far was still the first draft: the third revises it, not the regression.
    assert better.parent_id == first.id and better.depth == 1
    assert better.draft.revises == 0
    assert len({c.id for c in result.candidates}) == 3
    assert result.final_id == better.id
    assert result.final is not None and result.final.text == "better"
    assert result.candidate(result.final_id).passed


def test_rounds_are_the_chain_of_candidates_with_their_verdicts() -> None:
    result = _regressing_run()
    assert result.chain == [c.id for c in result.candidates]
    assert [r.index for r in result.rounds] == [0, 1, 2]
    assert [r.candidate_id for r in result.rounds] == result.chain
    assert [r.score for r in result.rounds] == [c.score for c in result.candidates]
    assert result.rounds[result.best_round].candidate_id == result.final_id
    assert result.score == result.candidate(result.final_id or "").score == 1.0


def test_a_result_round_trips_through_json_with_its_tree() -> None:
    result = _regressing_run()
    restored = Result.model_validate_json(result.model_dump_json())
    assert restored == result
    assert restored.rounds == result.rounds
    assert "rounds" not in result.model_dump()  # derived from the tree, stored once


def test_a_result_saved_before_candidates_existed_loads_as_a_chain() -> None:
    result = _regressing_run()
    legacy = result.model_dump(mode="json", exclude={"candidates", "chain", "final_id"})
    legacy["rounds"] = [r.model_dump(mode="json", exclude={"candidate_id"}) for r in result.rounds]
    restored = Result.model_validate(legacy)
    assert [c.draft.text for c in restored.candidates] == ["good", "worse", "better"]
    assert [c.parent_id for c in restored.candidates] == [None, "c0", "c0"]
    assert restored.final_id == restored.chain[result.best_round]
    assert [r.score for r in restored.rounds] == [r.score for r in result.rounds]


def test_the_loop_stamps_what_an_editor_gets_wrong() -> None:
    class CarelessEditor:
        model = None

        async def edit(
            self, draft: Draft, critiques: Sequence[Critique], task: Task, ctx: AgentContext
        ) -> Draft:
            # Wrong bookkeeping on purpose: the operations own these fields.
            return Draft(text="v2", round=99, author="user", revises=42, duration_s=-1.0)

    result = refine(
        "task",
        model=ScriptedModel(["v1"]),
        critics=[FunctionCritic(lambda text: 1.0 if text == "v2" else 0.2)],
        editor=CarelessEditor(),
        max_rounds=3,
    )
    revision = result.candidates[1].draft
    assert (revision.round, revision.author, revision.revises) == (1, "editor", 0)
    assert revision.duration_s >= 0.0


def test_an_editor_is_told_which_draft_it_repeated() -> None:
    seen: list[list[int]] = []

    class RepeatingEditor:
        model = None

        async def edit(
            self, draft: Draft, critiques: Sequence[Critique], task: Task, ctx: AgentContext
        ) -> Draft:
            seen.append([d.round for d in ctx.avoid])
            return Draft(text="same" if len(seen) == 1 else "new")

    result = refine(
        "task",
        model=ScriptedModel(["same"]),
        critics=[FunctionCritic(lambda text: 1.0 if text == "new" else 0.1)],
        editor=RepeatingEditor(),
        max_rounds=3,
    )
    assert seen == [[], [0]]  # the retry knows round 0 already said "same"
    assert [c.draft.text for c in result.candidates] == ["same", "new"]


class _OneShotState(TypedDict, total=False):
    task: Task
    result: Result


class OneShot:
    """A strategy of its own: one judged draft, no revision."""

    name = "one-shot"

    def build(self, operations: Operations, budgets: Budgets) -> StateGraph[Any, None, Any, Any]:
        async def run(state: _OneShotState) -> dict[str, Any]:
            drafted = await operations.draft(state["task"], 0)
            judged = await operations.judge(state["task"], drafted, [])
            result = Result(
                task=state["task"],
                final=judged.draft,
                final_id=judged.id,
                best_round=0,
                stop_reason=StopReason.PASSED if judged.passed else StopReason.MAX_ROUNDS,
                candidates=[judged],
                chain=[judged.id],
                usage=usage_report([judged], Usage()),
                wall_time_s=0.0,
            )
            return {"result": result}

        graph: StateGraph[_OneShotState, None, _OneShotState, _OneShotState] = StateGraph(
            _OneShotState
        )
        graph.add_node("run", run)
        graph.add_edge(START, "run")
        graph.add_edge("run", END)
        return graph

    def recursion_limit(self, budgets: Budgets) -> int:
        return 3


def test_a_strategy_of_ones_own_runs_through_the_refiner() -> None:
    editor = ScriptedModel(["never"])
    refiner = Refiner(
        ScriptedModel(["only"]),
        critics=[FunctionCritic(lambda text: 0.3)],
        editor=LLMEditor(editor),
        strategy=OneShot(),
    )
    assert isinstance(refiner.strategy, Strategy)
    result = refiner.run("task")
    assert [c.draft.text for c in result.candidates] == ["only"]
    assert editor.calls == []
    assert total_usage(result.candidates, Usage()) == result.usage.total


def test_refine_is_the_default_strategy() -> None:
    refiner = Refiner(ScriptedModel(["x"]), critics=[FunctionCritic(lambda text: 1.0)])
    assert isinstance(refiner.strategy, Refine)
    assert refiner.strategy.recursion_limit(refiner.budgets) == 2 * refiner.budgets.max_rounds + 5
    assert {"draft", "judge", "revise", "finish"} <= set(refiner.graph.get_graph().nodes)


@pytest.mark.parametrize(
    ("strategy", "words"),
    [
        (Refine, ("instance", "Refine()")),
        ("refine", ("Strategy", "str 'refine'")),
        (42, ("Strategy", "int 42")),
    ],
)
def test_a_wrong_strategy_is_refused_when_built(strategy: object, words: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as caught:
        Refiner(ScriptedModel(["x"]), strategy=strategy)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("budgets", "words"),
    [
        ({"max_candidates": 0}, ("max_candidates", "at least 1")),
        ({"max_time_s": -1.0}, ("max_time_s", "above 0")),
        ({"max_time_s": float("nan")}, ("max_time_s",)),
    ],
)
def test_new_budgets_are_checked_when_built(
    budgets: dict[str, Any], words: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as caught:
        Refiner(ScriptedModel(["x"]), **budgets)
    for word in words:
        assert word in str(caught.value)


def test_a_candidate_budget_stops_the_chain() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(lambda text: 0.1 * len(text))],
        editor=LLMEditor(ScriptedModel(["ab", "abc", "abcd"]), mode="rewrite"),
        max_rounds=10,
        patience=None,
        max_candidates=2,
    )
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.candidates) == 2


def test_candidates_are_plain_data() -> None:
    candidate = Candidate(id="c0", draft=Draft(text="x"))
    assert Candidate.model_validate_json(candidate.model_dump_json()) == candidate
    assert candidate.judged and not candidate.passed


def test_refine_takes_exactly_the_refiners_keyword_arguments() -> None:
    import inspect

    from redraft.refiner import RefinerOptions

    parameters = set(inspect.signature(Refiner.__init__).parameters) - {"self"}
    assert set(RefinerOptions.__annotations__) == parameters
    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(lambda text: 1.0)],
        strategy=Refine(),
        max_candidates=3,
    )
    assert result.passed


class _Closable:
    """A critic holding a resource, and a record of its release."""

    name = "closable"
    weight = 1.0
    model = None

    def __init__(self) -> None:
        self.closed = 0

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        return Critique(critic=self.name, score=1.0, passed=True)

    def close(self) -> None:
        self.closed += 1


def test_closing_the_refiner_releases_every_resource_it_holds() -> None:
    held = _Closable()
    with Refiner(ScriptedModel(["x"]), critics=[held]) as refiner:
        assert held in refiner.resources()
        assert refiner.run("task").passed
        assert held.closed == 0  # a run leaves the pools warm for the next
    assert held.closed == 1


async def test_async_closing_releases_them_too() -> None:
    held = _Closable()
    async with Refiner(ScriptedModel(["x"]), critics=[held]) as refiner:
        assert (await refiner.arun("task")).passed
    assert held.closed == 1


def test_a_tests_critic_stops_the_sandbox_it_started_and_can_start_another() -> None:
    from redraft import TestsCritic

    critic = TestsCritic("assert add(1, 2) == 3", sandbox="subprocess")
    first = critic.sandbox
    critic.close()
    assert critic.sandbox is not first  # a new one, on next use
    critic.close()


def test_with_nothing_configured_every_role_gets_the_same_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDRAFT_MODEL", raising=False)
    monkeypatch.delenv("REDRAFT_API_BASE", raising=False)
    agents = Refiner().agents
    assert agents.actor_model is not None
    assert agents.actor_model is agents.critic_model is agents.editor_model


def test_the_rounds_agents_see_are_made_once_each_on_demand() -> None:
    from redraft.engine.operations import RoundsView

    line = [Candidate(id=f"c{i}", draft=Draft(text=str(i)), score=i / 10) for i in range(3)]
    rounds = RoundsView(line)
    assert len(rounds) == 3
    assert rounds[-1].index == 2 and rounds[-1].candidate_id == "c2"
    assert rounds[0] is rounds[0]  # made once
    assert [r.draft.text for r in rounds[1:]] == ["1", "2"]
    assert [r.score for r in reversed(rounds)] == [0.2, 0.1, 0.0]
    with pytest.raises(IndexError):
        rounds[3]
