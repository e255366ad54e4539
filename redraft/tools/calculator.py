"""A calculator tool: arithmetic evaluated exactly, without running the expression as code.

The expression is parsed with `ast` and walked node by node; only numbers, the arithmetic
operators and a few named functions and constants are understood, so nothing else can run.
Numbers are fractions (0.1 is 1/10, not the float nearest it), so 0.1 + 0.2 is exactly 3/10;
a step with no exact rational answer (sqrt(2), sin, pi) makes the result a float, and the
result says so. Work is bounded before it is done: a power or a factorial whose result would
be too long is refused at once rather than computed.
"""

from __future__ import annotations

import ast
import decimal
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

from redraft.tools.base import DEFAULT_MAX_OUTPUT_CHARS, Tool, ToolError

# Union, not |: the alias is evaluated at run time on Python 3.10 too.
Number = Union[Fraction, float]  # noqa: UP007

MAX_EXPRESSION_CHARS = 2_000
# Any exact value, on the way or at the end, has at most this many digits above and below
# the fraction bar; far more than arithmetic needs, and quick to compute with.
MAX_DIGITS = 20_000
_MAX_BITS = int(MAX_DIGITS / math.log10(2))
MAX_FACTORIAL = 5_000  # 16,326 digits
# Integers and fractions longer than this are shown to SIGNIFICANT digits instead.
MAX_SHOWN_DIGITS = 5_000
SIGNIFICANT = 30
_MAX_ROUND_DIGITS = 1_000
_MAX_ROOT = 64  # the largest n of an exact n-th root (x**(1/n)) tried
_MAX_DEPTH = 200  # nested operations; the walk is recursive

DESCRIPTION = (
    "Evaluate an arithmetic expression exactly (Python syntax). Numbers are exact fractions: "
    "0.1 + 0.2 is 3/10, 1/3 stays 1/3, 2**100 is given in full. Operators: + - * / // % ** "
    "and parentheses. Functions: abs, round, min, max, floor, ceil, factorial, gcd, lcm, "
    "sqrt, exp, log (natural, or log(x, base)), log2, log10, sin, cos, tan (radians); "
    "constants pi, e, tau. sqrt of a non-square, fractional powers with no exact root, exp, "
    "log, the trigonometric functions and the constants give floating-point results "
    "(about 16 significant digits), marked exact=false. Nothing but arithmetic can be run."
)


class CalculatorArguments(BaseModel):
    """The expression to evaluate."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        description="An arithmetic expression such as '(1/3 + 0.25) * 12' or 'sqrt(2)**2'.",
        max_length=MAX_EXPRESSION_CHARS,
    )


class CalculatorResult(BaseModel):
    """An evaluated expression: `value` is exact unless `exact` is false."""

    expression: str
    value: str = Field(description="The value: an integer, a fraction p/q, or a float.")
    decimal: str | None = Field(
        default=None,
        description=f"A fraction's decimal expansion, to {SIGNIFICANT} significant digits.",
    )
    exact: bool
    note: str | None = None


class Calculator(Tool):
    """A tool that evaluates arithmetic exactly; the model passes `expression`.

    `Calculator().evaluate("1/3")` does the same from Python.
    """

    def __init__(
        self,
        *,
        name: str = "calculator",
        description: str | None = None,
        timeout_s: float | None = 10.0,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        super().__init__(
            self._run,
            name=name,
            description=description if description is not None else DESCRIPTION,
            args_model=CalculatorArguments,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
        )

    @staticmethod
    def evaluate(expression: str) -> CalculatorResult:
        """`expression` evaluated, or a ToolError saying why it is refused."""
        return evaluate(expression)

    def render(self, value: Any) -> tuple[str, bool]:
        if isinstance(value, CalculatorResult):
            return super().render(value.model_dump_json(exclude_none=True))
        return super().render(value)

    def _run(self, arguments: CalculatorArguments) -> CalculatorResult:
        return evaluate(arguments.expression)


def evaluate(expression: str) -> CalculatorResult:
    """`expression` evaluated exactly where it can be, or a ToolError saying why not."""
    source = expression.strip()
    if not source:
        raise ToolError("the expression is empty; give one such as 1/3 + 1/6")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ToolError(
            f"the expression has {len(source):,} characters; the calculator takes at most "
            f"{MAX_EXPRESSION_CHARS:,}: split it into parts"
        )
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" (at column {exc.offset})" if exc.offset else ""
        raise ToolError(f"not an arithmetic expression: {exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError):  # null bytes; absurd nesting
        raise ToolError("not an arithmetic expression the calculator can read") from None
    walk = _Evaluation(source)
    try:
        value = walk.value(tree.body, 0)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError(
            "the result is too large for a floating-point number (an inexact step made it a "
            "float); keep the expression exact, or scale it down"
        ) from None
    except (ValueError, ArithmeticError) as exc:  # a math domain error not foreseen above
        raise ToolError(f"cannot evaluate {source}: {exc}") from None
    return _result(source, value, walk.inexact)


class _Evaluation:
    """One expression's walk; `inexact` names the steps that made its value a float."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.inexact: list[str] = []

    def value(self, node: ast.expr, depth: int) -> Number:
        if depth > _MAX_DEPTH:
            raise ToolError(
                f"the expression nests more than {_MAX_DEPTH} operations; split it into parts"
            )
        if isinstance(node, ast.Constant):
            return self._literal(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            raise ToolError(f"the operator {_OPERATORS.get(type(node.op), '?')} is not arithmetic")
        if isinstance(node, ast.BinOp):
            return self._binary(node, depth)
        if isinstance(node, ast.Name):
            return self._constant(node.id)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise ToolError(_refusal(node))

    # -- the parts -------------------------------------------------------------------------

    def _literal(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, complex):
                raise ToolError("imaginary numbers (such as 2j) are not supported")
            kind = "a string" if isinstance(value, (str, bytes)) else repr(value)
            raise ToolError(f"{kind} is not a number; the calculator takes numbers only")
        if isinstance(value, int):
            return Fraction(value)
        # The literal as written, not the float Python made of it: 0.1 is exactly 1/10.
        text = (ast.get_source_segment(self.source, node) or repr(value)).replace("_", "")
        try:
            written = decimal.Decimal(text)
        except decimal.InvalidOperation:  # pragma: no cover - the parser accepted it
            raise ToolError(f"cannot read the number {text}") from None
        exponent = written.as_tuple().exponent
        if not isinstance(exponent, int) or abs(exponent) + len(written.as_tuple().digits) > (
            MAX_DIGITS
        ):
            raise ToolError(f"the number {text} is too long (over {MAX_DIGITS:,} digits)")
        return Fraction(written)

    def _constant(self, name: str) -> Number:
        if name in _CONSTANTS:
            self._mark(name)
            return _CONSTANTS[name]
        if name in _FUNCTIONS:
            raise ToolError(f"{name} is a function: call it, e.g. {name}(2)")
        raise ToolError(
            f"unknown name {name!r}: the calculator knows only the constants "
            f"{', '.join(_CONSTANTS)} and the functions {', '.join(_FUNCTIONS)}"
        )

    def _binary(self, node: ast.BinOp, depth: int) -> Number:
        # A long sum such as 1 + 2 + ... + 600 nests to the left, one level a term: its left
        # spine is walked in a loop, so only the right operands count towards the depth.
        spine = [node]
        left = node.left
        while isinstance(left, ast.BinOp):
            spine.append(left)
            left = left.left
        value = self.value(left, depth + 1)
        for step in reversed(spine):
            value = self._operation(step.op, value, self.value(step.right, depth + 1))
        return value

    def _operation(self, op: ast.operator, left: Number, right: Number) -> Number:
        kind = type(op)
        if kind is ast.BitXor:
            raise ToolError("^ is not a power here: write ** (e.g. 2**10)")
        if kind not in _ARITHMETIC:
            raise ToolError(f"the operator {_OPERATORS.get(kind, '?')} is not supported")
        if kind is ast.Pow:
            return _bounded(self._power(left, right))
        result = _ARITHMETIC[kind](left, right)
        if isinstance(result, int):  # Fraction // Fraction is an int
            result = Fraction(result)
        return _bounded(result)

    def _power(self, base: Number, exponent: Number) -> Number:
        if isinstance(base, float) or isinstance(exponent, float):
            return _float_power(float(base), float(exponent))
        if exponent.denominator == 1:
            return _exact_power(base, exponent.numerator)
        # A fractional power: exact when the base is a perfect power (8**(1/3) is 2).
        root_of = exponent.denominator
        if root_of <= _MAX_ROOT and (base >= 0 or root_of % 2 == 1):
            root = _exact_root(abs(base), root_of)
            if root is not None:
                return _exact_power(root if base >= 0 else -root, exponent.numerator)
        if base < 0 and root_of % 2 == 0:
            raise ToolError("a negative number to a fractional power has no real value")
        self._mark("a fractional power with no exact root")
        magnitude = _float_power(float(abs(base)), float(exponent))
        return magnitude if base >= 0 else -magnitude  # an odd root of a negative number

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name):
            raise ToolError(
                _refusal(node.func) if not isinstance(node.func, ast.Attribute) else _ATTRIBUTE
            )
        name = node.func.id
        if name not in _FUNCTIONS:
            raise ToolError(
                f"{name} is not a function the calculator has; it has {', '.join(_FUNCTIONS)}"
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ToolError(f"{name} takes plain arguments, e.g. {name}(2), not name=value or *")
        args = [self.value(arg, depth + 1) for arg in node.args]
        low, high = _ARITY[name]
        if not low <= len(args) <= (high if high is not None else len(args)):
            wanted = f"{low}" if low == high else f"{low} to {high}" if high else f"{low} or more"
            raise ToolError(f"{name} takes {wanted} argument(s); got {len(args)}")
        return _bounded(getattr(self, f"_fn_{name}")(*args))

    def _mark(self, why: str) -> None:
        if why not in self.inexact:
            self.inexact.append(why)

    # -- the functions: each exact where its answer is rational ---------------------------

    def _fn_abs(self, x: Number) -> Number:
        return -x if x < 0 else x

    def _fn_round(self, x: Number, digits: Number | None = None) -> Number:
        if digits is None:
            return Fraction(round(x))
        places = _whole("round's second argument", digits)
        if abs(places) > _MAX_ROUND_DIGITS:
            raise ToolError(f"round keeps at most {_MAX_ROUND_DIGITS} digits; got {places}")
        if isinstance(x, float):
            return round(x, places)
        return round(x, places)  # a Fraction: rounded exactly

    def _fn_min(self, *xs: Number) -> Number:
        return min(xs, key=_as_key)

    def _fn_max(self, *xs: Number) -> Number:
        return max(xs, key=_as_key)

    def _fn_floor(self, x: Number) -> Number:
        return Fraction(math.floor(x))

    def _fn_ceil(self, x: Number) -> Number:
        return Fraction(math.ceil(x))

    def _fn_factorial(self, x: Number) -> Number:
        n = _whole("factorial's argument", x)
        if n < 0:
            raise ToolError("factorial is defined for whole numbers of at least 0")
        if n > MAX_FACTORIAL:
            raise ToolError(
                f"factorial({n}) is refused: the calculator computes factorials up to "
                f"{MAX_FACTORIAL:,} (whose result already has 16,326 digits)"
            )
        return Fraction(math.factorial(n))

    def _fn_gcd(self, *xs: Number) -> Number:
        return Fraction(math.gcd(*(_whole("gcd's arguments", x) for x in xs)))

    def _fn_lcm(self, *xs: Number) -> Number:
        multiple = 1
        for x in xs:  # checked a step at a time: the product of many long numbers is slow
            multiple = math.lcm(multiple, _whole("lcm's arguments", x))
            _bounded(Fraction(multiple))
        return Fraction(multiple)

    def _fn_sqrt(self, x: Number) -> Number:
        if x < 0:
            raise ToolError("sqrt of a negative number has no real value")
        if isinstance(x, Fraction):
            root = _exact_root(x, 2)
            if root is not None:
                return root
        self._mark("sqrt")
        return math.sqrt(x)

    def _fn_exp(self, x: Number) -> Number:
        self._mark("exp")
        return math.exp(x)

    def _fn_log(self, x: Number, base: Number | None = None) -> Number:
        if base is None:
            return self._logarithm("log", x, math.log)
        if base <= 0 or base == 1:
            raise ToolError("log's base must be positive and not 1")
        return self._logarithm("log", x, math.log) / self._logarithm("log", base, math.log)

    def _fn_log2(self, x: Number) -> Number:
        return self._logarithm("log2", x, math.log2)

    def _fn_log10(self, x: Number) -> Number:
        return self._logarithm("log10", x, math.log10)

    def _fn_sin(self, x: Number) -> Number:
        self._mark("sin")
        return math.sin(x)

    def _fn_cos(self, x: Number) -> Number:
        self._mark("cos")
        return math.cos(x)

    def _fn_tan(self, x: Number) -> Number:
        self._mark("tan")
        return math.tan(x)

    def _logarithm(self, name: str, x: Number, log: Callable[[float], float]) -> float:
        if x <= 0:
            raise ToolError(f"{name} is defined for positive numbers only")
        self._mark(name)
        if isinstance(x, Fraction):
            # Of the integers apart: math's logarithms take integers of any size, while a
            # long fraction would not fit in a float.
            return log(x.numerator) - log(x.denominator)
        return log(x)


def _exact_power(base: Fraction, exponent: int) -> Fraction:
    """base**exponent, refused at once when it would be longer than MAX_DIGITS."""
    if base in (0, 1, -1) or exponent in (0, 1):
        if base == 0 and exponent < 0:
            raise ZeroDivisionError
        return base**exponent
    widest = max(abs(base.numerator), base.denominator)
    digits = abs(exponent) * math.log10(widest)
    if digits > MAX_DIGITS:
        raise ToolError(
            f"the power would have about {_about(digits)} digits; the calculator stops at "
            f"{MAX_DIGITS:,}"
        )
    return base**exponent


def _float_power(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except ValueError:  # a negative base and a non-integer exponent
        raise ToolError("a negative number to a fractional power has no real value") from None


def _exact_root(x: Fraction, n: int) -> Fraction | None:
    """The n-th root of x >= 0 when it is a fraction, else None."""
    top = _integer_root(x.numerator, n)
    bottom = _integer_root(x.denominator, n) if top is not None else None
    return Fraction(top, bottom) if top is not None and bottom is not None else None


def _integer_root(m: int, n: int) -> int | None:
    """r with r**n == m, for m >= 0, or None."""
    if m < 2:
        return m
    if n == 2:
        r = math.isqrt(m)
    else:
        # Newton's method on integers, from above: each step lowers r until it is the floor.
        r = 1 << -(-m.bit_length() // n)
        while True:
            lower = ((n - 1) * r + m // r ** (n - 1)) // n
            if lower >= r:
                break
            r = lower
    return r if r**n == m else None


def _bounded(value: Number) -> Number:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OverflowError
        return value
    if max(abs(value.numerator).bit_length(), value.denominator.bit_length()) > _MAX_BITS:
        raise ToolError(
            f"a value on the way has over {MAX_DIGITS:,} digits, more than the calculator "
            "keeps; reorder or split the expression"
        )
    return value


def _as_key(x: Number) -> float:
    # Fractions and floats compare exactly with each other; typeshed cannot say so.
    return x  # type: ignore[return-value]


def _whole(what: str, x: Number) -> int:
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    if isinstance(x, float) and x.is_integer():
        return int(x)
    raise ToolError(f"{what} must be whole numbers; got {_shown(x)}")


def _result(source: str, value: Number, inexact: list[str]) -> CalculatorResult:
    if isinstance(value, float):
        value = value + 0.0  # -0.0 reads as 0.0
        return CalculatorResult(
            expression=source,
            value=repr(value),
            exact=False,
            note=_approximate(inexact),
        )
    note = None
    if inexact:  # a whole number or fraction reached through a float, e.g. floor(pi)
        steps = ", ".join(inexact)
        note = f"may be approximate: computed through {steps}, which gave floating-point values"
    exact = not inexact
    top, bottom = _digits(value.numerator), _digits(value.denominator)
    if value.denominator == 1:
        if len(top.lstrip("-")) <= MAX_SHOWN_DIGITS:
            return CalculatorResult(expression=source, value=top, exact=exact, note=note)
        return CalculatorResult(
            expression=source,
            value=_significant(value),
            exact=exact,
            note=_join(
                note,
                f"an integer of {len(top.lstrip('-')):,} digits, shown to {SIGNIFICANT} "
                "significant digits",
            ),
        )
    expansion = _significant(value)
    if len(top) + len(bottom) <= MAX_SHOWN_DIGITS:
        return CalculatorResult(
            expression=source, value=f"{top}/{bottom}", decimal=expansion, exact=exact, note=note
        )
    return CalculatorResult(
        expression=source,
        value=expansion,
        exact=exact,
        note=_join(
            note,
            f"the exact fraction has {len(top) + len(bottom):,} digits; shown to "
            f"{SIGNIFICANT} significant digits",
        ),
    )


def _digits(n: int) -> str:
    # Through Decimal, which writes integers of any length (str() stops at 4,300 digits).
    return str(decimal.Decimal(n))


def _significant(value: Fraction) -> str:
    context = decimal.Context(prec=SIGNIFICANT, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
    quotient = context.divide(decimal.Decimal(value.numerator), decimal.Decimal(value.denominator))
    return str(quotient.normalize(context)) if quotient else "0"


def _approximate(inexact: list[str]) -> str:
    steps = ", ".join(inexact) or "a step"
    verb = "has" if len(inexact) < 2 else "have"
    return (
        "approximate: a floating-point number (about 16 significant digits), as "
        f"{steps} {verb} no exact value as a fraction"
    )


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def _about(digits: float) -> str:
    return f"{digits:,.0f}" if digits < 1e15 else f"{digits:.3g}"


def _shown(x: Number) -> str:
    if isinstance(x, float):
        return repr(x)
    return str(x) if max(x.numerator.bit_length(), x.denominator.bit_length()) < 200 else "…"


_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,  # (done by _power, with its bounds)
}
_OPERATORS: dict[type[ast.AST], str] = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
    ast.Not: "not",
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
# (fewest, most) arguments; None: no most.
_ARITY: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "round": (1, 2),
    "min": (1, None),
    "max": (1, None),
    "floor": (1, 1),
    "ceil": (1, 1),
    "factorial": (1, 1),
    "gcd": (1, None),
    "lcm": (1, None),
    "sqrt": (1, 1),
    "exp": (1, 1),
    "log": (1, 2),
    "log2": (1, 1),
    "log10": (1, 1),
    "sin": (1, 1),
    "cos": (1, 1),
    "tan": (1, 1),
}
_FUNCTIONS = tuple(_ARITY)
_ATTRIBUTE = "attribute access (a '.name') is not allowed: the calculator evaluates arithmetic"
_NOT_ARITHMETIC: dict[type[ast.AST], str] = {
    ast.Attribute: _ATTRIBUTE,
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.Subscript: "indexing ([...])",
    ast.Compare: "a comparison",
    ast.BoolOp: "and/or",
    ast.IfExp: "if/else",
    ast.Tuple: "a tuple (two values with a comma)",
    ast.List: "a list",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "an assignment (:=)",
    ast.Starred: "*unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def _refusal(node: ast.AST) -> str:
    what = _NOT_ARITHMETIC.get(type(node))
    if what == _ATTRIBUTE:
        return _ATTRIBUTE
    what = what or type(node).__name__
    return f"{what} is not allowed: the calculator evaluates arithmetic only"
