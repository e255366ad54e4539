"""PairwiseCritic end to end over real HTTP (LiteLLM against the local OpenAI-compatible
server), and the selection rule it feeds: a regression is never chosen over its parent."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from redraft import (
    Candidate,
    Comparison,
    ConfigError,
    Critic,
    Critique,
    Draft,
    LiteLLMModel,
    LLMCritic,
    PairwiseCritic,
    Refiner,
    Result,
    StopReason,
    Task,
)
from redraft.agents.base import AgentContext
from redraft.agents.prompts import PromptLibrary
from redraft.engine.selection import best_index, best_of, regressions, top
from redraft.strategies import BestOfN, TreeSearch
from redraft.testing import ChatRequest, OpenAIServer, role_of
from redraft.types import Preference

FIRST = "Tide pools hold anemones and crabs."
_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_PAIR = re.compile(r"<answer_a>\n(.*?)\n</answer_a>.*?<answer_b>\n(.*?)\n</answer_b>", re.DOTALL)
_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")

Judge = Callable[[str, str], str]  # (answer A, answer B) -> "A", "B" or "tie"


def first_user(request: ChatRequest) -> str:
    return next(str(m["content"]) for m in request.messages if m["role"] == "user")


def shown(request: ChatRequest) -> str:
    found = _ANSWER.search(first_user(request))
    assert found, "no <answer> in the request"
    return found.group(1)


def pair(request: ChatRequest) -> tuple[str, str]:
    found = _PAIR.search(first_user(request))
    assert found, "no answer pair in the request"
    return found.group(1), found.group(2)


def variant_of(request: ChatRequest) -> int:
    found = _VARIANT.search(request.last_user_content)
    return int(found.group(1)) if found else 1


def by_quality(quality: dict[str, int]) -> Judge:
    """The answer of higher `quality` (unlisted: 0) wins; equal ones tie."""

    def judge(a: str, b: str) -> str:
        qa, qb = quality.get(a, 0), quality.get(b, 0)
        return "A" if qa > qb else "B" if qb > qa else "tie"

    return judge


def always_a(a: str, b: str) -> str:
    return "A"  # a judge with a position bias


class Script:
    """The actor writes `drafts` (one per variant), the editor `revisions` in the order asked
    (or, given a dict, by the variant asked for), the rubric critic scores `rubric` (of 5,
    unlisted: 2), the pairwise judge answers `judge`, the reference call `reference`."""

    def __init__(
        self,
        revisions: Sequence[str] | dict[int, str],
        *,
        judge: Judge,
        rubric: dict[str, int] | None = None,
        drafts: Sequence[str] = (FIRST,),
        reference: str = "REFERENCE: anemones, crabs, starfish.",
    ) -> None:
        self.revisions, self.judge, self.rubric = revisions, judge, rubric or {}
        self.drafts, self.reference = drafts, reference
        self.edits = 0

    def __call__(self, request: ChatRequest) -> str:
        role = role_of(request)
        if role == "actor":
            return self.drafts[variant_of(request) - 1]
        if role == "editor":
            if isinstance(self.revisions, dict):
                return self.revisions[variant_of(request)]
            self.edits += 1
            return self.revisions[self.edits - 1]
        if role == "critic":
            score = self.rubric.get(shown(request), 2)
            return json.dumps({"feedback": "Judged.", "summary": f"score {score}", "score": score})
        if role == "pairwise":
            a, b = pair(request)
            return json.dumps(
                {
                    "reasoning": f"compared {len(a)} and {len(b)} characters",
                    "a_issues": [{"problem": f"wrong in: {a}"}],
                    "b_issues": [{"problem": f"wrong in: {b}"}],
                    "better": self.judge(a, b),
                }
            )
        if role == "reference":
            return self.reference
        raise AssertionError(f"unexpected request from {role}")


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def refiner(server: OpenAIServer, *critics: Critic, **options: Any) -> Refiner:
    options.setdefault("patience", None)
    model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)
    return Refiner(model, critics=list(critics), **options)


def roles(server: OpenAIServer) -> Counter[str]:
    return Counter(role_of(r) for r in server.requests)


def requests_of(server: OpenAIServer, role: str) -> list[ChatRequest]:
    return [r for r in server.requests if role_of(r) == role]


def pairwise_of(candidate: Candidate) -> Critique:
    return next(c for c in candidate.critiques if c.critic == "pairwise")


def critics_of(result: Result) -> list[list[str]]:
    return [[c.critic for c in candidate.critiques] for candidate in result.candidates]


# -- verdicts -------------------------------------------------------------------------------


def test_first_draft_gets_no_pairwise_critique_and_both_orders_agree(
    server: OpenAIServer,
) -> None:
    better = f"{FIRST} Starfish cling to the rocks."
    server.handler = Script([better], judge=by_quality({better: 1}))
    result = refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=2).run("Tide pools")
    assert critics_of(result) == [["rubric"], ["rubric", "pairwise"]]
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1, "pairwise": 2}
    # No pairwise request before the revision exists; then the revision first, then second.
    assert [role_of(r) for r in server.requests][:3] == ["actor", "critic", "editor"]
    assert [pair(r) for r in requests_of(server, "pairwise")] == [(better, FIRST), (FIRST, better)]
    critique = pairwise_of(result.candidates[1])
    assert critique.comparison == Comparison(
        against="c0", verdict="better", orders=["better", "better"], note=""
    )
    assert (critique.score, critique.passed, critique.weight) == (1.0, True, 1.0)
    assert critique.summary == "better than c0"
    # Only the revision's own issues, from its side of each order, and each once.
    assert [i.problem for i in critique.issues] == [f"wrong in: {better}"]
    assert critique.feedback.startswith("revision shown first: compared")
    assert result.candidates[1].regression_of is None


def test_a_position_biased_judge_gives_a_tie(server: OpenAIServer) -> None:
    same_length = FIRST.replace("crabs", "shrimp")  # within the length margin
    server.handler = Script([same_length], judge=always_a)
    result = refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=2).run("Tide pools")
    critique = pairwise_of(result.candidates[1])
    assert critique.comparison is not None
    assert critique.comparison.verdict == "tie"
    assert critique.comparison.orders == ["better", "worse"]
    assert critique.comparison.note == "the orders disagreed (better / worse): a tie"
    assert "disagreed" in critique.summary
    assert (critique.score, critique.passed) == (0.5, True)
    assert len(requests_of(server, "pairwise")) == 2


def test_a_longer_tie_is_a_regression_and_the_parent_is_revised_again(
    server: OpenAIServer,
) -> None:
    padded = f"{FIRST} They are truly wonderful, lovely places to visit."
    padded_again = f"{FIRST} Visitors say they are very, very lovely indeed."
    rubric = {FIRST: 2, padded: 5, padded_again: 5}
    server.handler = Script([padded, padded_again], judge=lambda a, b: "tie", rubric=rubric)
    result = refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=3).run("Tide pools")
    assert [(c.id, c.parent_id) for c in result.candidates] == [
        ("c0", None),
        ("c1", "c0"),
        ("c2", "c0"),  # the regression is not built on: its parent is revised again
    ]
    editor = requests_of(server, "editor")
    assert [shown(r) for r in editor] == [FIRST, FIRST]
    for candidate in result.candidates[1:]:
        critique = pairwise_of(candidate)
        assert critique.comparison == Comparison(
            against="c0",
            verdict="worse",
            orders=["worse", "worse"],
            note="a tie lost by the longer answer (the revision)",
        )
        assert (critique.score, critique.passed) == (0.0, False)
        assert critique.issues[0].problem == (
            "This revision is worse than the draft it revises (c0)."
        )
        assert candidate.regression_of == "c0"
        # The rubric alone would have chosen the longer revision.
        assert candidate.score > result.candidates[0].score
    assert result.final_id == "c0"
    assert result.final is not None and result.final.text == FIRST
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert "c1, c2 (judged worse than it) not taken" in result.selected_because


def test_a_tie_lost_by_a_longer_parent_makes_the_revision_better(server: OpenAIServer) -> None:
    long_first = f"{FIRST} They are truly wonderful, lovely places to visit."
    server.handler = Script([FIRST], judge=lambda a, b: "tie", drafts=[long_first])
    result = refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=2).run("Tide pools")
    critique = pairwise_of(result.candidates[1])
    assert critique.comparison == Comparison(
        against="c0",
        verdict="better",
        orders=["better", "better"],
        note="a tie lost by the longer answer (c0)",
    )
    assert critique.score == 1.0


def test_within_the_length_margin_a_tie_stays_a_tie(server: OpenAIServer) -> None:
    a_little_longer = FIRST.replace("crabs.", "crabs too.")  # 11% longer
    assert len(FIRST) * 1.1 < len(a_little_longer) <= len(FIRST) * 1.2
    server.handler = Script([a_little_longer], judge=lambda a, b: "tie")
    critic = PairwiseCritic(length_margin=0.2)
    result = refiner(server, LLMCritic(), critic, max_rounds=2).run("Tide pools")
    comparison = pairwise_of(result.candidates[1]).comparison
    assert comparison is not None
    assert (comparison.verdict, comparison.orders, comparison.note) == ("tie", ["tie", "tie"], "")


# -- one random order -----------------------------------------------------------------------


REVISIONS = [f"{FIRST} Revision {n}." for n in range(1, 6)]


def positions(server: OpenAIServer) -> list[bool]:
    """For each pairwise request: was the revision (the later of the two) shown first?"""
    made = [FIRST, *REVISIONS]
    return [made.index(a) > made.index(b) for a, b in map(pair, requests_of(server, "pairwise"))]


def test_random_order_asks_once_per_revision_repeatably_with_a_seed() -> None:
    revisions = REVISIONS
    seen: list[list[bool]] = []
    for _ in range(2):
        with OpenAIServer(Script(revisions, judge=always_a)) as server:
            critic = PairwiseCritic(order="random", seed=7)
            run = refiner(server, LLMCritic(), critic, max_rounds=6, select="last")
            result = run.run("Tide pools")
            assert len(result.candidates) == 6
            assert roles(server)["pairwise"] == 5  # one per revision
            seen.append(positions(server))
            # A judge that always says "A" prefers whichever answer was shown first.
            verdicts = [pairwise_of(c).comparison for c in result.candidates[1:]]
            assert [v.verdict if v else None for v in verdicts] == [
                "better" if first else "worse" for first in seen[-1]
            ]
            assert all(v is not None and len(v.orders) == 1 for v in verdicts)
    chooser = random.Random(7)
    assert seen[0] == seen[1] == [chooser.random() < 0.5 for _ in range(5)]
    assert len(set(seen[0])) == 2  # both orders came up


# -- reference answers ----------------------------------------------------------------------


def test_self_reference_is_written_once_per_task_and_shown_to_the_judge(
    server: OpenAIServer,
) -> None:
    revisions = [f"{FIRST} More {n}." for n in range(1, 7)]
    script = Script(revisions, judge=lambda a, b: "tie")
    server.handler = script
    run = refiner(server, LLMCritic(), PairwiseCritic(self_reference=True), max_rounds=3)
    run.run("Describe tide pools")
    assert roles(server)["reference"] == 1 and roles(server)["pairwise"] == 4
    order = [role_of(r) for r in server.requests]
    assert order.index("reference") < order.index("pairwise")
    (reference,) = requests_of(server, "reference")
    assert "Describe tide pools" in first_user(reference)
    for request in requests_of(server, "pairwise"):
        prompt = first_user(request)
        assert "<reference>\nREFERENCE: anemones, crabs, starfish.\n</reference>" in prompt
        assert "(written by you, before seeing either answer)" in prompt
    run.run("Describe deserts")  # another task: its own reference
    assert roles(server)["reference"] == 2
    assert "Describe deserts" in first_user(requests_of(server, "reference")[1])


def test_a_task_reference_is_used_instead_of_writing_one(server: OpenAIServer) -> None:
    server.handler = Script([f"{FIRST} More."], judge=lambda a, b: "tie")
    task = Task(instruction="Describe tide pools", reference="GIVEN: rock pools at low tide.")
    run = refiner(server, LLMCritic(), PairwiseCritic(self_reference=True), max_rounds=2)
    run.run(task)
    assert "reference" not in roles(server)
    for request in requests_of(server, "pairwise"):
        prompt = first_user(request)
        assert "<reference>\nGIVEN: rock pools at low tide.\n</reference>" in prompt
        assert "written by you" not in prompt


def test_no_reference_by_default(server: OpenAIServer) -> None:
    server.handler = Script([f"{FIRST} More."], judge=lambda a, b: "tie")
    refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=2).run("Describe tide pools")
    assert "reference" not in roles(server)
    assert all("<reference>" not in first_user(r) for r in requests_of(server, "pairwise"))


# -- searches -------------------------------------------------------------------------------


def test_a_beam_regression_is_never_the_final_over_its_parent(server: OpenAIServer) -> None:
    padded = f"{FIRST} They are truly wonderful, lovely places to visit."
    even = FIRST.replace("crabs", "shrimp")
    server.handler = Script(
        {1: padded, 2: even}, judge=lambda a, b: "tie", rubric={FIRST: 2, padded: 5, even: 1}
    )
    strategy = TreeSearch(policy="beam", width=1, expand=2, max_depth=1)
    result = refiner(server, LLMCritic(), PairwiseCritic(), strategy=strategy).run("Tide pools")
    by_id = {c.id: c for c in result.candidates}
    assert [(c.id, c.parent_id, c.draft.text) for c in result.candidates] == [
        ("c0", None, FIRST),
        ("c1", "c0", padded),
        ("c2", "c0", even),
    ]
    assert by_id["c1"].regression_of == "c0"
    assert by_id["c1"].score > by_id["c0"].score  # 0.5 against 0.25
    assert by_id["c2"].regression_of is None and by_id["c2"].score == by_id["c0"].score
    assert result.final_id == "c0"  # c1 is out, and c0 is the earliest of the equals
    assert roles(server)["pairwise"] == 4


def test_a_beam_regression_meeting_the_threshold_is_not_the_final(server: OpenAIServer) -> None:
    padded = f"{FIRST} They are truly wonderful, lovely places to visit."
    even = FIRST.replace("crabs", "shrimp")
    server.handler = Script(
        {1: padded, 2: even}, judge=lambda a, b: "tie", rubric={FIRST: 2, padded: 5, even: 1}
    )
    strategy = TreeSearch(policy="beam", width=1, expand=2, max_depth=2)
    run = refiner(server, LLMCritic(), PairwiseCritic(), strategy=strategy, threshold=0.5)
    result = run.run("Tide pools")
    by_id = {c.id: c for c in result.candidates}
    assert by_id["c1"].regression_of == "c0" and by_id["c1"].score == 0.5
    # The regression met the threshold on its scores; it is still worse than its parent.
    assert result.final_id != "c1", f"the regression c1 was returned ({result.stop_reason.value})"


def test_a_refine_regression_meeting_the_threshold_does_not_end_the_run_as_met(
    server: OpenAIServer,
) -> None:
    padded = f"{FIRST} They are truly wonderful, lovely places to visit."
    shorter = FIRST.replace("crabs", "shrimp")
    rubric = {FIRST: 2, padded: 5, shorter: 5}
    server.handler = Script([padded, shorter], judge=lambda a, b: "tie", rubric=rubric)
    run = refiner(server, LLMCritic(), PairwiseCritic(), max_rounds=3, threshold=0.5)
    result = run.run("Tide pools")
    assert result.candidates[1].regression_of == "c0"
    assert result.final_id != "c1"
    # A run that reports the threshold met returns a draft that meets it.
    final = result.candidate(result.final_id or "")
    reason = result.stop_reason.value
    assert reason != "threshold" or final.score >= 0.5, (
        f"stopped for '{reason}' returning {final.id}, which scores {final.score:.2f}"
    )


def test_a_best_of_n_regression_is_never_the_final_over_its_parent(
    server: OpenAIServer,
) -> None:
    second = "Tide pools hold anemones, crabs and starfish."
    padded = f"{second} They are truly wonderful, lovely places to visit."
    padded_again = f"{second} Visitors say they are very, very lovely indeed."
    rubric = {FIRST: 2, second: 3, padded: 5, padded_again: 5}
    server.handler = Script(
        [padded, padded_again], judge=lambda a, b: "tie", rubric=rubric, drafts=[FIRST, second]
    )
    run = refiner(server, LLMCritic(), PairwiseCritic(), strategy=BestOfN(2), max_rounds=3)
    result = run.run("Tide pools")
    assert [(c.id, c.parent_id) for c in result.candidates] == [
        ("c0", None),
        ("c1", None),
        ("c2", "c1"),
        ("c3", "c1"),  # the best first draft is revised again, not its regression
    ]
    assert [shown(r) for r in requests_of(server, "editor")] == [second, second]
    assert [result.candidates[i].regression_of for i in (2, 3)] == ["c1", "c1"]
    assert result.final_id == "c1" and result.chain == ["c1", "c2", "c3"]
    assert roles(server) == {"actor": 2, "critic": 4, "editor": 2, "pairwise": 4}


# -- selection ------------------------------------------------------------------------------


def candidate(
    id: str, score: float, parent: str | None = None, verdict: Preference | None = None
) -> Candidate:
    critiques = [Critique(critic="rubric", score=score, passed=False)]
    if verdict is not None:
        assert parent is not None
        comparison = Comparison(against=parent, verdict=verdict)
        critiques.append(
            Critique(critic="pairwise", score=0.5, passed=verdict != "worse", comparison=comparison)
        )
    return Candidate(
        id=id, parent_id=parent, draft=Draft(text=id), critiques=critiques, score=score
    )


def test_selection_passes_over_a_regression_of_a_candidate_present() -> None:
    c0 = candidate("c0", 0.2)
    c1 = candidate("c1", 0.9, "c0", "worse")
    c2 = candidate("c2", 0.5, "c0", "tie")
    c3 = candidate("c3", 0.95, "c1", "better")  # better than a regression: eligible
    assert regressions([c0, c1, c2]) == {1}
    assert best_index([c0, c1, c2]) == 2 and best_of([c0, c1]).id == "c0"
    assert best_index([c0, c1, c2, c3]) == 3
    assert best_index([c0, c1, c2], "last") == 2 and best_index([c0, c1], "last") == 1
    assert [c.id for c in top([c0, c1, c2], 2)] == ["c2", "c0"]
    assert [c.id for c in top([c0, c1, c2], 3)] == ["c2", "c0", "c1"]
    # Without its parent among them, a regression may still be the best of them...
    assert regressions([c1, c2]) == set()
    assert best_index([c1, c2]) == 0
    # ...but what a search expands next puts it after every candidate that is no regression.
    assert [c.id for c in top([c1, c2], 2)] == ["c2", "c1"]


def test_pairwise_critic_called_on_a_first_draft_directly_is_neutral() -> None:
    critic = PairwiseCritic()
    ctx = AgentContext(None, PromptLibrary())
    critique = asyncio.run(critic.critique(Draft(text="x"), Task(instruction="t"), ctx))
    assert (critique.score, critique.passed, critique.weight) == (0.5, True, 0.0)
    assert critique.comparison is None
    assert PairwiseCritic.compares is True


# -- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"order": "x"},
        {"length_margin": -1},
        {"name": ""},
        {"self_reference": "yes"},
        {"weight": -0.5},
    ],
)
def test_bad_arguments_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PairwiseCritic(**options)
