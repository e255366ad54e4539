"""`refine --checkpoint` and `redraft resume`: a run killed part-way is continued from the
command line with the settings it was started with, redoing no judged draft."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import FunctionCritic, Refiner, Result, ScriptedModel, StopReason
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply
from tests.test_cli import MODEL, clean_env, fresh_env, one_error_line, reply, run

__all__ = ["clean_env"]  # the autouse fixture of test_cli, used here too

ROOT = Path(__file__).parent.parent


def role(request: ChatRequest) -> str:
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    if request.response_format is not None or "strict, fair reviewer" in system:
        return "critic"
    return "editor" if "expert editor" in system else "actor"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(reply) as running:
        yield running


def stalled_editor(request: ChatRequest) -> ServerReply | str:
    """The editor never answers in time: the run sits after its first judged round."""
    if role(request) == "editor":
        return ServerReply("too late", delay_s=120)
    return reply(request)


def killed_at_first_edit(server: OpenAIServer, *args: str) -> str:
    """Start `redraft ARGS` against `server` (its editor stalled), kill -9 it once the first
    edit is asked for (its first round judged and checkpointed), and return its stderr."""
    server.handler = stalled_editor
    process = subprocess.Popen(
        [sys.executable, "-m", "redraft", *args, "-m", MODEL, "--api-base", server.base_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fresh_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not any(role(r) == "editor" for r in server.requests):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never reached its first edit"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    server.handler = reply
    return err


def test_a_killed_refine_is_resumed_without_redoing_judged_work(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    err = killed_at_first_edit(
        server, "refine", "Write a haiku about rain", "--checkpoint", str(db),
        "--thread-id", "rain-1", "--max-rounds", "3",
    )  # fmt: skip
    assert "redraft resume rain-1 --checkpoint" in err  # said how to continue it
    assert [role(r) for r in server.requests] == ["actor", "critic", "editor"]
    server.reset()
    code, out, err = run(capsys, "resume", "rain-1", "--checkpoint", str(db), "--json")
    assert code == 0, err
    result = Result.model_validate_json(out)
    assert result.passed and result.thread_id == "rain-1"
    assert result.rounds[0].draft.text == "A haiku about rain"
    assert len(result.rounds) == 2
    # Nothing already judged was asked again: no first draft, no critique of it.
    assert [role(r) for r in server.requests] == ["editor", "critic"]

    code, _, err = run(capsys, "resume", "rain-1", "--checkpoint", str(db))
    assert code == 2
    assert "already finished (stop: passed)" in one_error_line(err)


def test_json_output_names_the_thread_and_a_thread_id_is_not_reused(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    code, out, err = run(
        capsys, "refine", "Write a haiku about rain", "-m", MODEL, "--api-base",
        server.base_url, "--checkpoint", str(db), "--json",
    )  # fmt: skip
    assert code == 0, err
    thread = Result.model_validate_json(out).thread_id
    assert thread and f"as thread {thread}" in err
    code, _, err = run(
        capsys, "refine", "Another haiku", "-m", MODEL, "--api-base", server.base_url,
        "--checkpoint", str(db), "--thread-id", thread,
    )  # fmt: skip
    assert code == 2 and "already exists" in one_error_line(err)


def test_resume_takes_another_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.db"
    with OpenAIServer(reply) as first:
        killed_at_first_edit(
            first, "refine", "Write a haiku about rain", "--checkpoint", str(db),
            "--thread-id", "moved",
        )  # fmt: skip
    with OpenAIServer(reply) as second:
        code, out, err = run(
            capsys, "resume", "moved", "--checkpoint", str(db), "--api-base", second.base_url,
            "--json",
        )  # fmt: skip
        assert code == 0, err
        assert [role(r) for r in second.requests] == ["editor", "critic"]
    assert Result.model_validate_json(out).stop_reason is StopReason.PASSED


def test_a_killed_code_run_is_resumed_with_its_tests(
    server: OpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = tmp_path / "test_add.py"
    tests.write_text("from solution import add\n\ndef test_add():\n    assert add(1, 2) == 3\n")
    db = tmp_path / "runs.db"
    killed_at_first_edit(
        server, "code", "Write add(a, b)", "--tests", str(tests), "--sandbox", "subprocess",
        "--checkpoint", str(db), "--thread-id", "add", "--max-rounds", "2",
    )  # fmt: skip
    server.reset()
    code, out, err = run(capsys, "resume", "add", "--checkpoint", str(db), "--json")
    assert code == 1, err  # the replies are no code: the tests fail in both rounds
    result = Result.model_validate_json(out)
    assert len(result.rounds) == 2 and result.stop_reason is StopReason.MAX_ROUNDS
    assert [c.critic for c in result.rounds[0].critiques] == ["tests"]
    # No first draft again; only the edit (a patch, then the rewrite asked for when it is
    # not one), judged by the tests, which call no model.
    assert {role(r) for r in server.requests} == {"editor"}


def test_resume_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    code, _, err = run(capsys, "resume", "t", "--checkpoint", str(missing))
    assert code == 2 and "does not exist" in one_error_line(err)
    assert not missing.exists()  # a typo does not leave an empty database behind

    text = tmp_path / "notes.txt"
    text.write_text("my notes\n", encoding="utf-8")
    code, _, err = run(capsys, "resume", "t", "--checkpoint", str(text))
    assert code == 2 and "not an SQLite file" in one_error_line(err)
    assert text.read_text(encoding="utf-8") == "my notes\n"

    db = tmp_path / "runs.db"
    Refiner(ScriptedModel(["a"]), critics=[FunctionCritic(lambda t: True)], checkpointer=db).run(
        "task", thread_id="from-python"
    )
    code, _, err = run(capsys, "resume", "from-python", "--checkpoint", str(db))
    line = one_error_line(err)
    assert code == 2 and "not started by the CLI" in line and ".resume('from-python')" in line
    code, _, err = run(capsys, "resume", "nope", "--checkpoint", str(db))
    assert code == 2 and "no run with thread id 'nope'" in one_error_line(err)
    with sqlite3.connect(db) as conn:  # refused without writing to the user's file
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "redraft_cli_runs" not in tables


def test_a_thread_id_needs_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "refine", "hi", "-m", MODEL, "--thread-id", "x")
    assert code == 2 and "give --checkpoint FILE" in one_error_line(err)
