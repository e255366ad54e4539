"""ChecklistCritic end to end over real HTTP: LiteLLM against the local OpenAI-compatible
server, which answers the actor, editor, rubric critic and checklist calls by role."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redraft import (
    ChecklistCritic,
    ConfigError,
    Critic,
    Critique,
    HumanCritic,
    LiteLLMModel,
    LLMCritic,
    Refiner,
    Result,
    StopReason,
    Task,
)
from redraft.strategies import BestOfN
from redraft.testing import ChatRequest, OpenAIServer, role_of

CONSTRAINTS = ["Mentions anemones.", "Mentions crabs.", "Mentions starfish."]
WORDS = ["anemones", "crabs", "starfish"]  # the editor adds the first one a draft lacks
_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")

Check = Callable[[str, list[str]], Any]  # (draft, constraints shown) -> the JSON to answer


def first_user(request: ChatRequest) -> str:
    return next(str(m["content"]) for m in request.messages if m["role"] == "user")


def kind(request: ChatRequest) -> str:
    """The role, with the checklist's two calls told apart: "derive" and "check"."""
    role = role_of(request)
    if role == "checklist":
        return "check" if "# Checklist" in first_user(request) else "derive"
    return role


def instruction_of(request: ChatRequest) -> str:
    return first_user(request).split("\n")[1]  # under "# Instruction" or "# Task"


def shown(request: ChatRequest) -> str:
    found = _ANSWER.search(first_user(request))
    assert found, "no <answer> in the request"
    return found.group(1)


def by_words(draft: str, constraints: list[str]) -> dict[str, Any]:
    """ "Mentions X." is met when X is in the draft, quoting it."""
    checks = []
    for n, constraint in enumerate(constraints, start=1):
        word = constraint.removeprefix("Mentions ").rstrip(".")
        met = word in draft
        checks.append({"number": n, "passed": met, "quote": word if met else None, "reason": word})
    return {"checks": checks}


def rubric_verdict(score: int = 2) -> str:
    return json.dumps({"feedback": "Judged.", "summary": f"score {score}", "score": score})


class Script:
    """Answers each role: the actor writes `first`, the editor adds the next of WORDS not in
    the draft, the derive call answers `derive` (JSON, or text as it is) and the check call
    `check(draft, constraints)`."""

    def __init__(
        self,
        *,
        first: str = "Tide pools hold anemones.",
        derive: Callable[[ChatRequest], Any] = lambda _: {"constraints": CONSTRAINTS},
        check: Check = by_words,
    ) -> None:
        self.first, self.derive, self.check = first, derive, check

    def __call__(self, request: ChatRequest) -> str:
        role = kind(request)
        if role == "actor":
            found = _VARIANT.search(request.last_user_content)
            return self.first if not found else f"{self.first} (draft {found.group(1)})"
        if role == "editor":
            draft = shown(request)
            missing = [w for w in WORDS if w not in draft]
            return f"{draft} Also {missing[0] if missing else 'more'}."
        if role == "critic":
            return rubric_verdict()
        if role == "derive":
            return as_text(self.derive(request))
        if role == "check":
            constraints = re.findall(r"^\d+\. (.*)$", first_user(request), re.MULTILINE)
            return as_text(self.check(shown(request), constraints))
        raise AssertionError(f"unexpected request from {role}")


def as_text(answer: Any) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


def model(server: OpenAIServer) -> LiteLLMModel:
    return LiteLLMModel("openai/test-model", api_base=server.base_url, max_attempts=2)


def refiner(server: OpenAIServer, *critics: Critic, **options: Any) -> Refiner:
    options.setdefault("patience", None)
    return Refiner(model(server), critics=list(critics), **options)


def kinds(server: OpenAIServer) -> Counter[str]:
    return Counter(kind(r) for r in server.requests)


def checklist_of(result: Result, index: int, critic: str = "checklist") -> Critique:
    return next(c for c in result.candidates[index].critiques if c.critic == critic)


# -- the checklist: derived once per task ---------------------------------------------------


def test_derived_once_across_a_refine_run_and_shown_on_every_critique(
    server: OpenAIServer,
) -> None:
    server.handler = Script()
    result = refiner(server, ChecklistCritic(), max_rounds=4).run("Describe tide pools")
    assert result.stop_reason is StopReason.PASSED
    assert [c.draft.text for c in result.candidates] == [
        "Tide pools hold anemones.",
        "Tide pools hold anemones. Also crabs.",
        "Tide pools hold anemones. Also crabs. Also starfish.",
    ]
    assert kinds(server) == {"actor": 1, "derive": 1, "check": 3, "editor": 2}
    assert [kind(r) for r in server.requests][:3] == ["actor", "derive", "check"]
    critiques = [checklist_of(result, i) for i in range(3)]
    for critique in critiques:
        assert [c.constraint for c in critique.checks] == CONSTRAINTS
    assert [c.score for c in critiques] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert [c.raw_score for c in critiques] == [1.0, 2.0, 3.0]
    assert [c.passed for c in critiques] == [False, False, True]
    assert critiques[0].summary == "1 of 3 constraints met"
    assert [i.problem for i in critiques[0].issues] == [
        "Not met: Mentions crabs. (crabs)",
        "Not met: Mentions starfish. (starfish)",
    ]
    assert [c.quote for c in critiques[0].checks] == ["anemones", None, None]
    assert critiques[2].issues == []
    # Every check request lists the one checklist, numbered.
    for request in (r for r in server.requests if kind(r) == "check"):
        assert "1. Mentions anemones.\n2. Mentions crabs.\n3. Mentions starfish." in (
            first_user(request)
        )
    # The editor is told exactly which constraint a draft misses.
    editor = next(r for r in server.requests if kind(r) == "editor")
    assert "Not met: Mentions crabs." in editor.last_user_content


def test_derived_once_when_best_of_n_judges_four_drafts_at_once() -> None:
    with OpenAIServer(Script(), latency_s=0.3) as server:
        critic = ChecklistCritic()
        strategy = BestOfN(4, refine=False)
        result = refiner(server, critic, strategy=strategy).run("Describe tide pools")
        assert len(result.candidates) == 4
        assert kinds(server) == {"actor": 4, "derive": 1, "check": 4}
        checks = [r for r in server.requests if kind(r) == "check"]
        # The four drafts were checked at once, each against the one derived checklist.
        spread = max(r.received_at for r in checks) - min(r.received_at for r in checks)
        assert spread < 0.3
        for candidate in result.candidates:
            (critique,) = candidate.critiques
            assert [c.constraint for c in critique.checks] == CONSTRAINTS
            assert critique.score == pytest.approx(1 / 3)


def test_each_task_derives_its_own_checklist_once(server: OpenAIServer) -> None:
    tasks = {
        "Describe tide pools": ["Mentions anemones.", "Mentions crabs."],
        "Describe deserts": ["Mentions cacti."],
    }
    script = Script(derive=lambda r: {"constraints": tasks[instruction_of(r)]})
    server.handler = script
    run = refiner(server, ChecklistCritic(), max_rounds=2)
    pools = run.run("Describe tide pools")
    deserts = run.run("Describe deserts")
    again = run.run("Describe tide pools")  # known from the first run: not derived again
    derived = [instruction_of(r) for r in server.requests if kind(r) == "derive"]
    assert derived == ["Describe tide pools", "Describe deserts"]
    assert [c.constraint for c in checklist_of(pools, 0).checks] == tasks["Describe tide pools"]
    assert [c.constraint for c in checklist_of(deserts, 0).checks] == ["Mentions cacti."]
    assert [c.constraint for c in checklist_of(again, 1).checks] == tasks["Describe tide pools"]


def test_constructor_checklist_is_used_without_deriving(server: OpenAIServer) -> None:
    server.handler = Script()
    critic = ChecklistCritic(checklist=["  Mentions anemones. ", "Mentions crabs."])
    task = Task(instruction="Describe tide pools", metadata={"checklist": ["Mentions cacti."]})
    result = refiner(server, critic, max_rounds=3).run(task)
    assert kinds(server) == {"actor": 1, "check": 2, "editor": 1}  # no derive call
    assert result.stop_reason is StopReason.PASSED
    # The constructor's checklist (stripped) wins over the task's.
    assert [c.constraint for c in checklist_of(result, 1).checks] == [
        "Mentions anemones.",
        "Mentions crabs.",
    ]


def test_task_metadata_checklist_is_used_without_deriving(server: OpenAIServer) -> None:
    server.handler = Script()
    task = Task(instruction="Describe tide pools", metadata={"checklist": ["Mentions crabs."]})
    result = refiner(server, ChecklistCritic(), max_rounds=3).run(task)
    assert kinds(server) == {"actor": 1, "check": 2, "editor": 1}
    check = next(r for r in server.requests if kind(r) == "check")
    assert "1. Mentions crabs.\n" in first_user(check)
    assert "2. " not in first_user(check)
    assert [checklist_of(result, i).score for i in range(2)] == [0.0, 1.0]
    assert result.stop_reason is StopReason.PASSED


# -- scores, issues and quotes --------------------------------------------------------------


def test_score_is_the_share_met_with_one_issue_per_failed_constraint(
    server: OpenAIServer,
) -> None:
    def check(draft: str, constraints: list[str]) -> dict[str, Any]:
        return {
            "checks": [
                {"number": 1, "passed": True, "quote": "hold   anemones", "reason": "named"},
                {"number": 2, "passed": False, "quote": "Tide pools", "reason": "no crabs"},
                {"number": 3, "passed": False, "quote": "not in the draft", "reason": "none"},
                {"number": 4, "passed": True, "quote": None, "reason": ""},
            ]
        }

    server.handler = Script(check=check)
    constraints = [*CONSTRAINTS, "Is one sentence."]
    critic = ChecklistCritic(checklist=constraints, pass_share=0.5)
    result = refiner(server, critic, max_rounds=1).run("Describe tide pools")
    critique = checklist_of(result, 0)
    assert critique.error is None
    assert (critique.score, critique.raw_score, critique.passed) == (0.5, 2.0, True)
    assert result.stop_reason is StopReason.PASSED  # the share reached pass_share
    assert [(c.passed, c.quote, c.reason) for c in critique.checks] == [
        (True, "hold   anemones", "named"),  # found, whitespace aside
        (False, "Tide pools", "no crabs"),
        (False, None, "none"),  # not in the draft: dropped
        (True, None, ""),
    ]
    assert [(i.problem, i.quote) for i in critique.issues] == [
        ("Not met: Mentions crabs. (no crabs)", "Tide pools"),
        ("Not met: Mentions starfish. (none)", None),
    ]
    assert critique.issues[0].suggestion == "Change the answer so that it meets: Mentions crabs."
    assert critique.feedback.splitlines() == [
        "MET: Mentions anemones. (named)",
        "NOT MET: Mentions crabs. (no crabs)",
        "NOT MET: Mentions starfish. (none)",
        "MET: Is one sentence.",
    ]


def test_below_pass_share_fails(server: OpenAIServer) -> None:
    server.handler = Script()
    critic = ChecklistCritic(checklist=CONSTRAINTS, pass_share=0.5)
    result = refiner(server, critic, max_rounds=3).run("Describe tide pools")
    # 1/3 fails; 2/3 reaches the share and ends the run.
    assert [checklist_of(result, i).score for i in (0, 1)] == pytest.approx([1 / 3, 2 / 3])
    assert [c.passed for c in result.candidates] == [False, True]
    assert result.stop_reason is StopReason.PASSED and result.final_id == "c1"


# -- answers that skip constraints, invalid answers, failed derivations ---------------------


def test_a_check_that_skips_a_constraint_is_asked_again_once(server: OpenAIServer) -> None:
    answers: list[int] = []

    def check(draft: str, constraints: list[str]) -> dict[str, Any]:
        answers.append(1)
        full = by_words(draft, constraints)
        if len(answers) == 1:  # the first answer leaves out constraint 2
            full["checks"] = [c for c in full["checks"] if c["number"] != 2]
        return full

    server.handler = Script(check=check)
    result = refiner(server, ChecklistCritic(), max_rounds=1).run("Describe tide pools")
    critique = checklist_of(result, 0)
    assert critique.error is None and critique.score == pytest.approx(1 / 3)
    checks = [r for r in server.requests if kind(r) == "check"]
    assert len(checks) == 2
    assert checks[1].last_user_content.startswith("You did not check constraint(s) 2.")
    assert "one entry for each of the 3 constraints" in checks[1].last_user_content
    # The first answer is shown back to the model.
    assert checks[1].messages[-2]["role"] == "assistant"


def test_a_check_still_incomplete_fails_the_critique_and_the_run_goes_on(
    server: OpenAIServer,
) -> None:
    def check(draft: str, constraints: list[str]) -> dict[str, Any]:
        full = by_words(draft, constraints)
        if "crabs" not in draft:  # the first draft's checks always skip 3 (and a bogus 7)
            full["checks"] = [c for c in full["checks"] if c["number"] != 3]
            full["checks"].append({"number": 7, "passed": True})
        return full

    server.handler = Script(check=check)
    run = refiner(server, ChecklistCritic(), LLMCritic(), max_rounds=2)
    result = run.run("Describe tide pools")
    failed = checklist_of(result, 0)
    assert failed.error == ("openai/test-model did not check constraint(s) 3 of 3, asked twice")
    assert (failed.score, failed.passed, failed.checks, failed.issues) == (0.0, False, [], [])
    assert result.candidates[0].judged is False
    # Two check calls for the first draft, one for the revision, which checks fine.
    assert kinds(server) == {"actor": 1, "derive": 1, "check": 3, "critic": 2, "editor": 1}
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert checklist_of(result, 1).error is None
    assert checklist_of(result, 1).score == pytest.approx(2 / 3)
    assert result.final_id == "c1"


def test_invalid_check_json_twice_fails_the_critique(server: OpenAIServer) -> None:
    def check(draft: str, constraints: list[str]) -> Any:
        return "no JSON here" if "crabs" not in draft else by_words(draft, constraints)

    server.handler = Script(check=check)
    result = refiner(server, ChecklistCritic(), LLMCritic(), max_rounds=2).run("Tide pools")
    failed = checklist_of(result, 0)
    assert failed.error is not None and "ChecklistVerdict" in failed.error
    assert (failed.score, failed.passed) == (0.0, False)
    # The derivation, the answer and its repair are all accounted for.
    assert failed.usage.calls == 3
    assert kinds(server)["check"] == 3  # two for the first draft (one repair), one after
    assert checklist_of(result, 1).error is None


def test_a_failed_derivation_is_not_kept(server: OpenAIServer) -> None:
    derived: list[int] = []

    def derive(request: ChatRequest) -> Any:
        derived.append(1)
        return "not JSON" if len(derived) <= 2 else {"constraints": CONSTRAINTS}

    server.handler = Script(derive=derive)
    result = refiner(server, ChecklistCritic(), LLMCritic(), max_rounds=3).run("Tide pools")
    first = checklist_of(result, 0)
    assert first.error is not None and "DerivedChecklist" in first.error
    # The revision's critique derives again (and that checklist is kept for the next).
    assert kinds(server) == {"actor": 1, "derive": 3, "check": 2, "critic": 3, "editor": 2}
    assert [c.constraint for c in checklist_of(result, 1).checks] == CONSTRAINTS
    assert checklist_of(result, 2).score == 1.0


def test_an_empty_derived_checklist_fails_and_is_derived_again(server: OpenAIServer) -> None:
    derived: list[int] = []

    def derive(request: ChatRequest) -> Any:
        derived.append(1)
        return {"constraints": ["  "]} if len(derived) == 1 else {"constraints": CONSTRAINTS}

    server.handler = Script(derive=derive)
    result = refiner(server, ChecklistCritic(), LLMCritic(), max_rounds=2).run("Tide pools")
    assert checklist_of(result, 0).error == "openai/test-model derived an empty checklist"
    assert kinds(server)["derive"] == 2
    assert checklist_of(result, 1).error is None


# -- a resumed run --------------------------------------------------------------------------


def test_a_resumed_run_reuses_the_checklist_of_its_earlier_critiques(
    server: OpenAIServer, tmp_path: Path
) -> None:
    server.handler = Script()
    db = tmp_path / "runs.db"

    def make() -> Refiner:  # a fresh critic each time, as after a restart
        return refiner(server, ChecklistCritic(), HumanCritic(), max_rounds=3, checkpointer=db)

    waiting = make().run("Describe tide pools", thread_id="t")
    assert waiting.waiting is not None
    assert kinds(server) == {"actor": 1, "derive": 1, "check": 1}
    resumed = make().resume("t", feedback="Name more animals.")
    assert resumed.waiting is not None
    assert kinds(server) == {"actor": 1, "derive": 1, "check": 2, "editor": 1}
    assert [c.constraint for c in checklist_of(resumed, 1).checks] == CONSTRAINTS


# -- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"checklist": "Mentions anemones."},
        {"checklist": []},
        {"checklist": ["ok", ""]},
        {"checklist": ["ok", 3]},
        {"pass_share": 2},
        {"pass_share": -0.1},
        {"name": ""},
        {"weight": -1},
    ],
)
def test_bad_arguments_are_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ChecklistCritic(**options)


def test_a_bad_task_checklist_fails_the_critique(server: OpenAIServer) -> None:
    server.handler = Script()
    task = Task(instruction="Describe tide pools", metadata={"checklist": "Mentions crabs."})
    result = refiner(server, ChecklistCritic(), LLMCritic(), max_rounds=1).run(task)
    critique = checklist_of(result, 0)
    assert critique.error is not None and "task.metadata['checklist']" in critique.error
    assert "check" not in kinds(server) and "derive" not in kinds(server)
