"""The light judge: HumanEval `check(candidate)` and assert scripts, run here, without pytest.

The tests run in this process against the solution's proxies (`remote.py`). Asserts are
rewritten, pytest-style, so that a failed comparison records both sides; each test has its own
time for the solution's answers; a test during which the solution's process faulted fails
whatever the test caught. A test that broke the process (it hung, or died) leaves the next
test a fresh one.
"""

from __future__ import annotations

import ast
import builtins
import functools
import operator
import threading
import time
import traceback
from collections.abc import Callable
from types import CodeType
from typing import Any

from redraft.agents.critics.judge import _wire as wire
from redraft.agents.critics.judge.remote import (
    Remote,
    SolutionFault,
    TestRecord,
    describe_safely,
)

TESTS_FILE = "test_solution.py"
OPERATORS: dict[str, tuple[Callable[[Any, Any], Any], str]] = {
    "Eq": (operator.eq, "=="),
    "NotEq": (operator.ne, "!="),
    "Lt": (operator.lt, "<"),
    "LtE": (operator.le, "<="),
    "Gt": (operator.gt, ">"),
    "GtE": (operator.ge, ">="),
    "Is": (operator.is_, "is"),
    "IsNot": (operator.is_not, "is not"),
    "In": (lambda a, b: a in b, "in"),
    "NotIn": (lambda a, b: a not in b, "not in"),
}


class Recorder:
    """What the last failed assert compared, for the report."""

    def __init__(self) -> None:
        self.last: dict[str, Any] | None = None

    def compare(self, left: Any, right: Any, op_name: str) -> Any:
        function, symbol = OPERATORS[op_name]
        outcome = function(left, right)
        if not outcome:
            self.last = {
                "actual": wire.safe_repr(left),
                "expected": wire.safe_repr(right),
                "op": symbol,
            }
        return outcome

    def truth(self, value: Any) -> Any:
        if not value:
            self.last = {"actual": wire.safe_repr(value), "expected": None, "op": None}
        return value


def rewrite_assert(node: ast.Assert) -> None:
    """`assert a == b` -> `assert __redraft__.compare(a, b, "Eq")`: each side evaluated once."""
    test = node.test

    def located(new: ast.expr) -> ast.expr:
        return ast.copy_location(new, test)

    recorder = located(ast.Name(id="__redraft__", ctx=ast.Load()))
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        method = "compare"
        args = [test.left, test.comparators[0], located(ast.Constant(type(test.ops[0]).__name__))]
    else:
        method, args = "truth", [test]
    function = located(ast.Attribute(value=recorder, attr=method, ctx=ast.Load()))
    node.test = located(ast.Call(func=function, args=args, keywords=[]))


def asserts(statements: list[ast.stmt]) -> list[ast.Assert]:
    """Every assert statement among `statements` and the blocks in them (not looking into
    expressions: a test's big literals are many nodes, and hold no statement)."""
    found: list[ast.Assert] = []
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Assert):
            found.append(node)
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, name, None)
            if isinstance(block, list):
                stack.extend(item for item in block if isinstance(item, ast.AST))
    return found


# CPython 3.11's parser can fail ("AST constructor recursion depth mismatch") when threads
# parse at once: judges run in threads, so they parse one at a time.
_PARSING = threading.Lock()


@functools.lru_cache(maxsize=256)
def rewritten(
    source: str, kind: str
) -> tuple[tuple[tuple[ast.stmt, CodeType], ...], CodeType, dict[int, str]]:
    """The tests with their asserts rewritten, compiled, and each assert's source by line:
    made once per suite, however many drafts it judges."""
    with _PARSING:
        return _rewrite(source, kind)


def _rewrite(
    source: str, kind: str
) -> tuple[tuple[tuple[ast.stmt, CodeType], ...], CodeType, dict[int, str]]:
    module = ast.parse(source, TESTS_FILE)
    lines = source.splitlines(keepends=True)
    sources: dict[int, str] = {}
    for node in asserts(module.body):
        sources[node.lineno] = _segment(lines, node) or "assert"
        rewrite_assert(node)
    statements = tuple(
        (node, compile(ast.Module(body=[node], type_ignores=[]), TESTS_FILE, "exec"))
        for node in module.body
        if kind == "asserts"
    )
    return statements, compile(module, TESTS_FILE, "exec"), sources


def _segment(lines: list[str], node: ast.stmt) -> str | None:
    """The source of `node` (ast.get_source_segment splits the whole file on every call)."""
    end_line, end_col = node.end_lineno, node.end_col_offset
    if end_line is None or end_col is None:
        return None
    chosen = lines[node.lineno - 1 : end_line]
    if not chosen:
        return None
    encoded = [line.encode() for line in chosen]
    encoded[-1] = encoded[-1][:end_col]
    encoded[0] = encoded[0][node.col_offset :]
    return b"".join(encoded).decode(errors="replace").rstrip("\r\n")


def describe(exc: BaseException) -> str:
    text = describe_safely(exc, 2000)  # an exception the tests made may hold anything
    return type(exc).__name__ + (": " + text if text else "")


class LightJudge:
    """Runs a check(candidate) function or an assert script against the solution."""

    def __init__(
        self,
        remote: Remote,
        source: str,
        *,
        kind: str,
        entry_point: str | None,
        aliases: tuple[str, ...],
        test_timeout_s: float,
        restart_timeout_s: float,
    ) -> None:
        self.remote = remote
        self.source = source
        self.kind = kind
        self.entry_point = entry_point
        self.aliases = aliases
        self.test_timeout_s = test_timeout_s
        self.restart_timeout_s = restart_timeout_s
        self.recorder = Recorder()
        self.results: list[dict[str, Any]] = []
        self.statements, self.code, self.assert_sources = rewritten(source, kind)
        self.solution_names: dict[str, Any] = {}
        self.tests_error: str | None = None  # why the tests themselves do not run

    # -- the test namespace -----------------------------------------------------------------

    def _import(self, real: Callable[..., Any]) -> Callable[..., Any]:
        remote = self.remote
        aliases = self.aliases

        def load(name: str, *args: Any, **kwargs: Any) -> Any:
            if name in aliases:
                return remote.module_named(name)
            return real(name, *args, **kwargs)

        return load

    def namespace(self) -> dict[str, Any]:
        """Globals for the tests: the solution's names, as if `from solution import *`, but
        for those of built-ins (the tests' `abs`, `all` and `AssertionError` stay theirs;
        the entry point is the solution's whatever its name)."""
        names = {
            name: value
            for name, value in self.remote.names().items()
            if name == self.entry_point or not hasattr(builtins, name)
        }
        self.solution_names = names
        own_builtins = dict(vars(builtins))
        own_builtins["__import__"] = self._import(builtins.__import__)
        namespace = dict(names)
        namespace.update(
            __name__="tests",
            __file__=TESTS_FILE,
            __redraft__=self.recorder,
            __builtins__=own_builtins,
        )
        return namespace

    # -- one test ---------------------------------------------------------------------------

    def run_test(self, name: str, body: Callable[[], Any], line: int | None = None) -> None:
        self.recorder.last = None
        record = self.remote.begin_test(self.test_timeout_s)
        result: dict[str, Any] = {"name": name, "passed": True, "line": line}
        started = time.perf_counter()
        try:
            body()
        except SolutionFault as exc:
            result.update(passed=False, outcome=_fault_outcome(str(exc)), message=str(exc))
        except AssertionError as exc:
            result.update(passed=False, outcome="failed", message=describe(exc))
            self._add_traceback(result, exc, record)
            if self.recorder.last is not None:
                result.update(self.recorder.last)
        except MemoryError as exc:
            result.update(passed=False, outcome="error", message=describe(exc))
        except BaseException as exc:
            result.update(passed=False, outcome="error", message=describe(exc))
            self._add_traceback(result, exc, record)
        if record.faults and result["passed"]:
            # The test caught what the solution's process did: it still fails.
            result.update(passed=False, outcome=_fault_outcome(record.faults[0]))
            result["message"] = record.faults[0]
        result["duration_s"] = time.perf_counter() - started
        result["stdout"], result["stderr"] = record.stdout, record.stderr
        self.results.append(result)

    def _add_traceback(
        self, result: dict[str, Any], exc: BaseException, record: TestRecord
    ) -> None:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == TESTS_FILE]
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
        remote = getattr(exc, "_redraft_remote", None)
        if isinstance(remote, dict):
            # The solution's own frames, then its exception, as it raised it.
            solution = remote["traceback"].split("\n", 1)[-1]
            result["traceback"] = "".join(lines) + solution
            result["solution_line"] = remote["line"]
        else:
            result["traceback"] = "".join(lines) + describe(exc) + "\n"
        if frames:
            result["expression"] = self.assert_sources.get(frames[-1].lineno or 0)
            result["test_line"] = frames[-1].lineno

    def _recover(self) -> bool:
        """After a test that broke the solution's process: a fresh one for the next."""
        if self.remote.broken is None:
            return True
        try:
            started = self.remote.restart(time.monotonic() + self.restart_timeout_s)
        except SolutionFault:
            return False
        return started

    # -- kinds ------------------------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        if self.kind == "check":
            self.run_check()
        else:
            self.run_asserts()
        return self.results

    def listed(self) -> dict[str, Any] | None:
        """The tests' namespace; None (and a failed result) if the solution's process does
        not list its names."""
        try:
            return self.namespace()
        except (Exception, SolutionFault) as exc:
            self.results.append(
                {
                    "name": "the solution's names",
                    "passed": False,
                    "outcome": "error",
                    "message": f"the solution's module could not be listed: {describe(exc)}",
                }
            )
            return None

    def run_check(self) -> None:
        namespace = self.listed()
        if namespace is None:
            return
        record = self.remote.begin_test(self.test_timeout_s)
        try:
            exec(self.code, namespace)
        except (Exception, SolutionFault) as exc:
            result: dict[str, Any] = {}
            self._add_traceback(result, exc, record)
            self.tests_error = result["traceback"]
            return
        entry = self.entry_point
        if entry is None:
            functions = [n for n, v in self.solution_names.items() if callable(v)]
            entry = functions[-1] if functions else None
        candidate = self.solution_names.get(entry) if entry else None
        if candidate is None or not callable(candidate):
            self.results.append(
                {
                    "name": f"check({entry})",
                    "passed": False,
                    "outcome": "error",
                    "message": f"the code defines no function named {entry!r}",
                }
            )
            return
        check = namespace["check"]
        self.run_test(f"check({entry})", lambda: check(candidate))

    def run_asserts(self) -> None:
        """A script of asserts: each top-level assert is a test; other statements set up."""
        namespace = self.listed()
        if namespace is None:
            return
        for statement, code in self.statements:

            def body(code: Any = code) -> None:
                exec(code, namespace)

            if isinstance(statement, ast.Assert):
                text = self.assert_sources.get(statement.lineno) or "assert"
                self.run_test(text, body, line=statement.lineno)
            else:
                before = len(self.results)
                self.run_test("setup", body, line=statement.lineno)
                outcome = self.results.pop()
                if not outcome["passed"] and len(self.results) == before:
                    outcome["name"] = f"setup at line {statement.lineno}"
                    self.results.append(outcome)
            if self.remote.broken is not None:
                held = self.solution_names
                if not self._recover():
                    return
                fresh = self.listed()
                if fresh is None:
                    return
                # The solution's names the tests have not rebound: what the tests defined
                # themselves (a helper of the same name) stays theirs.
                namespace.update(
                    {
                        name: value
                        for name, value in fresh.items()
                        if name in held and namespace.get(name) is held[name]
                    }
                )


def _fault_outcome(reason: str) -> str:
    return "timeout" if "did not finish within" in reason else "error"
