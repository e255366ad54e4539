"""The search strategies with scripted models: BestOfN, TreeSearch (beam and MCTS) and
Reflexion. What each makes, in what order and from which parent; their budgets; their events.

Every scripted reply is decided from the prompt alone (the draft shown in `<answer>`, which
variant of a fan-out the call is, how many sibling revisions it was shown), never from the
order calls arrive in, so the tests are deterministic although a fan-out's jobs run at once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from redraft import (
    ConfigError,
    FunctionCritic,
    LLMEditor,
    ModelError,
    Refiner,
    Result,
    ScriptedModel,
    StopReason,
    Task,
)
from redraft.models.base import Completion, Message
from redraft.models.scripted import ScriptedCall
from redraft.strategies import BestOfN, Refine, Reflexion, Strategy, TreeSearch
from redraft.types import (
    Candidate,
    CandidateEvent,
    Event,
    Origin,
    SelectEvent,
    StopEvent,
    Usage,
    Variant,
)
from tests.helpers import answer_in

Reply = str | Completion
ReplyFunction = Callable[[list[Message], ScriptedCall], Reply | Awaitable[Reply]]

_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")
_ROUND = re.compile(r"^## Round (\d+):", re.MULTILINE)
REFLECTOR = "You review a failed attempt"


def variant_of(call: ScriptedCall) -> int:
    """Which of the drafts or revisions made at once this call is asked for (from 0): the
    prompt of every one but the first says "attempt k of n" (or "revision k of n")."""
    found = _VARIANT.search(call.prompt)
    return int(found.group(1)) - 1 if found else 0


def siblings_shown(call: ScriptedCall) -> int:
    return call.prompt.count("<other_revision>")


def reflecting(call: ScriptedCall) -> bool:
    return REFLECTOR in call.messages[0].content


def drafts(messages: list[Message], call: ScriptedCall) -> str:
    """An actor: variant k of a fan-out drafts "dk"."""
    return f"d{variant_of(call)}"


def dotted(messages: list[Message], call: ScriptedCall) -> str:
    """An editor: variant k of the revisions of "X" at once is "X.k"."""
    return f"{answer_in(call)}.{variant_of(call)}"


def scores(table: dict[str, float], default: float = 0.1) -> Callable[[str], float]:
    return lambda text: table.get(text, default)


def searcher(
    strategy: Strategy,
    actor: ScriptedModel,
    editor: ScriptedModel,
    critic: Callable[[str], Any],
    **options: Any,
) -> Refiner:
    """A refiner whose actor drafts with `actor`, whose editor (and reflector) use `editor`,
    and whose one critic scores each draft with `critic(text)`."""
    options.setdefault("patience", None)
    return Refiner(
        actor,
        critics=[FunctionCritic(critic, name="judge", in_thread=False)],
        editor=LLMEditor(mode="rewrite"),
        editor_model=editor,
        strategy=strategy,
        **options,
    )


def texts(result: Result) -> list[str]:
    return [c.draft.text for c in result.candidates]


def by_text(result: Result, text: str) -> Candidate:
    return next(c for c in result.candidates if c.draft.text == text)


def number(candidate_id: str | None) -> int:
    assert candidate_id is not None
    return int(candidate_id[1:])


# -- BestOfN -------------------------------------------------------------------------------

DELAY_S = 0.3


async def test_best_of_n_makes_its_drafts_concurrently() -> None:
    in_flight = peak = 0

    async def slow_draft(messages: list[Message], call: ScriptedCall) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(DELAY_S)
        in_flight -= 1
        return f"d{variant_of(call)}"

    n = 6
    refiner = searcher(
        BestOfN(n, refine=False), ScriptedModel(slow_draft), ScriptedModel([]), lambda t: 0.5
    )
    started = time.perf_counter()
    result = await refiner.arun("task")
    elapsed = time.perf_counter() - started
    assert texts(result) == [f"d{i}" for i in range(n)]
    assert peak == n  # every draft was being written at once
    # One after another they would take n x DELAY_S; at once, about one DELAY_S.
    assert elapsed < n * DELAY_S / 2
    assert all(c.draft.duration_s >= DELAY_S for c in result.candidates)


def test_best_of_n_refines_its_best_first_draft() -> None:
    # d2 and d3 tie for best: the earlier, d2, is refined; each "+" scores 0.2 more.
    first = {"d0": 0.1, "d1": 0.3, "d2": 0.5, "d3": 0.5}

    def score(text: str) -> float:
        return min(1.0, first[text.rstrip("+")] + 0.2 * text.count("+"))

    editor = ScriptedModel(lambda m, call: answer_in(call) + "+")
    result = searcher(BestOfN(4), ScriptedModel(drafts), editor, score, max_rounds=6).run("task")
    assert result.stop_reason is StopReason.PASSED
    assert texts(result) == ["d0", "d1", "d2", "d3", "d2+", "d2++", "d2+++"]
    assert result.chain == ["c2", "c4", "c5", "c6"]  # from the best first draft down
    assert [c.parent_id for c in result.candidates[4:]] == ["c2", "c4", "c5"]
    assert [c.origin for c in result.candidates[4:]] == [Origin.REVISE] * 3
    assert [c.depth for c in result.candidates[4:]] == [1, 2, 3]
    assert "<answer>\nd2\n</answer>" in editor.calls[0].prompt
    assert result.final is not None and result.final.text == "d2+++"
    assert result.rounds[0].draft.text == "d2" and len(result.rounds) == 4


def test_best_of_n_revises_the_best_of_its_chain_not_a_regression() -> None:
    table = {"d0": 0.2, "d1": 0.4, "d1.0": 0.1, "d1.0.0": 0.1}
    editor = ScriptedModel(
        lambda m, call: answer_in(call) + ("/again" if "<rejected>" in call.prompt else ".0")
    )
    result = searcher(BestOfN(2), ScriptedModel(drafts), editor, scores(table), max_rounds=3).run(
        "task"
    )
    # d1 is revised into the worse d1.0; the next revision starts again from d1.
    assert texts(result) == ["d0", "d1", "d1.0", "d1/again"]
    assert [c.parent_id for c in result.candidates[2:]] == ["c1", "c1"]
    assert result.stop_reason is StopReason.MAX_ROUNDS  # 3 on the chain, its draft included
    assert result.final_id == "c1"


def test_best_of_n_without_refining_returns_its_best_first_draft() -> None:
    editor = ScriptedModel([])
    table = {"d0": 0.2, "d1": 0.7, "d2": 0.4}
    result = searcher(BestOfN(3, refine=False), ScriptedModel(drafts), editor, scores(table)).run(
        "task"
    )
    assert result.stop_reason is StopReason.EXHAUSTED and not result.passed
    assert result.final_id == "c1" and result.chain == ["c1"]
    assert result.selected_because == "the highest score (0.70) of 3 candidates"
    assert editor.calls == []


def test_best_of_n_without_refining_stops_passed_when_a_draft_passes() -> None:
    table = {"d0": 0.9, "d1": 0.2, "d2": 1.0, "d3": 1.0}
    result = searcher(
        BestOfN(4, refine=False), ScriptedModel(drafts), ScriptedModel([]), scores(table)
    ).run("task")
    assert result.stop_reason is StopReason.PASSED and result.passed
    assert result.final_id == "c2"  # the first that passed, over a higher-scoring earlier one
    assert result.selected_because == "every critic passed it (the first that passed)"


def test_each_first_draft_after_the_first_is_told_to_differ_at_its_own_temperature() -> None:
    n = 4
    actor = ScriptedModel(drafts)
    result = searcher(BestOfN(n, refine=False), actor, ScriptedModel([]), lambda t: 0.3).run("task")
    calls = sorted(actor.calls, key=variant_of)
    assert [variant_of(c) for c in calls] == list(range(n))
    assert "attempt" not in calls[0].prompt
    for k, call in enumerate(calls[1:], start=2):
        assert f"This is attempt {k} of {n}" in call.prompt
    temperatures = [c.settings.temperature if c.settings else None for c in calls]
    assert temperatures == [Variant.spread(i, n).temperature for i in range(n)]
    assert temperatures == [None, 0.7, 0.9, 1.1]
    # Candidate ck is variant k.
    assert texts(result) == [f"d{i}" for i in range(n)]


def test_with_a_draft_given_the_first_candidate_is_the_users_own() -> None:
    actor = ScriptedModel(drafts)
    result = searcher(
        BestOfN(3, refine=False), actor, ScriptedModel([]), scores({"mine": 0.9})
    ).run(Task(instruction="task", draft="mine"))
    first = result.candidates[0]
    assert (first.id, first.draft.text, first.draft.author) == ("c0", "mine", "user")
    assert [c.draft.author for c in result.candidates[1:]] == ["actor", "actor"]
    # The actor writes only the other variants, each told which it is.
    assert sorted(variant_of(c) for c in actor.calls) == [1, 2]
    assert texts(result) == ["mine", "d1", "d2"]
    assert result.final_id == "c0"


# -- beam ----------------------------------------------------------------------------------

# Width 2, two revisions of each kept candidate. At depth 1 three revisions tie at 0.25:
# the earliest two (c2 "d0.0", c4 "d1.0") go on, c5 "d1.1" does not, nor do the better
# first drafts of depth 0.
BEAM_SCORES = {
    "d0": 0.3,
    "d1": 0.3,
    "d0.0": 0.25,
    "d0.1": 0.2,
    "d1.0": 0.25,
    "d1.1": 0.25,
    "d0.0.0": 0.5,
    "d0.0.1": 0.6,
    "d1.0.0": 0.7,
    "d1.0.1": 0.1,
}


def beam_search(
    table: dict[str, float], max_depth: int = 3, **options: Any
) -> tuple[Result, ScriptedModel]:
    editor = ScriptedModel(dotted)
    strategy = TreeSearch(policy="beam", width=2, expand=2, max_depth=max_depth)
    result = searcher(strategy, ScriptedModel(drafts), editor, scores(table), **options).run("task")
    return result, editor


def expected_kept(candidates: list[Candidate], width: int) -> list[str]:
    """The `width` best of `candidates` by score, the earliest made among equals."""
    ranked = sorted(candidates, key=lambda c: (-c.score, number(c.id)))
    return [c.id for c in ranked[:width]]


def test_beam_keeps_the_width_best_of_each_depth_and_expands_each() -> None:
    result, _ = beam_search(BEAM_SCORES, max_depth=3)
    depths = max(c.depth for c in result.candidates)
    assert depths == 3
    for depth in range(depths):
        level = [c for c in result.candidates if c.depth == depth]
        below = [c for c in result.candidates if c.depth == depth + 1]
        kept = expected_kept(level, 2)
        assert sorted({c.parent_id for c in below}, key=number) == sorted(kept, key=number)
        for parent in kept:  # each kept candidate gets exactly `expand` children
            assert sum(c.parent_id == parent for c in below) == 2
    assert len(result.candidates) == 2 + 4 + 4 + 4
    # The tie at depth 1 is broken by the order made: d1.1 scores as well but comes later.
    assert {c.parent_id for c in result.candidates if c.depth == 2} == {
        by_text(result, "d0.0").id,
        by_text(result, "d1.0").id,
    }
    assert by_text(result, "d1.1").score == 0.25
    assert not any(c.parent_id == by_text(result, "d1.1").id for c in result.candidates)


def test_beam_stops_at_its_depth_with_max_rounds() -> None:
    result, editor = beam_search(BEAM_SCORES, max_depth=2, max_rounds=10)
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert max(c.depth for c in result.candidates) == 2
    assert len(result.candidates) == 2 + 4 + 4 and len(editor.calls) == 8
    assert result.final is not None and result.final.text == "d1.0.0"  # 0.7, the best
    assert result.chain == [by_text(result, t).id for t in ("d1", "d1.0", "d1.0.0")]


def test_beam_stops_as_soon_as_a_candidate_passes() -> None:
    result, editor = beam_search({**BEAM_SCORES, "d1.0": 1.0}, max_depth=3)
    assert result.stop_reason is StopReason.PASSED
    assert len(result.candidates) == 2 + 4  # no depth 2
    assert len(editor.calls) == 4
    assert result.final is not None and result.final.text == "d1.0"


def test_beams_patience_counts_depths_without_a_better_candidate() -> None:
    result, _ = beam_search({"d0": 0.5, "d1": 0.4}, max_depth=4, patience=2)
    # Everything below the first drafts scores 0.1: depths 1 and 2 bring nothing better.
    assert result.stop_reason is StopReason.NO_IMPROVEMENT
    assert max(c.depth for c in result.candidates) == 2
    assert result.final_id == "c0"


# -- MCTS ----------------------------------------------------------------------------------


def dead_end_editor(messages: list[Message], call: ScriptedCall) -> str:
    """The root's first revision is "A", its second "B". Every other revision of "X" is
    "X/" and which variant, how many siblings and the latest rejected round it was shown,
    so that each differs from the revisions already made."""
    shown = answer_in(call)
    if shown == "root":
        return "B" if variant_of(call) == 1 else "A"
    latest = max((int(i) for i in _ROUND.findall(call.prompt)), default=-1)
    return f"{shown}/{variant_of(call)}{siblings_shown(call)}{latest}"


def dead_end_score(text: str) -> float:
    """A looks best, but nothing under it ever scores above 0.3; B's revisions pass."""
    if text in ("root", "A", "B"):
        return {"root": 0.2, "A": 0.8, "B": 0.4}[text]
    return 1.0 if text.startswith("B/") else 0.3


def run_streamed(refiner: Refiner) -> tuple[Result, list[Event]]:
    """Every event of a run of "task", and the result its last (stop) event carries."""
    events: list[Event] = []

    async def follow() -> None:
        async for event in refiner.astream("task"):
            events.append(event)

    asyncio.run(follow())
    stop = events[-1]
    assert isinstance(stop, StopEvent)
    return stop.result, events


def dead_end_run(strategy: Strategy) -> tuple[Result, list[Event]]:
    refiner = searcher(
        strategy,
        ScriptedModel(["root"] * 2),
        ScriptedModel(dead_end_editor),
        dead_end_score,
        max_rounds=20,
        max_candidates=7,
    )
    return run_streamed(refiner)


def test_mcts_finds_a_pass_that_greedy_refinement_misses() -> None:
    greedy, _ = dead_end_run(Refine())
    searched, events = dead_end_run(TreeSearch(policy="mcts", expand=2, max_depth=6))
    # The same models and as many candidates each.
    assert len(greedy.candidates) == len(searched.candidates) == 7
    # Refine revises the locally best "A" over and over, and never gets anywhere.
    assert texts(greedy)[:2] == ["root", "A"]
    assert all(t.startswith("A/") for t in texts(greedy)[2:])
    assert greedy.stop_reason is StopReason.BUDGET and not greedy.passed
    # MCTS expands A first, sees its revisions do worse, and goes back to B.
    assert searched.stop_reason is StopReason.PASSED
    expanded = [e.expand for e in events if isinstance(e, SelectEvent) and e.stop_reason is None]
    a, b = by_text(searched, "A").id, by_text(searched, "B").id
    assert expanded == [[], ["c0"], [a], [b]]
    assert searched.final is not None and searched.final.text.startswith("B/")
    assert searched.chain == ["c0", b, searched.final_id]
    assert searched.strategy == "mcts"


def test_mcts_reexpands_a_node_showing_it_the_revisions_it_already_has() -> None:
    # Depth 1 is as deep as it goes: every expansion is of the root again.
    editor = ScriptedModel(lambda m, call: f"r{variant_of(call)}{siblings_shown(call)}")
    strategy = TreeSearch(policy="mcts", expand=2, max_depth=1, iterations=3)
    result = searcher(strategy, ScriptedModel(["root"]), editor, lambda t: 0.3, max_rounds=10).run(
        "task"
    )
    # Each revision is shown every sibling made before it: those of earlier expansions, and
    # (the scripted editor answering at once) the one made just before it in the same one.
    assert texts(result) == ["root", "r00", "r11", "r02", "r13", "r04", "r15"]
    assert all(c.parent_id == "c0" for c in result.candidates[1:])
    assert result.stop_reason is StopReason.EXHAUSTED  # its 3 iterations are spent
    [second] = [c for c in editor.calls if siblings_shown(c) == 2]
    assert "<other_revision>\nr00\n</other_revision>" in second.prompt
    assert "<other_revision>\nr11\n</other_revision>" in second.prompt
    # The second of each pair is told so, at a warmer temperature.
    temperatures = sorted(
        (variant_of(c), c.settings.temperature if c.settings else None) for c in editor.calls
    )
    assert temperatures == [(0, None)] * 3 + [(1, Variant.spread(1, 2).temperature)] * 3


def test_mcts_gives_up_on_a_candidate_whose_revisions_only_repeat() -> None:
    editor = ScriptedModel(lambda m, call: answer_in(call))  # always the same draft back
    strategy = TreeSearch(policy="mcts", expand=2, max_depth=3, iterations=5)
    result = searcher(strategy, ScriptedModel(["root"]), editor, lambda t: 0.3).run("task")
    assert texts(result) == ["root"]
    assert len(editor.calls) == 4  # each revision asked twice, then the root is given up
    assert result.stop_reason is StopReason.EXHAUSTED


# -- budgets -------------------------------------------------------------------------------


def priced(reply: Callable[[list[Message], ScriptedCall], Any]) -> ReplyFunction:
    """`reply` costing exactly 100 tokens and $0.01 a call."""

    def answer(messages: list[Message], call: ScriptedCall) -> Completion:
        usage = Usage(input_tokens=60, output_tokens=40, cost_usd=0.01, calls=1)
        return Completion(text=reply(messages, call), usage=usage, model="scripted")

    return answer


def editing_and_reflecting(messages: list[Message], call: ScriptedCall) -> str:
    if reflecting(call):
        return f"Reflection {call.prompt.count('- Reflection ') + 1}: start from the other end."
    return dotted(messages, call)


def actor_with_reflections(messages: list[Message], call: ScriptedCall) -> str:
    return f"d{variant_of(call)}" + "r" * call.prompt.count("\n- Reflection ")


def growing(text: str) -> float:
    """Never passes; each revision scores a little more, so nothing stops for patience."""
    return min(0.9, 0.1 + 0.05 * text.count("."))


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "best-of-n": lambda: BestOfN(2),
    "beam": lambda: TreeSearch(policy="beam", width=2, expand=1, max_depth=10),
    "mcts": lambda: TreeSearch(policy="mcts", expand=2, max_depth=10, iterations=50),
    "reflexion": lambda: Reflexion(trials=10),
}


def budgeted(
    strategy: Strategy, reply_of: Callable[[ReplyFunction], ReplyFunction], **options: Any
) -> tuple[Refiner, ScriptedModel, ScriptedModel, list[str]]:
    """A search whose models reply through `reply_of`, and the drafts its critic judged."""
    actor = ScriptedModel(reply_of(actor_with_reflections))
    editor = ScriptedModel(reply_of(editing_and_reflecting))
    judged: list[str] = []

    def critic(text: str) -> float:
        judged.append(text)
        return growing(text)

    options.setdefault("max_rounds", 2 if isinstance(strategy, Reflexion) else 10)
    return searcher(strategy, actor, editor, critic, **options), actor, editor, judged


def as_is(reply: ReplyFunction) -> ReplyFunction:
    return reply


# (strategy, limit, candidates made, model calls): each fan-out is cut to what is left.
CANDIDATE_LIMITS = [
    ("best-of-n", lambda: BestOfN(6, refine=False), 4, 4),  # cut in the first fan-out
    ("best-of-n", lambda: BestOfN(2), 3, 3),  # two drafts and one revision
    ("beam", lambda: TreeSearch(policy="beam", width=3, expand=2), 5, 5),  # 3, then 2 of 6
    ("mcts", lambda: TreeSearch(policy="mcts", expand=3), 3, 3),  # the root, then 2 of 3
    ("reflexion", lambda: Reflexion(trials=3), 3, 4),  # 2 tries, a reflection, a fresh draft
]


@pytest.mark.parametrize(
    ("name", "strategy", "limit", "calls"),
    CANDIDATE_LIMITS,
    ids=[f"{c[0]}-{c[2]}" for c in CANDIDATE_LIMITS],
)
def test_max_candidates_is_never_exceeded_even_within_a_fan_out(
    name: str, strategy: Callable[[], Strategy], limit: int, calls: int
) -> None:
    refiner, actor, editor, judged = budgeted(strategy(), as_is, max_candidates=limit)
    result = refiner.run("task")
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.candidates) == limit
    assert len(judged) == limit  # no draft beyond the limit was even made and judged
    assert len(actor.calls) + len(editor.calls) == calls


def repeats_its_second_variant(messages: list[Message], call: ScriptedCall) -> str:
    """An editor whose second revision of a fan-out always gives the draft back."""
    return answer_in(call) + ("" if variant_of(call) == 1 else ".")


@pytest.mark.parametrize("policy", ["beam", "mcts"])
def test_a_revision_that_made_no_candidate_does_not_use_up_max_candidates(policy: str) -> None:
    strategy = TreeSearch(policy=policy, width=1, expand=2, max_depth=5)  # type: ignore[arg-type]
    editor = ScriptedModel(repeats_its_second_variant)
    result = searcher(
        strategy,
        ScriptedModel(["x"]),
        editor,
        lambda text: 0.1 + 0.1 * text.count("."),
        max_candidates=4,
    ).run("task")
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.candidates) == 4, [c.id for c in result.candidates]


# Each model call spends 100 tokens and $0.01; the critic spends nothing. The run stops
# after the first fan-out that reaches 250 tokens ($0.025).
SPENDING = {"best-of-n": 3, "beam": 4, "mcts": 3, "reflexion": 3}


@pytest.mark.parametrize("name", list(SPENDING))
@pytest.mark.parametrize("budget", ["max_tokens", "max_cost_usd"])
def test_a_token_or_cost_budget_stops_every_search(name: str, budget: str) -> None:
    limit = {"max_tokens": 250, "max_cost_usd": 0.025}[budget]
    refiner, _, _, _ = budgeted(STRATEGIES[name](), priced, **{budget: limit})
    result = refiner.run("task")
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.candidates) == SPENDING[name]
    total = result.usage.total
    spent = total.total_tokens if budget == "max_tokens" else total.cost_usd
    assert spent >= limit
    calls = sum(c.draft.usage.calls for c in result.candidates)
    assert total.total_tokens == 100 * calls
    assert total.cost_usd == pytest.approx(0.01 * calls)


# Each model call takes 0.3 s and the run may take 1 s of wall time. A fan-out's jobs run at
# once, so it counts as its longest job: each run gets well past the size of a fan-out,
# which a sum of its jobs' times (1.2 s for four drafts) would not.
TIMED: dict[str, tuple[Callable[[], Strategy], int]] = {
    "best-of-n": (lambda: BestOfN(4), 4),
    "beam": (lambda: TreeSearch(policy="beam", width=4, expand=1, max_depth=10), 4),
    "mcts": (lambda: TreeSearch(policy="mcts", expand=3, max_depth=10, iterations=50), 4),
    "reflexion": (lambda: Reflexion(trials=10), 1),
}


@pytest.mark.parametrize("name", list(TIMED))
def test_a_time_budget_stops_every_search(name: str) -> None:
    strategy, summed = TIMED[name]
    refiner, actor, editor, _ = budgeted(strategy(), as_is, max_time_s=1.0)
    actor.delay_s = editor.delay_s = DELAY_S
    result = refiner.run("task")
    assert result.stop_reason is StopReason.BUDGET
    assert result.wall_time_s >= 1.0
    assert len(result.candidates) > summed


# -- other stops, and what a search should not do ----------------------------------------


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_threshold_stops_every_search(name: str) -> None:
    refiner, _, _, _ = budgeted(STRATEGIES[name](), as_is, threshold=0.15)
    result = refiner.run("task")
    assert result.stop_reason is StopReason.THRESHOLD and result.passed
    assert result.score >= 0.15
    assert max(c.depth for c in result.candidates) == 1  # the first revisions met it


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_critics_failing_on_every_draft_stop_every_search(name: str) -> None:
    def broken(text: str) -> float:
        raise RuntimeError("checker crashed")

    actor, editor = ScriptedModel(actor_with_reflections), ScriptedModel(editing_and_reflecting)
    result = searcher(STRATEGIES[name](), actor, editor, broken).run("task")
    assert result.stop_reason is StopReason.CRITICS_FAILED
    # Nothing is revised from critiques that all failed.
    assert {c.origin for c in result.candidates} == {Origin.DRAFT}
    assert editor.calls == []
    assert result.candidates[0].critiques[0].error == "RuntimeError: checker crashed"


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_a_failing_editor_ends_every_search_keeping_the_best_draft(name: str) -> None:
    def down(messages: list[Message], call: ScriptedCall) -> str:
        raise ModelError("provider down")

    strategy = STRATEGIES[name]()
    max_rounds = 1 if name == "reflexion" else 10  # Reflexion's reflector fails instead
    result = searcher(
        strategy,
        ScriptedModel(drafts),
        ScriptedModel(down),
        scores({"d1": 0.4}),
        max_rounds=max_rounds,
    ).run("task")
    assert result.stop_reason is StopReason.ERROR
    assert result.error == "provider down"
    assert {c.origin for c in result.candidates} == {Origin.DRAFT}
    best = max(result.candidates, key=lambda c: c.score)
    assert result.final_id == best.id


def ignores_its_variant(messages: list[Message], call: ScriptedCall) -> str:
    """An editor that writes the same revision whatever it is told."""
    return answer_in(call) + "!"


@pytest.mark.parametrize("policy", ["beam", "mcts"])
def test_identical_revisions_made_at_once_are_kept_once(policy: str) -> None:
    strategy = TreeSearch(policy=policy, width=2, expand=3, max_depth=2, iterations=2)  # type: ignore[arg-type]
    result = searcher(
        strategy,
        ScriptedModel(["x", "y"]),
        ScriptedModel(ignores_its_variant),
        lambda text: 0.1 * text.count("!"),
    ).run("task")
    for parent in {c.parent_id for c in result.candidates if c.parent_id is not None}:
        siblings = [c.draft.text for c in result.candidates if c.parent_id == parent]
        assert len(siblings) == len(set(siblings)), f"revisions of {parent}: {siblings}"


@pytest.mark.parametrize("policy", ["beam", "mcts"])
def test_a_tree_search_says_truly_how_it_chose_with_select_last(policy: str) -> None:
    strategy = TreeSearch(policy=policy, width=2, expand=2, max_depth=2, iterations=2)  # type: ignore[arg-type]
    result = searcher(
        strategy,
        ScriptedModel(drafts),
        ScriptedModel(dotted),
        lambda text: max(0.0, 0.5 - 0.1 * text.count(".")),  # every revision is worse
        select="last",
    ).run("task")
    # Either the last candidate is returned, or the reason does not claim it was.
    honoured = result.final_id == result.candidates[-1].id
    assert honoured or "select='last'" not in result.selected_because, (
        f"final {result.final_id} of {len(result.candidates)}: {result.selected_because}"
    )


# -- Reflexion -----------------------------------------------------------------------------

REFLECTION_1 = "Reflection 1: the answer was vague; name the numbers from the start."
REFLECTION_2 = "Reflection 2: numbers alone are not enough; explain them."


def reflexion_editor(messages: list[Message], call: ScriptedCall) -> str:
    if reflecting(call):
        earlier = "# What you concluded after earlier attempts" in call.prompt
        return REFLECTION_2 if earlier else REFLECTION_1
    return answer_in(call) + "+"


def reflexion_actor(messages: list[Message], call: ScriptedCall) -> str:
    return f"try{call.prompt.count('- Reflection ')}"


def reflexion_run(
    table: dict[str, float], trials: int = 3, **options: Any
) -> tuple[Result, ScriptedModel, ScriptedModel]:
    actor, editor = ScriptedModel(reflexion_actor), ScriptedModel(reflexion_editor)
    options.setdefault("max_rounds", 2)
    result = searcher(Reflexion(trials=trials), actor, editor, scores(table), **options).run(
        "Explain tides"
    )
    return result, actor, editor


def test_a_failed_trial_is_followed_by_a_reflection_and_a_fresh_draft_given_it() -> None:
    table = {"try0": 0.2, "try0+": 0.3, "try1": 0.5, "try1+": 1.0}
    result, actor, editor = reflexion_run(table)
    assert result.stop_reason is StopReason.PASSED
    assert texts(result) == ["try0", "try0+", "try1", "try1+"]
    assert ["reflect" if reflecting(c) else "edit" for c in editor.calls] == [
        "edit",
        "reflect",
        "edit",
    ]
    # The reflector saw the failed trial; the fresh draft was given its reflection.
    reflection = editor.calls[1].prompt
    assert "<answer>\ntry0\n</answer>" in reflection and "<answer>\ntry0+\n</answer>" in reflection
    fresh_prompt = actor.calls[1].prompt
    assert REFLECTION_1 in fresh_prompt and "Start afresh" in fresh_prompt
    assert "try0" not in fresh_prompt
    fresh = result.candidates[2]
    assert (fresh.origin, fresh.parent_id) == (Origin.REFLECT, "c1")
    assert fresh.draft.reflections == [REFLECTION_1]
    assert fresh.draft.usage.calls == 2  # the reflection and the draft
    # The second trial refines its own fresh draft.
    assert result.candidates[3].parent_id == "c2"
    assert "<answer>\ntry1\n</answer>" in editor.calls[2].prompt
    assert result.final_id == "c3"


def test_reflexion_returns_the_best_candidate_of_every_trial() -> None:
    table = {"try0": 0.2, "try0+": 0.6, "try1": 0.3, "try1+": 0.4, "try2": 0.1, "try2+": 0.5}
    result, actor, editor = reflexion_run(table, trials=3)
    assert texts(result) == ["try0", "try0+", "try1", "try1+", "try2", "try2+"]
    assert result.stop_reason is StopReason.EXHAUSTED
    assert result.final_id == "c1"  # trial 1's, still the best after three trials
    assert result.selected_because == "the highest score (0.60) of 6 candidates"
    # The second reflection was shown the first; the third trial was given both.
    second_reflection = [c for c in editor.calls if reflecting(c)][1]
    assert REFLECTION_1 in second_reflection.prompt
    assert REFLECTION_1 in actor.calls[2].prompt and REFLECTION_2 in actor.calls[2].prompt
    assert result.candidates[4].draft.reflections == [REFLECTION_1, REFLECTION_2]


ONE_TRIAL_CASES = {
    # A regression, then the best is revised again, up to max_rounds.
    "max-rounds": ({"try0": 0.5, "try0+": 0.2, "try0++": 0.3}, {"max_rounds": 3}),
    "passed": ({"try0": 0.5, "try0+": 1.0}, {"max_rounds": 3}),
    "no-improvement": ({"try0": 0.5}, {"max_rounds": 9, "patience": 2}),
    "threshold": ({"try0": 0.5, "try0+": 0.8}, {"max_rounds": 3, "threshold": 0.7}),
}


@pytest.mark.parametrize("case", list(ONE_TRIAL_CASES))
def test_one_trial_of_reflexion_is_the_refine_loop(case: str) -> None:
    table, options = ONE_TRIAL_CASES[case]

    def run(strategy: Strategy) -> tuple[Result, ScriptedModel, ScriptedModel]:
        actor, editor = ScriptedModel(reflexion_actor), ScriptedModel(reflexion_editor)
        result = searcher(strategy, actor, editor, scores(table), **options).run("task")
        return result, actor, editor

    refined, refine_actor, refine_editor = run(Refine())
    reflected, actor, editor = run(Reflexion(trials=1))
    assert reflected.stop_reason is refined.stop_reason
    assert texts(reflected) == texts(refined)
    assert [c.parent_id for c in reflected.candidates] == [c.parent_id for c in refined.candidates]
    assert [c.score for c in reflected.candidates] == [c.score for c in refined.candidates]
    assert reflected.final_id == refined.final_id
    assert not any(reflecting(c) for c in editor.calls)
    assert [c.prompt for c in editor.calls] == [c.prompt for c in refine_editor.calls]
    assert [c.prompt for c in actor.calls] == [c.prompt for c in refine_actor.calls]


def test_one_trial_of_reflexion_stops_on_a_repeat_like_refine() -> None:
    def repeating(messages: list[Message], call: ScriptedCall) -> str:
        return answer_in(call)

    results = [
        searcher(s, ScriptedModel(["a"]), ScriptedModel(repeating), lambda t: 0.3).run("task")
        for s in (Refine(), Reflexion(trials=1))
    ]
    assert [r.stop_reason for r in results] == [StopReason.REPEATED] * 2
    assert [texts(r) for r in results] == [["a"], ["a"]]


def test_a_search_results_rounds_are_its_path_of_candidates() -> None:
    # Revisions name the round they revised (Draft.revises): on a beam's path to its final
    # candidate that is the round just before, as on Refine's main line.
    result, _ = beam_search(BEAM_SCORES, max_depth=3)
    rounds = result.rounds
    assert [r.candidate_id for r in rounds] == result.chain
    for index, shown in enumerate(rounds):
        assert shown.index == index and shown.draft.round == index
        candidate = result.candidate(shown.candidate_id or "")
        if candidate.parent_id is not None:
            assert rounds[shown.draft.revises or 0].candidate_id == candidate.parent_id


def test_reflexion_rounds_name_the_draft_each_revision_revised() -> None:
    from redraft.memory.learn import corrections_from

    table = {"try0": 0.2, "try0+": 0.3, "try1": 0.5, "try1+": 1.0}
    feedback = {"try0": "vague", "try0+": "still vague", "try1": "no units"}

    def critic_says(text: str) -> tuple[float, str] | float:
        return (table[text], feedback[text]) if text in feedback else table[text]

    result = searcher(
        Reflexion(trials=3),
        ScriptedModel(reflexion_actor),
        ScriptedModel(reflexion_editor),
        critic_says,
        max_rounds=2,
    ).run("Explain tides")
    assert texts(result) == ["try0", "try0+", "try1", "try1+"]
    learned = corrections_from(result)
    revised = {
        (c.problem, c.score_before, c.score_after) for c in learned if c.critic != "reflection"
    }
    # try0 -> try0+ fixed some vagueness; try1 -> try1+ fixed the missing units.
    assert revised == {("vague", 0.2, 0.3), ("no units", 0.5, 1.0)}
    # And the reflection after trial 1 (still vague at 0.3) led to trial 2's pass.
    [reflection] = [c for c in learned if c.critic == "reflection"]
    assert (reflection.problem, reflection.score_before, reflection.score_after) == (
        "still vague",
        0.3,
        1.0,
    )
    for index, shown in enumerate(result.rounds):
        assert shown.draft.round == index


def test_a_reflection_that_led_to_a_pass_is_written_to_the_memory(tmp_path: Path) -> None:
    from redraft.memory import CorrectionMemory

    table = {"try0": 0.2, "try0+": 0.3, "try1": 0.5, "try1+": 1.0}
    with CorrectionMemory(tmp_path / "memory.db") as memory:
        result = searcher(
            Reflexion(trials=3),
            ScriptedModel(reflexion_actor),
            ScriptedModel(reflexion_editor),
            scores(table),
            max_rounds=2,
            memory=memory,
        ).run("Explain tides")
        assert result.passed and result.candidates[2].draft.reflections == [REFLECTION_1]
        assert result.error is None  # the write-back worked
        fixes = [c.fix for c in memory.records()]
    assert REFLECTION_1 in fixes


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: BestOfN(n=0), "n"),
        (lambda: BestOfN(n=2.5), "n"),
        (lambda: BestOfN(refine="yes"), "refine"),
        (lambda: TreeSearch(expand=0), "expand"),
        (lambda: TreeSearch(width=0), "width"),
        (lambda: TreeSearch(max_depth=0), "max_depth"),
        (lambda: TreeSearch(policy="greedy"), "policy"),
        (lambda: TreeSearch(iterations=0), "iterations"),
        (lambda: TreeSearch(exploration=-1.0), "exploration"),
        (lambda: Reflexion(trials=0), "trials"),
    ],
    ids=[
        "n=0",
        "n=2.5",
        "refine",
        "expand=0",
        "width=0",
        "max_depth=0",
        "policy",
        "iterations=0",
        "exploration",
        "trials=0",
    ],
)
def test_a_bad_strategy_parameter_is_one_clear_line(
    make: Callable[[], object], parameter: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{parameter} must be")


def test_a_bad_policy_names_the_policies_there_are() -> None:
    with pytest.raises(ConfigError, match="'beam', 'mcts'; got 'greedy'"):
        TreeSearch(policy="greedy")  # type: ignore[arg-type]


# -- events and the result -----------------------------------------------------------------


def passes_at_depth_2(text: str) -> float:
    """Revisions of revisions pass, and (for Reflexion) a revision after a reflection."""
    return 1.0 if text.count(".") >= 2 or "r." in text else growing(text)


EVENT_RUNS: dict[str, tuple[Callable[[], Strategy], dict[str, Any]]] = {
    "best-of-n": (lambda: BestOfN(3), {}),
    "beam": (lambda: TreeSearch(policy="beam", width=2, expand=2), {}),
    "mcts": (lambda: TreeSearch(policy="mcts", expand=2), {}),
    "reflexion": (lambda: Reflexion(trials=3), {"max_rounds": 2}),
}


def streamed(name: str, critic: Callable[[str], float]) -> tuple[Result, list[Event]]:
    strategy, options = EVENT_RUNS[name]
    refiner = searcher(
        strategy(),
        ScriptedModel(actor_with_reflections),
        ScriptedModel(editing_and_reflecting),
        critic,
        **options,
    )
    result, events = run_streamed(refiner)
    assert sum(isinstance(e, StopEvent) for e in events) == 1
    return result, events


@pytest.mark.parametrize("name", list(EVENT_RUNS))
def test_a_search_reports_each_candidate_and_each_choice(name: str) -> None:
    result, events = streamed(name, passes_at_depth_2)
    judged = [e for e in events if isinstance(e, CandidateEvent)]
    # One each, in any order within a fan-out.
    assert sorted(e.candidate.id for e in judged) == sorted(c.id for c in result.candidates)
    for event in judged:  # each as judged, at its depth
        assert event.candidate == result.candidate(event.candidate.id)
        assert event.round == event.candidate.depth
    selects = [e for e in events if isinstance(e, SelectEvent)]
    *choices, last = selects
    assert choices and choices[0].expand == []  # the first drafts
    assert all(e.stop_reason is None for e in choices)
    assert last.stop_reason is result.stop_reason and last.best_id == result.final_id
    assert last.expand == []
    parents = {c.parent_id for c in result.candidates if c.parent_id is not None}
    assert {p for e in choices for p in e.expand} == parents
    # Each choice comes before the candidates it asked for.
    position = {id(e): i for i, e in enumerate(events)}
    for event in judged:
        if event.candidate.parent_id is not None:
            asked = next(e for e in choices if event.candidate.parent_id in e.expand)
            assert position[id(asked)] < position[id(event)]


@pytest.mark.parametrize("name", list(EVENT_RUNS))
def test_a_search_result_names_its_strategy_and_why_its_final_won(name: str) -> None:
    passed, _ = streamed(name, passes_at_depth_2)
    assert passed.strategy == name and passed.passed
    assert passed.selected_because == "every critic passed it (the first that passed)"
    failed, _ = streamed(name, lambda t: 0.4 if t == "d0" else 0.2)
    assert failed.strategy == name and not failed.passed
    assert failed.final_id == "c0"
    count = len(failed.candidates)
    assert count > 1
    assert failed.selected_because == f"the highest score (0.40) of {count} candidates"


def test_refine_results_name_their_strategy() -> None:
    result = searcher(Refine(), ScriptedModel(["a"]), ScriptedModel([]), lambda t: 1.0).run("t")
    assert result.strategy == "refine"


# -- exhausted -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy",
    [
        BestOfN(3, refine=False),
        TreeSearch(policy="mcts", expand=2, max_depth=5, iterations=2),
        Reflexion(trials=2),
    ],
    ids=["best-of-n", "mcts", "reflexion"],
)
def test_a_search_that_made_all_it_was_to_make_is_exhausted(strategy: Strategy) -> None:
    result = searcher(
        strategy,
        ScriptedModel(actor_with_reflections),
        ScriptedModel(editing_and_reflecting),
        growing,
        max_rounds=2,
    ).run("task")
    assert result.stop_reason is StopReason.EXHAUSTED
    assert not result.passed
    made = {"best-of-n": 3, "mcts": 1 + 2 * 2, "reflexion": 2 * 2}[result.strategy]
    assert len(result.candidates) == made
