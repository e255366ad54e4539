"""What a finished run teaches: each issue a revision improved on becomes a correction."""

from __future__ import annotations

from redraft.memory.learn import corrections_from, revised_excerpt
from redraft.types import Critique, Draft, Issue, Result, Round, StopReason, Task, UsageReport


def _round(index: int, text: str, critiques: list[Critique], revises: int | None = None) -> Round:
    author = "actor" if revises is None else "editor"
    draft = Draft(text=text, round=index, author=author, revises=revises, model=f"m-{author}")
    score = sum(c.score for c in critiques) / len(critiques)
    return Round(index=index, draft=draft, critiques=critiques, score=score, passed=False)


def _result(rounds: list[Round]) -> Result:
    best = max(range(len(rounds)), key=lambda i: rounds[i].score)
    return Result(
        task=Task(instruction="Write median()", metadata={"kind": "python", "tags": ["stats"]}),
        final=rounds[best].draft,
        best_round=best,
        stop_reason=StopReason.MAX_ROUNDS,
        rounds=rounds,
        usage=UsageReport(),
        wall_time_s=0.0,
        thread_id="run-1",
    )


def test_issues_followed_by_a_higher_score_become_corrections() -> None:
    sorting = Issue(
        problem="sorts the caller's list", quote="values.sort()", suggestion="use sorted(values)"
    )
    style = Issue(problem="no docstring")
    rounds = [
        _round(
            0,
            "def median(values):\n    values.sort()\n    return values[0]",
            [
                Critique(
                    critic="rubric", score=0.25, passed=False, issues=[sorting], model="judge"
                ),
                Critique(critic="style", score=0.5, passed=False, issues=[style]),
            ],
        ),
        _round(
            1,
            "def median(values):\n    ordered = sorted(values)\n    return ordered[0]",
            [
                Critique(critic="rubric", score=0.75, passed=False),
                Critique(critic="style", score=0.5, passed=False, issues=[style]),
            ],
            revises=0,
        ),
    ]
    learned = corrections_from(_result(rounds))
    assert len(learned) == 1  # the style critic's score did not rise
    correction = learned[0]
    assert correction.problem == "sorts the caller's list"
    assert correction.excerpt == "values.sort()"
    # The hunk of the revision that replaced the quoted line.
    assert correction.revised == "ordered = sorted(values)\n    return ordered[0]"
    assert correction.fix == "use sorted(values)"
    assert (correction.score_before, correction.score_after) == (0.25, 0.75)
    assert correction.critic == "rubric"
    assert correction.models == ["m-actor", "judge", "m-editor"]
    assert correction.run_id == "run-1"
    assert (correction.kind, correction.tags) == ("python", ["stats"])


def test_a_revision_that_scored_lower_teaches_nothing() -> None:
    issue = Issue(problem="too vague")
    rounds = [
        _round(0, "a", [Critique(critic="rubric", score=0.5, passed=False, issues=[issue])]),
        _round(1, "b", [Critique(critic="rubric", score=0.25, passed=False)], revises=0),
        _round(2, "c", [Critique(critic="rubric", score=0.5, passed=False)], revises=0),
    ]
    assert corrections_from(_result(rounds)) == []


def test_an_improved_critique_without_issues_teaches_its_summary() -> None:
    rounds = [
        _round(0, "a", [Critique(critic="tests", score=0.0, passed=False, summary="2 tests fail")]),
        _round(1, "b", [Critique(critic="tests", score=1.0, passed=True)], revises=0),
    ]
    [correction] = corrections_from(_result(rounds))
    assert correction.problem == "2 tests fail"
    assert correction.excerpt is None


def test_a_failed_critic_teaches_nothing() -> None:
    rounds = [
        _round(0, "a", [Critique.failed("rubric", "timeout")]),
        _round(1, "b", [Critique(critic="rubric", score=1.0, passed=True)], revises=0),
    ]
    assert corrections_from(_result(rounds)) == []


def test_revised_excerpt() -> None:
    old = "one\ntwo\nthree"
    assert revised_excerpt(old, "one\n2\nthree", "two") == "2"
    assert revised_excerpt(old, "one\nthree", "two") is None  # deleted: nothing it became
    assert revised_excerpt(old, old, "two") is None  # unchanged
    assert revised_excerpt(old, "one\n2", "absent") is None
    assert revised_excerpt(old, "one\ntwo and a half\nthree", None) is None
