"""The tests critic with the test styles people write, over the real bubblewrap sandbox.

Each suite here is one a user could hand the critic: real pytest features (fixtures, a
conftest.py, parametrize, skip, xfail, warns, approx, raises, marks, classes), the ways tests
import the solution, the solution's objects used through proxies, exceptions coming back as
themselves, what a failure report says and how big it may get, per-test timeouts, stdin/stdout
cases and HumanEval checks. A pytest suite costs a pytest start, so each is judged once (in a
module-scoped fixture) and several tests read its outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import Critique, Draft, Task, TestsCritic, TestSuite
from redraft.agents.base import AgentContext
from redraft.agents.critics import tests as critic_tests
from redraft.agents.prompts import DEFAULT_PROMPTS
from redraft.sandboxes import NamespaceSandbox
from tests.isolation import require_bwrap

FIELD_CHARS = critic_tests.FIELD_CHARS
Outcome = critic_tests.TestOutcome

# Room for the "... [N more characters]" a capped field ends with.
CAP_NOTE = 40


@pytest.fixture(scope="module")
def sandbox() -> Iterator[NamespaceSandbox]:
    require_bwrap()
    with NamespaceSandbox(pool_size=2) as box:
        yield box


async def judge(critic: TestsCritic, code: str) -> Critique:
    return await critic.critique(
        Draft(text=code), Task(instruction="write it"), AgentContext(None, DEFAULT_PROMPTS)
    )


def judged(critic: TestsCritic, code: str) -> tuple[dict[str, Outcome], str | None, Critique]:
    """The outcomes by test name, why none ran, and the critique: both judged at once."""

    async def both() -> tuple[tuple[list[Outcome], str | None], Critique]:
        return await asyncio.gather(critic.run_tests(code), judge(critic, code))

    (outcomes, failure), critique = asyncio.run(both())
    by_name = {outcome.name: outcome for outcome in outcomes}
    assert len(by_name) == len(outcomes), [o.name for o in outcomes]
    return by_name, failure, critique


def by_name(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {outcome.name: outcome for outcome in outcomes}


def why(outcome: Outcome) -> str:
    return f"{outcome.outcome}: {outcome.message}\n{outcome.traceback}"


# -- 1-3. real pytest features, the ways of importing the solution, its objects ----------------

FEATURES_SOLUTION = """
import warnings
from collections import namedtuple
from decimal import Decimal

Point = namedtuple("Point", "x y")


class InsufficientFunds(ValueError):
    pass


class Account:
    def __init__(self, balance):
        self.balance = balance

    def withdraw(self, amount):
        if amount > self.balance:
            raise InsufficientFunds(f"balance {self.balance} < {amount}")
        self.balance -= amount
        return self.balance


class Stack:
    def __init__(self):
        self.items = []

    @classmethod
    def of(cls, *items):
        stack = cls()
        for item in items:
            stack.push(item)
        return stack

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __contains__(self, item):
        return item in self.items

    def __getitem__(self, index):
        return self.items[index]


class BoundedStack(Stack):
    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def push(self, item):
        if len(self.items) >= self.limit:
            raise OverflowError("the stack is full")
        super().push(item)


def mean(xs):
    return sum(xs) / len(xs)


def gen(n):
    for i in range(n):
        yield i


def apply(f, xs):
    return [f(x) for x in xs]


def point(x, y):
    return Point(x, y)


def grid():
    return {(0, 0): "origin", (1, 2): "p"}


def evens(xs):
    return {x for x in xs if x % 2 == 0}


def encode(text):
    return text.encode("utf-8")


def specials():
    return [float("nan"), float("inf"), -float("inf")]


def big():
    return 2**200 + 1


def price():
    return Decimal("19.99")


def lookup(d, k):
    return d[k]


def shout(text):
    print("shouting", text)
    return text.upper()
"""

FEATURES_CONFTEST = """
import pytest

import solution


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a slow test")


@pytest.fixture
def numbers():
    return [1, 2, 3, 4]


@pytest.fixture
def stack():
    s = solution.Stack()
    s.push(1)
    s.push(2)
    return s
"""

FEATURES_TESTS = """
import math
import warnings
from decimal import Decimal

import pytest

import solution
from mean import mean
from solution import BoundedStack, InsufficientFunds, Stack

EVENTS = []


@pytest.fixture(scope="module")
def shared():
    EVENTS.append("setup")
    yield Stack()
    EVENTS.append("teardown")


@pytest.fixture
def account():
    acct = solution.Account(10)
    yield acct
    EVENTS.append("account closed")


def test_conftest_fixture(numbers):
    assert mean(numbers) == 2.5


def test_conftest_stack_fixture(stack):
    assert len(stack) == 2 and stack.pop() == 2


def test_module_fixture_first(shared):
    shared.push("a")
    assert EVENTS == ["setup"]


def test_module_fixture_second(shared):
    # the same object as in the test before: the module fixture was set up once
    assert len(shared) == 1 and EVENTS == ["setup"]


@pytest.mark.parametrize(
    "xs, expected", [([1, 2], 1.5), ([5], 5), ([2, 4, 6], 4)], ids=["pair", "single", "three"]
)
def test_mean_cases(xs, expected):
    assert mean(xs) == expected


@pytest.mark.skip(reason="not written yet")
def test_skipped():
    assert False


@pytest.mark.skipif(True, reason="never here")
def test_skipped_if():
    assert False


@pytest.mark.xfail(reason="mean of nothing is undefined")
def test_expected_failure():
    assert mean([]) == 0


@pytest.mark.xfail(raises=ZeroDivisionError)
def test_expected_error():
    mean([])


def test_yield_fixture_torn_down(account):
    assert "account closed" not in EVENTS


def test_after_yield_fixture():
    assert EVENTS.count("account closed") == 1


def test_warns():
    with pytest.warns(UserWarning, match="careful"):
        warnings.warn("careful now", UserWarning)
        assert mean([2, 2]) == 2


def test_approx():
    assert mean([0.1, 0.2]) == pytest.approx(0.15)
    assert mean([0.1, 0.2]) != 0.15
    assert mean([1, 2]) != pytest.approx(1.4)


def test_raises_match():
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        mean([])
    with pytest.raises(OverflowError, match="full"):
        s = BoundedStack(1)
        s.push(1)
        s.push(2)


@pytest.mark.slow
def test_custom_mark():
    assert mean([3, 3]) == 3


class TestStack:
    def test_push_pop(self):
        s = Stack()
        s.push(1)
        s.push(2)
        assert s.pop() == 2
        assert len(s) == 1

    def test_protocols(self):
        s = Stack.of("a", "b", "c")
        assert list(s) == ["a", "b", "c"]
        assert "b" in s and "z" not in s
        assert s[0] == "a" and s[-1] == "c"
        assert s.items == ["a", "b", "c"]

    def test_isinstance(self):
        assert isinstance(Stack(), Stack)
        assert isinstance(BoundedStack(3), Stack)
        assert not isinstance(Stack(), BoundedStack)
        assert not isinstance(Stack(), int)
        assert issubclass(InsufficientFunds, ValueError)

    def test_index_error_round_trips(self):
        with pytest.raises(IndexError, match="pop from empty list"):
            Stack().pop()


def test_generator():
    assert list(gen(3)) == [0, 1, 2]
    g = gen(2)
    assert next(g) == 0 and next(g) == 1
    with pytest.raises(StopIteration):
        next(g)


def test_callback():
    assert apply(lambda x: x * 10, [1, 2]) == [10, 20]
    with pytest.raises(ZeroDivisionError):
        apply(lambda x: 1 / x, [0])


def test_custom_exception(account):
    with pytest.raises(InsufficientFunds, match="balance 10 < 50"):
        account.withdraw(50)
    with pytest.raises(ValueError) as info:
        account.withdraw(99)
    assert type(info.value) is InsufficientFunds
    assert account.withdraw(4) == 6


def test_plain_values():
    p = solution.point(1, 2)
    assert p == (1, 2) and p.x == 1 and p.y == 2 and isinstance(p, tuple)
    assert solution.grid() == {(0, 0): "origin", (1, 2): "p"}
    assert solution.evens([1, 2, 3, 4]) == {2, 4}
    assert solution.encode("é") == b"\\xc3\\xa9"
    nan, inf, ninf = solution.specials()
    assert math.isnan(nan) and inf == math.inf and ninf == -math.inf
    assert solution.big() == 2**200 + 1
    assert solution.price() == Decimal("19.99")
    assert type(solution.price()) is Decimal


def test_builtin_exceptions():
    with pytest.raises(KeyError) as info:
        solution.lookup({}, "missing")
    assert info.value.args == ("missing",)
    with pytest.raises(TypeError):
        solution.lookup([], "x")


def test_names_as_globals():
    print("printed by the test")
    assert shout("hi") == "HI"

"""

# Every counted test of the suite above, by the name the report gives it.
FEATURE_NAMES = [
    "test_conftest_fixture",
    "test_conftest_stack_fixture",
    "test_module_fixture_first",
    "test_module_fixture_second",
    "test_mean_cases[pair]",
    "test_mean_cases[single]",
    "test_mean_cases[three]",
    "test_expected_failure",
    "test_expected_error",
    "test_yield_fixture_torn_down",
    "test_after_yield_fixture",
    "test_warns",
    "test_approx",
    "test_raises_match",
    "test_custom_mark",
    "TestStack.test_push_pop",
    "TestStack.test_protocols",
    "TestStack.test_isinstance",
    "TestStack.test_index_error_round_trips",
    "test_generator",
    "test_callback",
    "test_custom_exception",
    "test_plain_values",
    "test_builtin_exceptions",
    "test_names_as_globals",
]


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("features")
    (directory / "test_x.py").write_text(FEATURES_TESTS, encoding="utf-8")
    (directory / "conftest.py").write_text(FEATURES_CONFTEST, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def features(
    sandbox: NamespaceSandbox, features_dir: Path
) -> tuple[dict[str, Outcome], str | None, Critique]:
    critic = TestsCritic(features_dir / "test_x.py", sandbox=sandbox)
    return judged(critic, FEATURES_SOLUTION)


def test_suite_file_with_conftest_is_judged_by_real_pytest(
    features: tuple[dict[str, Outcome], str | None, Critique], features_dir: Path
) -> None:
    outcomes, failure, critique = features
    assert failure is None
    failing = {name: why(o) for name, o in outcomes.items() if o.counted and not o.passed}
    assert failing == {}
    assert set(outcomes) == {*FEATURE_NAMES, "test_skipped", "test_skipped_if"}
    # The suite's only non-skipped tests pass: the draft passes, the skips count neither way.
    n = len(FEATURE_NAMES)
    assert critique.summary == f"{n} of {n} tests passed (2 skipped)"
    assert critique.passed and critique.score == 1.0 and critique.issues == []
    assert "SKIP test_skipped" in critique.feedback
    assert f"{n} of {n} tests passed." in critique.feedback
    # The conftest came from beside the file.
    suite = TestSuite.from_file(features_dir / "test_x.py")
    assert [name for name, _ in suite.support] == ["conftest.py"]


def test_fixtures_of_every_scope_and_the_conftest(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    for name in (
        "test_conftest_fixture",
        "test_conftest_stack_fixture",
        "test_module_fixture_first",
        "test_module_fixture_second",
        "test_yield_fixture_torn_down",
        "test_after_yield_fixture",
    ):
        assert outcomes[name].passed, why(outcomes[name])


def test_parametrize_ids_name_each_case(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    cases = [name for name in outcomes if name.startswith("test_mean_cases")]
    assert cases == ["test_mean_cases[pair]", "test_mean_cases[single]", "test_mean_cases[three]"]
    assert all(outcomes[name].passed for name in cases)


def test_skip_skipif_and_xfail_count_as_pytest_counts_them(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    skipped = outcomes["test_skipped"]
    assert skipped.outcome == "skipped" and not skipped.counted
    assert "not written yet" in (skipped.message or "")
    skipped_if = outcomes["test_skipped_if"]
    assert skipped_if.outcome == "skipped" and "never here" in (skipped_if.message or "")
    for name in ("test_expected_failure", "test_expected_error"):
        assert outcomes[name].outcome == "xfailed" and outcomes[name].passed
        assert outcomes[name].counted
    assert "mean of nothing is undefined" in (outcomes["test_expected_failure"].message or "")


def test_pytest_helpers_warns_approx_raises_and_marks(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    for name in ("test_warns", "test_approx", "test_raises_match", "test_custom_mark"):
        assert outcomes[name].passed, why(outcomes[name])


def test_solution_objects_behave_through_their_proxies(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    for name in (
        "TestStack.test_push_pop",
        "TestStack.test_protocols",
        "TestStack.test_isinstance",
        "TestStack.test_index_error_round_trips",
        "test_generator",
        "test_callback",
        "test_custom_exception",
        "test_plain_values",
        "test_builtin_exceptions",
    ):
        assert outcomes[name].passed, why(outcomes[name])


def test_imports_and_globals(
    features: tuple[dict[str, Outcome], str | None, Critique], features_dir: Path
) -> None:
    outcomes, _, _ = features
    # `from mean import mean` (not installed: the solution), `import solution` (in the
    # conftest too), and the solution's names without an import.
    assert outcomes["test_conftest_fixture"].passed
    assert outcomes["test_conftest_stack_fixture"].passed
    assert outcomes["test_names_as_globals"].passed, why(outcomes["test_names_as_globals"])
    assert TestSuite.from_file(features_dir / "test_x.py").modules == ("solution", "mean")


async def test_module_parameter_names_the_solution(sandbox: NamespaceSandbox) -> None:
    # No import statement names it, so only module="stack" makes it the solution.
    tests = (
        "import importlib\n\n\ndef test_stack():\n"
        "    stack = importlib.import_module('stack')\n"
        "    s = stack.Stack.of(1, 2)\n"
        "    assert len(s) == 2 and isinstance(s, stack.Stack)\n"
    )
    assert TestSuite.from_source(tests).modules == ("solution",)
    critic = TestsCritic(tests, sandbox=sandbox, module="stack")
    outcomes, failure = await critic.run_tests(FEATURES_SOLUTION)
    assert failure is None
    assert [(o.name, o.passed, o.message) for o in outcomes] == [("test_stack", True, None)]


async def test_module_parameter_keeps_the_modules_the_tests_import(
    sandbox: NamespaceSandbox,
) -> None:
    # module= adds a name the solution is known by; `from mean import mean` must still work.
    critic = TestsCritic(
        "from mean import mean\nassert mean([1, 3]) == 2\n", sandbox=sandbox, module="stack"
    )
    outcomes, failure = await critic.run_tests(FEATURES_SOLUTION)
    assert failure is None
    assert {o.name: o.message for o in outcomes if not o.passed} == {}
    assert set(critic.suite.modules) == {"solution", "mean", "stack"}


def test_what_the_solution_printed_is_the_outcomes_stdout(
    features: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = features
    # capsys cannot see it (the solution prints in its own process): the outcome has it, and
    # only it (the test's own print stays with pytest).
    assert outcomes["test_names_as_globals"].stdout == "shouting hi\n"
    assert outcomes["test_generator"].stdout == ""


# -- known gaps: tests of correct code that a user would expect to pass ------------------------

GAPS_SOLUTION = """
import warnings
from collections import namedtuple

Point = namedtuple("Point", "x y")


class Queue:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)

    def size(self):
        return len(self.items)


def old_api():
    warnings.warn("old_api is deprecated", DeprecationWarning)
    return 1


def point(x, y):
    return Point(x, y)


def factorial(n):
    result = 1
    for i in range(2, n + 1):
        result *= i
    return result
"""

GAPS_TESTS = """
import pytest

import solution
from queue import Queue


def test_module_named_like_an_installed_one():
    q = Queue()
    q.put(1)
    assert q.size() == 1


def test_warning_from_the_solution():
    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert solution.old_api() == 1


def test_namedtuple_comes_back_as_a_named_tuple():
    # A value, not an instance of the solution's class: its fields and equality hold.
    p = solution.point(1, 2)
    assert (p.x, p.y) == (1, 2) and p == (1, 2) and type(p).__name__ == "Point"


def test_big_int_result():
    assert solution.factorial(2000) > 10**5000
"""


@pytest.fixture(scope="module")
def gaps(sandbox: NamespaceSandbox) -> dict[str, Outcome]:
    critic = TestsCritic(GAPS_TESTS, sandbox=sandbox, module="queue")
    outcomes, failure = asyncio.run(critic.run_tests(GAPS_SOLUTION))
    assert failure is None
    return by_name(outcomes)


def test_pytest_module_parameter_shadows_an_installed_module(
    gaps: dict[str, Outcome], sandbox: NamespaceSandbox
) -> None:
    # module="queue": the solution is queue.py. The light judge serves it...
    light = TestsCritic(
        "from queue import Queue\nq = Queue()\nq.put(1)\nassert q.size() == 1\n",
        sandbox=sandbox,
        module="queue",
    )
    outcomes, failure = asyncio.run(light.run_tests(GAPS_SOLUTION))
    assert failure is None and [o.passed for o in outcomes] == [True]
    # ... and so must pytest, though the judge's process imported the real `queue` already.
    outcome = gaps["test_module_named_like_an_installed_one"]
    assert outcome.passed, why(outcome)


def test_pytest_warns_sees_a_warning_the_solution_emits(gaps: dict[str, Outcome]) -> None:
    outcome = gaps["test_warning_from_the_solution"]
    assert outcome.passed, why(outcome)


def test_namedtuple_result_keeps_its_fields(gaps: dict[str, Outcome]) -> None:
    outcome = gaps["test_namedtuple_comes_back_as_a_named_tuple"]
    assert outcome.passed, why(outcome)


def test_int_result_past_the_str_digits_limit_crosses(gaps: dict[str, Outcome]) -> None:
    # A correct factorial(2000) (5736 digits): the solution's process dies sending it.
    assert gaps["test_big_int_result"].passed, why(gaps["test_big_int_result"])


def test_light_judge_imports_the_solution_by_import_statements_only(
    sandbox: NamespaceSandbox,
) -> None:
    # The pytest judge serves importlib.import_module("stack") too (see
    # test_module_parameter_names_the_solution); the light judge serves `import` statements,
    # and importlib finds no installed module of that name.
    tests = (
        "import importlib\n"
        "import stack\n"
        "assert stack.factorial(3) == 6\n"
        "assert importlib.util.find_spec('stack') is None\n"
    )
    critic = TestsCritic(tests, sandbox=sandbox, module="stack")
    outcomes, failure = asyncio.run(critic.run_tests(GAPS_SOLUTION))
    assert failure is None
    assert [o.passed for o in outcomes] == [True, True]


# -- 4-5. failures: values, exceptions and lines, in every style ------------------------------

FAILING_SOLUTION = """
class InsufficientFunds(ValueError):
    pass


class Always:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


def mean(xs):
    return sum(xs)


def lookup(d, k):
    return fetch(d, k)


def fetch(d, k):
    return d[k]


def withdraw(balance, amount):
    raise InsufficientFunds(f"balance {balance} < {amount}")


def always():
    return Always()


def shout(text):
    print("shouting", text)
    return text
"""

FAILING_TESTS = """
import pytest

from mean import mean


def test_mean():
    assert mean([1, 2]) == 1.5


def test_lookup():
    assert lookup({}, "k") == 1


def test_withdraw():
    withdraw(1, 5)


def test_always_equal_is_not_equal():
    assert always() == 5


def test_output():
    assert shout("hi") == "HI"


@pytest.mark.skip(reason="later")
def test_later():
    assert mean([]) == 0


def test_empty():
    assert mean([]) == 0
"""


@pytest.fixture(scope="module")
def failures(sandbox: NamespaceSandbox) -> tuple[dict[str, Outcome], str | None, Critique]:
    return judged(TestsCritic(FAILING_TESTS, sandbox=sandbox), FAILING_SOLUTION)


def test_pytest_failures_are_reported_with_values(
    failures: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, failure, critique = failures
    assert failure is None
    mean = outcomes["test_mean"]
    assert (mean.outcome, mean.actual, mean.op, mean.expected) == ("failed", "3", "==", "1.5")
    assert mean.expression == "assert mean([1, 2]) == 1.5"
    problems = [issue.problem for issue in critique.issues]
    assert "test_mean failed: assert mean([1, 2]) == 1.5: got 3, expected == 1.5" in problems
    assert critique.summary == (
        "1 of 6 tests passed (1 skipped); failing: test_mean, test_lookup, test_withdraw, "
        "test_always_equal_is_not_equal, test_output"
    )
    assert not critique.passed and critique.score == pytest.approx(1 / 6)


def test_an_always_equal_object_does_not_pass(
    failures: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, _ = failures
    assert not outcomes["test_always_equal_is_not_equal"].passed
    assert outcomes["test_always_equal_is_not_equal"].outcome == "failed"


def test_pytest_exception_reports_the_solution_line_and_traceback(
    failures: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, critique = failures
    lookup = outcomes["test_lookup"]
    assert lookup.outcome == "error" and lookup.message == "KeyError: 'k'"
    assert lookup.solution_line == {"line": 22, "text": "return d[k]"}
    traceback = lookup.traceback or ""
    assert 'File "solution.py", line 18, in lookup' in traceback
    assert 'File "solution.py", line 22, in fetch' in traceback
    issue = next(i for i in critique.issues if i.problem.startswith("test_lookup"))
    assert issue.quote == "return d[k]" and issue.location == "solution line 22"
    assert issue.severity == "critical"
    withdraw = outcomes["test_withdraw"]
    assert (withdraw.message or "").endswith("InsufficientFunds: balance 1 < 5")
    assert withdraw.solution_line == {
        "line": 26,
        "text": 'raise InsufficientFunds(f"balance {balance} < {amount}")',
    }


def test_pytest_traceback_leaves_out_the_judges_own_frames(
    failures: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    # The report's traceback is "cut down to the solution and the tests" (tests.py): the
    # judge's proxy machinery is no part of what the editor should read.
    outcomes, _, _ = failures
    traceback = outcomes["test_lookup"].traceback or ""
    assert "in fetch" in traceback
    assert "remote.py" not in traceback, traceback
    assert "_redraft_remote" not in traceback and "def _outcome" not in traceback


def test_pytest_failure_shows_what_the_solution_printed(
    failures: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, _, critique = failures
    assert outcomes["test_output"].stdout == "shouting hi\n"
    assert "Printed: shouting hi" in critique.feedback
    assert outcomes["test_empty"].passed and outcomes["test_empty"].stdout == ""


LIGHT_SOLUTION = """
def mean(xs):
    return sum(xs)


def lookup(d, k):
    return fetch(d, k)


def fetch(d, k):
    return d[k]
"""


async def test_check_and_assert_failures_are_reported_with_values(
    sandbox: NamespaceSandbox,
) -> None:
    check = TestsCritic(
        "def check(candidate):\n    assert candidate([1, 2]) == 1.5\n",
        sandbox=sandbox,
        entry_point="mean",
    )
    checked = await judge(check, LIGHT_SOLUTION)
    assert [i.problem for i in checked.issues] == [
        "check(mean) failed: assert candidate([1, 2]) == 1.5: got 3, expected == 1.5"
    ]
    assert checked.summary == "0 of 1 tests passed; failing: check(mean)"
    asserts = TestsCritic("assert mean([1, 2]) == 1.5\nassert mean([]) == 0\n", sandbox=sandbox)
    asserted = await judge(asserts, LIGHT_SOLUTION)
    assert [i.problem for i in asserted.issues] == [
        "assert mean([1, 2]) == 1.5 failed: assert mean([1, 2]) == 1.5: got 3, expected == 1.5"
    ]
    assert asserted.score == 0.5 and not asserted.passed


async def test_check_and_assert_exceptions_point_at_the_solution_line(
    sandbox: NamespaceSandbox,
) -> None:
    styles = [
        TestsCritic(
            "def check(candidate):\n    assert candidate({}, 'k') == 1\n",
            sandbox=sandbox,
            entry_point="lookup",
        ),
        TestsCritic("assert lookup({}, 'k') == 1\n", sandbox=sandbox),
    ]
    for critic in styles:
        outcomes, failure = await critic.run_tests(LIGHT_SOLUTION)
        assert failure is None and len(outcomes) == 1
        outcome = outcomes[0]
        assert outcome.message == "KeyError: 'k'"
        assert outcome.solution_line == {"line": 11, "text": "return d[k]"}
        assert 'File "solution.py", line 7, in lookup' in (outcome.traceback or "")
        assert 'File "solution.py", line 11, in fetch' in (outcome.traceback or "")
        issue = (await judge(critic, LIGHT_SOLUTION)).issues[0]
        assert issue.quote == "return d[k]" and issue.location == "solution line 11"


async def test_builtin_and_own_exceptions_round_trip_in_a_check(
    sandbox: NamespaceSandbox,
) -> None:
    solution = """
class InsufficientFunds(ValueError):
    pass


def fail(kind):
    if kind == "key":
        return {}["x"]
    if kind == "zero":
        return 1 / 0
    if kind == "index":
        return [][1]
    if kind == "type":
        return len(5)
    if kind == "own":
        raise InsufficientFunds("too little")
    return kind
"""
    tests = """
def check(candidate):
    kinds = {
        "key": KeyError,
        "zero": ZeroDivisionError,
        "index": IndexError,
        "type": TypeError,
        "own": InsufficientFunds,
    }
    for name, kind in kinds.items():
        try:
            candidate(name)
        except kind as exc:
            assert type(exc) is kind, (name, type(exc))
        else:
            raise AssertionError(name + " did not raise")
    try:
        candidate("key")
    except KeyError as exc:
        assert exc.args == ("x",)
    try:
        candidate("own")
    except ValueError as exc:
        assert str(exc) == "too little" and type(exc).__name__ == "InsufficientFunds"
    assert candidate("none") == "none"
"""
    critique = await judge(TestsCritic(tests, sandbox=sandbox, entry_point="fail"), solution)
    assert critique.passed, critique.feedback


async def test_objects_in_an_assert_script(sandbox: NamespaceSandbox) -> None:
    tests = """
from stack import Stack, gen, apply
s = Stack()
s.push(1)
s.push(2)
assert len(s) == 2
assert list(s) == [1, 2]
assert 2 in s
assert s[0] == 1
assert isinstance(s, Stack)
assert s.pop() == 2
assert list(gen(3)) == [0, 1, 2]
assert apply(lambda x: -x, [1, 2]) == [-1, -2]
assert s == 1
"""
    outcomes, failure = await TestsCritic(tests, sandbox=sandbox).run_tests(FEATURES_SOLUTION)
    assert failure is None
    results = {o.name: o.passed for o in outcomes}
    # Each assert is a test; the last compares a solution object with plain data: not equal.
    assert results == {
        "assert len(s) == 2": True,
        "assert list(s) == [1, 2]": True,
        "assert 2 in s": True,
        "assert s[0] == 1": True,
        "assert isinstance(s, Stack)": True,
        "assert s.pop() == 2": True,
        "assert list(gen(3)) == [0, 1, 2]": True,
        "assert apply(lambda x: -x, [1, 2]) == [-1, -2]": True,
        "assert s == 1": False,
    }


# -- 5. import errors in the tests, syntax errors in the solution -----------------------------


@pytest.fixture(scope="module")
def pytest_import_error(sandbox: NamespaceSandbox) -> Critique:
    tests = "from mean import median\n\n\ndef test_median():\n    assert median([1]) == 1\n"
    return asyncio.run(judge(TestsCritic(tests, sandbox=sandbox), LIGHT_SOLUTION))


def test_pytest_import_error_in_the_tests_is_reported_verbatim(
    pytest_import_error: Critique,
) -> None:
    critique = pytest_import_error
    assert not critique.passed and critique.score == 0.0
    assert critique.summary.startswith("the tests do not run")
    assert len(critique.issues) == 1
    assert "ImportError: cannot import name 'median'" in critique.issues[0].problem
    assert "cannot import name 'median'" in critique.feedback


def test_tests_error_summary_says_why(pytest_import_error: Critique) -> None:
    # The one-line summary is all some reports show: "the tests do not run:" alone says
    # nothing of why.
    assert "cannot import name 'median'" in pytest_import_error.summary


async def test_light_import_errors_in_the_tests_are_reported_verbatim(
    sandbox: NamespaceSandbox,
) -> None:
    check = TestsCritic(
        "from mean import median\n\ndef check(candidate):\n    assert candidate([1]) == 1\n",
        sandbox=sandbox,
        entry_point="mean",
    )
    checked = await judge(check, LIGHT_SOLUTION)
    assert not checked.passed and checked.summary.startswith("the tests do not run")
    assert "ImportError: cannot import name 'median'" in checked.issues[0].problem
    asserts = TestsCritic("from mean import median\nassert median([1]) == 1\n", sandbox=sandbox)
    asserted = await judge(asserts, LIGHT_SOLUTION)
    assert not asserted.passed and asserted.score == 0.0
    assert asserted.issues[0].problem.startswith(
        "setup at line 1 failed: ImportError: cannot import name 'median'"
    )


async def test_syntax_error_in_the_solution_for_light_styles(sandbox: NamespaceSandbox) -> None:
    broken = "def mean(xs):\n    return sum(xs) /\n"
    for critic in (
        TestsCritic("assert mean([1]) == 1\n", sandbox=sandbox),
        TestsCritic("def check(c):\n    assert c([1]) == 1\n", sandbox=sandbox, entry_point="mean"),
    ):
        critique = await judge(critic, broken)
        assert not critique.passed and critique.score == 0.0
        assert critique.summary == (
            "the code does not run: SyntaxError: invalid syntax (solution.py, line 2)"
        )
        assert "return sum(xs) /" in critique.issues[0].problem


# -- 6. bounded reports -----------------------------------------------------------------------

HUGE = 100_000
LOUD_SOLUTION = """
def loud(n):
    print("z" * n)
    raise ValueError("v" * n)


def big(n):
    print("p" * n)
    return "r" * n
"""
LOUD_TESTS = """
import pytest


@pytest.mark.parametrize("n", [100_000], ids=["n" * 100_000])
def test_long(n):
    assert loud(n) == 1


def test_message():
    assert big(100_000) == "x", "m" * 100_000
"""


def assert_capped(outcome: Outcome) -> None:
    for name, limit in FIELD_CHARS.items():
        value = getattr(outcome, name, None)
        assert value is None or len(value) <= limit + CAP_NOTE, (name, len(value))


@pytest.fixture(scope="module")
def loud(sandbox: NamespaceSandbox) -> tuple[dict[str, Outcome], str | None, Critique]:
    return judged(TestsCritic(LOUD_TESTS, sandbox=sandbox), LOUD_SOLUTION)


def test_huge_names_messages_and_output_are_capped(
    loud: tuple[dict[str, Outcome], str | None, Critique],
) -> None:
    outcomes, failure, critique = loud
    assert failure is None and len(outcomes) == 2
    long = next(o for name, o in outcomes.items() if name.startswith("test_long[nnn"))
    message = outcomes["test_message"]
    for outcome in (long, message):
        assert_capped(outcome)
        assert not outcome.passed
        assert len(outcome.stdout) <= FIELD_CHARS["stdout"]
    assert len(long.name) <= FIELD_CHARS["name"] + CAP_NOTE
    assert long.message is not None and long.message.startswith("ValueError: vvv")
    assert len(long.message) > 1000  # capped, not dropped
    assert set(long.stdout.strip()) == {"z"} and len(long.stdout) > 1000
    assert message.message is not None and message.message.startswith("AssertionError: mmm")
    assert message.actual is not None and message.actual.startswith("'rrr")
    assert set(message.stdout.strip()) == {"p"}
    # What reaches the editor stays small, though the code and tests made megabytes of it.
    assert len(critique.feedback) < 20_000
    assert len(critique.summary) < 1_000
    assert all(len(issue.problem) < 6_000 for issue in critique.issues)


async def test_huge_assert_in_a_script_is_capped(sandbox: NamespaceSandbox) -> None:
    tests = "assert big(100_000) == '" + "e" * HUGE + "'\n"
    critic = TestsCritic(tests, sandbox=sandbox)
    outcomes, failure = await critic.run_tests(LOUD_SOLUTION)
    assert failure is None and len(outcomes) == 1
    outcome = outcomes[0]
    assert_capped(outcome)
    assert not outcome.passed and outcome.actual is not None and outcome.expected is not None
    assert outcome.expected.startswith("'eee") and len(outcome.stdout) <= FIELD_CHARS["stdout"]
    critique = await judge(critic, LOUD_SOLUTION)
    assert len(critique.feedback) < 10_000 and len(critique.summary) < 1_000
    assert len(critique.issues[0].problem) < 3_000


# -- 7. a test that hangs: it times out, the next tests get a fresh process -------------------

HANGING_SOLUTION = """
CALLS = []


def f(n):
    CALLS.append(n)
    while n < 0:
        pass
    return n * 2
"""
HANGING_TESTS = """
import solution


def test_hangs():
    assert f(-1) == -2


def test_after():
    assert f(2) == 4
    assert solution.CALLS == [2]  # a fresh process: the hung call is gone


def test_third():
    assert f(3) == 6
"""


async def test_pytest_test_that_hangs_times_out_and_the_rest_run(
    sandbox: NamespaceSandbox,
) -> None:
    critic = TestsCritic(HANGING_TESTS, sandbox=sandbox, test_timeout_s=1.0)
    outcomes, failure = await critic.run_tests(HANGING_SOLUTION)
    assert failure is None
    results = by_name(outcomes)
    assert list(results) == ["test_hangs", "test_after", "test_third"]
    hung = results["test_hangs"]
    assert not hung.passed and hung.outcome == "timeout"
    assert hung.message == "did not finish within 1 s"
    assert results["test_after"].passed, why(results["test_after"])
    assert results["test_third"].passed, why(results["test_third"])


async def test_assert_script_that_hangs_times_out_and_the_rest_run(
    sandbox: NamespaceSandbox,
) -> None:
    tests = "import solution\nassert f(-1) == -2\nassert f(2) == 4\nassert solution.CALLS == [2]\n"
    critic = TestsCritic(tests, sandbox=sandbox, test_timeout_s=1.0)
    critique = await judge(critic, HANGING_SOLUTION)
    assert critique.summary == "2 of 3 tests passed; failing: assert f(-1) == -2"
    assert critique.issues[0].problem == (
        "assert f(-1) == -2 did not finish within 1 s (an endless loop, or far too slow)"
    )


# -- 8. stdin/stdout cases --------------------------------------------------------------------


async def test_io_cases_wrong_output_exit_code_and_timeout(sandbox: NamespaceSandbox) -> None:
    cases = [
        {"input": "1\n", "output": "2\n", "name": "right"},
        {"input": "2\n", "output": "4", "name": "wrong"},
        {"input": "3", "output": "6", "name": "exits"},
        {"input": "-1", "output": "-2", "name": "hangs"},
    ]
    program = (
        "import sys\n"
        "n = int(input())\n"
        "if n == 2:\n"
        "    print(5)\n"
        "elif n == 3:\n"
        "    print('giving up', file=sys.stderr)\n"
        "    sys.exit(3)\n"
        "else:\n"
        "    while n < 0:\n"
        "        pass\n"
        "    print(n * 2)\n"
    )
    critic = TestsCritic(cases, sandbox=sandbox, test_timeout_s=1.0)
    outcomes, failure = await critic.run_tests(program)
    assert failure is None
    results = by_name(outcomes)
    assert results["right"].passed and results["right"].stdout == "2\n"
    wrong = results["wrong"]
    assert (wrong.outcome, wrong.actual, wrong.expected) == ("failed", "'5\\n'", "'4'")
    exits = results["exits"]
    assert (
        exits.outcome == "error" and exits.message == "the program failed (exit code 3: giving up)"
    )
    assert exits.stderr == "giving up\n"
    assert results["hangs"].outcome == "timeout" and not results["hangs"].passed
    critique = await judge(critic, program)
    assert critique.summary == "1 of 4 tests passed; failing: wrong, exits, hangs"
    right = await judge(critic, "n = int(input())\nprint(n * 2)\n")
    assert right.passed and right.score == 1.0


# -- 9. HumanEval -----------------------------------------------------------------------------

POLY_PROMPT = '''import math


def poly(xs: list, x: float):
    """Evaluates polynomial with coefficients xs at point x."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """xs are the coefficients of a polynomial; find x such that poly(x) = 0."""
'''
POLY_COMPLETION = """    begin, end = -1.0, 1.0
    while poly(xs, begin) * poly(xs, end) > 0:
        begin *= 2.0
        end *= 2.0
    while end - begin > 1e-10:
        center = (begin + end) / 2.0
        if poly(xs, center) * poly(xs, begin) > 0:
            begin = center
        else:
            end = center
    return begin
"""
POLY_CHECK = """

METADATA = {}


def check(candidate):
    import math
    import random
    rng = random.Random(42)
    import copy
    for _ in range(100):
        ncoeff = 2 * rng.randint(1, 4)
        coeffs = []
        for _ in range(ncoeff):
            coeff = rng.randint(-10, 10)
            if coeff == 0:
                coeff = 1
            coeffs.append(coeff)
        solution = candidate(copy.deepcopy(coeffs))
        assert math.fabs(poly(coeffs, solution)) < 1e-4
"""


async def test_humaneval_check_uses_a_helper_from_the_prompt(sandbox: NamespaceSandbox) -> None:
    critic = TestsCritic(POLY_CHECK, sandbox=sandbox, entry_point="find_zero")
    good = await judge(critic, POLY_PROMPT + POLY_COMPLETION)
    assert good.passed and good.summary == "1 of 1 tests passed", good.feedback
    bad = await judge(critic, POLY_PROMPT + "    return 0.5\n")
    assert not bad.passed
    problem = bad.issues[0].problem
    assert problem.startswith(
        "check(find_zero) failed: assert math.fabs(poly(coeffs, solution)) < 1e-4: got "
    )
    assert problem.endswith(", expected < 0.0001")
    # The entry point, not the last function defined: poly is no candidate.
    missing = await judge(critic, POLY_PROMPT.replace("def find_zero", "def other") + "    pass\n")
    assert missing.issues[0].problem == (
        "check(find_zero) failed: the code defines no function named 'find_zero'"
    )


# -- the solution's objects among themselves, and against the tests' data ---------------------

OBJECTS_SOLUTION = """
class Money:
    def __init__(self, cents):
        self.cents = cents

    def __add__(self, other):
        return Money(self.cents + other.cents)

    def __sub__(self, other):
        return 0  # claims to differ by nothing from whatever it is given

    def __eq__(self, other):
        return isinstance(other, Money) and other.cents == self.cents

    __hash__ = object.__hash__


class Bag:
    def __init__(self, *items):
        self.items = list(items)

    def __iter__(self):
        return iter(self.items)

    def __contains__(self, item):
        return True  # claims to hold anything


def abs(x):
    return 0


def first(items):
    raise StopIteration
"""

OBJECTS_TESTS = """
assert Money(1) + Money(2) == Money(3)
assert (Money(1) + Money(2)).cents == 3
assert 2 in Bag(1, 2)
assert 5 not in Bag(1, 2)
assert abs(-3) == 3
try:
    Money(1) - 0.5
except TypeError:
    refused = True
else:
    refused = False
assert refused
assert all(map(lambda items: first(items) == 1, [[1], [1]]))
"""


def test_operators_act_only_between_the_solutions_objects(sandbox: NamespaceSandbox) -> None:
    """Between its own objects the solution's operators hold; against the tests' data (an
    expected value, an item to look for) it does not get to answer, its `abs` does not
    replace the tests', and a StopIteration it raises does not end the tests' loop."""
    critic = TestsCritic(OBJECTS_TESTS, sandbox=sandbox)
    outcomes, failure = asyncio.run(critic.run_tests(OBJECTS_SOLUTION))
    assert failure is None
    passed = {o.name: o.passed for o in outcomes}
    assert passed == {
        "assert Money(1) + Money(2) == Money(3)": True,
        "assert (Money(1) + Money(2)).cents == 3": True,
        "assert 2 in Bag(1, 2)": True,
        "assert 5 not in Bag(1, 2)": True,
        "assert abs(-3) == 3": True,
        "assert refused": True,
        "assert all(map(lambda items: first(items) == 1, [[1], [1]]))": False,
    }, [why(o) for o in outcomes if not o.passed]
    stopped = outcomes[-1]
    assert "StopIteration" in (stopped.message or ""), why(stopped)
