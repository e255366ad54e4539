"""Checks of the values users pass to constructors, each failing as one line that names the fix.

Python does not check annotations at run time, so `max_rounds="3"` or `pass_score=9` would
otherwise surface rounds later as a TypeError deep in the loop, or never.
"""

from __future__ import annotations

import keyword
import math
from collections.abc import Iterable
from typing import Any

from redraft.errors import ConfigError


def shown(value: object) -> str:
    """A value as an error message quotes it: its repr, on one line, cut short."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def whole_number(
    name: str,
    value: object,
    *,
    minimum: int,
    maximum: int | None = None,
    optional: str = "",
    example: int | None = None,
) -> int | None:
    """`value` as an int of at least `minimum` (and at most `maximum`); `None` passes when
    `optional` says what it means ("no limit"). Floats, strings and bools are refused, not
    rounded."""
    if value is None and optional:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        alternative = f" (or None for {optional})" if optional else ""
        raise ConfigError(
            f"{name} must be a whole number {bounds}{alternative}, "
            f"e.g. {name}={example if example is not None else max(minimum, 3)}; "
            f"got {shown(value)}"
        )
    return value


def flag(name: str, value: object) -> bool:
    """A bool: `"no"` or `0` would otherwise be taken for true or false without a word."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False; got {shown(value)}")
    return value


def identifier(name: str, value: object, *, what: str) -> str:
    """A Python name (not a keyword), such as a function's or a module's; `what` says which."""
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise ConfigError(f"{name} must be the name of {what}, e.g. 'mean'; got {shown(value)}")
    return value


def number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    optional: str = "",
    meaning: str = "",
) -> float | None:
    """`value` as a finite float within the bounds given; `None` passes when `optional` says
    what it means. `above` is an exclusive lower bound."""
    if value is None and optional:
        return None
    finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if (
        finite
        and isinstance(value, int | float)  # (for the type checker: `finite` implies it)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
        and (above is None or value > above)
    ):
        return float(value)
    raise ConfigError(
        f"{name} must be {_range(minimum, maximum, above)}"
        + (f" ({meaning})" if meaning else "")
        + (f", or None for {optional}" if optional else "")
        + f"; got {shown(value)}"
    )


def _range(minimum: float | None, maximum: float | None, above: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"a number from {minimum:g} to {maximum:g}"
    if above is not None:
        return f"a number above {above:g}"
    if minimum is not None:
        return f"a number of at least {minimum:g}"
    if maximum is not None:
        return f"a number of at most {maximum:g}"
    return "a finite number"


def one_of(name: str, value: object, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices` (strings)."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ConfigError(f"{name} must be one of {listed}; got {shown(value)}")
    return value


def text(name: str, value: object, *, optional: bool = False) -> str | None:
    """A non-empty string (or None when `optional`)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string; got {shown(value)}")
    return value


def kind_of(value: Any) -> str:
    """'str', 'int', 'MyClass' instance or 'class MyClass': what a wrong value is."""
    if isinstance(value, type):
        return f"the class {value.__name__}"
    return type(value).__name__
