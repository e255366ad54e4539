"""`redraft code` end to end: models over real HTTP (scripted replies from a local
OpenAI-compatible server), the tests run in the real bubblewrap sandbox."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import Result, StopReason
from redraft.cli import main
from redraft.testing.openai_server import ChatRequest, OpenAIServer
from tests.isolation import require_bwrap

BUGGY = "```python\ndef mean(values):\n    return sum(values) / len(values) + 1\n```"
PATCH = (
    "<<<<<<< SEARCH\n    return sum(values) / len(values) + 1\n=======\n"
    "    return sum(values) / len(values) if values else 0.0\n>>>>>>> REPLACE"
)
TESTS = """
from solution import mean


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_empty():
    assert mean([]) == 0.0
"""


def model(request: ChatRequest) -> str:
    """The actor drafts the buggy mean; the editor patches it if it was told what failed."""
    prompt = request.last_user_content
    if "What the reviewers found" in prompt:
        assert "test_mean failed: assert mean([1, 2, 3]) == 2: got 3.0, expected == 2" in prompt
        return PATCH
    return BUGGY


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDRAFT_MODEL", "REDRAFT_API_BASE", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model) as running:
        yield running


@pytest.fixture
def tests_file(tmp_path: Path) -> Path:
    path = tmp_path / "test_mean.py"
    path.write_text(TESTS)
    return path


def code(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    exit_code = main(["code", *args])
    out, err = capsys.readouterr()
    return exit_code, out, err


def test_buggy_draft_is_fixed_from_the_test_failure(
    server: OpenAIServer, tests_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_bwrap()
    out_file = tmp_path / "mean.py"
    args = ["Write mean(values)", "--tests", str(tests_file), "--sandbox", "bwrap"]
    args += ["-m", "openai/coder", "--api-base", server.base_url, "--out", str(out_file)]
    exit_code, out, err = code(capsys, *args, "--json")
    assert exit_code == 0, err
    result = Result.model_validate_json(out)
    assert result.stop_reason is StopReason.PASSED
    first, second = result.rounds
    assert not first.passed and first.critiques[0].summary == (
        "0 of 2 tests passed; failing: test_mean, test_empty"
    )
    assert "ZeroDivisionError" in first.critiques[0].feedback
    assert second.passed and second.critiques[0].summary == "2 of 2 tests passed"
    # --out gets the code itself, not the fenced answer
    assert out_file.read_text() == (
        "def mean(values):\n    return sum(values) / len(values) if values else 0.0\n"
    )
    # the actor was shown the tests
    assert "def test_empty" in server.requests[0].last_user_content


def test_bad_inputs_are_one_line_errors(
    server: OpenAIServer, tests_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["Write mean", "-m", "openai/coder", "--api-base", server.base_url]
    exit_code, _, err = code(capsys, *base, "--tests", str(tmp_path / "nope.py"))
    assert exit_code == 2 and err.startswith("error: tests file not found")
    assert len(err.strip().splitlines()) == 1

    broken = tmp_path / "broken.py"
    broken.write_text("def test_x(:\n")
    exit_code, _, err = code(capsys, *base, "--tests", str(broken))
    assert exit_code == 2 and "invalid tests" in err and "line 1" in err

    exit_code, _, err = code(capsys, *base, "--tests", str(tests_file), "--sandbox", "vm")
    assert exit_code == 2 and "auto, bwrap, docker, subprocess" in err

    exit_code, _, err = code(capsys, "Write mean", "--tests", str(tests_file))
    # no model: the default local model, not downloaded here (the tests run offline)
    assert exit_code == 2 and "no model configured, and the default local model" in err


def test_missing_bwrap_is_a_clear_error(
    tests_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    exit_code, _, err = code(
        capsys, "Write mean", "--tests", str(tests_file), "--sandbox", "bwrap", "-m", "openai/x"
    )
    assert exit_code == 2
    assert err.startswith("error: the bwrap sandbox needs the bwrap program: install bubblewrap")


def test_stdin_stdout_cases_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: OpenAIServer
) -> None:
    require_bwrap()
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"input": "1 2", "output": "3"}]))
    with OpenAIServer(lambda request: "```python\nprint(sum(map(int, input().split())))\n```") as s:
        args = ["Add two numbers from stdin", "--tests", str(cases), "--sandbox", "bwrap"]
        exit_code, out, _ = code(capsys, *args, "-m", "openai/x", "--api-base", s.base_url, "-q")
    assert exit_code == 0
    assert out.strip() == "print(sum(map(int, input().split())))"
