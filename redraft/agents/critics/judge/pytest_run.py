"""The pytest judge: real pytest over the user's test file, in a process of its own.

Started by the tests critic through `_pytest_main.py CONFIG` (without the redraft package),
with no plugins but those the suite names, and with its link to the solution on two pipes
(see `bridge.py`). The test file and its conftest are in a private directory of the host's
that the solution cannot reach; the solution's module is importable under the names the tests
use (and its names are visible to the tests as built-ins, as if they were globals). Each
test's outcome goes to a JSON report in that directory; a test during which the solution's
process faulted fails whatever the test caught, and the next test gets a fresh process.
"""

from __future__ import annotations

import ast
import builtins
import importlib.abc
import importlib.machinery
import json
import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from redraft.agents.critics.judge import _wire as wire
from redraft.agents.critics.judge.bridge import PipeLink
from redraft.agents.critics.judge.remote import Remote, SolutionFault, start_failure

TEXT_CHARS = 4000


class SolutionFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of the solution's module names give its proxy."""

    def __init__(self, names: Sequence[str], remote: Remote) -> None:
        self.names = set(names)
        self.remote = remote

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        return self.remote.module_named(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        pass


class JudgePlugin:
    """Per test: a deadline for the solution's answers, a fresh process after a fault, and the
    outcome recorded from pytest's own report."""

    def __init__(
        self,
        remote: Remote,
        tests: Path,
        test_timeout_s: float,
        restart_timeout_s: float,
    ) -> None:
        self.remote = remote
        self.tests_file = tests.name
        self.assert_sources = assert_sources(tests.read_text(encoding="utf-8"))
        self.test_timeout_s = test_timeout_s
        self.restart_timeout_s = restart_timeout_s
        self.results: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.collection_errors: list[str] = []
        self.comparison: dict[str, Any] | None = None
        self.injected: set[str] = set()

    def inject(self) -> None:
        """The solution's names as built-ins: visible to the tests like globals."""
        for name in self.injected:
            vars(builtins).pop(name, None)
        names = self.remote.names()
        self.injected = {n for n in names if not n.startswith("_") and not hasattr(builtins, n)}
        for name in self.injected:
            setattr(builtins, name, names[name])

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, Any, None]:
        if self.remote.broken is not None:
            try:
                if self.remote.restart(time.monotonic() + self.restart_timeout_s):
                    self.inject()
            except SolutionFault:
                pass
        self.remote.begin_test(self.test_timeout_s)
        self.comparison = None
        started = time.perf_counter()
        yield
        result = self.results.get(item.nodeid)
        if result is not None:
            result["duration_s"] = time.perf_counter() - started
            result["stdout"] = self.remote.record.stdout
            result["stderr"] = self.remote.record.stderr

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        faults = self.remote.record.faults
        if faults and report.passed:
            # The test caught what the solution's process did: it still fails.
            report.outcome = "failed"
            report.longrepr = faults[0]
        self.record(item, report, call)

    def failing_line(self, call: pytest.CallInfo[None]) -> int | None:
        """The line of the tests file the failure was raised at (1-based)."""
        if call.excinfo is None:
            return None
        for entry in reversed(call.excinfo.traceback):
            if Path(str(entry.path)).name == self.tests_file:
                return int(entry.lineno) + 1
        return None

    def record(
        self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
    ) -> None:
        nodeid = item.nodeid
        if nodeid not in self.results:
            self.order.append(nodeid)
            line = item.location[1]
            self.results[nodeid] = {
                "name": _name(item),
                "passed": True,
                "line": line + 1 if isinstance(line, int) else None,
            }
        result = self.results[nodeid]
        if report.skipped and not result.get("outcome"):
            # An expected failure that happened counts as pytest counts it: not a failure.
            # A skip checks nothing: it counts neither way.
            if hasattr(report, "wasxfail"):
                result.update(outcome="xfailed", message=wire.short(f"xfail: {report.wasxfail}"))
            else:
                result.update(passed=False, outcome="skipped", message=_skip_reason(report))
            return
        if report.passed or not report.failed:
            return
        if result.get("outcome") not in (None, "xfailed", "skipped"):
            return  # the first failing phase says it
        phase = "" if report.when == "call" else f" in {report.when}"
        text = wire.short(report.longreprtext, TEXT_CHARS)
        faults = self.remote.record.faults
        crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
        lines = (crash if isinstance(crash, str) else text).strip().splitlines()
        message = faults[0] if faults else (lines[0] if lines else "failed")
        assertion = isinstance(crash, str) and crash.startswith(("AssertionError", "assert "))
        outcome = "failed" if assertion and not faults and report.when == "call" else "error"
        if faults and "did not finish within" in faults[0]:
            outcome = "timeout"
        result.update(passed=False, outcome=outcome, message=wire.short(message + phase, 2000))
        result["traceback"] = text
        line = self.failing_line(call)
        if line is not None and not faults:
            result["test_line"] = line
            result["expression"] = self.assert_sources.get(line)
        remote = self.remote.record.remote
        if remote is not None and not faults:
            result["solution_line"] = remote["line"]
        if self.comparison is not None and assertion:
            result.update(self.comparison)

    def pytest_assertrepr_compare(self, op: str, left: object, right: object) -> None:
        self.comparison = {
            "actual": wire.safe_repr(left),
            "expected": wire.safe_repr(right),
            "op": op,
        }

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(wire.short(report.longreprtext, TEXT_CHARS))


def assert_sources(source: str) -> dict[int, str]:
    """Each line of an assert statement -> the statement's source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            text = ast.get_source_segment(source, node) or "assert"
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                found[line] = text
    return found


def _name(item: pytest.Item) -> str:
    parts = item.nodeid.split("::")[1:]
    return wire.short(".".join(parts) or item.name, 200)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return f"skipped: {longrepr[2]}"
    return "skipped"


def main(argv: Sequence[str]) -> int:
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    directory = Path(config["directory"])
    link = PipeLink(int(config["read_fd"]), int(config["write_fd"]))
    remote = Remote(link, module=config["module"])
    report: dict[str, Any] = {"load_error": None, "tests_error": None, "tests": []}
    timeout_s = float(config["start_timeout_s"])
    try:
        loaded = remote.start(time.monotonic() + timeout_s)
    except SolutionFault as exc:
        report["failure"] = start_failure(exc, timeout_s)
        loaded = True
    if "failure" in report:
        pass
    elif not loaded:
        report["load_error"] = remote.load_error
    else:
        sys.meta_path.insert(0, SolutionFinder(config["aliases"], remote))
        for name in config["aliases"]:
            # A name that is also an installed module's (`module="queue"`) is the solution's.
            if name in sys.modules:
                sys.modules[name] = remote.module_named(name)
        plugin = JudgePlugin(
            remote,
            directory / config["tests"],
            float(config["test_timeout_s"]),
            float(config["start_timeout_s"]),
        )
        plugin.inject()
        args = [
            str(directory / config["tests"]),
            f"--rootdir={directory}",
            "-c",
            str(directory / "pytest.ini"),
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "-o",
            "console_output_style=classic",
        ]
        for plugin_name in config.get("plugins") or []:
            args += ["-p", str(plugin_name)]
        code = pytest.main(args, plugins=[plugin])
        report["tests"] = [plugin.results[nodeid] for nodeid in plugin.order]
        if plugin.collection_errors:
            report["tests_error"] = "\n".join(plugin.collection_errors)
        elif not report["tests"] and code not in (0, 5):
            report["tests_error"] = f"pytest stopped with exit code {int(code)}"
    (directory / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
