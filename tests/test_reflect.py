"""The reflect operation: after a failed attempt, a reflection, then a fresh first draft
that is given it (Reflexion), stamped by the operation like every other candidate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import FunctionCritic, LLMEditor, ScriptedModel, Task
from redraft.agents.actor import LLMActor
from redraft.agents.prompts import DEFAULT_PROMPTS, PromptLibrary
from redraft.agents.reflector import LLMReflector
from redraft.engine.operations import Agents, Operations
from redraft.events import event_sink
from redraft.types import DraftEvent, Event, Origin


def operations(actor: ScriptedModel, editor: ScriptedModel, **extra: object) -> Operations:
    return Operations(
        Agents(
            actor=LLMActor(),
            critics=[FunctionCritic(lambda text: (0.2, "too vague"), name="vague")],
            editor=LLMEditor(),
            actor_model=actor,
            critic_model=None,
            editor_model=editor,
            prompts=DEFAULT_PROMPTS,
            **extra,  # type: ignore[arg-type]
        )
    )


@pytest.fixture(autouse=True)
def events() -> Iterator[list[Event]]:
    """Operations report to the run's sink; here, outside a graph, to this list."""
    seen: list[Event] = []
    with event_sink(seen.append):
        yield seen


async def test_a_reflection_reaches_the_fresh_draft_and_is_stamped_on_it(
    events: list[Event],
) -> None:
    actor = ScriptedModel(["a vague answer", "a precise answer"])
    editor = ScriptedModel(["Too vague: name the numbers next time."])
    ops = operations(actor, editor)
    task = Task(instruction="Explain tides")
    attempt = [await ops.judge(task, await ops.draft(task, 0), [])]
    events.clear()
    made = await ops.reflect(task, attempt, ["Earlier: define terms."], 5)
    fresh = made.candidate
    assert fresh is not None and made.stop is None
    assert (fresh.id, fresh.parent_id, fresh.depth, fresh.origin) == ("c5", "c0", 1, Origin.REFLECT)
    assert fresh.draft.text == "a precise answer" and fresh.draft.author == "actor"
    assert fresh.draft.reflections == [
        "Earlier: define terms.",
        "Too vague: name the numbers next time.",
    ]
    # The reflector saw the attempt with what the critic said, and the earlier reflection.
    reflect_prompt = editor.calls[0].prompt
    assert "a vague answer" in reflect_prompt and "too vague" in reflect_prompt
    assert "Earlier: define terms." in reflect_prompt
    # The actor started afresh with both reflections, not from the failed draft.
    draft_prompt = actor.calls[1].prompt
    assert "name the numbers next time" in draft_prompt and "define terms" in draft_prompt
    assert "a vague answer" not in draft_prompt
    # The draft's usage counts the reflection and the new draft.
    assert fresh.draft.usage.calls == 2
    assert [type(e) for e in events] == [DraftEvent]


async def test_a_failing_reflector_makes_no_candidate_and_says_why() -> None:
    actor = ScriptedModel(["first"])
    editor = ScriptedModel([RuntimeError("the server is down")])
    ops = operations(actor, editor)
    task = Task(instruction="t")
    attempt = [await ops.judge(task, await ops.draft(task, 0), [])]
    made = await ops.reflect(task, attempt, [], 1)
    assert made.candidate is None and made.stop == "error"
    assert made.error is not None and "the server is down" in made.error
    assert len(actor.calls) == 1  # no fresh draft without a reflection


async def test_an_empty_reflection_is_not_used() -> None:
    ops = operations(ScriptedModel(["first", "second"]), ScriptedModel(["   "]))
    task = Task(instruction="t")
    attempt = [await ops.judge(task, await ops.draft(task, 0), [])]
    made = await ops.reflect(task, attempt, [], 1)
    assert made.candidate is None and made.error == "the reflector returned an empty reflection"
    assert made.spent.calls == 1  # what the reflection cost is still counted


async def test_a_reflector_with_its_own_model_and_the_users_prompts(tmp_path: Path) -> None:
    (tmp_path / "reflect.md").write_text("OWN REFLECT PROMPT for {{ task.instruction }}")
    own = ScriptedModel(["Own reflection."])
    editor = ScriptedModel([])
    ops = Operations(
        Agents(
            actor=LLMActor(),
            critics=[FunctionCritic(lambda text: False, name="never")],
            editor=LLMEditor(),
            actor_model=ScriptedModel(["first", "second"]),
            critic_model=None,
            editor_model=editor,
            prompts=PromptLibrary(tmp_path),
            reflector=LLMReflector(own),
        )
    )
    task = Task(instruction="tides")
    attempt = [await ops.judge(task, await ops.draft(task, 0), [])]
    made = await ops.reflect(task, attempt, [], 1)
    assert made.candidate is not None
    assert own.calls[0].prompt.endswith("OWN REFLECT PROMPT for tides")
    assert editor.calls == []
