"""`redraft memory ...`: every subcommand against a real file, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redraft.cli import main
from redraft.testing.openai_server import ChatRequest, OpenAIServer


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if not line.startswith("Loading weights")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def test_add_search_list_show_stats_delete(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "m.db")
    code, out, _ = run(
        capsys,
        "memory",
        "add",
        "--db",
        db,
        "--task",
        "Write a haiku about rain",
        "--problem",
        "line two has eight syllables",
        "--fix",
        "count 5-7-5",
        "--kind",
        "poem",
        "--tag",
        "short",
    )
    assert code == 0
    record_id = out.strip()
    run(
        capsys,
        "memory",
        "add",
        "--db",
        db,
        "--task",
        "Write a SQL report of sales",
        "--problem",
        "grouped by timestamp instead of month",
        "--kind",
        "sql",
    )

    code, out, _ = run(capsys, "memory", "search", "--db", db, "a short poem about rainfall")
    assert code == 0
    assert out.splitlines()[0].split()[1] == record_id[:8]
    code, out, _ = run(
        capsys,
        "memory",
        "search",
        "--db",
        db,
        "--json",
        "--kind",
        "sql",
        "monthly sales figures in SQL",
    )
    [hit] = json.loads(out)
    assert hit["record"]["kind"] == "sql" and hit["score"] > 0.3
    code, out, err = run(capsys, "memory", "search", "--db", db, "best pasta recipe")
    assert code == 0 and out == "" and "no correction is relevant enough" in err

    code, out, _ = run(capsys, "memory", "list", "--db", db)
    assert len(out.splitlines()) == 2 and "line two has eight syllables" in out
    code, out, _ = run(capsys, "memory", "list", "--db", db, "--tag", "short", "--json")
    assert [r["id"] for r in json.loads(out)] == [record_id]

    code, out, _ = run(capsys, "memory", "show", "--db", db, record_id[:6])
    assert f"id: {record_id}" in out and "fix: count 5-7-5" in out and "tags: short" in out

    code, out, _ = run(capsys, "memory", "stats", "--db", db, "--json")
    stats = json.loads(out)
    assert stats["corrections"] == 2 and stats["kinds"] == {"poem": 1, "sql": 1}
    assert stats["model"] == "sentence-transformers/all-MiniLM-L6-v2"

    code, _, err = run(capsys, "memory", "delete", "--db", db, record_id[:8])
    assert code == 0 and f"deleted {record_id}" in err
    code, out, _ = run(capsys, "memory", "list", "--db", db)
    assert len(out.splitlines()) == 1


def test_export_then_import_into_another_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    run(
        capsys,
        "memory",
        "add",
        "--db",
        source,
        "--task",
        "Binary search",
        "--problem",
        "off-by-one in the loop condition",
    )
    out_file = tmp_path / "memory.jsonl"
    code, _, err = run(capsys, "memory", "export", "--db", source, str(out_file))
    assert code == 0 and "exported 1 corrections" in err
    assert json.loads(out_file.read_text())["problem"] == "off-by-one in the loop condition"
    code, _, err = run(capsys, "memory", "import", "--db", target, str(out_file))
    assert code == 0 and "read 1 corrections, 1 new" in err
    code, out, _ = run(capsys, "memory", "export", "--db", target)
    assert json.loads(out) == json.loads(out_file.read_text())
    # An export never overwrites a file.
    code, _, err = run(capsys, "memory", "export", "--db", source, str(out_file))
    assert code == 2 and "exists" in one_error_line(err)


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not a database", encoding="utf-8")
    code, _, err = run(capsys, "memory", "list", "--db", str(bad))
    assert code == 2 and "not a redraft memory" in one_error_line(err)
    assert bad.read_text(encoding="utf-8") == "not a database"

    db = str(tmp_path / "m.db")
    code, _, err = run(capsys, "memory", "show", "--db", db, "abcdef")
    assert code == 2 and "no correction with id" in one_error_line(err)

    run(capsys, "memory", "add", "--db", db, "--task", "t", "--problem", "p")
    code, _, err = run(capsys, "memory", "search", "--db", db, "--model", "other/model", "q")
    assert code == 2 and "built with embedding model" in one_error_line(err)

    lines = tmp_path / "broken.jsonl"
    lines.write_text('{"task": "t"}\n', encoding="utf-8")
    code, _, err = run(capsys, "memory", "import", "--db", db, str(lines))
    assert code == 2 and "line 1 is not a correction" in one_error_line(err)


def test_refine_with_a_memory_learns_and_a_later_run_is_told(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over real HTTP: the first run's fix is stored; the second run's actor is shown it."""
    monkeypatch.delenv("REDRAFT_MODEL", raising=False)
    problem = "the haiku names no concrete sound of rain"

    def reply(request: ChatRequest) -> str:
        system = str(request.messages[0].get("content", ""))
        prompt = request.last_user_content
        if request.response_format is not None or "strict, fair reviewer" in system:
            good = "drumming on tin" in prompt
            issue = {"quote": "A haiku", "problem": problem, "suggestion": "rain drumming on tin"}
            return json.dumps(
                {
                    "feedback": "...",
                    "summary": "fine" if good else "vague",
                    "issues": [] if good else [issue],
                    "score": 5 if good else 2,
                }
            )
        if "expert editor" in system:
            return "A haiku of rain drumming on tin"
        return "A haiku about rain"

    db = str(tmp_path / "m.db")
    with OpenAIServer(reply) as server:
        base = ["-m", "openai/x", "--api-base", server.base_url, "--memory-db", db, "-q"]
        code, out, _ = run(capsys, "refine", "Write a haiku about rain", *base)
        assert code == 0 and out.strip() == "A haiku of rain drumming on tin"
        code, out, _ = run(capsys, "memory", "list", "--db", db, "--json")
        [learned] = json.loads(out)
        assert learned["problem"] == problem
        before = len(server.requests)
        code, _, _ = run(capsys, "refine", "Write a short haiku about rainfall", *base)
        assert code == 0
        actor_prompt = server.requests[before].last_user_content
    assert "Lessons from past corrections" in actor_prompt and problem in actor_prompt
