"""The `redraft` command: exit codes, one-line errors, what goes to stdout and stderr.

Most tests call `redraft.cli.main` in this process (LiteLLM is imported once per test run);
a subprocess is used only where a fresh interpreter is the point: the import-time check, the
installed entry point end to end, and Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import Result, StopReason
from redraft.cli import main
from redraft.demo import DEMO_TASK
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply

MODEL = "openai/test"
_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Variables that would change what the CLI does; tests start without them.
_ENV = ("REDRAFT_MODEL", "REDRAFT_API_BASE", "OPENAI_API_KEY", "TTY_COMPATIBLE", "FORCE_COLOR")


def reply(request: ChatRequest) -> ServerReply | str:
    """A model that behaves by role, told apart by the system prompt like a real one would be.

    The critic passes a draft once it has been revised, unless the task says 'impossible';
    the editor fails with a 400 when the task says 'editor breaks'.
    """
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    prompt = request.last_user_content
    if request.response_format is not None or "strict, fair reviewer" in system:
        match = _ANSWER.search(prompt)
        draft = match.group(1) if match else ""
        good = "revised" in draft and "impossible" not in prompt
        return json.dumps(
            {
                "feedback": "Vivid and correct." if good else "The imagery is generic.",
                "summary": "Good." if good else "Generic imagery.",
                "issues": []
                if good
                else [
                    {
                        "quote": draft[:20],
                        "problem": "generic imagery",
                        "suggestion": "name one concrete sound of rain",
                        "severity": "major",
                    }
                ],
                "score": 5 if good else 2,
            }
        )
    if "expert editor" in system:
        if "editor breaks" in prompt:
            return ServerReply("the model refused the request", status=400)
        return f"A revised haiku about rain, take {request.index}"
    return "A haiku about rain"


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(reply) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def fresh_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- the offline demo ------------------------------------------------------------------------


def test_demo_runs_in_a_fresh_process_without_importing_litellm() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "redraft", "demo"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=fresh_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "return (ordered[middle - 1] + ordered[middle]) / 2" in done.stdout
    imported = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported, "no -X importtime output"
    assert not [line for line in imported if re.search(r"\|\s+litellm(\.|$)", line)]
    messages = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert "offline demo: the model replies are scripted" in messages[0]
    assert any(line.startswith("passed · stop: passed") for line in messages)
    assert "redraft refine --model" in messages[-1]


def test_demo_json_is_a_passed_result(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--json")
    assert code == 0
    result = Result.model_validate_json(out)
    assert result.passed
    assert result.stop_reason is StopReason.PASSED
    assert result.task == DEMO_TASK
    assert [r.critiques[0].raw_score for r in result.rounds] == [2, 3, 5]
    first_issues = result.rounds[0].critiques[0].issues
    assert first_issues[0].quote == "values.sort()"
    assert first_issues[0].location == "line 3"
    assert all(issue.suggestion for issue in first_issues)
    assert "offline demo" in err


def test_demo_on_a_terminal_shows_live_progress_and_the_rounds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich's switch: stderr is a terminal
    monkeypatch.setattr("redraft.cli.commands.DEMO_DELAY_S", 0.0)
    code, out, err = run(capsys, "demo")
    assert code == 0
    assert out.startswith("```python\ndef median(")  # stdout holds the final text only
    screen = _ANSI.sub("", err)
    for expected in (
        "round 0  first draft",
        "rubric  0.25 ✗  Needs work",
        "round 1  revision (patch, 2 blocks)",
        "round 2  revision (patch, 1 block)",
        "rubric  1.00 ✓",
        "stop: passed · every critic passed",
        "Rounds",
        "first draft → final",
    ):
        assert expected in screen


def test_ctrl_c_exits_130_with_one_line() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "redraft", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=fresh_env(TTY_COMPATIBLE="1"),  # the terminal demo is paced, so it is mid-run
    )
    assert process.stderr is not None
    assert b"offline demo" in process.stderr.readline()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err.decode()
    assert _ANSI.sub("", err.decode()).splitlines()[-1] == "error: interrupted"


# -- refine with a real model over HTTP ------------------------------------------------------


def test_refine_end_to_end_in_a_fresh_process(server: OpenAIServer, tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("criteria: [Names one concrete sound of rain.]\n", encoding="utf-8")
    reference = tmp_path / "reference.txt"
    reference.write_text("Drops drum on the tin roof", encoding="utf-8")
    out = tmp_path / "haiku.txt"
    server.reset()
    done = subprocess.run(
        [sys.executable, "-m", "redraft", "refine", "-m", MODEL, "--api-base", server.base_url,
         "--rubric", str(rubric), "--reference", str(reference), "--json", "--out", str(out)],
        input="Write a haiku about rain",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=fresh_env(),
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = Result.model_validate_json(done.stdout)
    assert result.passed
    assert result.task.instruction == "Write a haiku about rain"
    assert result.final.text.startswith("A revised haiku about rain")
    assert out.read_text(encoding="utf-8") == result.final.text + "\n"
    assert done.stderr.startswith("passed · stop: passed")
    assert len(done.stderr.splitlines()) == 1
    critic_prompts = [r.prompt for r in server.requests if "strict, fair reviewer" in r.prompt]
    assert "Names one concrete sound of rain." in critic_prompts[0]
    assert "Drops drum on the tin roof" in critic_prompts[0]


def test_refine_prints_the_final_text_and_a_summary(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "refine", "Write a haiku", "-m", MODEL, "--api-base", server.base_url
    )
    assert code == 0
    assert out.startswith("A revised haiku about rain")
    assert err.startswith("passed · stop: passed · best round 1")


def test_task_from_a_file(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    task = tmp_path / "task.md"
    task.write_text("Write a haiku about autumn rain\n", encoding="utf-8")
    context = tmp_path / "context.txt"
    context.write_text("The reader lives in Kyoto.", encoding="utf-8")
    server.reset()
    code, out, _ = run(
        capsys, "refine", f"@{task}", "--context", str(context), "-m", MODEL,
        "--api-base", server.base_url, "--quiet",
    )  # fmt: skip
    assert code == 0
    assert out.startswith("A revised haiku")
    actor_prompt = server.requests[0].prompt
    assert "Write a haiku about autumn rain" in actor_prompt
    assert "The reader lives in Kyoto." in actor_prompt


@pytest.mark.parametrize("args", [["-"], []])
def test_task_from_stdin(
    server: OpenAIServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Write a haiku about spring rain\n"))
    server.reset()
    code, out, err = run(capsys, "refine", *args, "-m", MODEL, "--api-base", server.base_url, "-q")
    assert code == 0
    assert out.startswith("A revised haiku")
    assert err == ""  # --quiet
    assert "Write a haiku about spring rain" in server.requests[0].prompt


def test_exit_1_when_the_rounds_run_out(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "refine", "An impossible haiku", "-m", MODEL, "--api-base", server.base_url,
        "--rounds", "2", "--json",
    )  # fmt: skip
    assert code == 1
    result = Result.model_validate_json(out)
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert len(result.rounds) == 2
    assert err.startswith("not passed · stop: max_rounds")


@pytest.mark.parametrize(("patience", "rounds"), [("2", 3), ("off", 5)])
def test_patience_stops_a_run_that_no_longer_improves_unless_off(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], patience: str, rounds: int
) -> None:
    code, out, _ = run(
        capsys, "refine", "An impossible haiku", "-m", MODEL, "--api-base", server.base_url,
        "--max-rounds", "5", "--patience", patience, "--json",
    )  # fmt: skip
    assert code == 1
    result = Result.model_validate_json(out)
    assert len(result.rounds) == rounds
    expected = StopReason.NO_IMPROVEMENT if patience == "2" else StopReason.MAX_ROUNDS
    assert result.stop_reason is expected


def test_exit_3_when_a_model_fails_mid_run(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "refine", "A haiku, but the editor breaks", "-m", MODEL,
        "--api-base", server.base_url,
    )  # fmt: skip
    assert code == 3
    assert out == "A haiku about rain\n"  # the best draft so far is still the output
    line = one_error_line(err)
    assert "request rejected (400)" in line
    assert "the best draft so far" in line


def test_refine_on_a_terminal_shows_a_stop_the_editor_caused(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    code, out, err = run(
        capsys, "refine", "A haiku, but the editor breaks", "-m", MODEL,
        "--api-base", server.base_url,
    )  # fmt: skip
    assert code == 3
    assert out == "A haiku about rain\n"
    screen = _ANSI.sub("", err)
    assert f"redraft · {MODEL} · up to 4 rounds" in screen
    assert "rubric  0.25 ✗  Generic imagery." in screen
    assert "stop: error · a model call failed" in screen
    assert "request rejected (400)" in screen
    assert "Traceback" not in screen


def test_exit_3_when_the_server_is_down(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No backoff between the retries, or this test would wait about 18 s.
    monkeypatch.setattr("redraft.models.litellm._BACKOFF", lambda state: 0.0)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, out, err = run(capsys, "refine", "Write a haiku", "-m", MODEL, "--api-base", url)
    assert code == 3
    assert out == ""
    line = one_error_line(err)
    assert f"cannot connect to {url}: connection refused" in line


# -- usage and configuration errors: exit 2, one line ----------------------------------------


def test_no_model_configured(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "refine", "Write a haiku")
    assert code == 2
    line = one_error_line(err)
    # nothing configured: the default local model, which is not downloaded here (offline)
    assert "no model configured, and the default local model" in line
    assert "REDRAFT_MODEL" in line and "--api-base" in line and "hf:/path/to/model" in line
    assert "redraft demo" in line
    assert out == ""


def test_model_from_the_environment(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDRAFT_MODEL", MODEL)
    monkeypatch.setenv("REDRAFT_API_BASE", server.base_url)
    code, out, _ = run(capsys, "refine", "Write a haiku", "-q")
    assert code == 0
    assert out.startswith("A revised haiku")


def test_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "refine", "Write a haiku", "-m", "gpt-nonsense")
    assert code == 2
    assert "unknown model 'gpt-nonsense'" in one_error_line(err)


def test_missing_api_key_fails_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "refine", "Write a haiku", "-m", "openai/gpt-4o-mini")
    assert code == 2
    line = one_error_line(err)
    assert "missing API key" in line
    assert "OPENAI_API_KEY" in line


def test_missing_api_key_of_the_critic_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "refine", "Write a haiku", "-m", "ollama/llama3.1",
        "--critic-model", "openai/gpt-4o-mini",
    )  # fmt: skip
    assert code == 2
    assert "OPENAI_API_KEY" in one_error_line(err)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("rubric.yaml", b"criteria: [a, b\n", "not valid YAML at line 2"),
        ("rubric.yaml", b"criteria: [a]\npass_score: 9\n", "'pass_score' must be an integer"),
        ("rubric.md", b"\xff\xfe judge \xe9", "is not UTF-8 text"),
        ("rubric.md", b"", "is empty"),
        (None, b"", "rubric file not found"),
    ],
)
def test_a_bad_rubric_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str | None,
    content: bytes,
    expected: str,
) -> None:
    path = tmp_path / (name or "missing.yaml")
    if name is not None:
        path.write_bytes(content)
    code, _, err = run(capsys, "refine", "Write a haiku", "-m", MODEL, "--rubric", str(path))
    assert code == 2
    line = one_error_line(err)
    assert expected in line
    assert str(path) in line


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["   "], "", "the task is empty"),
        (["-"], "  \n", "the task on stdin is empty"),
        ([], "", "the task on stdin is empty"),
        (["@"], "", "'@' needs a file name"),
        (["@/nonexistent/task.txt"], "", "task file not found: /nonexistent/task.txt"),
        (["x", "--reference", "/nonexistent/ref.txt"], "", "reference file not found"),
        (["x", "--out", "/nonexistent/dir/out.txt"], "", "folder /nonexistent/dir does not exist"),
        (["x", "--rounds", "0"], "", "Invalid value for '--max-rounds' / '--rounds'"),
        (["x", "--threshold", "1.5"], "", "Invalid value for '--threshold'"),
        (["x", "--rond", "3"], "", "No such option: --rond"),
    ],
)
def test_bad_input(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    stdin: str,
    expected: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = run(capsys, "refine", *args, "-m", MODEL)
    assert code == 2
    assert expected in one_error_line(err)
    assert out == ""


def test_no_task_with_stdin_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    code, _, err = run(capsys, "refine", "-m", MODEL)
    assert code == 2
    assert "no task: give it as an argument, as @FILE, or on stdin" in one_error_line(err)


# -- the rest ----------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from redraft import __version__

    assert run(capsys, "version") == (0, f"redraft {__version__}\n", "")
    assert run(capsys, "--version") == (0, f"redraft {__version__}\n", "")


def test_no_command_shows_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys)
    assert code == 2
    assert "refine" in out + err
    assert "demo" in out + err


def test_a_bug_keeps_its_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(task: str | None) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr("redraft.cli.commands.read_task", broken)
    code, _, err = run(capsys, "refine", "x")
    assert code == 70
    assert "Traceback" in err
    assert "RuntimeError: boom" in err
    assert err.splitlines()[-1].startswith("error: unexpected RuntimeError: this is a bug")
