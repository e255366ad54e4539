"""A critic that runs the draft's code against the user's tests in a sandbox.

Execution feedback is the strongest signal a loop can get: models cannot predict what a
program does. The report says, per test, what failed and where: the failing assertion with
its actual and expected values, the traceback cut down to the solution and the tests, and what
the code printed. Score = the fraction of tests passed; the draft passes when all do.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from redraft.agents.base import AgentContext
from redraft.agents.prompts import DEFAULT_PROMPTS
from redraft.errors import ConfigError
from redraft.sandboxes.base import ExecResult, Limits, Sandbox
from redraft.sandboxes.choose import get_sandbox
from redraft.types import Critique, Draft, Issue, Task

TestKind = Literal["auto", "functions", "asserts", "check", "io"]
HERE = Path(__file__).parent
HARNESS = (HERE / "_tests_harness.py").read_text(encoding="utf-8")
PYTEST_SHIM = (HERE / "_pytest_shim.py").read_text(encoding="utf-8")
SOLUTION = "solution.py"
TESTS = "test_solution.py"
MAIN = "import _redraft_harness\n_redraft_harness.main()\n"
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", ""}


class IOCase(BaseModel):
    """One stdin/stdout case: the program is run with `input` and must print `output`."""

    model_config = ConfigDict(extra="forbid")

    input: str = ""
    output: str
    name: str | None = None


class TestOutcome(BaseModel):
    """One test's result, as the harness in the sandbox reported it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    passed: bool
    outcome: Literal["failed", "error", "timeout", "memory"] | None = None
    message: str | None = None
    actual: str | None = None
    expected: str | None = None
    op: str | None = None
    expression: str | None = None
    traceback: str | None = None
    solution_line: dict[str, Any] | None = None
    line: int | None = None
    test_line: int | None = None
    input: str | None = None
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class TestSuite:
    """The tests, checked: Python test source (functions, asserts or check) or I/O cases."""

    __test__ = False  # not a pytest test class

    kind: Literal["functions", "asserts", "check", "io"]
    source: str = ""
    cases: tuple[IOCase, ...] = ()
    entry_point: str | None = None
    origin: str = "tests"
    names: tuple[str, ...] = field(default=())

    @classmethod
    def from_source(
        cls,
        source: str,
        *,
        kind: TestKind = "auto",
        entry_point: str | None = None,
        origin: str = "tests",
    ) -> TestSuite:
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise ConfigError(
                f"invalid tests in {origin}: {exc.msg} at line {exc.lineno}; "
                "give Python test code (test_* functions, asserts, or check(candidate))"
            ) from exc
        functions = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test")
        ]
        classes = [
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test")
        ]
        has_check = any(
            isinstance(node, ast.FunctionDef) and node.name == "check" for node in tree.body
        )
        asserts = [node for node in tree.body if isinstance(node, ast.Assert)]
        if kind == "auto":
            if functions or classes:
                kind = "functions"
            elif has_check:
                kind = "check"
            elif asserts:
                kind = "asserts"
            else:
                raise ConfigError(
                    f"no tests found in {origin}: write test_* functions, top-level assert "
                    "statements, or a check(candidate) function"
                )
        if kind == "check" and not has_check:
            raise ConfigError(f"{origin} defines no check(candidate) function")
        if kind == "io":
            raise ConfigError("I/O cases come as a list of {input, output}, not Python source")
        return cls(
            kind=kind,
            source=source,
            entry_point=entry_point,
            origin=origin,
            names=tuple(functions + classes),
        )

    @classmethod
    def from_cases(cls, cases: Sequence[Mapping[str, Any]], *, origin: str = "tests") -> TestSuite:
        try:
            parsed = tuple(IOCase.model_validate(case) for case in cases)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(
                f"invalid I/O case in {origin} ({where}: {first['msg']}); "
                "each case needs an output and may have an input and a name"
            ) from exc
        if not parsed:
            raise ConfigError(f"no tests found in {origin}: the list of I/O cases is empty")
        return cls(kind="io", cases=parsed, origin=origin)

    @classmethod
    def from_file(
        cls, path: str | Path, *, kind: TestKind = "auto", entry_point: str | None = None
    ) -> TestSuite:
        """A .py file of tests, or a .json/.yaml list of {input, output} cases."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"tests file not found: {file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read tests file {file}: {exc}") from exc
        if file.suffix.lower() in (".json", ".yaml", ".yml") or kind == "io":
            try:
                data = yaml.safe_load(text)  # YAML is a superset of JSON
            except yaml.YAMLError as exc:
                raise ConfigError(f"tests file {file} is not valid JSON/YAML: {exc}") from exc
            if isinstance(data, dict) and "cases" in data:
                data = data["cases"]
            if not isinstance(data, list):
                raise ConfigError(f"tests file {file}: expected a list of {{input, output}} cases")
            return cls.from_cases(data, origin=str(file))
        return cls.from_source(text, kind=kind, entry_point=entry_point, origin=str(file))


def extract_code(text: str) -> str:
    """The code in a draft: its Python fenced blocks joined, or the whole text if none."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    chosen = python or [body for _, body in blocks]
    return "\n\n".join(b.rstrip() for b in chosen) + "\n" if chosen else text


class TestsCritic:
    """Runs the draft's code with `tests` in a sandbox and reports each failure precisely.

    `tests` is a `TestSuite`, Python test source (test_* functions pytest-style, top-level
    asserts, or a HumanEval-style `check(candidate)` with `entry_point`), a path to a test
    file (.py, or .json/.yaml I/O cases), or a list of {"input", "output"} cases. The
    solution is importable as `solution` and its names are visible to the tests directly.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        tests: TestSuite | str | Path | Sequence[Mapping[str, Any]],
        *,
        sandbox: Sandbox | str = "auto",
        entry_point: str | None = None,
        kind: TestKind = "auto",
        name: str = "tests",
        timeout_s: float = 30.0,
        test_timeout_s: float = 5.0,
        memory_mb: int = 512,
        weight: float = 1.0,
        max_issues: int = 8,
    ) -> None:
        self.suite = _suite(tests, kind=kind, entry_point=entry_point)
        self._sandbox = sandbox
        self._name = name
        self.timeout_s = timeout_s
        self.test_timeout_s = test_timeout_s
        self.memory_mb = memory_mb
        self.weight = weight
        self.max_issues = max_issues

    @property
    def name(self) -> str:
        return self._name

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, created on first use (so building a critic starts nothing)."""
        if isinstance(self._sandbox, str):
            self._sandbox = get_sandbox(
                self._sandbox, limits=Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)
            )
        return self._sandbox

    def files(self, code: str) -> dict[str, str]:
        config = {
            "kind": self.suite.kind,
            "solution": SOLUTION,
            "tests": TESTS if self.suite.kind != "io" else None,
            "entry_point": self.suite.entry_point,
            "test_timeout_s": self.test_timeout_s,
            "cases": [case.model_dump() for case in self.suite.cases],
        }
        files = {
            SOLUTION: code,
            "_redraft_harness.py": HARNESS,
            "_redraft_config.json": json.dumps(config),
            "pytest.py": PYTEST_SHIM,
        }
        if self.suite.kind != "io":
            files[TESTS] = self.suite.source
        return files

    async def run_tests(self, code: str) -> tuple[list[TestOutcome], str | None, ExecResult]:
        """The outcome of each test, or why none ran, and the raw sandbox result."""
        result = await self.sandbox.arun(
            MAIN, files=self.files(code), timeout_s=self.timeout_s, memory_mb=self.memory_mb
        )
        if result.timed_out:
            return [], f"the tests did not finish within {self.timeout_s:g} s", result
        if result.oom_killed and result.exit_code != 0:
            return [], f"the code ran out of memory (limit {self.memory_mb} MB)", result
        try:
            report = json.loads(result.stdout)
        except ValueError:
            detail = _tail(result.stderr) or f"exit code {result.exit_code}"
            return [], f"the test run crashed: {detail}", result
        error = report.get("load_error")
        if error:
            where = error.get("solution_line")
            at = f" (line {where['line']}: {where['text']})" if where else ""
            message = f"the code does not run: {error['message']}{at}\n{error['traceback']}"
            return [], message, result
        return [TestOutcome.model_validate(t) for t in report["tests"]], None, result

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        started = time.perf_counter()
        code = extract_code(draft.text)
        outcomes, failure, result = await self.run_tests(code)
        critique = self._critique(code, outcomes, failure, result)
        return critique.model_copy(
            update={"duration_s": time.perf_counter() - started, "weight": self.weight}
        )

    def _critique(
        self, code: str, outcomes: list[TestOutcome], failure: str | None, result: ExecResult
    ) -> Critique:
        failed = [o for o in outcomes if not o.passed]
        total = len(outcomes)
        if failure is not None:
            summary = failure.splitlines()[0]
            issues = [Issue(problem=failure, severity="critical", quote=_quote(failure, code))]
            score = 0.0
        else:
            score = (total - len(failed)) / total if total else 0.0
            summary = f"{total - len(failed)} of {total} tests passed"
            if failed:
                names = ", ".join(o.name for o in failed[:5])
                more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
                summary += f"; failing: {names}{more}"
            issues = [_issue(o) for o in failed[: self.max_issues]]
        # The run's own output is the harness's report, unless the harness never got to it.
        raw = failure is not None and not result.stdout.startswith("{")
        feedback = DEFAULT_PROMPTS.render(
            "tests_report.md",
            outcomes=outcomes,
            failed=failed,
            failure=failure,
            stdout=_tail(result.stdout) if raw else "",
            stderr=_tail(result.stderr) if raw else "",
        )
        return Critique(
            critic=self.name,
            score=score,
            raw_score=score,
            passed=failure is None and total > 0 and not failed,
            summary=summary,
            feedback=feedback,
            issues=issues,
        )


def _suite(
    tests: TestSuite | str | Path | Sequence[Mapping[str, Any]],
    *,
    kind: TestKind,
    entry_point: str | None,
) -> TestSuite:
    if isinstance(tests, TestSuite):
        return tests
    if isinstance(tests, Path):
        return TestSuite.from_file(tests, kind=kind, entry_point=entry_point)
    if isinstance(tests, str):
        return TestSuite.from_source(tests, kind=kind, entry_point=entry_point)
    return TestSuite.from_cases(tests)


def _issue(outcome: TestOutcome) -> Issue:
    what = outcome.message or outcome.outcome or "failed"
    if outcome.outcome == "timeout":
        problem = f"{outcome.name} {what} (an endless loop, or far too slow)"
    elif outcome.expression and outcome.actual is not None and outcome.expected is not None:
        problem = (
            f"{outcome.name} failed: {outcome.expression}: got {outcome.actual}, "
            f"expected {outcome.op} {outcome.expected}"
        )
    elif outcome.actual is not None and outcome.expected is not None:
        problem = f"{outcome.name}: {what}: got {outcome.actual}, expected {outcome.expected}"
        if outcome.input is not None:
            problem += f" (input {outcome.input})"
    else:
        problem = f"{outcome.name} failed: {what}"
        if outcome.expression:
            problem += f" at {outcome.expression}"
    line = outcome.solution_line
    return Issue(
        problem=problem,
        quote=str(line["text"]) if line and line.get("text") else None,
        location=f"solution line {line['line']}" if line else _test_location(outcome),
        severity="critical" if outcome.outcome in ("timeout", "memory", "error") else "major",
    )


def _test_location(outcome: TestOutcome) -> str:
    line = outcome.test_line or outcome.line
    return f"{outcome.name} (tests line {line})" if line else outcome.name


def _quote(failure: str, code: str) -> str | None:
    """The solution line a load failure points at, if it is in the code verbatim."""
    match = re.search(r"\(line \d+: (.+?)\)", failure)
    if match and match.group(1) in code:
        return match.group(1)
    return None


def _tail(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


__all__ = ["IOCase", "TestOutcome", "TestSuite", "TestsCritic", "extract_code"]
