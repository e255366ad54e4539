"""A critic that runs the draft's code in a sandbox and judges it with the user's tests.

Execution feedback is the strongest signal a loop can get: models cannot predict what a
program does. The verdict must also be one the code cannot forge, so the tests never run in
the solution's process: the solution runs sandboxed and answers calls, the tests run in a
judge outside the sandbox (see `judge/`). The report says, per test, what failed and where:
the failing assertion with its actual and expected values, the traceback cut down to the
solution and the tests, and what the code printed. Score = the fraction of tests passed
(skipped ones count neither way); the draft passes when all do.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.machinery
import importlib.util
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from redraft.agents.base import AgentContext
from redraft.agents.critics.judge.run import (
    JudgeRequest,
    Verdict,
    judge_io,
    judge_light,
    judge_pytest,
)
from redraft.agents.prompts import PromptLibrary
from redraft.checks import identifier, kind_of, number, one_of, shown, text, whole_number
from redraft.errors import ConfigError
from redraft.sandboxes.base import Limits, Sandbox, SandboxError
from redraft.sandboxes.choose import get_sandbox, sandbox_choice
from redraft.types import Critique, Draft, Issue, Task

TestKind = Literal["auto", "functions", "asserts", "check", "io"]
TEST_KINDS = ("auto", "functions", "asserts", "check", "io")
TESTS = "test_solution.py"
# The most memory a run may be given: 1 TiB (more overflows the limit the sandbox sets).
MAX_MEMORY_MB = 1 << 20
# A one-line `tests` string with one of these endings names a file rather than holding tests.
_PATH_LIMIT = 4096  # PATH_MAX on Linux
_FILE_SUFFIXES = (".py", ".json", ".yaml", ".yml")
# What of a report may reach the editor's prompt, per field.
FIELD_CHARS = {
    "name": 200,
    "message": 2000,
    "actual": 500,
    "expected": 500,
    "expression": 500,
    "input": 500,
    "traceback": 4000,
    "stdout": 2000,
    "stderr": 2000,
}
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", ""}


class IOCase(BaseModel):
    """One stdin/stdout case: the program is run with `input` and must print `output`."""

    model_config = ConfigDict(extra="forbid")

    input: str = ""
    output: str
    name: str | None = None


class TestOutcome(BaseModel):
    """One test's result, as the judge observed it; every text is capped for the prompt."""

    model_config = ConfigDict(extra="ignore")

    name: str
    passed: bool
    outcome: Literal["failed", "error", "timeout", "memory", "skipped", "xfailed"] | None = None
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

    @field_validator(*FIELD_CHARS, mode="after")
    @classmethod
    def _capped(cls, value: str | None, info: Any) -> str | None:
        limit = FIELD_CHARS[info.field_name]
        if value is None or len(value) <= limit:
            return value
        return value[:limit] + f"... [{len(value) - limit} more characters]"

    @property
    def counted(self) -> bool:
        """A skipped test checked nothing: it counts neither as passed nor as failed."""
        return self.outcome != "skipped"


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
    modules: tuple[str, ...] = ("solution",)  # the names the tests import the solution by
    support: tuple[tuple[str, str], ...] = ()  # files beside the tests (conftest.py)

    @classmethod
    def from_source(
        cls,
        source: str,
        *,
        kind: TestKind = "auto",
        entry_point: str | None = None,
        origin: str = "tests",
        modules: Sequence[str] | None = None,
        support: Mapping[str, str] | None = None,
    ) -> TestSuite:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
            problem = exc.msg if isinstance(exc, SyntaxError) else str(exc)
            line = getattr(exc, "lineno", None)
            raise ConfigError(
                f"invalid tests in {origin}: {problem}"
                + (f" at line {line}" if line is not None else "")
                + "; give Python test code (test_* functions, asserts, or check(candidate))"
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
            modules=tuple(modules) if modules else solution_modules(tree),
            support=tuple(sorted((support or {}).items())),
        )

    @classmethod
    def from_cases(cls, cases: Sequence[Mapping[str, Any]], *, origin: str = "tests") -> TestSuite:
        parsed: list[IOCase] = []
        for position, case in enumerate(cases, 1):
            if not isinstance(case, Mapping):
                raise ConfigError(
                    f"invalid I/O case {position} in {origin}: it is {kind_of(case)} "
                    f"{shown(case)}, not a mapping; write each case as {{input: ..., output: ...}}"
                )
            try:
                parsed.append(IOCase.model_validate(case))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                raise ConfigError(
                    f"invalid I/O case {position} in {origin} ({where}: {first['msg']}); "
                    "each case needs an output and may have an input and a name"
                ) from exc
        if not parsed:
            raise ConfigError(f"no tests found in {origin}: the list of I/O cases is empty")
        return cls(kind="io", cases=tuple(parsed), origin=origin)

    @classmethod
    def from_file(
        cls, path: str | Path, *, kind: TestKind = "auto", entry_point: str | None = None
    ) -> TestSuite:
        """A .py file of tests, or a .json/.yaml list of {input, output} cases."""
        file = Path(path)
        if file.is_dir():
            raise ConfigError(f"tests file {file} is a folder: give the test file inside it")
        try:
            # utf-8-sig: editors on Windows add a byte-order mark that is not part of the text.
            text = file.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"tests file not found: {file}") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"tests file {file} is not UTF-8 text (a binary file?): give Python tests or "
                "a .json/.yaml list of {input, output} cases"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read tests file {file}: {exc.strerror or exc}") from None
        if file.suffix.lower() in (".json", ".yaml", ".yml") or kind == "io":
            try:
                data = yaml.safe_load(text)  # YAML is a superset of JSON
            except yaml.YAMLError as exc:
                raise ConfigError(
                    f"tests file {file} is not valid JSON/YAML ({_yaml_problem(exc)}): give a "
                    "list of {input, output} cases"
                ) from None
            if isinstance(data, dict) and "cases" in data:
                data = data["cases"]
            if not isinstance(data, list):
                raise ConfigError(f"tests file {file}: expected a list of {{input, output}} cases")
            return cls.from_cases(data, origin=str(file))
        conftest = file.parent / "conftest.py"
        support = (
            {"conftest.py": conftest.read_text(encoding="utf-8-sig")} if conftest.is_file() else {}
        )
        return cls.from_source(
            text, kind=kind, entry_point=entry_point, origin=str(file), support=support
        )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what, in one line, without the parser's own context lines."""
    problem = getattr(exc, "problem", None) or "cannot be parsed"
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return f"{where}{' '.join(str(problem).split())}"


def solution_modules(tree: ast.Module) -> tuple[str, ...]:
    """`solution`, and the modules the tests import that are not installed here: the names
    the tests know the solution by (`from mean import mean`)."""
    names = ["solution"]
    for node in ast.walk(tree):
        imported: list[str] = []
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported = [node.module]
        for name in imported:
            root = name.split(".")[0]
            if not _installed(root):
                names.extend(n for n in (root, name) if n not in names)
    return tuple(names)


def _installed(name: str) -> bool:
    """A module of the standard library or of site-packages (not one in the current
    directory: a `mean.py` of yours there is not what the tests mean by `mean`)."""
    if name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ()):
        return True
    here = {"", ".", os.getcwd()}
    path = [entry for entry in sys.path if entry not in here]
    for finder in sys.meta_path:
        try:
            if finder is importlib.machinery.PathFinder:
                spec = importlib.machinery.PathFinder.find_spec(name, path)
            else:
                spec = finder.find_spec(name, None)  # editable installs, zip imports...
        except (ImportError, ValueError, AttributeError, TypeError):
            continue
        if spec is not None:
            return True
    return False


def extract_code(text: str) -> str:
    """The code in a draft: its Python fenced blocks joined, or the whole text if none."""
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(text)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    chosen = python or [body for _, body in blocks]
    return "\n\n".join(b.rstrip() for b in chosen) + "\n" if chosen else text


class TestsCritic:
    """Runs the draft's code in a sandbox, judges it with `tests` outside, and reports each
    failure precisely.

    `tests` is a `TestSuite`, Python test source (test_* functions, run by real pytest;
    top-level asserts; or a HumanEval-style `check(candidate)` with `entry_point`), a path to
    a test file (.py, with its conftest.py, or .json/.yaml I/O cases; a `Path`, or a one-line
    string that names an existing file or ends in .py/.json/.yaml/.yml), or a list of
    {"input", "output"} cases. `sandbox` is a name ("auto", "bwrap", "docker",
    "subprocess"; checked now, started on first use) or a `Sandbox`. The solution is
    importable as `solution`, as any module the tests import that is not installed
    (`from mean import mean`), and as `module`; its names are visible to the tests directly.
    pytest runs with no plugins but `pytest_plugins` (such as "pytest_asyncio"): installed
    ones are not loaded on their own.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        tests: TestSuite | str | Path | Sequence[Mapping[str, Any]],
        *,
        sandbox: Sandbox | str = "auto",
        entry_point: str | None = None,
        kind: TestKind = "auto",
        module: str | Sequence[str] | None = None,
        pytest_plugins: Sequence[str] = (),
        name: str = "tests",
        timeout_s: float = 30.0,
        test_timeout_s: float = 5.0,
        memory_mb: int = 512,
        weight: float = 1.0,
        max_issues: int = 8,
    ) -> None:
        kind = cast(TestKind, one_of("kind", kind, TEST_KINDS))
        if entry_point is not None:
            identifier("entry_point", entry_point, what="the function check(candidate) receives")
        text("name", name)
        if isinstance(module, str) or module is None:
            modules = tuple(m for m in (module,) if m is not None)
        elif isinstance(module, Sequence) and all(isinstance(m, str) for m in module):
            modules = tuple(module)
        else:
            raise ConfigError(
                f"module must be a module name or a list of them; got {shown(module)}"
            )
        for each in modules:
            if not all(part.isidentifier() for part in each.split(".")):
                raise ConfigError(
                    f"module must be a module name the tests import, e.g. 'mean'; got {each!r}"
                )
        for value, what in ((timeout_s, "timeout_s"), (test_timeout_s, "test_timeout_s")):
            number(what, value, above=0.0, meaning="seconds")
        whole_number("memory_mb", memory_mb, minimum=16, maximum=MAX_MEMORY_MB, example=512)
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        whole_number("max_issues", max_issues, minimum=1, example=8)
        if isinstance(pytest_plugins, str) or not all(isinstance(p, str) for p in pytest_plugins):
            raise ConfigError(
                "pytest_plugins must be a list of plugin module names, e.g. "
                f"('pytest_asyncio',); got {shown(pytest_plugins)}"
            )
        for plugin in pytest_plugins:
            _check_plugin(plugin)
        self.suite = _suite(tests, kind=kind, entry_point=entry_point, modules=modules)
        self._sandbox = sandbox_choice(sandbox)
        self._sandbox_name = self._sandbox if isinstance(self._sandbox, str) else None
        self.pytest_plugins = tuple(pytest_plugins)
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

    def close(self) -> None:
        """Stop the sandbox this critic started (a named one; a `Sandbox` passed in is its
        owner's to close). The critic stays usable: its next run starts a new one."""
        if self._sandbox_name is not None and not isinstance(self._sandbox, str):
            sandbox, self._sandbox = self._sandbox, self._sandbox_name
            sandbox.close()

    def request(self, code: str) -> JudgeRequest:
        """What the judge is given for one draft's code."""
        suite = self.suite
        return JudgeRequest(
            code=code,
            kind=suite.kind,
            sandbox=self.sandbox,
            source=suite.source,
            tests_file=TESTS,
            support=dict(suite.support),
            cases=tuple(case.model_dump() for case in suite.cases),
            entry_point=suite.entry_point,
            modules=suite.modules,
            plugins=self.pytest_plugins,
            timeout_s=self.timeout_s,
            test_timeout_s=self.test_timeout_s,
            memory_mb=self.memory_mb,
        )

    async def run_tests(self, code: str) -> tuple[list[TestOutcome], str | None]:
        """The outcome of each test, or why none ran."""
        verdict = await self.judge(self.request(code))
        if verdict.failure is not None:
            return [], verdict.failure
        error = verdict.load_error
        if error:
            where = error.get("line")
            at = f" (line {where['line']}: {where['text']})" if where else ""
            kind = f"{error['name']}: " if error.get("name") else ""
            message = f"the code does not run: {kind}{error.get('message', '')}{at}"
            traceback = str(error.get("traceback") or "").strip()
            return [], message + (f"\n{_tail(traceback, 4000)}" if traceback else "")
        if verdict.tests_error:
            lines = [line for line in verdict.tests_error.strip().splitlines() if line.strip()]
            why = lines[-1].strip() if lines else "they fail to load"
            return [], f"the tests do not run: {why}\n{_tail(verdict.tests_error, 4000)}"
        try:
            return [TestOutcome.model_validate(test) for test in verdict.tests], None
        except ValidationError as exc:
            return [], f"the judge's report is malformed: {exc.errors()[0]['msg']}"

    async def judge(self, request: JudgeRequest) -> Verdict:
        if request.kind == "io":
            return await judge_io(request)
        run = judge_pytest if request.kind == "functions" else judge_light
        try:
            return await asyncio.wait_for(asyncio.to_thread(run, request), self.timeout_s + 15)
        except asyncio.TimeoutError:
            return Verdict(failure=f"the tests did not finish within {self.timeout_s:g} s")

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        started = time.perf_counter()
        code = extract_code(draft.text)
        try:
            outcomes, failure = await self.run_tests(code)
        except SandboxError as exc:
            # The sandbox itself failed, not the code: an error of the critic's.
            return Critique.failed(self.name, str(exc)).model_copy(update={"weight": self.weight})
        critique = self._critique(code, outcomes, failure, ctx.prompts)
        return critique.model_copy(
            update={"duration_s": time.perf_counter() - started, "weight": self.weight}
        )

    def _critique(
        self, code: str, outcomes: list[TestOutcome], failure: str | None, prompts: PromptLibrary
    ) -> Critique:
        counted = [o for o in outcomes if o.counted]
        failed = [o for o in counted if not o.passed]
        skipped = len(outcomes) - len(counted)
        total = len(counted)
        if failure is not None:
            summary = failure.splitlines()[0]
            issues = [Issue(problem=failure, severity="critical", quote=_quote(failure, code))]
            score = 0.0
        else:
            score = (total - len(failed)) / total if total else 0.0
            summary = f"{total - len(failed)} of {total} tests passed"
            if skipped:
                summary += f" ({skipped} skipped)"
            if failed:
                names = ", ".join(o.name for o in failed[:5])
                more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
                summary += f"; failing: {names}{more}"
            issues = [_issue(o) for o in failed[: self.max_issues]]
        feedback = prompts.render(
            "tests_report.md",
            outcomes=outcomes,
            counted=counted,
            failed=failed,
            failure=failure,
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


def _check_plugin(plugin: str) -> None:
    """A pytest plugin the judge can load: it runs in this Python, so it must import here
    (else every run's tests would fail as a judge crash blamed on the code)."""
    try:
        found = importlib.util.find_spec(plugin) is not None
    except (ImportError, ValueError):  # a parent package missing, or not a module name
        found = False
    if not found:
        raise ConfigError(
            f"pytest plugin {plugin!r} is not installed in this Python: install it "
            "(pip install ...) or leave it out of pytest_plugins"
        )


def _names_a_file(tests: str) -> bool:
    """A one-line string that is a test file's path rather than test source."""
    line = tests.strip()
    if not line or "\n" in line or len(line) > _PATH_LIMIT:
        return False  # a long one-line script is source, and no file name can be that long
    if line.lower().endswith(_FILE_SUFFIXES):
        return True
    try:
        return Path(line).is_file()
    except (OSError, ValueError):  # not a name the file system takes (too long, a NUL)
        return False


def _suite(
    tests: TestSuite | str | Path | Sequence[Mapping[str, Any]],
    *,
    kind: TestKind,
    entry_point: str | None,
    modules: tuple[str, ...] = (),
) -> TestSuite:
    if isinstance(tests, TestSuite):
        suite = tests
    elif isinstance(tests, Path):
        suite = TestSuite.from_file(tests, kind=kind, entry_point=entry_point)
    elif isinstance(tests, str):
        if _names_a_file(tests):  # TestsCritic("tests/test_mean.py") means that file's tests
            suite = TestSuite.from_file(tests.strip(), kind=kind, entry_point=entry_point)
        else:
            suite = TestSuite.from_source(tests, kind=kind, entry_point=entry_point)
    elif isinstance(tests, Sequence) and all(isinstance(case, Mapping) for case in tests):
        suite = TestSuite.from_cases(cast("Sequence[Mapping[str, Any]]", tests))
    else:
        raise ConfigError(
            "tests must be Python test source, a path to a test file (.py, or .json/.yaml "
            "I/O cases), a list of {input, output} cases or a TestSuite, not "
            f"{kind_of(tests)} {shown(tests)}"
        )
    if modules:
        names = dict.fromkeys(("solution", *suite.modules, *modules))
        suite = replace(suite, modules=tuple(names))
    return suite


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
