"""How judged drafts are scored and compared, and which one a run returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from redraft.types import Candidate, Critique

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

    @property
    def regression_of(self) -> str | None: ...


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


def meets(judged: Judged, threshold: float) -> bool:
    """The draft's score reaches `threshold`, every critic judged it, and it is no regression
    of the draft it revises (a pairwise critic's verdict outweighs the mean)."""
    return judged.judged and judged.regression_of is None and judged.score >= threshold


def critics_all_failed(judged: Judged) -> bool:
    """Every critic of this draft failed: there is nothing to revise from."""
    return bool(judged.critiques) and all(c.error is not None for c in judged.critiques)


def rank(judged: Judged) -> tuple[bool, bool, float]:
    """What drafts are compared by, highest best: (passed, judged, score).

    A draft that a critic failed on ranks below every draft all its critics judged, whatever
    its score: the critics that worked do not vouch for what the failed one would have said.
    """
    return judged.passed and judged.judged, judged.judged, judged.score


def regressions(drafts: Sequence[Judged]) -> set[int]:
    """Indices of the drafts a pairwise critic judged worse than another of `drafts` (their
    parent): selection prefers that one, whatever the scores say."""
    ids = {_id_of(d) for d in drafts}
    return {i for i, d in enumerate(drafts) if (worse := d.regression_of) and worse in ids}


def best_index(drafts: Sequence[Judged], select: Selection = "best") -> int:
    """Index of the draft to return: the earliest with the highest `rank` of those that are
    no regression of another, or the last."""
    if select == "last":
        return len(drafts) - 1
    return max(_eligible(drafts), key=lambda i: (*rank(drafts[i]), -i))


def best_of(candidates: Sequence[Candidate]) -> Candidate:
    """The best of `candidates` by `rank`, the earliest of equals."""
    return candidates[best_index(candidates)]


def top(candidates: Sequence[Candidate], count: int) -> list[Candidate]:
    """The `count` best of `candidates` by `rank`, earliest first among equals; a regression
    (judged worse than its parent, which need not be among them) comes after every
    candidate that is none."""
    order = sorted(
        range(len(candidates)),
        key=lambda i: (candidates[i].regression_of is None, *rank(candidates[i]), -i),
        reverse=True,
    )
    return [candidates[i] for i in order[:count]]


def _eligible(drafts: Sequence[Judged]) -> list[int]:
    worse = regressions(drafts)
    # A first draft is never a regression, so some draft is always eligible.
    return [i for i in range(len(drafts)) if i not in worse] or list(range(len(drafts)))


def _id_of(draft: Judged) -> str | None:
    found = getattr(draft, "id", None) or getattr(draft, "candidate_id", None)
    return found if isinstance(found, str) else None


def selected_because(candidates: Sequence[Candidate], final_id: str, select: Selection) -> str:
    """Why `final_id` won over the other `candidates` (in the order made), in words."""
    position = next(i for i, c in enumerate(candidates) if c.id == final_id)
    final = candidates[position]
    if select == "last" and not (final.passed and final.judged):
        return "the last candidate made (select='last'), not the best"
    if final.passed and final.judged:
        first = not any(c.passed for c in candidates[:position])
        why = (
            "every critic passed it"
            if all(c.passed for c in final.critiques)
            else "a person accepted it"
        )
        return why + (" (the first that passed)" if first else "")
    if len(candidates) == 1:
        return "the only candidate"
    if not final.judged:
        return "no candidate was judged by every critic; it scored highest"
    worse = [c.id for c in candidates if c.regression_of == final_id]
    beaten = f"; {', '.join(worse)} (judged worse than it) not taken" if worse else ""
    return f"the highest score ({final.score:.2f}) of {len(candidates)} candidates{beaten}"
