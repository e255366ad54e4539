"""The test runner that runs inside a sandbox for `TestsCritic`.

Standard library only (the sandbox has no pytest). It loads the draft's code as the module
`solution`, runs the user's tests against it one by one, each with its own time limit, and
writes one JSON report to the stdout it was started with; everything the code itself prints
goes elsewhere, so it cannot corrupt the report. Failed comparisons in asserts record both
sides (the test code's asserts are rewritten, pytest-style, before they run), and tracebacks
keep only the frames of the solution and the tests.
"""

import ast
import io
import json
import operator
import os
import signal
import sys
import time
import traceback
import types

CONFIG = "_redraft_config.json"
OUTPUT_CHARS = 2000
REPR_CHARS = 300
OPERATORS = {
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


class TestTimeout(BaseException):
    """Raised in a test that ran past its time; a BaseException so `except Exception` in
    the code under test cannot swallow it."""


class Recorder:
    """What the last failed assert compared, for the report."""

    def __init__(self):
        self.last = None

    def compare(self, left, right, op_name):
        function, symbol = OPERATORS[op_name]
        outcome = function(left, right)
        if not outcome:
            self.last = {"actual": short_repr(left), "expected": short_repr(right), "op": symbol}
        return outcome

    def truth(self, value):
        if not value:
            self.last = {"actual": short_repr(value), "expected": None, "op": None}
        return value


RECORDER = Recorder()


def short_repr(value):
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= REPR_CHARS else text[:REPR_CHARS] + "..."


class AssertRewriter(ast.NodeTransformer):
    """`assert a == b` -> `assert __redraft__.compare(a, b, "Eq")`: each side evaluated once."""

    def visit_Assert(self, node):
        recorder = ast.Name(id="__redraft__", ctx=ast.Load())
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            call = ast.Call(
                func=ast.Attribute(value=recorder, attr="compare", ctx=ast.Load()),
                args=[test.left, test.comparators[0], ast.Constant(type(test.ops[0]).__name__)],
                keywords=[],
            )
        else:
            call = ast.Call(
                func=ast.Attribute(value=recorder, attr="truth", ctx=ast.Load()),
                args=[test],
                keywords=[],
            )
        node.test = ast.copy_location(call, test)
        return ast.fix_missing_locations(node)


def user_frames(tb, files):
    """The traceback's frames in the user's files, as text, and the deepest solution line."""
    frames = traceback.extract_tb(tb)
    kept = [frame for frame in frames if os.path.basename(frame.filename) in files]
    solution_line = None
    for frame in kept:
        if os.path.basename(frame.filename) == files[0]:
            solution_line = {"line": frame.lineno, "text": (frame.line or "").strip()}
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(kept)]
    return "".join(lines), solution_line


def describe(exc):
    text = str(exc)
    return type(exc).__name__ + (": " + text if text else "")


class Runner:
    def __init__(self, config):
        self.config = config
        self.solution_file = config["solution"]
        self.tests_file = config.get("tests")
        self.files = [self.solution_file, self.tests_file or ""]
        self.test_timeout = float(config.get("test_timeout_s", 5.0))
        self.results = []
        self.solution = None
        self.assert_sources = {}

    # -- one test ---------------------------------------------------------------------

    def run_test(self, name, function, line=None, stdin_text=None, script=False):
        RECORDER.last = None
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr, sys.stdin
        sys.stdout, sys.stderr = out, err
        if stdin_text is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin_text.encode()), encoding="utf-8")
        result = {"name": name, "passed": True, "line": line}
        started = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, self.test_timeout)
        try:
            function()
        except TestTimeout:
            result.update(passed=False, outcome="timeout")
            result["message"] = f"did not finish within {self.test_timeout:.3g} s"
        except MemoryError as exc:
            result.update(passed=False, outcome="memory", message="out of memory")
            self.add_traceback(result, exc)
        except AssertionError as exc:
            result.update(passed=False, outcome="failed", message=describe(exc))
            self.add_traceback(result, exc)
            if RECORDER.last is not None:
                result.update(RECORDER.last)
        except SystemExit as exc:
            # A script may end with exit(0); a test that exits never checked anything.
            if not (script and exc.code in (None, 0)):
                result.update(passed=False, outcome="error")
                result["message"] = f"the code called exit({exc.code!r})"
        except BaseException as exc:
            result.update(passed=False, outcome="error", message=describe(exc))
            self.add_traceback(result, exc)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            sys.stdout, sys.stderr, sys.stdin = saved
        result["duration_s"] = time.perf_counter() - started
        result["stdout"] = out.getvalue()[-OUTPUT_CHARS:]
        result["stderr"] = err.getvalue()[-OUTPUT_CHARS:]
        return result

    def add_traceback(self, result, exc):
        text, solution_line = user_frames(exc.__traceback__, self.files)
        result["traceback"] = text + "".join(traceback.format_exception_only(type(exc), exc))
        result["solution_line"] = solution_line
        failing = [f for f in traceback.extract_tb(exc.__traceback__) if self.in_tests(f)]
        if failing:
            result["expression"] = self.assert_sources.get(failing[-1].lineno)
            result["test_line"] = failing[-1].lineno

    def in_tests(self, frame):
        return bool(self.tests_file) and os.path.basename(frame.filename) == self.tests_file

    # -- loading ----------------------------------------------------------------------

    def load_solution(self):
        """Import the draft's code as `solution`; a failure fails every test."""
        module = types.ModuleType("solution")
        # Relative names keep tracebacks short; the working directory is the cwd.
        module.__file__ = self.solution_file
        sys.modules["solution"] = module
        source = read(self.solution_file)
        try:
            code = compile(source, module.__file__, "exec")
            with Silenced():
                exec(code, module.__dict__)
        except BaseException as exc:
            text, solution_line = user_frames(exc.__traceback__, self.files)
            if isinstance(exc, SyntaxError):
                text = ""
            return {
                "message": describe(exc),
                "traceback": text + "".join(traceback.format_exception_only(type(exc), exc)),
                "solution_line": solution_line,
            }
        self.solution = module
        return None

    def test_namespace(self, name):
        """Globals for the tests: the solution's names, as if `from solution import *`."""
        namespace = {k: v for k, v in vars(self.solution).items() if not k.startswith("__")}
        namespace.update(__name__=name, __file__=self.tests_file)
        namespace["__redraft__"] = RECORDER
        namespace["__builtins__"] = __builtins__
        return namespace

    def rewritten(self, source):
        tree = ast.parse(source, self.tests_file)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                self.assert_sources[node.lineno] = ast.get_source_segment(source, node)
        return AssertRewriter().visit(tree)

    # -- kinds of tests ---------------------------------------------------------------

    def run_functions(self):
        """pytest style: every test_* function and Test* class method, in file order."""
        source = read(self.tests_file)
        tree = self.rewritten(source)
        namespace = self.test_namespace("test_solution")
        exec(compile(tree, self.tests_file, "exec"), namespace)
        for name, value in list(namespace.items()):
            if not self.defined_here(value):
                continue
            if name.startswith("test") and callable(value) and not isinstance(value, type):
                self.run_parametrized(name, value)
            elif name.startswith("Test") and isinstance(value, type):
                for attribute, method in vars(value).items():
                    if attribute.startswith("test") and callable(method):
                        instance = value()
                        bound = getattr(instance, attribute)
                        self.run_parametrized(name + "." + attribute, bound)

    def defined_here(self, value):
        if isinstance(value, type):
            return value.__module__ == "test_solution"
        code = getattr(value, "__code__", None)
        return code is not None and os.path.basename(code.co_filename) == self.tests_file

    def run_parametrized(self, name, function):
        cases = getattr(function, "_redraft_parametrize", None) or [({}, "")]
        line = getattr(getattr(function, "__code__", None), "co_firstlineno", None)
        for arguments, label in cases:
            title = name + ("[" + label + "]" if label else "")
            missing = self.missing_fixtures(function, arguments)
            if missing:
                self.results.append(
                    {
                        "name": title,
                        "passed": False,
                        "outcome": "error",
                        "line": line,
                        "message": "the test asks for fixtures the tests critic does not "
                        "provide: " + ", ".join(missing),
                    }
                )
                continue
            self.results.append(
                self.run_test(title, lambda f=function, a=arguments: f(**a), line=line)
            )

    @staticmethod
    def missing_fixtures(function, arguments):
        import inspect

        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            return []
        return [
            p.name
            for p in parameters
            if p.default is inspect.Parameter.empty
            and p.name not in arguments
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def run_asserts(self):
        """A script of asserts: each top-level assert is a test; other statements set up."""
        source = read(self.tests_file)
        tree = self.rewritten(source)
        namespace = self.test_namespace("tests")
        path = self.tests_file
        for statement in tree.body:
            code = compile(ast.Module(body=[statement], type_ignores=[]), path, "exec")

            def run(code=code):
                exec(code, namespace)

            if isinstance(statement, ast.Assert):
                text = self.assert_sources.get(statement.lineno) or "assert"
                self.results.append(self.run_test(text, run, line=statement.lineno))
            else:
                outcome = self.run_test("setup", run, line=statement.lineno)
                if not outcome["passed"]:
                    outcome["name"] = f"setup at line {statement.lineno}"
                    self.results.append(outcome)

    def run_check(self):
        """HumanEval style: the tests define check(candidate), called with the entry point."""
        source = read(self.tests_file)
        tree = self.rewritten(source)
        namespace = self.test_namespace("tests")
        exec(compile(tree, self.tests_file, "exec"), namespace)
        entry = self.config.get("entry_point")
        if entry is None:
            values = vars(self.solution).values()
            functions = [v for v in values if isinstance(v, types.FunctionType)]
            entry = functions[-1].__name__ if functions else None
        candidate = getattr(self.solution, entry, None) if entry else None
        if candidate is None:
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
        self.results.append(self.run_test(f"check({entry})", lambda: check(candidate)))

    def run_io(self):
        """stdin/stdout cases: the solution runs as a script once per case."""
        source = read(self.solution_file)
        code = compile(source, self.solution_file, "exec")
        for number, case in enumerate(self.config["cases"], 1):
            name = case.get("name") or f"case {number}"
            namespace = {"__name__": "__main__", "__builtins__": __builtins__}
            outcome = self.run_test(
                name,
                lambda ns=namespace: exec(code, ns),
                stdin_text=case.get("input", ""),
                script=True,
            )
            expected = case.get("output", "")
            if outcome["passed"] and normalise(outcome["stdout"]) != normalise(expected):
                outcome.update(
                    passed=False,
                    outcome="failed",
                    message="wrong output",
                    actual=short_repr(outcome["stdout"]),
                    expected=short_repr(expected),
                    op="==",
                )
            outcome["input"] = short_repr(case.get("input", ""))
            self.results.append(outcome)

    def run(self):
        if self.config["kind"] == "io":
            self.run_io()  # a script that fails fails its cases, one by one
            return {"load_error": None, "tests": self.results}
        error = self.load_solution()
        if error is not None:
            return {"load_error": error, "tests": []}
        kind = self.config["kind"]
        if kind == "functions":
            self.run_functions()
        elif kind == "check":
            self.run_check()
        else:
            self.run_asserts()
        return {"load_error": None, "tests": self.results}


class Silenced:
    """Output of the solution's import goes nowhere (tests report their own output)."""

    def __enter__(self):
        self.saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = io.StringIO()

    def __exit__(self, *exc):
        sys.stdout, sys.stderr = self.saved


def normalise(text):
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def on_alarm(signum, frame):
    raise TestTimeout()


def main():
    report_fd = os.dup(1)
    # Whatever the code writes to the real stdout/stderr (os.write, subprocesses) lands here.
    stray = os.open("_redraft_stray_output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(stray, 1)
    os.dup2(stray, 2)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), encoding="utf-8")
    signal.signal(signal.SIGALRM, on_alarm)
    with open(CONFIG, encoding="utf-8") as handle:
        config = json.load(handle)
    sys.path.insert(0, os.getcwd())
    report = Runner(config).run()
    with open(report_fd, "w", encoding="utf-8") as out:
        json.dump(report, out)
