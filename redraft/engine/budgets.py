"""When a run stops: its budgets and targets, checked after each judged candidate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redraft.checks import number, one_of, whole_number
from redraft.engine.selection import (
    SELECTIONS,
    Judged,
    Selection,
    best_index,
    critics_all_failed,
    meets,
)
from redraft.types import StopReason, Usage


@dataclass(frozen=True)
class Budgets:
    """Budgets and targets of a run. `None` switches a rule off; a wrong value is a
    ConfigError (a ValueError) when the budgets are made.

    `max_rounds` bounds a chain of revisions (`Refine`, `BestOfN`'s refinement, each
    Reflexion trial; a `TreeSearch` has its own `max_depth`), `max_candidates` every draft
    made, `max_time_s` the wall time; `select` is how the final draft is chosen.
    """

    max_rounds: int = 4
    threshold: float | None = None
    patience: int | None = 2
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_candidates: int | None = None
    max_time_s: float | None = None
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
        whole_number("max_candidates", self.max_candidates, minimum=1, optional="no limit")
        number("max_time_s", self.max_time_s, above=0.0, optional="no time limit")
        one_of("select", self.select, SELECTIONS)

    def spent(self, usage: Usage, candidates: int, elapsed_s: float) -> bool:
        """Whether a budget shared by the whole run (tokens, cost, candidates, time) is used up."""
        return (
            (self.max_tokens is not None and usage.total_tokens >= self.max_tokens)
            or (self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd)
            or (self.max_candidates is not None and candidates >= self.max_candidates)
            or (self.max_time_s is not None and elapsed_s >= self.max_time_s)
        )

    def check(
        self,
        line: Sequence[Judged],
        usage: Usage,
        *,
        candidates: int | None = None,
        elapsed_s: float = 0.0,
    ) -> StopReason | None:
        """The rule that stops a run whose main line is `line` (its latest draft just judged),
        or `None` to go on. `candidates`: how many the run has made (default: the line's)."""
        latest = line[-1]
        if critics_all_failed(latest):
            return StopReason.CRITICS_FAILED  # nothing to revise from
        # A critic that failed vouches for nothing: such a draft neither passes nor meets
        # the target.
        if latest.passed and latest.judged:
            return StopReason.PASSED
        if self.threshold is not None and meets(latest, self.threshold):
            return StopReason.THRESHOLD
        made = len(line) if candidates is None else candidates
        if self.spent(usage, made, elapsed_s):
            return StopReason.BUDGET
        if len(line) >= self.max_rounds:
            return StopReason.MAX_ROUNDS
        if self.patience is not None:
            since_best = len(line) - 1 - best_index(line)
            if since_best >= self.patience:
                return StopReason.NO_IMPROVEMENT
        return None
