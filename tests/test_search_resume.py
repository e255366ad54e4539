"""A tree search killed in the middle of a fan-out resumes from its checkpoint: the jobs of
that fan-out that had finished (made and judged a candidate) are not done again.

LangGraph stores each finished task's writes as the task finishes, before its superstep
ends; a resumed run skips the tasks that have them. A search's `make` jobs are such tasks
(fanned out with `Send`), so only the job the kill interrupted is redone.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from redraft import Result, StopReason

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "tests" / "scripts" / "resumable_search.py"


def script() -> ModuleType:
    """The script's module, to build the same search in this process."""
    spec = importlib.util.spec_from_file_location("resumable_search", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def judgments_stored(db: Path) -> int:
    """How many judgments the checkpoint holds: one write per job that finished."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("SELECT COUNT(*) FROM writes WHERE channel = 'judgments'").fetchone()
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return 0
    return int(row[0])


def killed_in_a_fan_out(db: Path, log: Path, policy: str, finished: set[str]) -> list[str]:
    """Run the search in a subprocess until its critic hangs on HANG while the other jobs
    of that fan-out (`finished`) are judged and checkpointed; kill -9 it; return the log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(db), str(log), "crash", policy],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (
            "waiting to be killed" in lines(log)
            and {f"judged {text}" for text in finished} <= set(lines(log))
        ):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the search never hung: {lines(log)}"
            time.sleep(0.05)
        judged = sum(line.startswith("judged ") for line in lines(log))
        # What LangGraph writes as each job finishes reaches the file soon after: kill the
        # run once it has (a job killed before its write is rightly redone).
        deadline = time.monotonic() + 30
        while judgments_stored(db) < judged:
            assert time.monotonic() < deadline, (
                f"the checkpoint holds {judgments_stored(db)} judgments after {judged} "
                "jobs finished: LangGraph did not keep the writes of the jobs finished in "
                "the interrupted fan-out"
            )
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return lines(log)


CASES = {
    # The hung job is one of the four revisions of depth 1; the other three finish.
    "beam": ({"d0.0", "d1.0", "d1.1"}, 10, StopReason.MAX_ROUNDS),
    # The root's first expansion: its other revision finishes.
    "mcts": ({"d0.0"}, 7, StopReason.EXHAUSTED),
}


@pytest.mark.parametrize("policy", list(CASES))
async def test_a_killed_tree_search_resumes_without_judging_anything_again(
    tmp_path: Path, policy: str
) -> None:
    finished, count, stop = CASES[policy]
    resumable = script()
    db, log = tmp_path / "runs.db", tmp_path / "calls.log"
    before = killed_in_a_fan_out(db, log, policy, finished)
    judged_before = {line.removeprefix("judged ") for line in before if line.startswith("judged ")}
    assert finished <= judged_before
    assert resumable.HANG not in judged_before
    assert before.count(f"judge {resumable.HANG}") == 1  # started, never done

    result: Result = await resumable.refiner(db, log, "resume", policy).aresume(resumable.THREAD)
    after = lines(log)[len(before) :]

    # Nothing judged before the kill was made or judged again; the hung job was redone.
    for text in judged_before:
        assert f"judge {text}" not in after and f"edit {text}" not in after
        assert f"draft {text}" not in after
    assert after[:3] == [f"edit {resumable.HANG}", f"judge {resumable.HANG}",
                         f"judged {resumable.HANG}"]  # fmt: skip
    # Every candidate of the result was judged exactly once, across both processes.
    judged = Counter(line.removeprefix("judged ") for line in before + after if "judged " in line)
    assert sorted(judged) == sorted(c.draft.text for c in result.candidates)
    assert set(judged.values()) == {1}

    # The result is complete: the same tree an uninterrupted run makes.
    assert result.stop_reason is stop and result.thread_id == resumable.THREAD
    assert [c.id for c in result.candidates] == [f"c{i}" for i in range(count)]
    whole = resumable.refiner(None, tmp_path / "whole.log", "resume", policy).run(resumable.TASK)

    def tree(r: Result) -> list[tuple[str, str | None, str, float]]:
        return [(c.id, c.parent_id, c.draft.text, c.score) for c in r.candidates]

    assert tree(result) == tree(whole)
    assert result.final_id == whole.final_id and result.chain == whole.chain
