"""What a finished run teaches: each issue a revision improved on becomes a correction."""

from __future__ import annotations

from redraft.memory.learn import corrections_from, revised_excerpt
from redraft.types import (
    Candidate,
    Critique,
    Draft,
    Issue,
    Origin,
    Result,
    Round,
    StopReason,
    Task,
    UsageReport,
)


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


def _candidate(
    id_: str,
    text: str,
    critiques: list[Critique],
    parent: str | None = None,
    origin: Origin = Origin.REVISE,
    reflections: tuple[str, ...] = (),
) -> Candidate:
    draft = Draft(text=text, author="editor" if origin is Origin.REVISE else "actor")
    draft = draft.model_copy(update={"reflections": list(reflections)})
    score = sum(c.score for c in critiques) / len(critiques)
    passed = all(c.passed for c in critiques)
    return Candidate(
        id=id_,
        parent_id=parent,
        origin=origin if parent is not None else Origin.DRAFT,
        draft=draft,
        critiques=critiques,
        score=score,
        passed=passed,
    )


def _tree_result(candidates: list[Candidate], final: str) -> Result:
    by_id = {c.id: c for c in candidates}
    chain = [final]
    while (parent := by_id[chain[0]].parent_id) is not None:
        chain.insert(0, parent)
    return Result(
        task=Task(instruction="Write median()"),
        final=by_id[final].draft,
        final_id=final,
        best_round=len(chain) - 1,
        stop_reason=StopReason.PASSED,
        candidates=candidates,
        chain=chain,
        usage=UsageReport(),
        wall_time_s=0.0,
    )


def test_a_search_learns_from_revisions_off_the_main_line_too() -> None:
    wrong = Issue(problem="returns the first value, not the middle one")
    root = _candidate(
        "c0", "v0", [Critique(critic="tests", score=0.2, passed=False, issues=[wrong])]
    )
    off_line = _candidate("c1", "v1", [Critique(critic="tests", score=0.6, passed=False)], "c0")
    on_line = _candidate("c2", "v2", [Critique(critic="tests", score=1.0, passed=True)], "c0")
    learned = corrections_from(_tree_result([root, off_line, on_line], final="c2"))
    # Both revisions of c0 improved on its issue: each is a correction, whichever branch won.
    assert [c.score_after for c in learned] == [0.6, 1.0]
    assert {c.problem for c in learned} == {wrong.problem}


def test_a_reflection_after_which_an_attempt_passed_is_a_correction() -> None:
    failing = [Critique(critic="tests", score=0.2, passed=False, summary="off by one at the end")]
    first = _candidate("c0", "v0", failing)
    fresh = _candidate(
        "c1",
        "w0",
        [Critique(critic="tests", score=0.5, passed=False)],
        "c0",
        origin=Origin.REFLECT,
        reflections=("Loop to len(values), not len(values) - 1.",),
    )
    fixed = _candidate("c2", "w1", [Critique(critic="tests", score=1.0, passed=True)], "c1")
    learned = corrections_from(_tree_result([first, fresh, fixed], final="c2"))
    reflection = [c for c in learned if c.critic == "reflection"]
    assert len(reflection) == 1
    assert reflection[0].fix == "Loop to len(values), not len(values) - 1."
    assert reflection[0].problem == "off by one at the end"
    assert (reflection[0].score_before, reflection[0].score_after) == (0.2, 1.0)


def test_a_reflection_whose_attempt_failed_teaches_nothing() -> None:
    failing = [Critique(critic="tests", score=0.2, passed=False, summary="wrong")]
    first = _candidate("c0", "v0", failing)
    fresh = _candidate(
        "c1", "w0", failing, "c0", origin=Origin.REFLECT, reflections=("try harder",)
    )
    assert corrections_from(_tree_result([first, fresh], final="c0")) == []
