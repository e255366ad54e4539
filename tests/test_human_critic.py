"""A person as a critic, end to end over real HTTP: LiteLLM against the local
OpenAI-compatible server for the actor, the rubric critic and the editor, and the person's
answers given with `Refiner.resume` (or `astream`/`stream` with a `HumanAnswer`).

The server answers each role from what the request shows it: the actor writes "Draft k"
(k of a fan-out), the editor appends " (revised)" to the draft it is shown (" anew" when
told its last revision repeated an earlier one), and the rubric critic scores each draft
from a table (2 of 5 unless told otherwise). Every test counts the requests per role, so a
step done twice (a draft or a rubric judgment repeated after a pause) shows.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import redraft
from redraft import (
    ConfigError,
    CritiqueEvent,
    DraftEvent,
    EditEvent,
    Event,
    HumanAnswer,
    HumanCritic,
    LiteLLMModel,
    LLMCritic,
    LLMEditor,
    Refiner,
    Result,
    StopEvent,
    StopReason,
)
from redraft.agents.base import AgentContext
from redraft.strategies import BestOfN, Strategy, TreeSearch
from redraft.testing.openai_server import ChatRequest, OpenAIServer, role_of
from redraft.types import Candidate, Critique, Draft, Task

ROOT = Path(__file__).parent.parent
TASK = "Describe tide pools"
FIRST = "Draft 1"
REVISED = "Draft 1 (revised)"

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")
_REVIEWERS = re.compile(r"# What the reviewers found\n(.*?)(?=\n# |\Z)", re.DOTALL)


# -- the server's side ------------------------------------------------------------------------


def shown(request: ChatRequest) -> str:
    """The draft a critic or the editor was shown."""
    found = _ANSWER.search(request.last_user_content)
    assert found, "no <answer> in the request"
    return found.group(1)


def reviewers(request: ChatRequest) -> str:
    """The editor prompt's "What the reviewers found": the critiques of the draft revised
    (earlier, rejected versions are listed in a section of their own)."""
    found = _REVIEWERS.search(request.last_user_content)
    assert found, "no reviewers' section in the editor's request"
    return found.group(1)


def verdict(score: int) -> str:
    issues = [] if score >= 4 else [{"problem": "too vague", "suggestion": "be specific"}]
    return json.dumps(
        {"feedback": "Judged.", "summary": f"rubric {score}", "issues": issues, "score": score}
    )


def handler(rubric: dict[str, int] | None = None) -> Callable[[ChatRequest], str]:
    scores = rubric or {}

    def handle(request: ChatRequest) -> str:
        role = role_of(request)
        if role == "actor":
            found = _VARIANT.search(request.last_user_content)
            return f"Draft {found.group(1) if found else 1}"
        if role == "editor":
            again = "Your last revision was identical" in request.last_user_content
            return f"{shown(request)} (revised)" + (" anew" if again else "")
        return verdict(scores.get(shown(request), 2))

    return handle


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(handler()) as running:
        yield running


def model_of(server: OpenAIServer) -> LiteLLMModel:
    return LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)


_MADE: list[Refiner] = []


@pytest.fixture(autouse=True)
def _closed_after() -> Iterator[None]:
    """Each test's refiners are closed when it ends, not left to the garbage collector,
    whose finalizer shuts a refiner's loop down whenever a collection happens to run. Left
    open, they made pytest fail with an INTERNALERROR ("AST constructor recursion depth
    mismatch", Python 3.11.7) while it parsed this file to report a failing test."""
    yield
    while _MADE:
        _MADE.pop().close()


def refiner_for(server: OpenAIServer, *critics: Any, **options: Any) -> Refiner:
    """A refiner over `server`; by default judged by the rubric critic and a person."""
    chosen = list(critics) or [LLMCritic(), HumanCritic()]
    refiner = Refiner(model_of(server), critics=chosen, **options)
    _MADE.append(refiner)
    return refiner


# -- reading the requests and results ---------------------------------------------------------


def roles(server: OpenAIServer) -> Counter[str]:
    return Counter(role_of(r) for r in server.requests)


def sent(server: OpenAIServer, role: str) -> list[ChatRequest]:
    return [r for r in server.requests if role_of(r) == role]


def judged_texts(server: OpenAIServer) -> list[str]:
    """The drafts the rubric critic was asked about, in the order asked."""
    return [shown(r) for r in sent(server, "critic")]


def tree(result: Result) -> list[tuple[str, str | None, str]]:
    return [(c.id, c.parent_id, c.draft.text) for c in result.candidates]


def by_id(result: Result, candidate_id: str) -> Candidate:
    return next(c for c in result.candidates if c.id == candidate_id)


def critique_of(candidate: Candidate, critic: str) -> Critique:
    return next(c for c in candidate.critiques if c.critic == critic)


def waiting_for(result: Result) -> str:
    """The id of the candidate a paused run waits on (and that it is paused)."""
    assert result.stop_reason is StopReason.WAITING, result.stop_reason
    assert result.waiting is not None and result.thread_id
    return result.waiting.candidate.id


# -- Refine: pause, answer, accept ------------------------------------------------------------


def test_a_run_pauses_at_the_first_draft_with_the_rubric_critique_on_it(
    server: OpenAIServer,
) -> None:
    result = refiner_for(server).run(TASK)
    assert result.stop_reason is StopReason.WAITING and not result.passed
    assert result.thread_id and result.waiting is not None
    waiting = result.waiting
    assert waiting.critic == "human" and waiting.question == HumanCritic().question
    assert waiting.candidate.id == "c0" and waiting.candidate.draft.text == FIRST
    # The rubric critic has judged it; the person has not.
    assert [c.critic for c in waiting.candidate.critiques] == ["rubric"]
    assert waiting.candidate.critiques[0].raw_score == 2
    assert [c.id for c in result.candidates] == ["c0"]
    assert result.final_id == "c0" and result.final is not None and result.final.text == FIRST
    assert "waiting for a person" in result.selected_because
    assert roles(server) == {"actor": 1, "critic": 1}


def test_feedback_and_a_score_reach_the_editor_and_the_run_pauses_at_the_revision(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    first = refiner.run(TASK)
    feedback = "Name three animals that live there.\nAnd say when the tide comes in."
    result = refiner.resume(first.thread_id or "", feedback=feedback, score=0.3)

    assert waiting_for(result) == "c1" and result.thread_id == first.thread_id
    assert tree(result) == [("c0", None, FIRST), ("c1", "c0", REVISED)]
    c0 = by_id(result, "c0")
    person = critique_of(c0, "human")
    assert (person.score, person.raw_score, person.weight, person.passed) == (0.3, 0.3, 1.0, False)
    assert person.summary == "Name three animals that live there."  # its first line
    assert [i.problem for i in person.issues] == [feedback]
    assert c0.score == pytest.approx((0.25 + 0.3) / 2) and not c0.passed
    # The revision waits for the person in turn, the rubric critique already on it.
    assert [c.critic for c in by_id(result, "c1").critiques] == ["rubric"]

    # Nothing before the pause was done again: one draft, one rubric judgment per draft.
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}
    assert judged_texts(server) == [FIRST, REVISED]
    (edit,) = sent(server, "editor")
    assert shown(edit) == FIRST
    section = reviewers(edit)
    assert "## human: score 0.30" in section and feedback.splitlines()[1] in section
    assert "too vague" in section  # the rubric critic's issue beside the person's


def test_accepting_a_draft_ends_the_run_though_the_rubric_critic_failed_it(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    thread = refiner.run(TASK).thread_id or ""
    refiner.resume(thread, feedback="Name the animals.", score=0.3)
    result = refiner.resume(thread, accept=True)

    assert result.stop_reason is StopReason.PASSED and result.passed
    assert result.waiting is None and result.thread_id == thread
    assert result.final_id == "c1" and result.final is not None and result.final.text == REVISED
    assert result.chain == ["c0", "c1"]
    c1 = by_id(result, "c1")
    assert c1.passed
    assert not critique_of(c1, "rubric").passed  # 2 of 5: the rubric alone would go on
    person = critique_of(c1, "human")
    assert (person.passed, person.score, person.weight, person.issues) == (True, 1.0, 1.0, [])
    assert person.summary == "accepted"
    assert c1.score == pytest.approx((0.25 + 1.0) / 2)
    assert result.selected_because.startswith("a person accepted it")
    # Accepting asked no model anything.
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}
    # The finished run's rounds carry both critics' critiques.
    assert [[c.critic for c in r.critiques] for r in result.rounds] == [["rubric", "human"]] * 2
    assert result.usage.critic.calls == 2  # the person's critiques cost no call


def test_a_rubric_pass_does_not_end_the_run_until_the_person_accepts(
    server: OpenAIServer,
) -> None:
    server.handler = handler({FIRST: 5, REVISED: 5})
    refiner = refiner_for(server)
    first = refiner.run(TASK)
    assert waiting_for(first) == "c0" and first.waiting is not None
    assert first.waiting.candidate.critiques[0].passed  # the rubric passed it already
    # A high score without accept=True does not pass the draft either.
    result = refiner.resume(first.thread_id or "", feedback="Shorter, please.", score=0.9)
    assert waiting_for(result) == "c1"
    assert not by_id(result, "c0").passed
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}


def test_each_kind_of_answer_counts_as_documented(server: OpenAIServer) -> None:
    refiner = refiner_for(server, LLMCritic(), HumanCritic(weight=3.0), max_rounds=6)
    thread = refiner.run(TASK).thread_id or ""
    # Feedback alone: the person's critique does not count toward the score (weight 0).
    result = refiner.resume(thread, feedback="More detail.")
    c0 = by_id(result, "c0")
    assert critique_of(c0, "human").weight == 0.0 and c0.score == pytest.approx(0.25)
    # A score alone: no issue for the editor, weighted by the critic's weight.
    result = refiner.resume(thread, score=0.9)
    person = critique_of(by_id(result, "c1"), "human")
    assert (person.issues, person.summary, person.weight) == ([], "not accepted", 3.0)
    assert by_id(result, "c1").score == pytest.approx((0.25 + 3 * 0.9) / 4)
    # accept=False alone is an answer: not passed, and it does not count either.
    result = refiner.resume(thread, accept=False)
    person = critique_of(by_id(result, "c2"), "human")
    assert (person.passed, person.weight) == (False, 0.0)
    # Accepted with a score: passed, with that score.
    result = refiner.resume(thread, accept=True, score=0.4, feedback="Fine as it is.")
    assert result.stop_reason is StopReason.PASSED and result.final_id == "c3"
    person = critique_of(by_id(result, "c3"), "human")
    assert (person.passed, person.score, person.summary) == (True, 0.4, "accepted: Fine as it is.")
    # c1 (scored 0.9 by a critic of weight 3) stayed the best: c3 revises it, not c2, and
    # the editor's first try at it repeated c2.
    assert [c.parent_id for c in result.candidates] == [None, "c0", "c1", "c1"]
    assert roles(server) == {"actor": 1, "critic": 4, "editor": 4}
    assert judged_texts(server) == [
        FIRST,
        "Draft 1 (revised)",
        "Draft 1 (revised) (revised)",
        "Draft 1 (revised) (revised) anew",
    ]


def test_a_named_critic_asks_its_own_question(server: OpenAIServer) -> None:
    critic = HumanCritic(name="editor-in-chief", question="Would you print this?")
    result = refiner_for(server, LLMCritic(), critic).run(TASK)
    assert result.waiting is not None
    assert (result.waiting.critic, result.waiting.question) == (
        "editor-in-chief",
        "Would you print this?",
    )


def test_two_threads_of_one_refiner_wait_and_resume_independently(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    one = refiner.run(TASK, thread_id="one")
    two = refiner.run("Describe sand dunes", thread_id="two")
    assert (one.thread_id, two.thread_id) == ("one", "two")
    done = refiner.resume("one", accept=True)
    assert done.stop_reason is StopReason.PASSED and done.task.instruction == TASK
    still = refiner.resume("two")
    assert waiting_for(still) == "c0" and still.task.instruction == "Describe sand dunes"
    assert roles(server) == {"actor": 2, "critic": 2}


def test_the_last_round_answered_with_feedback_stops_the_run_at_max_rounds(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server, max_rounds=2)
    thread = refiner.run(TASK).thread_id or ""
    assert waiting_for(refiner.resume(thread, feedback="More.", score=0.6)) == "c1"
    result = refiner.resume(thread, feedback="Still more.", score=0.2)
    assert result.stop_reason is StopReason.MAX_ROUNDS and result.waiting is None
    assert result.final_id == "c0"  # 0.425 against 0.225: the best by both critics
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}


# -- a pause survives a restart ---------------------------------------------------------------

CHILD = """
    import sys
    from redraft import HumanCritic, LiteLLMModel, LLMCritic, Refiner

    base_url, db = sys.argv[1], sys.argv[2]
    model = LiteLLMModel("openai/test-model", api_base=base_url, max_attempts=2)
    refiner = Refiner(model, critics=[LLMCritic(), HumanCritic()], checkpointer=db)
    print(refiner.run("Describe tide pools", thread_id="job-1").model_dump_json())
"""


def run_child(server: OpenAIServer, db: Path) -> Result:
    """Run the task in a fresh Python process against `server` until it waits; the process
    then exits, leaving the pause in the checkpoint file `db`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), server.base_url, str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return Result.model_validate_json(done.stdout.strip().splitlines()[-1])


def test_a_pause_survives_a_restart_and_nothing_before_it_is_done_again(
    server: OpenAIServer, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    paused = run_child(server, db)
    assert waiting_for(paused) == "c0" and paused.thread_id == "job-1"
    assert roles(server) == {"actor": 1, "critic": 1}  # the child's draft and judgment
    server.reset()

    # This process never ran the task: it has only the checkpoint file.
    restarted = refiner_for(server, checkpointer=db)
    assert waiting_for(restarted.resume("job-1")) == "c0"  # no answer: still waiting
    assert server.requests == []
    result = restarted.resume("job-1", feedback="Name three animals.", score=0.4)
    assert waiting_for(result) == "c1"
    assert tree(result) == [("c0", None, FIRST), ("c1", "c0", REVISED)]
    # The rubric critique of c0 made by the child is the one kept.
    c0 = by_id(result, "c0")
    assert [(c.critic, c.raw_score) for c in c0.critiques] == [("rubric", 2), ("human", 0.4)]
    # No draft and no judgment of c0 again: only the revision and its judgment.
    assert roles(server) == {"editor": 1, "critic": 1}
    assert judged_texts(server) == [REVISED]
    assert "Name three animals." in reviewers(sent(server, "editor")[0])

    # Yet another refiner on the same file finishes it.
    done = refiner_for(server, checkpointer=db).resume("job-1", accept=True)
    assert done.stop_reason is StopReason.PASSED and done.final_id == "c1"
    assert done.thread_id == "job-1"
    assert roles(server) == {"editor": 1, "critic": 1}


# -- answers for threads that are not waiting -------------------------------------------------


def test_a_finished_thread_refuses_an_answer_and_returns_its_result_without_one(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    thread = refiner.run(TASK).thread_id or ""
    done = refiner.resume(thread, accept=True)
    before = len(server.requests)
    with pytest.raises(ConfigError, match="not waiting for a person: it finished"):
        refiner.resume(thread, feedback="One more thing.")
    with pytest.raises(ConfigError, match="not waiting"):
        refiner.resume(thread, accept=True)
    assert refiner.resume(thread) == done
    assert len(server.requests) == before


def test_an_unknown_thread_is_a_config_error(server: OpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no run with thread id 'nope'"):
        refiner_for(server).resume("nope", feedback="x")
    db = tmp_path / "runs.db"
    with pytest.raises(ConfigError, match="no run with thread id 'nope'"):
        refiner_for(server, checkpointer=db).resume("nope", accept=True)
    with pytest.raises(ConfigError, match="thread id"):
        refiner_for(server).resume("  ", accept=True)
    assert server.requests == []


def test_resuming_a_waiting_thread_without_an_answer_changes_nothing(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    first = refiner.run(TASK)
    again = refiner.resume(first.thread_id or "")
    assert again == first
    assert waiting_for(refiner.resume(first.thread_id or "")) == "c0"
    # All-None arguments are no answer, not an empty one.
    assert refiner.resume(first.thread_id or "", feedback=None, score=None, accept=None) == first
    assert roles(server) == {"actor": 1, "critic": 1}


class InterruptedOnce:
    """An editor whose first edit is cut short as by Ctrl-C; later ones are the LLMEditor's."""

    def __init__(self) -> None:
        self.inner = LLMEditor()
        self.armed = True

    async def edit(
        self, draft: Draft, critiques: list[Critique], task: Task, ctx: AgentContext
    ) -> Draft:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return await self.inner.edit(draft, critiques, task, ctx)


def test_a_thread_stopped_part_way_refuses_an_answer_and_resumes_without_one(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server, editor=InterruptedOnce())
    thread = refiner.run(TASK).thread_id or ""
    with pytest.raises(KeyboardInterrupt):
        refiner.resume(thread, feedback="Name the animals.", score=0.3)
    assert roles(server) == {"actor": 1, "critic": 1}  # stopped before the editor's call

    with pytest.raises(ConfigError, match="not waiting for a person: it stopped part-way"):
        refiner.resume(thread, feedback="Another answer.")
    # Without an answer it goes on from the person's first answer, which was kept.
    result = refiner.resume(thread)
    assert waiting_for(result) == "c1"
    assert critique_of(by_id(result, "c0"), "human").feedback == "Name the animals."
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}
    assert "Name the animals." in reviewers(sent(server, "editor")[0])


# -- a person alone ---------------------------------------------------------------------------


def test_a_person_alone_is_followed_revision_after_revision(server: OpenAIServer) -> None:
    refiner = refiner_for(server, HumanCritic())
    assert refiner.budgets.select == "last" and refiner.budgets.patience is None
    result = refiner.run(TASK)
    assert waiting_for(result) == "c0" and result.waiting is not None
    assert result.waiting.candidate.critiques == []  # nobody judged it before the person
    feedback = ["Say what lives there.", "Mention the tides.", "End with a warning."]
    for round_, note in enumerate(feedback, start=1):
        result = refiner.resume(result.thread_id or "", feedback=note)
        assert waiting_for(result) == f"c{round_}"
        made = by_id(result, f"c{round_}")
        assert made.parent_id == f"c{round_ - 1}"  # the draft answered last, score or not
        edit = sent(server, "editor")[-1]
        assert shown(edit) == by_id(result, f"c{round_ - 1}").draft.text
        assert note in reviewers(edit)
        assert not any(earlier in reviewers(edit) for earlier in feedback[: round_ - 1])
    assert [c.parent_id for c in result.candidates] == [None, "c0", "c1", "c2"]

    done = refiner.resume(result.thread_id or "", accept=True)
    assert done.stop_reason is StopReason.PASSED  # at max_rounds: the accept wins
    assert done.final_id == "c3" and done.chain == ["c0", "c1", "c2", "c3"]
    assert roles(server) == {"actor": 1, "editor": 3}  # no model judged anything


def test_a_person_alone_who_accepts_is_said_to_have_passed_it(server: OpenAIServer) -> None:
    refiner = refiner_for(server, HumanCritic())
    thread = refiner.run(TASK).thread_id or ""
    refiner.resume(thread, feedback="Say what lives there.")
    done = refiner.resume(thread, accept=True)
    assert done.stop_reason is StopReason.PASSED and done.final_id == "c1"
    # The run ended because the person (its only critic) passed c1, not merely because c1
    # was the last made (select="last" is the default with a person alone).
    assert done.selected_because == "every critic passed it (the first that passed)"


def test_a_person_alone_keeps_an_explicit_selection_and_patience(server: OpenAIServer) -> None:
    refiner = refiner_for(server, HumanCritic(), select="best", patience=2)
    assert refiner.budgets.select == "best" and refiner.budgets.patience == 2
    thread = refiner.run(TASK).thread_id or ""
    refiner.resume(thread, feedback="Good start, add animals.", score=0.6)
    result = refiner.resume(thread, feedback="Worse: go back.", score=0.2)
    # select="best": the next revision revises c0 (0.6), not the last answered (c1, 0.2).
    assert waiting_for(result) == "c2"
    assert tree(result)[2] == ("c2", "c0", "Draft 1 (revised) anew")
    # The editor's first try repeated c1 and was asked again.
    assert [shown(r) for r in sent(server, "editor")] == [FIRST, FIRST, FIRST]
    assert roles(server) == {"actor": 1, "editor": 3}


# -- searches: each candidate of a fan-out in turn --------------------------------------------


def search_with_a_person(server: OpenAIServer, strategy: Strategy) -> Refiner:
    # The rubric prefers Draft 1; the person will prefer Draft 2.
    server.handler = handler({"Draft 1": 3})
    return refiner_for(server, strategy=strategy)


def test_best_of_n_asks_the_person_about_each_draft_in_turn(server: OpenAIServer) -> None:
    refiner = search_with_a_person(server, BestOfN(2))
    result = refiner.run(TASK)
    assert waiting_for(result) == "c0" and result.strategy == "best-of-n"
    assert roles(server) == {"actor": 2, "critic": 2}  # both drafts made and judged at once
    thread = result.thread_id or ""

    result = refiner.resume(thread, feedback="Dull.", score=0.1)
    assert waiting_for(result) == "c1" and result.waiting is not None
    assert result.waiting.candidate.draft.text == "Draft 2"
    assert [c.critic for c in result.waiting.candidate.critiques] == ["rubric"]
    assert roles(server) == {"actor": 2, "critic": 2}  # the person's answers cost nothing

    result = refiner.resume(thread, feedback="Vivid, expand it.", score=0.9)
    # Draft 2 wins on the person's score (0.575 against 0.3) though the rubric preferred
    # Draft 1: the revision is of c1.
    assert waiting_for(result) == "c2"
    assert tree(result) == [
        ("c0", None, "Draft 1"),
        ("c1", None, "Draft 2"),
        ("c2", "c1", "Draft 2 (revised)"),
    ]
    assert by_id(result, "c0").score == pytest.approx((0.5 + 0.1) / 2)
    assert by_id(result, "c1").score == pytest.approx((0.25 + 0.9) / 2)
    assert "Vivid, expand it." in reviewers(sent(server, "editor")[0])

    done = refiner.resume(thread, accept=True)
    assert done.stop_reason is StopReason.PASSED and done.final_id == "c2"
    assert done.chain == ["c1", "c2"]
    assert done.selected_because.startswith("a person accepted it")
    assert roles(server) == {"actor": 2, "critic": 3, "editor": 1}
    assert sorted(judged_texts(server)) == ["Draft 1", "Draft 2", "Draft 2 (revised)"]


def test_beam_search_asks_the_person_in_the_order_made_and_expands_their_favourite_first(
    server: OpenAIServer,
) -> None:
    strategy = TreeSearch(policy="beam", width=2, expand=1, max_depth=2)
    refiner = search_with_a_person(server, strategy)
    result = refiner.run(TASK)
    thread = result.thread_id or ""
    asked = [waiting_for(result)]
    result = refiner.resume(thread, score=0.1, feedback="Dull.")
    asked.append(waiting_for(result))
    result = refiner.resume(thread, score=0.9, feedback="Vivid.")
    asked.append(waiting_for(result))
    assert asked == ["c0", "c1", "c2"]
    # Both first drafts are kept; the person's favourite (c1) is revised first.
    assert by_id(result, "c2").parent_id == "c1"
    assert roles(server) == {"actor": 2, "critic": 4, "editor": 2}

    result = refiner.resume(thread, accept=True)
    # Every candidate of the fan-out is reviewed before the search plans again.
    assert waiting_for(result) == "c3" and by_id(result, "c3").parent_id == "c0"
    done = refiner.resume(thread, score=0.2)
    assert done.stop_reason is StopReason.PASSED and done.final_id == "c2"
    assert tree(done) == [
        ("c0", None, "Draft 1"),
        ("c1", None, "Draft 2"),
        ("c2", "c1", "Draft 2 (revised)"),
        ("c3", "c0", "Draft 1 (revised)"),
    ]
    assert done.chain == ["c1", "c2"]
    # No candidate was drafted, revised or judged twice.
    assert roles(server) == {"actor": 2, "critic": 4, "editor": 2}
    assert sorted(judged_texts(server)) == sorted(text for _, _, text in tree(done))


def test_a_waiting_search_lists_every_candidate_made_so_far(server: OpenAIServer) -> None:
    """`Result.candidates` is "every candidate of the run, in the order made"."""
    refiner = search_with_a_person(server, BestOfN(2))
    first = refiner.run(TASK)
    # Both drafts exist and the rubric critic judged both; the person is asked about c0.
    assert waiting_for(first) == "c0"
    assert [c.id for c in first.candidates] == ["c0", "c1"], tree(first)
    assert "the only candidate" not in first.selected_because
    second = refiner.resume(first.thread_id or "", score=0.1)
    assert waiting_for(second) == "c1"
    assert [c.id for c in second.candidates] == ["c0", "c1"], tree(second)


# -- streaming --------------------------------------------------------------------------------


async def collect(events: Any) -> list[Event]:
    return [event async for event in events]


def critique_events(events: list[Event]) -> list[CritiqueEvent]:
    return [e for e in events if isinstance(e, CritiqueEvent)]


async def test_a_paused_stream_ends_with_a_waiting_stop_and_continues_with_an_answer(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    events = await collect(refiner.astream(TASK))
    assert isinstance(events[0], DraftEvent)
    stop = events[-1]
    assert isinstance(stop, StopEvent) and sum(isinstance(e, StopEvent) for e in events) == 1
    assert waiting_for(stop.result) == "c0"
    assert [e.critique.critic for e in critique_events(events)] == ["rubric"]
    thread = stop.result.thread_id

    answer = HumanAnswer(feedback="Name three animals.")
    events = await collect(refiner.astream(None, thread_id=thread, answer=answer))
    critiques = critique_events(events)
    # The person's critique of c0, then the rubric's of the revision; no new draft.
    assert [(e.critique.critic, e.round) for e in critiques] == [("human", 0), ("rubric", 1)]
    assert critiques[0].critique.feedback == "Name three animals."
    assert not any(isinstance(e, DraftEvent) for e in events)
    assert [e.draft.text for e in events if isinstance(e, EditEvent)] == [REVISED]
    stop = events[-1]
    assert isinstance(stop, StopEvent) and waiting_for(stop.result) == "c1"
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}

    # The sync stream takes an answer too.
    finished = list(refiner.stream(None, thread_id=thread, answer=HumanAnswer(accept=True)))
    last = finished[-1]
    assert isinstance(last, StopEvent) and last.result.stop_reason is StopReason.PASSED
    assert last.result.final_id == "c1"
    assert roles(server) == {"actor": 1, "critic": 2, "editor": 1}


async def test_a_stream_of_a_waiting_thread_without_an_answer_repeats_the_pause(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    paused = await refiner.arun(TASK)
    events = await collect(refiner.astream(None, thread_id=paused.thread_id))
    assert len(events) == 1 and isinstance(events[0], StopEvent)
    assert events[0].result == paused
    assert roles(server) == {"actor": 1, "critic": 1}


# -- bad answers and bad critics --------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"score": 1.5}, "score must be less than or equal to 1"),
        ({"score": 2}, "score must be less than or equal to 1"),
        ({"score": -0.1}, "score must be greater than or equal to 0"),
        ({"score": math.nan}, "score"),
        ({"score": "high"}, "score must be a number from 0 to 1; got 'high'"),
        ({"score": True}, "score must be a number from 0 to 1"),
        ({"accept": "yes"}, "accept must be True or False; got 'yes'"),
        ({"feedback": "   "}, "the answer is empty"),
        ({"feedback": 3}, "feedback must be a text"),
    ],
)
def test_a_bad_answer_is_a_config_error_and_the_run_still_waits(
    server: OpenAIServer, answer: dict[str, Any], message: str
) -> None:
    refiner = refiner_for(server)
    paused = refiner.run(TASK)
    with pytest.raises(ConfigError, match=re.escape(message)):
        refiner.resume(paused.thread_id or "", **answer)
    assert refiner.resume(paused.thread_id or "") == paused
    assert roles(server) == {"actor": 1, "critic": 1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "the answer is empty"),
        ({"feedback": "   "}, "the answer is empty"),
        ({"score": 1.5}, "score must be less than or equal to 1"),
        ({"score": "high"}, "score"),
        ({"accept": "perhaps"}, "accept"),
        ({"mood": "fine"}, "HumanAnswer has no field 'mood'"),
    ],
)
def test_a_bad_human_answer_is_a_config_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        HumanAnswer(**fields)


async def test_a_stream_refuses_an_answer_that_is_not_a_human_answer(
    server: OpenAIServer,
) -> None:
    refiner = refiner_for(server)
    paused = await refiner.arun(TASK)
    message = re.escape("answer must be a redraft.HumanAnswer")
    as_dict: Any = {"accept": True}
    with pytest.raises(ConfigError, match=message):
        await collect(refiner.astream(None, thread_id=paused.thread_id, answer=as_dict))
    with pytest.raises(ConfigError, match=message):  # the sync stream refuses it at once
        refiner.stream(None, thread_id=paused.thread_id, answer="accept")  # type: ignore[arg-type]
    assert (await refiner.aresume(paused.thread_id or "")) == paused
    assert roles(server) == {"actor": 1, "critic": 1}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "   "}, "name must be a non-empty string"),
        ({"name": 3}, "name must be a non-empty string"),
        ({"question": ""}, "question must be a non-empty string"),
        ({"weight": -1}, "weight must be"),
        ({"weight": True}, "weight must be"),
        ({"weight": math.inf}, "weight must be"),
    ],
)
def test_a_badly_made_human_critic_is_a_config_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        HumanCritic(**options)


def test_refine_refuses_a_person_it_could_never_hear_back_from(
    server: OpenAIServer, tmp_path: Path
) -> None:
    model = LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)
    with pytest.raises(ConfigError, match=r"refine\(\) ends with its Refiner"):
        redraft.refine(TASK, model=model, critics=[HumanCritic()])
    assert server.requests == []  # refused before any model was asked
    # With a checkpoint file the pause outlives the call, and resumes from a new Refiner.
    db = tmp_path / "runs.db"
    waiting = redraft.refine(TASK, model=model, critics=[HumanCritic()], checkpointer=db)
    assert waiting.stop_reason is StopReason.WAITING and waiting.thread_id
    with Refiner(model, critics=[HumanCritic()], checkpointer=db) as refiner:
        done = refiner.resume(waiting.thread_id, accept=True)
    assert done.passed and done.final_id == "c0"
