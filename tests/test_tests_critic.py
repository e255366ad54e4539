"""The tests critic over the real bubblewrap sandbox: what it reports for each kind of test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import (
    ConfigError,
    Critique,
    Draft,
    LLMEditor,
    Refiner,
    ScriptedModel,
    StopReason,
    Task,
    TestsCritic,
    TestSuite,
)
from redraft.agents.base import AgentContext
from redraft.agents.critics.tests import extract_code
from redraft.agents.prompts import DEFAULT_PROMPTS
from redraft.sandboxes import NamespaceSandbox
from tests.isolation import require_bwrap

BUGGY = "```python\ndef add(a, b):\n    return a - b\n\n\ndef half(x):\n    return 1 / x\n```"
FIXED = "```python\ndef add(a, b):\n    return a + b\n\n\ndef half(x):\n    return x / 2\n```"
PYTEST_STYLE = """
import pytest
from solution import add


def test_add():
    assert add(2, 3) == 5


def test_half():
    assert half(4) == 2


@pytest.mark.parametrize("a, b, total", [(1, 1, 2), (0, 0, 0)])
def test_add_many(a, b, total):
    assert add(a, b) == total


def test_raises():
    with pytest.raises(TypeError):
        add(1, None)


class TestGroup:
    def test_inside_a_class(self):
        assert add(5, 0) == 5
"""


@pytest.fixture(scope="module")
def sandbox() -> Iterator[NamespaceSandbox]:
    require_bwrap()
    with NamespaceSandbox(pool_size=2) as box:
        yield box


async def judge(critic: TestsCritic, text: str) -> Critique:
    return await critic.critique(
        Draft(text=text), Task(instruction="write it"), AgentContext(None, DEFAULT_PROMPTS)
    )


async def test_pytest_style_failures_name_values_and_lines(sandbox: NamespaceSandbox) -> None:
    critic = TestsCritic(PYTEST_STYLE, sandbox=sandbox)
    critique = await judge(critic, BUGGY)
    assert not critique.passed
    # test_add, test_half, test_add_many[1-1-2] fail; [0-0-0], raises, the class method pass
    assert critique.score == pytest.approx(3 / 6)
    assert "3 of 6 tests passed" in critique.summary
    problems = {issue.problem for issue in critique.issues}
    assert "test_add failed: assert add(2, 3) == 5: got -1, expected == 5" in problems
    half = next(issue for issue in critique.issues if issue.problem.startswith("test_half"))
    assert half.problem == "test_half failed: assert half(4) == 2: got 0.25, expected == 2"
    crash_critic = TestsCritic("def test_zero():\n    assert half(0) == 0\n", sandbox=sandbox)
    crash = (await judge(crash_critic, BUGGY)).issues[0]
    # The traceback is followed into the solution: the line at fault is quoted verbatim.
    assert crash.quote == "return 1 / x" and crash.location == "solution line 6"
    assert "ZeroDivisionError" in crash.problem
    assert "solution.py" in (await judge(crash_critic, BUGGY)).feedback

    fixed = await judge(critic, FIXED)
    assert fixed.passed and fixed.score == 1.0 and fixed.issues == []


async def test_assert_script_each_assert_is_a_test(sandbox: NamespaceSandbox) -> None:
    critic = TestsCritic("assert add(1, 2) == 3\nx = 10\nassert half(x) == 5\n", sandbox=sandbox)
    buggy = await judge(critic, BUGGY)
    assert buggy.score == 0.0
    assert [i.problem for i in buggy.issues] == [
        "assert add(1, 2) == 3 failed: assert add(1, 2) == 3: got -1, expected == 3",
        "assert half(x) == 5 failed: assert half(x) == 5: got 0.1, expected == 5",
    ]
    assert (await judge(critic, FIXED)).passed


async def test_humaneval_style_check(sandbox: NamespaceSandbox) -> None:
    tests = "def check(candidate):\n    assert candidate(2, 2) == 4\n"
    critic = TestsCritic(tests, entry_point="add", sandbox=sandbox)
    assert not (await judge(critic, BUGGY)).passed
    assert (await judge(critic, FIXED)).passed


async def test_stdin_stdout_cases(sandbox: NamespaceSandbox) -> None:
    cases = [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4", "output": "6", "name": "neg"}]
    critic = TestsCritic(cases, sandbox=sandbox)
    wrong = await judge(critic, "a, b = map(int, input().split())\nprint(a * b)")
    assert wrong.score == 0.0
    expected = "neg: wrong output: got '-40\\n', expected '6' (input '10 -4')"
    assert wrong.issues[1].problem == expected
    right = await judge(critic, "a, b = map(int, input().split())\nprint(a + b)")
    assert right.passed


async def test_timeouts_crashes_and_output_are_reported(sandbox: NamespaceSandbox) -> None:
    tests = "def test_a():\n    assert add(1, 1) == 2\n\ndef test_b():\n    assert add(0, 0) == 0\n"
    critic = TestsCritic(tests, sandbox=sandbox, test_timeout_s=0.5)
    looping = "def add(a, b):\n    print('thinking')\n    while True:\n        pass\n"
    critique = await judge(critic, looping)
    assert critique.score == 0.0
    assert all("did not finish within 0.5 s" in issue.problem for issue in critique.issues)
    assert critique.issues[0].severity == "critical"
    assert "Printed: thinking" in critique.feedback

    broken = await judge(critic, "def add(a, b):\n    return a +\n")
    assert not broken.passed and broken.score == 0.0
    assert broken.summary.startswith("the code does not run: SyntaxError")

    raising = await judge(critic, "import json\nraise RuntimeError('no config')\n")
    assert "RuntimeError: no config" in raising.summary

    whole_run = TestsCritic(tests, sandbox=sandbox, timeout_s=1.0, test_timeout_s=5.0)
    stuck = await judge(whole_run, "import time\ntime.sleep(30)\n")
    assert stuck.summary == "the tests did not finish within 1 s"


async def test_code_cannot_forge_a_pass(sandbox: NamespaceSandbox) -> None:
    critic = TestsCritic("def test_a():\n    assert add(1, 1) == 2\n", sandbox=sandbox)
    forged = 'import os\nos.write(1, b\'{"load_error": null, "tests": []}\')\n'
    critique = await judge(critic, forged + "def add(a, b):\n    return 0\n")
    assert not critique.passed and critique.score == 0.0
    exits = await judge(critic, "import sys\ndef add(a, b):\n    sys.exit(0)\n")
    assert not exits.passed
    assert exits.issues[0].problem == "test_a failed: the code called exit(0)"
    script = TestsCritic([{"input": "", "output": "hi"}], sandbox=sandbox)
    assert (await judge(script, "import sys\nprint('hi')\nsys.exit(0)\n")).passed


def test_code_extraction() -> None:
    two_blocks = "Here:\n```python\nx = 1\n```\nand\n```py\ny = 2\n```"
    assert extract_code(two_blocks) == "x = 1\n\ny = 2\n"
    assert extract_code("```\nz = 3\n```") == "z = 3\n"
    assert extract_code("```text\nout\n```\n```python\nq = 1\n```") == "q = 1\n"
    assert extract_code("print(1)") == "print(1)"


def test_invalid_tests_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid tests in tests: invalid syntax at line 1"):
        TestsCritic("def test_(:\n")
    with pytest.raises(ConfigError, match="no tests found"):
        TestsCritic("x = 1\n")
    with pytest.raises(ConfigError, match="tests file not found"):
        TestSuite.from_file(tmp_path / "missing.py")
    bad_cases = tmp_path / "cases.yaml"
    bad_cases.write_text("- input: '1'\n")
    with pytest.raises(ConfigError, match=r"invalid I/O case .*output"):
        TestSuite.from_file(bad_cases)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(ConfigError, match="list of I/O cases is empty"):
        TestSuite.from_file(empty)


async def test_loop_with_scripted_models_fixes_the_failing_test(sandbox: NamespaceSandbox) -> None:
    fixed_line = "    return x / 2"
    patch = f"<<<<<<< SEARCH\n    return 1 / x\n=======\n{fixed_line}\n>>>>>>> REPLACE"
    editor = ScriptedModel([patch])
    refiner = Refiner(
        ScriptedModel([BUGGY]),
        # A generous per-test limit: under a loaded CI machine a 5 s limit was once hit, and
        # the editor was then shown a timeout rather than the values this test is about.
        critics=[
            TestsCritic(
                "def test_half():\n    assert half(4) == 2\n", sandbox=sandbox, test_timeout_s=60
            )
        ],
        editor=LLMEditor(editor),
        max_rounds=3,
    )
    result = await refiner.arun("Write half(x)")
    assert result.stop_reason is StopReason.PASSED
    assert [r.passed for r in result.rounds] == [False, True]
    # The editor was told what the test found: the values, not merely "a test failed".
    shown = editor.calls[0].messages[-1].content
    critique = result.rounds[0].critiques[0]
    assert "test_half failed: assert half(4) == 2: got 0.25, expected == 2" in shown, (
        critique.summary,
        [issue.problem for issue in critique.issues],
    )
    assert fixed_line in result.final.text


@pytest.mark.parametrize(
    "source",
    [
        "assert big() == '" + "e" * 5000 + "'",  # longer than any file name
        "assert add(1, 2) == 3",
    ],
)
def test_a_one_line_script_is_source_not_a_path(source: str) -> None:
    critic = TestsCritic(source, sandbox="subprocess")
    assert critic.suite.kind == "asserts"
    assert critic.suite.source.strip() == source


def test_a_script_with_a_nul_is_refused_as_source() -> None:
    with pytest.raises(ConfigError, match="null bytes"):
        TestsCritic("assert text() == 'a\x00b'", sandbox="subprocess")
