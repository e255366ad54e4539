"""Loop behaviour with scripted models: stop rules, best-draft selection, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from redraft import (
    ConfigError,
    Critique,
    CritiqueEvent,
    DraftEvent,
    EditEvent,
    FunctionCritic,
    LLMCritic,
    LLMEditor,
    ModelError,
    Refiner,
    Result,
    RoundEvent,
    ScriptedModel,
    StopEvent,
    StopReason,
    Task,
    arefine,
    refine,
)
from tests.helpers import judge, scores_by_draft


def test_stops_as_soon_as_all_critics_pass() -> None:
    actor = ScriptedModel(["draft one"])
    editor = ScriptedModel(["draft two", "draft three"])
    result = refine(
        "Write a haiku",
        model=actor,
        critics=[LLMCritic(scores_by_draft({"draft one": 2, "draft two": 5}))],
        editor=LLMEditor(editor),
        max_rounds=5,
    )
    assert result.stop_reason is StopReason.PASSED
    assert result.passed
    assert result.final.text == "draft two"
    assert [r.draft.text for r in result.rounds] == ["draft one", "draft two"]
    assert len(editor.calls) == 1
    assert editor.remaining == 1


def test_keeps_the_best_draft_when_a_later_round_regresses() -> None:
    editor = ScriptedModel(["worse", "middling"])
    result = refine(
        "task",
        model=ScriptedModel(["good"]),
        critics=[LLMCritic(scores_by_draft({"good": 3, "worse": 1, "middling": 2}))],
        editor=LLMEditor(editor),
        max_rounds=3,
        patience=None,
    )
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert [r.score for r in result.rounds] == [0.5, 0.0, 0.25]
    assert result.best_round == 0
    assert result.final.text == "good"
    # The editor revises the best draft, not the regression, and is told what was rejected.
    second_edit = editor.calls[1].prompt
    assert "<answer>\ngood\n</answer>" in second_edit
    assert "Earlier versions that were rejected" in second_edit
    assert "worse" in second_edit


def test_select_last_returns_the_last_draft() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["good"]),
        critics=[LLMCritic(scores_by_draft({"good": 3, "worse": 1}))],
        editor=LLMEditor(ScriptedModel(["worse"])),
        max_rounds=2,
        select="last",
    )
    assert result.final.text == "worse"
    assert result.best_round == 1


def test_stops_when_the_editor_repeats_a_rejected_draft() -> None:
    editor = ScriptedModel(["same", "  same \n"])
    result = refine(
        "task",
        model=ScriptedModel(["same"]),
        critics=[LLMCritic(judge(lambda _: 2))],
        editor=LLMEditor(editor),
        max_rounds=5,
    )
    assert result.stop_reason is StopReason.REPEATED
    assert len(result.rounds) == 1
    assert len(editor.calls) == 2
    retry = editor.calls[1]
    assert "identical to the version from round 0" in retry.prompt
    assert retry.settings is not None and retry.settings.temperature == 0.8
    assert result.usage.editor.calls == 2


def test_a_repeat_followed_by_a_new_draft_continues() -> None:
    editor = ScriptedModel(["first", "second"])
    result = refine(
        "task",
        model=ScriptedModel(["first"]),
        critics=[LLMCritic(scores_by_draft({"first": 2, "second": 5}))],
        editor=LLMEditor(editor),
    )
    assert result.stop_reason is StopReason.PASSED
    assert result.final.text == "second"
    assert result.rounds[1].draft.usage.calls == 2  # both edit attempts are accounted


def test_patience_stops_a_loop_that_no_longer_improves() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[LLMCritic(scores_by_draft({"a": 3, "b": 2, "c": 3, "d": 5}))],
        editor=LLMEditor(ScriptedModel(["b", "c", "d"])),
        max_rounds=10,
        patience=2,
    )
    assert result.stop_reason is StopReason.NO_IMPROVEMENT
    assert [r.draft.text for r in result.rounds] == ["a", "b", "c"]
    assert result.best_round == 0  # an equal later score is not an improvement


def test_threshold_stops_before_every_critic_passes() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[LLMCritic(judge(lambda _: 4), pass_score=5)],
        editor=LLMEditor(ScriptedModel([])),
        threshold=0.7,
    )
    assert result.stop_reason is StopReason.THRESHOLD
    assert result.passed
    assert not result.rounds[0].passed


def test_token_budget_stops_the_loop() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["a" * 400]),
        critics=[LLMCritic(judge(lambda _: 2))],
        editor=LLMEditor(ScriptedModel(["b" * 400] * 5)),
        max_rounds=10,
        patience=None,
        max_tokens=1000,
    )
    assert result.stop_reason is StopReason.BUDGET
    assert not result.passed
    assert result.usage.total.total_tokens >= 1000
    assert len(result.rounds) < 10


def test_cost_budget_stops_the_loop() -> None:
    priced = ScriptedModel(["x", "y", "z", "w"], cost_per_call=0.01)
    result = refine(
        "task",
        model=priced,
        critics=[FunctionCritic(lambda text: 0.1)],
        editor=LLMEditor(priced),
        max_rounds=10,
        patience=None,
        max_cost_usd=0.025,
    )
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.rounds) == 3
    assert result.usage.total.cost_usd == pytest.approx(0.03)


def test_all_critics_failing_stops_the_loop() -> None:
    def broken(text: str) -> bool:
        raise RuntimeError("checker crashed")

    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(broken)],
        editor=LLMEditor(ScriptedModel([])),
    )
    assert result.stop_reason is StopReason.CRITICS_FAILED
    critique = result.rounds[0].critiques[0]
    assert critique.error == "RuntimeError: checker crashed"
    assert not critique.passed


def test_a_failed_critic_counts_as_zero_and_blocks_passing() -> None:
    def broken(text: str) -> bool:
        raise RuntimeError("boom")

    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(lambda t: 0.8, name="ok"), FunctionCritic(broken)],
        editor=LLMEditor(ScriptedModel(["b"])),
        max_rounds=2,
    )
    assert result.rounds[0].score == pytest.approx(0.4)
    assert not result.rounds[0].passed
    assert not result.rounds[0].judged
    assert result.stop_reason is StopReason.MAX_ROUNDS


def test_a_draft_that_breaks_a_critic_loses_to_a_fully_judged_one() -> None:
    def tests_critic(text: str) -> float:
        if text == "clever":
            raise RuntimeError("the tests crashed")
        return 0.3

    editor = ScriptedModel(["clever", "plain"])
    result = refine(
        "task",
        model=ScriptedModel(["first"]),
        critics=[
            FunctionCritic(lambda t: 1.0 if t == "clever" else 0.2, name="style", weight=4.0),
            FunctionCritic(tests_critic, name="tests"),
        ],
        editor=LLMEditor(editor),
        max_rounds=3,
        patience=None,
        threshold=0.7,
    )
    scores = [r.score for r in result.rounds]
    assert scores == pytest.approx([0.22, 0.8, 0.22])
    assert [r.judged for r in result.rounds] == [True, False, True]
    # 0.8 is over the threshold, but the tests critic never judged that draft.
    assert result.stop_reason is StopReason.MAX_ROUNDS
    assert result.best_round == 0
    assert result.final.text == "first"
    assert "<answer>\nfirst\n</answer>" in editor.calls[1].prompt  # revises the judged draft


def test_a_custom_critic_that_raises_counts_as_zero_with_its_weight() -> None:
    class Raising:
        name = "custom"
        weight = 3.0

        async def critique(self, draft: object, task: object, ctx: object) -> Critique:
            raise RuntimeError("no verdict")

    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(lambda t: 0.8, name="ok"), Raising()],
        editor=LLMEditor(ScriptedModel([])),
        max_rounds=1,
    )
    failed = result.rounds[0].critiques[1]
    assert failed.error == "RuntimeError: no verdict" and failed.weight == 3.0
    assert result.rounds[0].score == pytest.approx(0.2)


def test_editor_failure_keeps_the_best_draft_and_reports_the_error() -> None:
    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(lambda t: 0.5)],
        editor=LLMEditor(ScriptedModel([ModelError("provider down")])),
    )
    assert result.stop_reason is StopReason.ERROR
    assert result.error == "provider down"
    assert result.final.text == "a"


def test_actor_failure_raises() -> None:
    with pytest.raises(ModelError, match="provider down"):
        refine(
            "task",
            model=ScriptedModel([ModelError("provider down")]),
            critics=[FunctionCritic(lambda t: True)],
        )


def test_every_stop_reason_is_reachable() -> None:
    # Each stop reason has a test above; this guards against adding one without a test.
    tested = {
        StopReason.PASSED,
        StopReason.THRESHOLD,
        StopReason.MAX_ROUNDS,
        StopReason.NO_IMPROVEMENT,
        StopReason.REPEATED,
        StopReason.BUDGET,
        StopReason.CRITICS_FAILED,
        StopReason.ERROR,
        StopReason.EXHAUSTED,  # the search strategies' tests (tests/test_search_*.py)
        StopReason.WAITING,  # the human critic's tests (tests/test_human_critic.py)
    }
    assert tested == set(StopReason)


async def test_critics_of_a_round_run_concurrently() -> None:
    in_flight, peak = 0, 0

    async def slow_check(text: str) -> float:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return 1.0

    critics = [FunctionCritic(slow_check, name=f"c{i}") for i in range(4)]
    result = await arefine("task", model=ScriptedModel(["a"]), critics=critics)
    assert peak == 4
    assert result.stop_reason is StopReason.PASSED
    assert sorted(c.critic for c in result.rounds[0].critiques) == ["c0", "c1", "c2", "c3"]


def test_sync_function_critics_run_in_threads_concurrently() -> None:
    import threading
    import time

    barrier = threading.Barrier(2, timeout=5)

    def check(text: str) -> bool:
        barrier.wait()  # both must be running at once to get past this
        time.sleep(0.01)
        return True

    result = refine(
        "task",
        model=ScriptedModel(["a"]),
        critics=[FunctionCritic(check, name="x"), FunctionCritic(check, name="y")],
    )
    assert result.passed


def test_each_role_uses_its_own_model() -> None:
    actor, critic, editor = (
        ScriptedModel(["v1"], model_name="actor-m"),
        judge(lambda text: 5 if text == "v2" else 2),
        ScriptedModel(["v2"], model_name="editor-m"),
    )
    result = refine(
        Task(instruction="task", context="ctx"),
        model=actor,
        critic_model=critic,
        editor_model=editor,
    )
    assert result.final.text == "v2"
    assert (len(actor.calls), len(critic.calls), len(editor.calls)) == (1, 2, 1)
    assert result.rounds[0].draft.model == "actor-m"
    assert result.rounds[1].draft.model == "editor-m"
    assert result.rounds[1].critiques[0].model == "judge"
    assert result.usage.actor.calls == 1
    assert result.usage.critic.calls == 2
    assert result.usage.editor.calls == 1
    assert result.usage.total.calls == 4
    assert "ctx" in actor.calls[0].prompt


def test_an_existing_draft_skips_the_actor() -> None:
    result = refine(
        Task(instruction="polish this", draft="my text"),
        critics=[FunctionCritic(lambda t: t == "my text")],
        editor=LLMEditor(ScriptedModel([])),
    )
    assert result.rounds[0].draft.author == "user"
    assert result.final.text == "my text"


def test_missing_model_names_how_to_choose_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRAFT_MODEL", raising=False)
    with pytest.raises(ConfigError, match="REDRAFT_MODEL"):
        refine("task")


def test_empty_task_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="the task is empty"):
        refine("   ", model=ScriptedModel([]), critics=[FunctionCritic(lambda t: True)])


def test_bad_stop_rules_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_rounds"):
        Refiner(ScriptedModel([]), max_rounds=0)
    with pytest.raises(ConfigError, match="threshold"):
        Refiner(ScriptedModel([]), threshold=2.0)


def test_stream_yields_events_in_order() -> None:
    refiner = Refiner(
        ScriptedModel(["v1"]),
        critics=[FunctionCritic(lambda t: t == "v2", name="check")],
        editor=LLMEditor(ScriptedModel(["v2"])),
    )
    events = list(refiner.stream("task"))
    kinds = [e.kind for e in events]
    assert kinds == ["draft", "critique", "round", "edit", "critique", "round", "stop"]
    assert isinstance(events[0], DraftEvent) and events[0].draft.text == "v1"
    assert isinstance(events[1], CritiqueEvent) and not events[1].critique.passed
    assert isinstance(events[2], RoundEvent) and events[2].stop_reason is None
    # Every event names its round by index; a round event carries the judged round too.
    assert [getattr(e, "round", None) for e in events[:-1]] == [0, 0, 0, 1, 1, 1]
    assert events[2].judged.index == 0 and events[2].judged.critiques[0].critic == "check"
    assert isinstance(events[3], EditEvent) and events[3].draft.round == 1
    assert isinstance(events[-1], StopEvent)
    assert events[-1].result.stop_reason is StopReason.PASSED


def test_closing_a_stream_early_stops_the_run() -> None:
    editor = ScriptedModel(["v2", "v3", "v4"])
    refiner = Refiner(
        ScriptedModel(["v1"]),
        critics=[FunctionCritic(lambda t: 0.1 * len(t))],
        editor=LLMEditor(editor),
        max_rounds=4,
        patience=None,
    )
    stream = refiner.stream("task")
    assert next(stream).kind == "draft"
    stream.close()
    assert len(editor.calls) <= 1


async def test_abatch_runs_many_loops_with_a_per_model_limit() -> None:
    in_flight, peak = 0, 0

    async def reply(messages: object, call: object) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "draft"

    model = ScriptedModel(reply)
    refiner = Refiner(model, critics=[FunctionCritic(lambda t: True)])
    results = await refiner.abatch([f"task {i}" for i in range(20)], model_concurrency=3)
    assert len(results) == 20
    assert all(isinstance(r, Result) and r.passed for r in results)
    assert peak == 3
    assert len(model.calls) == 20


async def test_abatch_reports_failures_when_asked() -> None:
    model = ScriptedModel(lambda messages, call: ModelError("down") if call.index == 1 else "ok")
    refiner = Refiner(model, critics=[FunctionCritic(lambda t: True)])
    results = await refiner.abatch(["a", "b", "c"], concurrency=1, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Result", "ModelError", "Result"]


async def test_sync_refine_works_inside_a_running_event_loop() -> None:
    # A notebook cell runs inside an event loop; the sync API must still work there.
    result = refine("task", model=ScriptedModel(["a"]), critics=[FunctionCritic(lambda t: True)])
    assert result.passed


def test_result_round_trips_through_json() -> None:
    result = refine(
        Task(instruction="task", reference="ref", rubric="be brief", metadata={"k": [1, 2]}),
        model=ScriptedModel(["long draft"]),
        critics=[
            LLMCritic(scores_by_draft({"long draft": 2, "short": 4}), name="rubric"),
            FunctionCritic(lambda t: (0.5, "half way"), name="fn"),
        ],
        editor=LLMEditor(ScriptedModel(["short"])),
        max_rounds=2,
    )
    assert len(result.rounds) == 2
    dumped = result.model_dump_json()
    restored = Result.model_validate_json(dumped)
    assert restored == result
    assert restored.model_dump_json() == dumped
    assert restored.rounds[0].critiques[0].issues[0].problem == "it is wrong"
    assert restored.usage.total == result.usage.total


def test_function_critic_accepts_every_return_shape() -> None:
    task = Task(instruction="t")

    async def run(fn: object, **kwargs: object) -> Critique:
        from redraft.agents.base import AgentContext
        from redraft.agents.prompts import DEFAULT_PROMPTS
        from redraft.types import Draft

        critic = FunctionCritic(fn, **kwargs)  # type: ignore[arg-type]
        return await critic.critique(Draft(text="abc"), task, AgentContext(None, DEFAULT_PROMPTS))

    def critique_of(fn: object, **kwargs: object) -> Critique:
        return asyncio.run(run(fn, **kwargs))

    assert critique_of(lambda t: True).passed
    assert critique_of(lambda t: 0.7, pass_score=0.6).passed
    assert not critique_of(lambda t: 0.5).passed
    fb = critique_of(lambda t, task: (0.2, f"too short for {task.instruction}"))
    assert fb.summary == "too short for t" and fb.issues[0].problem == "too short for t"
    made = critique_of(lambda t: Critique(critic="", score=1.0, passed=True))
    assert made.critic == "<lambda>".strip("<>")
    assert critique_of(lambda t: 3.0).error == "ValueError: score 3.0 is outside 0..1"
    assert "return a Critique" in (critique_of(lambda t: "yes").error or "")


def test_progress_shows_each_round_and_the_stop(capsys: pytest.CaptureFixture[str]) -> None:
    result = refine(
        "task",
        model=ScriptedModel(["v1"]),
        critics=[FunctionCritic(lambda t: t == "v2", name="is-v2")],
        editor=LLMEditor(ScriptedModel(["v2"])),
        progress=True,
    )
    shown = capsys.readouterr().out
    assert result.passed
    for expected in ("round 0", "first draft", "is-v2", "round 1", "revision", "stop: passed"):
        assert expected in shown


def test_batch_progress_counts_finished_loops(capsys: pytest.CaptureFixture[str]) -> None:
    refiner = Refiner(ScriptedModel(lambda m, c: "draft"), critics=[FunctionCritic(bool)])
    results = refiner.batch(["a", "b", "c"], progress=True)
    assert len(results) == 3
    assert "3/3" in capsys.readouterr().out
