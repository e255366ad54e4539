"""When a loop stops, and which draft it returns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redraft.checks import number, one_of, whole_number
from redraft.types import Critique, Round, StopReason, Usage

Selection = Literal["best", "last"]


@dataclass(frozen=True)
class StopRules:
    """Budgets and targets of a run. `None` switches a rule off; a wrong value is a
    ConfigError (a ValueError) when the rules are made."""

    max_rounds: int = 4
    threshold: float | None = None
    patience: int | None = 2
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    select: Selection = "best"

    def __post_init__(self) -> None:
        whole_number("max_rounds", self.max_rounds, minimum=1)
        number(
            "threshold",
            self.threshold,
            minimum=0.0,
            maximum=1.0,
            meaning="the aggregate score that stops the run",
            optional="no threshold",
        )
        whole_number("patience", self.patience, minimum=1, optional="no patience rule")
        whole_number(
            "max_tokens", self.max_tokens, minimum=1, optional="no token budget", example=20000
        )
        number("max_cost_usd", self.max_cost_usd, above=0.0, optional="no cost budget")
        one_of("select", self.select, ("best", "last"))


def aggregate(critiques: Sequence[Critique]) -> tuple[float, bool]:
    """Weighted mean score of every critic, and whether every critic passed.

    A critic that failed (`error` set) counts as a score of 0 with its weight, and the draft
    cannot pass: a draft that breaks a critic is never judged by the other critics alone.
    """
    weight = sum(c.weight for c in critiques)
    total = sum((c.score if c.error is None else 0.0) * c.weight for c in critiques)
    score = total / weight if weight > 0 else 0.0
    passed = bool(critiques) and all(c.passed and c.error is None for c in critiques)
    return score, passed


def rank(round_: Round) -> tuple[bool, bool, float]:
    """What rounds are compared by, highest best: (passed, judged, score).

    A round that a critic failed on ranks below every round all its critics judged, whatever
    its score: the critics that worked do not vouch for what the failed one would have said.
    """
    return round_.passed and round_.judged, round_.judged, round_.score


def best_round(rounds: Sequence[Round], select: Selection = "best") -> int:
    """Index of the draft to return: the earliest with the highest `rank`."""
    if select == "last":
        return len(rounds) - 1
    return max(range(len(rounds)), key=lambda i: (*rank(rounds[i]), -i))


def decide(rounds: Sequence[Round], usage: Usage, rules: StopRules) -> StopReason | None:
    """Apply the stop rules after a round has been judged; `None` means edit again."""
    latest = rounds[-1]
    if latest.critiques and all(c.error is not None for c in latest.critiques):
        return StopReason.CRITICS_FAILED  # nothing to edit from
    # A critic that failed vouches for nothing: such a draft neither passes nor meets the target.
    if latest.passed and latest.judged:
        return StopReason.PASSED
    if rules.threshold is not None and latest.judged and latest.score >= rules.threshold:
        return StopReason.THRESHOLD
    if rules.max_tokens is not None and usage.total_tokens >= rules.max_tokens:
        return StopReason.BUDGET
    if rules.max_cost_usd is not None and usage.cost_usd >= rules.max_cost_usd:
        return StopReason.BUDGET
    if len(rounds) >= rules.max_rounds:
        return StopReason.MAX_ROUNDS
    if rules.patience is not None:
        since_best = len(rounds) - 1 - best_round(rounds)
        if since_best >= rules.patience:
            return StopReason.NO_IMPROVEMENT
    return None


_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Text as compared for repetition: whitespace differences do not make a new draft."""
    return _SPACE.sub(" ", text).strip()


def repeated_round(text: str, rounds: Sequence[Round]) -> int | None:
    """The earlier round whose draft this text repeats, if any."""
    key = normalise(text)
    for earlier in rounds:
        if normalise(earlier.draft.text) == key:
            return earlier.index
    return None
