"""`redraft refine --human`: the person at the terminal is a critic, asked at each pause;
`redraft resume --feedback/--score/--accept` answers a checkpointed run that waits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import Result, StopReason
from redraft.cli.codes import EXIT_WAITING
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply
from tests.test_cli import MODEL, clean_env, one_error_line, reply, run
from tests.test_cli_resume import killed_at_first_edit, role

__all__ = ["clean_env"]  # the autouse fixture of test_cli, used here too

TASK = "Write a haiku about rain"


def edits(request: ChatRequest) -> ServerReply | str:
    """`reply`, except that each revision is numbered by how many came before it."""
    if role(request) == "editor":
        edits.count += 1  # type: ignore[attr-defined]
        return f"A haiku about rain, revised {edits.count}"  # type: ignore[attr-defined]
    return reply(request)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    edits.count = 0  # type: ignore[attr-defined]
    with OpenAIServer(edits) as running:
        yield running


def answers(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """What the person types, line by line (their stdin)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def refine(capsys: pytest.CaptureFixture[str], server: OpenAIServer, *args: str) -> tuple:
    return run(capsys, "refine", TASK, "--human", "-m", MODEL, "--api-base", server.base_url,
               "--json", *args)  # fmt: skip


def roles(server: OpenAIServer) -> list[str]:
    return [role(r) for r in server.requests]


def test_the_person_is_the_only_critic_and_the_run_follows_them(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers(monkeypatch, "Name the season\n\nNow make it shorter\n0.6\naccept\n")
    code, out, err = refine(capsys, server)
    assert code == 0, err
    result = Result.model_validate_json(out)
    assert result.stop_reason is StopReason.PASSED
    assert roles(server) == ["actor", "editor", "editor"]  # no model critic: the person is it
    # Each revision revises the draft the person answered on last.
    assert [(c.id, c.parent_id) for c in result.candidates] == [
        ("c0", None),
        ("c1", "c0"),
        ("c2", "c1"),
    ]
    assert result.final_id == "c2"
    editor = [r for r in server.requests if role(r) == "editor"]
    assert "Name the season" in editor[0].last_user_content
    assert "Now make it shorter" in editor[1].last_user_content
    human = [c.critiques[-1] for c in result.candidates]
    assert [h.critic for h in human] == ["human"] * 3
    assert [h.raw_score for h in human] == [None, 0.6, None]
    assert "c0 waits for human" in err and "A haiku about rain" in err


def test_with_a_rubric_the_model_critic_judges_before_the_person(
    server: OpenAIServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    rubric = tmp_path / "rubric.md"
    rubric.write_text("Judge the imagery.", encoding="utf-8")
    answers(monkeypatch, "More imagery\n0.2\naccept\n")
    code, out, err = refine(capsys, server, "--rubric", str(rubric))
    assert code == 0, err
    result = Result.model_validate_json(out)
    assert roles(server) == ["actor", "critic", "editor", "critic"]
    assert [c.critic for c in result.candidates[0].critiques] == ["rubric", "human"]
    assert "✗ rubric" in err  # the person saw what the model critic said first


def test_a_score_that_is_no_score_is_asked_again(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers(monkeypatch, "Shorter\nhigh\n1.5\n0.5\naccept\n")
    code, out, err = refine(capsys, server)
    assert code == 0, err
    assert "'high' is not a score from 0 to 1" in err and "'1.5' is not a score" in err
    first = Result.model_validate_json(out).candidates[0].critiques[-1]
    assert first.raw_score == 0.5 and first.feedback == "Shorter"


def test_no_answer_on_stdin_leaves_the_run_waiting(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers(monkeypatch, "")
    code, out, err = refine(capsys, server)
    assert code == EXIT_WAITING
    result = Result.model_validate_json(out)
    assert result.stop_reason is StopReason.WAITING and result.waiting is not None
    assert result.waiting.candidate.id == "c0"
    assert "was not checkpointed" in err and "--checkpoint FILE" in err
    assert roles(server) == ["actor"]


def test_a_waiting_run_is_answered_later_with_resume(
    server: OpenAIServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    answers(monkeypatch, "")
    code, _, err = refine(capsys, server, "--checkpoint", str(db), "--thread-id", "rain-h")
    assert code == EXIT_WAITING
    assert f"redraft resume rain-h --checkpoint {db} --feedback TEXT" in err
    assert roles(server) == ["actor"]

    answers(monkeypatch, "")
    code, out, err = run(capsys, "resume", "rain-h", "--checkpoint", str(db), "--json",
                         "--feedback", "Say where it falls", "--score", "0.4")  # fmt: skip
    assert code == EXIT_WAITING, err
    waiting = Result.model_validate_json(out)
    assert waiting.waiting is not None and waiting.waiting.candidate.id == "c1"
    assert roles(server) == ["actor", "editor"]  # c0 was not drafted again
    assert "Say where it falls" in server.requests[-1].last_user_content

    code, out, err = run(capsys, "resume", "rain-h", "--checkpoint", str(db), "--json",
                         "--accept")  # fmt: skip
    assert code == 0, err
    done = Result.model_validate_json(out)
    assert done.passed and done.final_id == "c1" and done.thread_id == "rain-h"
    assert [c.critiques[-1].raw_score for c in done.candidates] == [0.4, None]
    assert roles(server) == ["actor", "editor"]  # accepting asks no model

    code, _, err = run(capsys, "resume", "rain-h", "--checkpoint", str(db), "--accept")
    assert code == 2
    assert "already finished (stop: passed)" in one_error_line(err)


def test_an_answer_for_a_run_that_is_not_waiting_is_one_line(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    killed_at_first_edit(server, "refine", TASK, "--checkpoint", str(db), "--thread-id", "k1")
    before = len(server.requests)
    code, _, err = run(capsys, "resume", "k1", "--checkpoint", str(db), "--feedback", "more")
    assert code == 2
    line = one_error_line(err)
    assert "not waiting for a person" in line and "without feedback" in line
    assert len(server.requests) == before  # nothing ran


def test_resume_refuses_a_score_out_of_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "resume", "t", "--checkpoint", str(tmp_path / "r.db"),
                       "--score", "2")  # fmt: skip
    assert code == 2 and "Traceback" not in err and "--score" in err
