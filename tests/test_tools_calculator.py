"""The calculator tool: exact arithmetic, refusals that come fast, and calls from a model."""

from __future__ import annotations

import json
import time
from fractions import Fraction

import pytest

from redraft import ScriptedModel
from redraft.models.base import Completion, ModelRequest, ToolCall, user
from redraft.tools import (
    Calculator,
    CalculatorResult,
    ToolContext,
    ToolError,
    complete_with_tools,
)
from redraft.tools.calculator import MAX_SHOWN_DIGITS


def calc(expression: str) -> CalculatorResult:
    return Calculator.evaluate(expression)


def refused(expression: str) -> str:
    """The refusal of `expression`, checked to come at once (no work on huge numbers)."""
    started = time.perf_counter()
    with pytest.raises(ToolError) as caught:
        calc(expression)
    assert time.perf_counter() - started < 0.5, expression
    return str(caught.value)


# -- exact results -----------------------------------------------------------------------------


def test_decimals_are_exact_fractions() -> None:
    result = calc("0.1 + 0.2")
    assert result.value == "3/10" and result.decimal == "0.3" and result.exact
    assert Fraction(result.value) == Fraction(3, 10)
    assert calc("0.1 + 0.2 - 0.3").value == "0"
    assert calc("1.5e3 + 1_000").value == "2500"
    assert calc("1e-5").value == "1/100000"


def test_big_powers_are_given_in_full() -> None:
    result = calc("2**100")
    assert result.value == str(2**100) and result.exact and result.decimal is None
    assert calc("2**-2").value == "1/4"
    assert calc("(-1)**(10**30)").value == "1"  # trivial bases take any exponent


def test_a_third_is_a_fraction_with_30_significant_digits() -> None:
    result = calc("1/3")
    assert result.value == "1/3" and result.exact
    assert result.decimal == "0." + "3" * 30
    assert calc("100/3").decimal == "33." + "3" * 28


def test_operators_follow_python() -> None:
    assert calc("7 // 2").value == "3"
    assert calc("-7 % 3").value == "2"
    assert calc("2**3**2").value == "512"
    assert calc("-2**2").value == "-4"
    assert calc("(1/3 + 0.25) * 12").value == "7"
    assert calc("+".join(["1"] * 900)).value == "900"  # a long sum is no deep nesting


def test_functions_are_exact_where_the_answer_is_rational() -> None:
    assert calc("sqrt(16/9)").value == "4/3"
    assert calc("8**(1/3)").value == "2"
    assert calc("(-8)**(1/3)").value == "-2"
    assert calc("factorial(20)").value == "2432902008176640000"
    assert calc("gcd(12, 18)").value == "6" and calc("lcm(4, 6)").value == "12"
    assert calc("floor(-7/2)").value == "-4" and calc("ceil(7/2)").value == "4"
    assert calc("round(1/3, 5)").value == "33333/100000"
    assert calc("round(2.5)").value == "2"  # halves to even, as in Python
    assert calc("min(1, 0.5, 1/3)").value == "1/3" and calc("max(2, 3)").value == "3"
    assert calc("abs(-3/4)").value == "3/4"


def test_floats_are_marked_as_approximate() -> None:
    root = calc("sqrt(2)")
    assert not root.exact and root.value == repr(2**0.5)
    assert root.note is not None and "sqrt" in root.note and "floating-point" in root.note
    circle = calc("2 * pi")
    assert not circle.exact and circle.note is not None and "pi" in circle.note
    assert not calc("2**0.5").exact
    assert not calc("log(8, 2)").exact
    # A whole number reached through a float says it may be off.
    through = calc("floor(pi)")
    assert (
        through.value == "3" and not through.exact and "may be approximate" in (through.note or "")
    )


def test_long_results_are_shown_to_significant_digits() -> None:
    result = calc("factorial(5000)")
    assert result.exact and result.value.startswith("4.22857792660554352220106420")
    assert result.note is not None and "16,326 digits" in result.note
    assert len(calc(f"10**{MAX_SHOWN_DIGITS - 1}").value) == MAX_SHOWN_DIGITS  # in full


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("__import__('os')", "not a function the calculator has"),
        ("__import__('os').system('echo hi')", "attribute access"),
        ("open('/etc/passwd')", "not a function the calculator has"),
        ("().__class__.__bases__", "attribute access"),
        ("(1).real", "attribute access"),
        ("lambda: 1", "a lambda is not allowed"),
        ("[x for x in (1, 2)]", "comprehension"),
        ("'a' * 3", "a string is not a number"),
        ("x + 1", "unknown name 'x'"),
        ("True + 1", "True is not a number"),
        ("2^10", "write **"),
        ("1 < 2", "comparison"),
        ("(1, 2)", "tuple"),
        ("3j", "imaginary"),
        ("sqrt", "call it"),
        ("abs(1, 2)", "takes 1 argument"),
        ("round(2, ndigits=1)", "plain arguments"),
        ("import os", "not an arithmetic expression"),
        ("x = 1", "not an arithmetic expression"),
        ("", "empty"),
        ("1/0", "division by zero"),
        ("sqrt(-1)", "no real value"),
        ("(-4)**0.5", "no real value"),
        ("factorial(1/2)", "whole numbers"),
        ("exp(1000)", "too large for a floating-point number"),
    ],
)
def test_what_is_not_arithmetic_is_refused_with_a_reason(expression: str, says: str) -> None:
    assert says in refused(expression)


def test_huge_powers_are_refused_before_they_are_computed() -> None:
    assert "would have about 369,693,100 digits" in refused("9**9**9**9")
    assert "digits" in refused("2**(10**30)")
    assert "digits" in refused("10**10**10")
    assert "digits" in refused("factorial(5000)**2")
    assert "digits" in refused("1e999999999")  # a literal is bounded too


def test_factorials_are_bounded() -> None:
    assert "up to 5,000" in refused("factorial(10**9)")
    assert "up to 5,000" in refused("factorial(5001)")
    assert "at least 0" in refused("factorial(-1)")


def test_long_or_deep_expressions_are_refused() -> None:
    assert "at most 2,000" in refused("1+" * 1500 + "1")
    assert "nests more than" in refused("2**" * 300 + "1")
    assert "not an arithmetic expression" in refused("(" * 300 + "1" + ")" * 300)


# -- as a tool ---------------------------------------------------------------------------------


async def test_the_tool_is_called_with_an_expression() -> None:
    calculator = Calculator()
    assert calculator.name == "calculator"
    assert list(calculator.spec.parameters["properties"]) == ["expression"]
    result = await calculator.acall({"expression": "0.1 + 0.2"})
    assert isinstance(result, CalculatorResult) and result.value == "3/10"
    text, cut = calculator.render(result)
    assert not cut and json.loads(text) == {
        "expression": "0.1 + 0.2",
        "value": "3/10",
        "decimal": "0.3",
        "exact": True,
    }
    with pytest.raises(ToolError, match="invalid arguments"):
        await calculator.acall({"expr": "1"})
    with pytest.raises(ToolError, match="attribute access"):
        await calculator.acall({"expression": "().__class__"})


async def test_a_model_calls_the_calculator_in_the_tool_loop() -> None:
    model = ScriptedModel(
        [
            Completion(
                text="",
                tool_calls=[
                    ToolCall(id="a", name="calculator", arguments={"expression": "2**100"}),
                    ToolCall(id="b", name="calculator", arguments={"expression": "9**9**9**9"}),
                ],
            ),
            "2**100 is 1267650600228229401496703205376.",
        ]
    )
    run = await complete_with_tools(
        model,
        ModelRequest(messages=[user("What is 2**100?")]),
        [Calculator()],
        ToolContext(role="actor"),
    )
    assert run.completion.text.startswith("2**100 is")
    exact, huge = run.invocations
    assert exact.error is None and json.loads(exact.result or "")["value"] == str(2**100)
    assert huge.result is None and huge.error is not None and "digits" in huge.error
    # The second turn showed the model both outcomes.
    shown = model.calls[1].prompt
    assert str(2**100) in shown and "the calculator stops at" in shown
