"""How judged drafts are scored and compared, and which one a run returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from redraft.types import Critique

Selection = Literal["best", "last"]
SELECTIONS: tuple[Selection, ...] = ("best", "last")


class Judged(Protocol):
    """A candidate or a round: a draft with its verdict."""

    @property
    def passed(self) -> bool: ...

    @property
    def judged(self) -> bool: ...

    @property
    def score(self) -> float: ...

    @property
    def critiques(self) -> Sequence[Critique]: ...


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


def rank(judged: Judged) -> tuple[bool, bool, float]:
    """What drafts are compared by, highest best: (passed, judged, score).

    A draft that a critic failed on ranks below every draft all its critics judged, whatever
    its score: the critics that worked do not vouch for what the failed one would have said.
    """
    return judged.passed and judged.judged, judged.judged, judged.score


def best_index(drafts: Sequence[Judged], select: Selection = "best") -> int:
    """Index of the draft to return: the earliest with the highest `rank`, or the last."""
    if select == "last":
        return len(drafts) - 1
    return max(range(len(drafts)), key=lambda i: (*rank(drafts[i]), -i))
