"""Scores, ranking and budgets over judged rounds, with a critic that failed."""

from __future__ import annotations

import pytest

from redraft.engine.budgets import Budgets
from redraft.engine.selection import aggregate, best_index, rank
from redraft.types import Critique, Draft, Round, StopReason, Usage


def _ok(critic: str, score: float, *, passed: bool = False, weight: float = 1.0) -> Critique:
    return Critique(critic=critic, score=score, passed=passed, weight=weight)


def _broken(critic: str, *, weight: float = 1.0) -> Critique:
    return Critique.failed(critic, "RuntimeError: crashed").model_copy(update={"weight": weight})


def _round(index: int, critiques: list[Critique]) -> Round:
    score, passed = aggregate(critiques)
    draft = Draft(text=f"draft {index}", round=index)
    return Round(index=index, draft=draft, critiques=critiques, score=score, passed=passed)


def test_a_failed_critic_counts_as_zero_with_its_weight() -> None:
    score, passed = aggregate([_ok("a", 0.9, weight=1.0), _broken("tests", weight=2.0)])
    assert score == pytest.approx(0.3)  # (0.9 * 1 + 0 * 2) / 3
    assert not passed


def test_a_failed_critic_blocks_passing_even_if_it_says_passed() -> None:
    odd = Critique(critic="x", score=1.0, passed=True, error="it crashed")
    score, passed = aggregate([_ok("a", 1.0, passed=True), odd])
    assert score == pytest.approx(0.5)
    assert not passed
    assert not _round(0, [_ok("a", 1.0, passed=True), odd]).passed


def test_aggregate_without_failures_is_the_weighted_mean() -> None:
    score, passed = aggregate([_ok("a", 1.0, passed=True, weight=3.0), _ok("b", 0.0, passed=True)])
    assert score == pytest.approx(0.75)
    assert passed
    assert aggregate([]) == (0.0, False)


def test_judged_is_false_when_any_critic_failed() -> None:
    assert _round(0, [_ok("a", 0.5)]).judged
    assert not _round(0, [_ok("a", 0.5), _broken("tests")]).judged
    assert _round(0, []).judged


def test_a_fully_judged_round_beats_a_higher_scoring_round_a_critic_failed_on() -> None:
    judged = _round(0, [_ok("style", 0.2), _ok("tests", 0.2)])
    # The surviving critic loves it, and it outscores the judged round even with the 0.
    broken = _round(1, [_ok("style", 1.0, weight=9.0), _broken("tests")])
    assert broken.score > judged.score
    assert rank(judged) > rank(broken)
    assert best_index([judged, broken]) == 0
    assert best_index([broken, judged]) == 1


def test_ranking_is_passed_then_judged_then_score_then_earliest() -> None:
    rounds = [
        _round(0, [_ok("a", 0.9), _broken("b")]),
        _round(1, [_ok("a", 0.3), _ok("b", 0.3)]),
        _round(2, [_ok("a", 0.6), _ok("b", 0.6)]),
        _round(3, [_ok("a", 0.6), _ok("b", 0.6)]),
        _round(4, [_ok("a", 0.8, passed=True), _ok("b", 0.4, passed=True)]),
    ]
    assert best_index(rounds) == 4
    assert best_index(rounds[:4]) == 2  # equal scores: the earliest
    assert best_index(rounds[:2]) == 1
    assert best_index(rounds[:1]) == 0  # the only draft there is
    assert best_index(rounds[:2], "last") == 1


def test_among_rounds_that_all_had_a_failure_the_score_decides() -> None:
    rounds = [_round(0, [_ok("a", 0.2), _broken("b")]), _round(1, [_ok("a", 0.8), _broken("b")])]
    assert best_index(rounds) == 1


def test_a_draft_a_critic_failed_on_does_not_meet_the_threshold() -> None:
    rules = Budgets(threshold=0.3, max_rounds=5, patience=None)
    rounds = [_round(0, [_ok("a", 1.0, passed=True, weight=9.0), _broken("b")])]
    assert rounds[0].score >= 0.3
    assert rules.check(rounds, Usage()) is None
    judged = [_round(0, [_ok("a", 0.4), _ok("b", 0.4)])]
    assert rules.check(judged, Usage()) is StopReason.THRESHOLD


def test_every_critic_failing_stops_even_at_a_zero_threshold() -> None:
    rounds = [_round(0, [_broken("a"), _broken("b")])]
    assert rounds[0].score == 0.0
    assert Budgets().check(rounds, Usage()) is StopReason.CRITICS_FAILED
    assert Budgets(threshold=0.0).check(rounds, Usage()) is StopReason.CRITICS_FAILED


def test_patience_counts_from_the_best_fully_judged_round() -> None:
    rounds = [
        _round(0, [_ok("a", 0.4), _ok("b", 0.4)]),
        _round(1, [_ok("a", 0.9), _broken("b")]),
        _round(2, [_ok("a", 0.9), _broken("b")]),
    ]
    rules = Budgets(max_rounds=10, patience=2)
    assert rules.check(rounds[:2], Usage()) is None
    assert rules.check(rounds, Usage()) is StopReason.NO_IMPROVEMENT


def test_rounds_from_older_results_load_and_know_they_were_not_fully_judged() -> None:
    # Serialised before `judged` existed: it is derived, so nothing new is needed to load.
    old = _round(0, [_ok("a", 0.9), _broken("b")]).model_dump(mode="json")
    old["score"], old["passed"] = 0.9, False  # as the old mean of the working critics had it
    restored = Round.model_validate(old)
    assert not restored.judged
    assert "judged" not in restored.model_dump()
    assert best_index([restored, _round(1, [_ok("a", 0.1), _ok("b", 0.1)])]) == 1
