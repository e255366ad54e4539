"""The loop with a memory: lessons reach the actor and editor, and runs write corrections back.

The models are scripted (this tests the loop's logic); the memory is real: an SQLite file and
MiniLM embeddings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from redraft import (
    DraftEvent,
    EditEvent,
    LLMCritic,
    LLMEditor,
    Refiner,
    Result,
    ScriptedModel,
    StopEvent,
    Task,
    arefine,
    refine,
)
from redraft.display import render_result
from redraft.memory import CorrectionMemory
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall
from redraft.progress import ProgressView
from tests.helpers import answer_in

BUGGY = "def median(values):\n    values.sort()\n    return values[len(values) // 2]"
FIXED = "def median(values):\n    ordered = sorted(values)\n    return ordered[len(ordered) // 2]"
PROBLEM = "sorts the caller's list in place"
LESSONS = "# Lessons from past corrections"


def code_critic() -> LLMCritic:
    """Fails any draft that calls .sort() on its argument, naming the problem and the fix."""

    def reply(messages: list[Message], call: ScriptedCall) -> str:
        bad = "values.sort()" in answer_in(call)
        issues = [
            {
                "quote": "values.sort()",
                "problem": PROBLEM,
                "suggestion": "sort a copy: ordered = sorted(values)",
            }
        ]
        return json.dumps(
            {
                "feedback": "...",
                "summary": "mutates input" if bad else "fine",
                "issues": issues if bad else [],
                "score": 2 if bad else 5,
            }
        )

    return LLMCritic(ScriptedModel(reply, model_name="judge"))


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[CorrectionMemory]:
    with CorrectionMemory(tmp_path / "memory.db") as opened:
        yield opened


def test_a_second_run_of_a_similar_task_is_given_the_lesson_learned_in_the_first(
    memory: CorrectionMemory,
) -> None:
    first_actor = ScriptedModel([BUGGY])
    first = refine(
        "Write a Python function median(values) that returns the median",
        model=first_actor,
        critics=[code_critic()],
        editor=LLMEditor(ScriptedModel([FIXED])),
        memory=memory,
    )
    assert first.passed and first.final.text == FIXED
    assert LESSONS not in first_actor.calls[0].prompt  # nothing learned yet
    assert first.lessons == []
    [learned] = list(memory.records())
    assert learned.problem == PROBLEM
    assert learned.excerpt == "values.sort()"
    assert "ordered = sorted(values)" in (learned.revised or "")
    assert (learned.score_before, learned.score_after) == (0.25, 1.0)

    second_actor = ScriptedModel([FIXED])
    second = refine(
        "Python: implement median() for a list of numbers",
        model=second_actor,
        critics=[code_critic()],
        memory=memory,
    )
    prompt = second_actor.calls[0].prompt
    assert LESSONS in prompt
    assert PROBLEM in prompt and 'was: "values.sort()"' in prompt
    assert "fix: sort a copy: ordered = sorted(values)" in prompt
    # The Result says which lessons were used, and still round-trips through JSON.
    [lesson] = second.rounds[0].draft.lessons
    assert lesson.id == learned.id and lesson.score >= memory.min_score
    assert second.lessons == [lesson]
    assert Result.model_validate_json(second.model_dump_json()) == second
    assert memory.get(learned.id).use_count == 2


def test_the_editor_is_given_lessons_about_what_the_critics_just_said(
    memory: CorrectionMemory,
) -> None:
    memory.add(
        "Write a function that returns the median of some numbers",
        PROBLEM,
        "sort a copy: ordered = sorted(values)",
        excerpt="values.sort()",
    )
    editor = ScriptedModel([FIXED])
    result = refine(
        "Write median(values) in Python",
        model=ScriptedModel([BUGGY]),  # the actor ignores its lesson
        critics=[code_critic()],
        editor=LLMEditor(editor),
        memory=memory,
    )
    assert result.passed
    assert LESSONS in editor.calls[0].prompt
    assert result.rounds[1].draft.lessons[0].problem == PROBLEM
    assert result.rounds[1].draft.revises == 0


def test_an_unrelated_task_is_given_no_lessons(memory: CorrectionMemory) -> None:
    memory.add("Write a Python function median(values)", PROBLEM, "use sorted(values)")
    actor = ScriptedModel(["Drops drum on the tin roof"])
    result = refine(
        "Write a haiku about autumn leaves",
        model=actor,
        critics=[LLMCritic(ScriptedModel([json.dumps({"score": 5, "issues": []})]))],
        memory=memory,
    )
    assert LESSONS not in actor.calls[0].prompt
    assert result.lessons == []


def test_without_a_memory_the_prompts_are_unchanged() -> None:
    actor, editor = ScriptedModel([BUGGY]), ScriptedModel([FIXED])
    result = refine(
        "Write median(values)",
        model=actor,
        critics=[code_critic()],
        editor=LLMEditor(editor),
    )
    assert result.passed
    assert actor.calls[0].messages[-1].content == "# Task\nWrite median(values)"
    assert LESSONS not in editor.calls[0].prompt
    assert all(r.draft.lessons == [] for r in result.rounds)


async def test_events_show_the_lessons_given(memory: CorrectionMemory) -> None:
    memory.add("Write median(values) in Python", PROBLEM, "use sorted(values)")
    refiner = Refiner(
        ScriptedModel([BUGGY]),
        critics=[code_critic()],
        editor=LLMEditor(ScriptedModel([FIXED])),
        memory=memory,
        lessons=1,
    )
    events = [event async for event in refiner.astream("Python median(values) function")]
    drafts = [e for e in events if isinstance(e, DraftEvent | EditEvent)]
    assert [len(e.draft.lessons) for e in drafts] == [1, 1]
    assert isinstance(events[-1], StopEvent)
    assert events[-1].result.lessons[0].problem == PROBLEM


async def test_lessons_are_scoped_to_the_tasks_kind(memory: CorrectionMemory) -> None:
    memory.add("Write median(values) in Python", PROBLEM, "use sorted(values)", kind="python")
    sql_actor = ScriptedModel([FIXED])
    await arefine(
        Task(instruction="Write median(values) in Python", metadata={"kind": "sql"}),
        model=sql_actor,
        critics=[code_critic()],
        memory=memory,
    )
    assert LESSONS not in sql_actor.calls[0].prompt
    python_actor = ScriptedModel([FIXED])
    await arefine(
        Task(instruction="Write median(values) in Python", metadata={"kind": "python"}),
        model=python_actor,
        critics=[code_critic()],
        memory=memory,
    )
    assert LESSONS in python_actor.calls[0].prompt


def test_progress_and_the_result_view_show_the_lessons(memory: CorrectionMemory) -> None:
    memory.add("Write median(values) in Python", PROBLEM, "use sorted(values)")
    view = ProgressView(title="t")
    refiner = Refiner(ScriptedModel([FIXED]), critics=[code_critic()], memory=memory)

    async def follow() -> Result:
        result = None
        async for event in refiner.astream("Python median(values) function"):
            view.update(event)
            if isinstance(event, StopEvent):
                result = event.result
        assert result is not None
        return result

    result = asyncio.run(follow())
    assert f"first draft · {len(FIXED)} chars · 1 lesson from memory" in view.lines[0].plain
    console = Console(record=True, width=120)
    console.print(render_result(result))
    screen = console.export_text()
    assert "Lessons from memory" in screen and PROBLEM in screen


async def test_concurrent_runs_share_one_memory(memory: CorrectionMemory) -> None:
    refiner = Refiner(
        ScriptedModel(lambda messages, call: BUGGY),
        critics=[code_critic()],
        editor=LLMEditor(ScriptedModel(lambda messages, call: FIXED)),
        memory=memory,
    )
    tasks = [f"Write median(values) in Python, version {i}" for i in range(6)]
    results = await refiner.abatch(tasks, concurrency=6)
    assert all(isinstance(r, Result) and r.passed for r in results)
    # Every run learned the same lesson: merged into one, counted each time it was met.
    records = list(memory.records())
    assert [r.problem for r in records] == [PROBLEM] * len(records)
    assert sum(r.use_count for r in records) >= len(tasks)


def test_a_failed_write_back_keeps_the_run_result(
    memory: CorrectionMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(result: Result) -> None:
        raise OSError("database is locked")

    monkeypatch.setattr(memory, "learn", locked)
    result = refine(
        "Write a Python function median(values) that returns the median",
        model=ScriptedModel([BUGGY]),
        critics=[code_critic()],
        editor=LLMEditor(ScriptedModel([FIXED])),
        memory=memory,
    )
    assert result.passed and result.text == FIXED
    assert result.error == "memory write-back failed (OSError: database is locked)"
