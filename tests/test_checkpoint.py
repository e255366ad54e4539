"""Resumable runs: checkpoints in SQLite, a killed run resumed, the graph as a subgraph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from redraft import (
    ConfigError,
    FunctionCritic,
    LLMEditor,
    Refiner,
    Result,
    ScriptedModel,
    StopReason,
    Task,
)

SCRIPT = Path(__file__).parent / "scripts" / "resumable_run.py"
ROOT = Path(__file__).parent.parent


def start(db: Path, log: Path, phase: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(db), str(log), phase],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(log: Path, line: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and line in log.read_text().splitlines():
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"'{line}' never logged")


@pytest.mark.parametrize("how", ["resume", "resume-by-id"])
def test_a_killed_run_resumes_without_redoing_finished_rounds(tmp_path: Path, how: str) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "calls.log"
    crashing = start(db, log, "crash")
    wait_for(log, "waiting to be killed", crashing)
    crashing.send_signal(signal.SIGKILL)
    crashing.communicate(timeout=30)
    assert crashing.returncode == -signal.SIGKILL
    before = log.read_text().splitlines()
    assert before == [
        "actor",
        "judge v0",
        "edit v0->v1",
        "judge v1",
        "edit v1->v2",
        "waiting to be killed",
    ]

    resumed = start(db, log, how)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    after = log.read_text().splitlines()[len(before) :]
    # Only the interrupted edit is redone: no new first draft, no re-judging of v0 or v1.
    assert after == ["edit v1->v2", "judge v2", "edit v2->v3", "judge v3"]
    result = Result.model_validate_json(out.strip().splitlines()[-1])
    assert result.stop_reason is StopReason.PASSED
    assert [r.draft.text for r in result.rounds] == ["v0", "v1", "v2", "v3"]
    assert result.thread_id == "job-1"


def make_refiner(checkpointer: Any, editor: ScriptedModel, actor: ScriptedModel) -> Refiner:
    return Refiner(
        actor,
        critics=[FunctionCritic(lambda text: text == "v1", name="is-v1")],
        editor=LLMEditor(editor),
        checkpointer=checkpointer,
    )


def test_a_finished_thread_returns_its_result_without_calling_models(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = make_refiner(db, ScriptedModel(["v1"]), ScriptedModel(["v0"])).run(
        "task", thread_id="t"
    )
    actor, editor = ScriptedModel([]), ScriptedModel([])
    again = make_refiner(db, editor, actor).run("task", thread_id="t")
    assert again == first
    assert actor.calls == [] and editor.calls == []


def test_a_thread_of_another_task_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    make_refiner(db, ScriptedModel(["v1"]), ScriptedModel(["v0"])).run("task", thread_id="t")
    with pytest.raises(ConfigError, match="different task"):
        make_refiner(db, ScriptedModel([]), ScriptedModel([])).run("other", thread_id="t")


def test_a_file_that_is_not_a_database_is_a_clear_error_and_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("my precious notes, not a database\n" * 50)
    with pytest.raises(ConfigError, match="not a redraft checkpoint database"):
        make_refiner(db, ScriptedModel(["v1"]), ScriptedModel(["v0"])).run("task")
    assert db.read_text().startswith("my precious notes")


def test_any_langgraph_checkpointer_can_be_passed() -> None:
    saver = InMemorySaver()
    result = make_refiner(saver, ScriptedModel(["v1"]), ScriptedModel(["v0"])).run(
        "task", thread_id="mem"
    )
    assert result.passed and result.thread_id == "mem"
    refiner = make_refiner(saver, ScriptedModel([]), ScriptedModel([]))
    snapshot = refiner.graph.get_state({"configurable": {"thread_id": "mem"}})
    assert snapshot.values["result"] == result


async def test_the_compiled_graph_embeds_as_a_subgraph() -> None:
    refiner = make_refiner(None, ScriptedModel(["v1"]), ScriptedModel(["v0"]))

    class Outer(TypedDict, total=False):
        task: Task
        result: Result
        published: str

    def publish(state: Outer) -> dict[str, str]:
        return {"published": state["result"].final.text.upper()}

    outer: StateGraph[Outer, None, Outer, Outer] = StateGraph(Outer)
    outer.add_node("refine", refiner.graph)
    outer.add_node("publish", publish)
    outer.add_edge(START, "refine")
    outer.add_edge("refine", "publish")
    outer.add_edge("publish", END)
    state = await outer.compile().ainvoke({"task": Task(instruction="task")})
    assert state["published"] == "V1"
    assert state["result"].stop_reason is StopReason.PASSED


async def test_graph_streams_custom_events_when_driven_directly() -> None:
    refiner = make_refiner(None, ScriptedModel(["v1"]), ScriptedModel(["v0"]))
    kinds = [
        event.kind
        async for event in refiner.graph.astream(
            {"task": Task(instruction="task")}, stream_mode="custom"
        )
    ]
    assert kinds == ["draft", "critique", "round", "edit", "critique", "round", "stop"]


def test_resume_names_what_it_needs(tmp_path: Path) -> None:
    plain = make_refiner(None, ScriptedModel([]), ScriptedModel([]))
    with pytest.raises(ConfigError, match=r"checkpointer='runs\.db'"):
        plain.resume("t")
    checkpointed = make_refiner(tmp_path / "runs.db", ScriptedModel([]), ScriptedModel([]))
    with pytest.raises(ConfigError, match=r"no run with thread id 'nope' in .*runs\.db"):
        checkpointed.resume("nope")
    with pytest.raises(ConfigError, match="thread id"):
        checkpointed.resume("")  # type: ignore[arg-type]


def test_resuming_a_finished_run_returns_its_result(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = make_refiner(db, ScriptedModel(["v1"]), ScriptedModel(["v0"])).run(
        "task", thread_id="t"
    )
    actor, editor = ScriptedModel([]), ScriptedModel([])
    assert make_refiner(db, editor, actor).resume("t") == first
    assert actor.calls == [] and editor.calls == []


def test_checkpoints_store_each_draft_once(tmp_path: Path) -> None:
    """Four rounds of 256 KiB drafts: no checkpoint copies a draft, and the writes (except
    the result, written once at the end) hold each draft once."""
    import sqlite3

    size = 256 * 1024
    drafts = [f"{i}".ljust(size, "x") for i in range(4)]
    db = tmp_path / "runs.db"
    result = Refiner(
        ScriptedModel(drafts[:1]),
        critics=[FunctionCritic(lambda text: False, name="never")],
        editor=LLMEditor(ScriptedModel(drafts[1:]), mode="rewrite"),
        max_rounds=4,
        patience=None,
        checkpointer=db,
    ).run("task", thread_id="t")
    assert [r.draft.text for r in result.rounds] == drafts
    with sqlite3.connect(db) as conn:
        (blobs,) = conn.execute("SELECT SUM(LENGTH(checkpoint)) FROM checkpoints").fetchone()
        (writes,) = conn.execute(
            "SELECT SUM(LENGTH(value)) FROM writes WHERE channel != 'result'"
        ).fetchone()
    assert blobs < size // 2, blobs
    assert len(drafts) * size <= writes < 1.1 * len(drafts) * size, writes


def test_checkpoints_of_the_earlier_state_layout(tmp_path: Path) -> None:
    """A database written before drafts and judgments were kept apart (made with redraft
    at 8f2c7e8): thread 'done' finished, thread 't' was interrupted after one round."""
    import shutil

    db = tmp_path / "runs.db"
    shutil.copy(Path(__file__).parent / "data" / "checkpoint-before-delta.db", db)
    refiner = make_refiner(db, ScriptedModel([]), ScriptedModel([]))
    finished = refiner.resume("done")
    assert finished.passed and [r.draft.text for r in finished.rounds] == ["a", "b"]
    with pytest.raises(ConfigError, match="checkpointed by an earlier redraft"):
        refiner.resume("t")
