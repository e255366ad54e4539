"""Corrections learned from a finished run: each critique that a revision improved on, and
each reflection after which a fresh attempt passed."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from redraft.memory.records import Correction
from redraft.types import Candidate, Critique, Origin, Result, chain_from

_EXCERPT_CHARS = 600


def corrections_from(result: Result) -> list[Correction]:
    """One correction per issue of a candidate whose revision (in any branch of the run)
    scored higher with the same critic (or, when that critic did not judge the revision,
    with the critics together); and one per reflection that led to a pass."""
    by_id = {c.id: c for c in result.candidates}
    found: list[Correction] = []
    for revision in result.candidates:
        before = by_id.get(revision.parent_id or "")
        if before is None:
            continue
        if revision.origin is Origin.REFLECT:
            found.extend(_reflection(result, before, revision))
            continue
        for critique in before.critiques:
            after = _score_after(critique, revision)
            if critique.error is None and after > critique.score:
                found.extend(_corrections(result, before, revision, critique, after))
    return found


def _reflection(result: Result, failed: Candidate, attempt: Candidate) -> list[Correction]:
    """The reflection that started `attempt`, when that attempt (or a revision of it)
    passed: what the failed attempt got wrong, and the reflection as the fix."""
    passed = [c for c in chain_from(attempt, result.candidates) if c.passed and c.judged]
    if not attempt.draft.reflections or not passed:
        return []
    problems = problems_of(failed.critiques)
    problem = "; ".join(problems) if problems else "an earlier attempt failed its critics"
    return [
        Correction(
            problem=_clip(problem),
            fix=_clip(attempt.draft.reflections[-1]),
            score_before=failed.score,
            score_after=passed[0].score,
            critic="reflection",
            models=[m for m in (attempt.draft.model,) if m is not None],
            **_about(result),
        )
    ]


def _about(result: Result) -> dict[str, Any]:
    """What every correction of a run says of where it came from: the task, its kind and
    tags, the run."""
    task = result.task
    kind = task.metadata.get("kind")
    tags = task.metadata.get("tags", [])
    return {
        "task": task.instruction,
        "kind": kind if isinstance(kind, str) else None,
        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        "run_id": result.thread_id,
    }


def _score_after(critique: Critique, revision: Candidate) -> float:
    for later in revision.critiques:
        if later.critic == critique.critic and later.error is None:
            return later.score
    return revision.score


def _corrections(
    result: Result, before: Candidate, revision: Candidate, critique: Critique, after: float
) -> list[Correction]:
    models = [
        m for m in (before.draft.model, critique.model, revision.draft.model) if m is not None
    ]
    common = {
        **_about(result),
        "score_before": critique.score,
        "score_after": after,
        "critic": critique.critic,
        "models": list(dict.fromkeys(models)),
    }
    if not critique.issues:
        # A verdict without itemised issues still says what was wrong.
        problem = critique.summary or critique.feedback
        if not problem.strip():
            return []
        return [Correction(problem=_clip(problem), **common)]
    return [
        Correction(
            problem=issue.problem,
            fix=issue.suggestion or "",
            excerpt=_clip(issue.quote) if issue.quote else None,
            revised=revised_excerpt(before.draft.text, revision.draft.text, issue.quote),
            **common,
        )
        for issue in critique.issues
        if issue.problem.strip()
    ]


def revised_excerpt(old: str, new: str, quote: str | None) -> str | None:
    """What the lines holding `quote` became in the revision; None if they did not change."""
    if not quote or quote not in old or quote in new:
        return None
    start = old[: old.index(quote)].count("\n")
    end = start + quote.count("\n") + 1
    old_lines, new_lines = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    replaced: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal" and i1 < end and (i2 > start or i1 == i2 == start):
            replaced.extend(new_lines[j1:j2])
    text = "\n".join(replaced).strip()
    return _clip(text) if text else None


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def problems_of(critiques: Sequence[Critique]) -> list[str]:
    """What the critics named as wrong, to look up how it was fixed before."""
    named = [issue.problem for c in critiques if not c.passed for issue in c.issues]
    named += [c.summary for c in critiques if not c.passed and not c.issues and c.summary]
    return named
