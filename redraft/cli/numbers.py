"""Parsers for the CLI's decimal options: finite numbers in a range, with messages that say
which values are allowed.

Typer's own `min=`/`max=` compare after parsing, so `nan` (which compares false with every
bound) was reported as "should be less than or equal to 1", and `inf` was taken as a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import typer


def _bounds(low: float | None, high: float | None, above: bool) -> str:
    if low is not None and above:
        return f"above {low:g}"
    if low is not None and high is not None:
        return f"in {low:g}..{high:g}"
    if low is not None:
        return f"of at least {low:g}"
    if high is not None:  # pragma: no cover - every option here has a lower bound
        return f"of at most {high:g}"
    return "finite"  # pragma: no cover


def number_in(
    low: float | None = None,
    high: float | None = None,
    *,
    example: str,
    unlimited: str | None = None,
    above: bool = False,
) -> Callable[[object], float]:
    """A typer `parser=` for a finite float in low..high (either bound may be open-ended;
    with `above`, `low` itself is excluded).

    `example` is a good value to suggest; `unlimited` says how to ask for no limit, for
    options where someone may type `inf` meaning "no limit".
    """
    wanted = f"a number {_bounds(low, high, above)}, e.g. {example}"

    def parse(value: object) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = float(value)  # a default, already a number
        else:
            text = str(value).strip()
            try:
                number = float(text)
            except ValueError:
                raise typer.BadParameter(f"{text!r} is not a number: give {wanted}") from None
        if math.isnan(number):
            raise typer.BadParameter(f"nan is not a number: give {wanted}")
        if math.isinf(number):
            hint = f" ({unlimited})" if unlimited else ""
            raise typer.BadParameter(f"{number} is not a finite number: give {wanted}{hint}")
        too_low = low is not None and (number <= low if above else number < low)
        if too_low or (high is not None and number > high):
            raise typer.BadParameter(f"{number:g} is out of range: give {wanted}")
        return number

    return parse


def patience_rounds(value: object) -> int | None:
    """A typer `parser=` for `--patience`: rounds without a better score (1 or more), or
    `off` for no patience rule, the CLI's spelling of `patience=None` in Python."""
    if value is None or isinstance(value, int):  # a default, already parsed
        return value if not isinstance(value, bool) else None
    text = str(value).strip().lower()
    if text in ("off", "none"):
        return None
    wanted = "a whole number of rounds of at least 1, or 'off' for no patience rule"
    try:
        rounds = int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number of rounds: give {wanted}") from None
    if rounds < 1:
        raise typer.BadParameter(f"{rounds} is out of range: give {wanted}")
    return rounds
