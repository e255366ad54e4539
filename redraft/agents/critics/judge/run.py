"""Judging one draft: the solution in a sandboxed process, the tests here, and the verdict.

`judge(request)` picks the judge for the kind of tests: the light judge (HumanEval `check`,
assert scripts) in this process, real pytest in a process of its own for test functions, and
for stdin/stdout cases one run per case whose output the host compares. In every case the
verdict is made outside the sandbox, from what the tests observed; the solution's process can
only answer calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redraft.agents.critics.judge import _wire as wire
from redraft.agents.critics.judge.bridge import Bridge
from redraft.agents.critics.judge.light import LightJudge
from redraft.agents.critics.judge.link import SandboxLink, describe_end
from redraft.agents.critics.judge.remote import Remote, SolutionFault, start_failure
from redraft.sandboxes.base import Sandbox

SOLUTION = "solution.py"
CONFIG = "_redraft_judge.json"
LOG_CHARS = 3000
PYTEST_JUDGE = str(Path(__file__).parent / "_pytest_main.py")
# How long the solution's process has to exit when told, before it is killed.
GOODBYE_S = 0.2


@dataclass(frozen=True)
class JudgeRequest:
    """What to judge and how: one draft's code against one suite, in one sandbox."""

    code: str
    kind: str  # functions (pytest), check, asserts, io
    sandbox: Sandbox
    source: str = ""
    tests_file: str = "test_solution.py"
    support: Mapping[str, str] = field(default_factory=dict)  # conftest.py, beside the tests
    cases: tuple[Mapping[str, Any], ...] = ()
    entry_point: str | None = None
    modules: tuple[str, ...] = ("solution",)  # the names the tests import the solution by
    plugins: tuple[str, ...] = ()  # pytest plugins to load (`-p name`)
    timeout_s: float = 30.0
    test_timeout_s: float = 5.0
    memory_mb: int = 512


@dataclass
class Verdict:
    """What the judge saw: each test's outcome, or why none ran."""

    tests: list[dict[str, Any]] = field(default_factory=list)
    load_error: dict[str, Any] | None = None  # the solution does not import
    tests_error: str | None = None  # the tests themselves do not run
    failure: str | None = None  # the run as a whole went wrong (time, memory, a crash)


def solution_files(request: JudgeRequest) -> dict[str, str]:
    config = {"solution": SOLUTION, "module": request.modules[0], "aliases": list(request.modules)}
    return {SOLUTION: request.code, CONFIG: json.dumps(config)}


def judge_light(request: JudgeRequest, links: list[SandboxLink] | None = None) -> Verdict:
    """HumanEval checks and assert scripts, in this process (no pytest start-up)."""
    link = SandboxLink(
        request.sandbox,
        solution_files(request),
        timeout_s=request.timeout_s,
        memory_mb=request.memory_mb,
    )
    if links is not None:
        links.append(link)
    remote = Remote(link, module=request.modules[0])
    try:
        try:
            loaded = remote.start(time.monotonic() + request.timeout_s)
        except SolutionFault as exc:
            if link.errors:
                raise link.errors[-1] from None  # the sandbox failed, not the code
            return Verdict(failure=start_failure(exc, request.timeout_s))
        if not loaded:
            return Verdict(load_error=remote.load_error)
        judge = LightJudge(
            remote,
            request.source,
            kind=request.kind,
            entry_point=request.entry_point,
            aliases=request.modules,
            test_timeout_s=request.test_timeout_s,
            restart_timeout_s=request.timeout_s,
        )
        try:
            tests = judge.run()
        except SolutionFault as exc:
            return Verdict(failure=str(exc))
        return Verdict(tests=tests, tests_error=judge.tests_error)
    finally:
        remote.goodbye()
        link.close(GOODBYE_S)


def judge_pytest(request: JudgeRequest) -> Verdict:
    """Test functions, by real pytest in a process of its own, against the solution's."""
    with tempfile.TemporaryDirectory(prefix="redraft-judge-") as tmp:
        directory = Path(tmp)
        (directory / request.tests_file).write_text(request.source, encoding="utf-8")
        for name, text in request.support.items():
            (directory / name).write_text(text, encoding="utf-8")
        (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        to_judge_r, to_judge_w = os.pipe()
        from_judge_r, from_judge_w = os.pipe()
        config = {
            "directory": str(directory),
            "tests": request.tests_file,
            "module": request.modules[0],
            "aliases": list(request.modules),
            "read_fd": to_judge_r,
            "write_fd": from_judge_w,
            "test_timeout_s": request.test_timeout_s,
            "start_timeout_s": request.timeout_s,
            "plugins": list(request.plugins),
        }
        (directory / "judge.json").write_text(json.dumps(config), encoding="utf-8")
        link = SandboxLink(
            request.sandbox,
            solution_files(request),
            timeout_s=request.timeout_s,
            memory_mb=request.memory_mb,
        )
        log = directory / "judge.log"
        try:
            with open(log, "wb") as output:
                process = subprocess.Popen(
                    [sys.executable, PYTEST_JUDGE, str(directory / "judge.json")],
                    pass_fds=(to_judge_r, from_judge_w),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    cwd=directory,
                    env={
                        **os.environ,
                        "PYTHONDONTWRITEBYTECODE": "1",
                        # Only the plugins the suite asks for: installed ones can take
                        # seconds to import, and change what a test means.
                        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    },
                )
            os.close(to_judge_r)
            os.close(from_judge_w)
            bridge = Bridge(link, from_judge_r, to_judge_w)
            try:
                process.wait(timeout=request.timeout_s + 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return Verdict(failure=f"the tests did not finish within {request.timeout_s:g} s")
            finally:
                bridge.stop()
                bridge.join(5.0)
        finally:
            link.close()
            for fd in (from_judge_r, to_judge_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        report_file = directory / "report.json"
        if not report_file.exists():
            tail = log.read_text(encoding="utf-8", errors="replace")[-LOG_CHARS:]
            return Verdict(failure=f"the pytest judge crashed: {tail.strip() or 'no output'}")
        report = json.loads(report_file.read_text(encoding="utf-8"))
        if link.errors and report.get("failure"):
            raise link.errors[-1]  # the sandbox failed, not the code
        return Verdict(
            tests=list(report.get("tests") or []),
            load_error=report.get("load_error"),
            tests_error=report.get("tests_error"),
            failure=report.get("failure"),
        )


async def judge_io(request: JudgeRequest) -> Verdict:
    """stdin/stdout cases: the solution runs as a program per case; the host compares."""
    import asyncio

    async def one(number: int, case: Mapping[str, Any]) -> dict[str, Any]:
        name = case.get("name") or f"case {number}"
        given = str(case.get("input", ""))
        started = time.perf_counter()
        result = await request.sandbox.arun(
            request.code,
            stdin=given,
            timeout_s=min(request.test_timeout_s, request.timeout_s),
            memory_mb=request.memory_mb,
        )
        outcome: dict[str, Any] = {
            "name": name,
            "passed": True,
            "input": wire.safe_repr(given),
            "stdout": result.stdout[-2000:],
            "stderr": result.stderr[-2000:],
            "duration_s": time.perf_counter() - started,
        }
        expected = str(case.get("output", ""))
        if result.timed_out:
            outcome.update(passed=False, outcome="timeout", message="did not finish in time")
        elif not result.ok:
            outcome.update(
                passed=False,
                outcome="error",
                message=f"the program failed ({describe_end(result, request.memory_mb)})",
            )
        elif _normalise(result.stdout) != _normalise(expected):
            outcome.update(
                passed=False,
                outcome="failed",
                message="wrong output",
                actual=wire.safe_repr(result.stdout),
                expected=wire.safe_repr(expected),
                op="==",
            )
        return outcome

    tests = await asyncio.gather(*(one(n, case) for n, case in enumerate(request.cases, 1)))
    return Verdict(tests=list(tests))


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())
