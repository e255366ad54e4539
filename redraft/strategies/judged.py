"""Judged candidates from a state that keeps drafts and judgments apart (see `channels`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redraft.types import Candidate, Judgment


class JudgedCandidates:
    """Joins each judgment with its draft. It remembers the candidates it made while their
    draft and judgment are the same objects: otherwise each step of a long run would remake
    every earlier candidate."""

    _LIMIT = 10_000  # candidates remembered across the Refiner's runs, then forgotten

    def __init__(self) -> None:
        self._made: dict[tuple[int, int], tuple[Candidate, Judgment, Candidate]] = {}

    def __call__(
        self, drafts: Mapping[str, Candidate], judgments: Sequence[Judgment]
    ) -> list[Candidate]:
        """The judged candidates, in the order of `judgments`."""
        joined: list[Candidate] = []
        for judgment in judgments:
            draft = drafts[judgment.candidate_id]
            key = (id(draft), id(judgment))
            made = self._made.get(key)
            if made is None or made[0] is not draft or made[1] is not judgment:
                if len(self._made) >= self._LIMIT:
                    self._made.clear()
                made = self._made[key] = (draft, judgment, draft.judged_as(judgment))
            joined.append(made[2])
        return joined
