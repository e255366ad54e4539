"""Agents on their own: patch editing, rubric prompts, prompt overrides, display."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from redraft import (
    ConfigError,
    EditMode,
    FunctionCritic,
    LLMCritic,
    LLMEditor,
    PromptLibrary,
    Refiner,
    Rubric,
    ScriptedModel,
    Task,
    refine,
)
from redraft.agents.patches import Patch, PatchError, apply_patches, parse_patches
from redraft.agents.prompts import PACKAGE_DIR
from tests.helpers import judge

CODE = """```python
def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(value)
```"""

FIX = """Here is the fix:
<<<<<<< SEARCH
    return total / len(value)
=======
    return total / len(values)
>>>>>>> REPLACE
"""


def test_patches_parse_and_apply() -> None:
    patches = parse_patches(FIX)
    assert patches == [Patch("    return total / len(value)", "    return total / len(values)")]
    assert "len(values)" in apply_patches(CODE, patches)


def test_a_patch_with_wrong_indentation_still_applies_line_by_line() -> None:
    patch = Patch("  total = 0\n for v in values:", "    total = 0.0\n    for v in values:")
    patched = apply_patches(CODE, [patch])
    assert "    total = 0.0\n    for v in values:\n        total += v" in patched


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (Patch("not in the text", "x"), "is not in the draft"),
        (Patch("total", "sum"), "matches 3 places"),
        (Patch("  ", "x"), "empty SEARCH"),
    ],
)
def test_patches_that_do_not_apply_say_why(patch: Patch, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply_patches(CODE, [patch])


def test_a_reply_without_blocks_is_a_patch_error() -> None:
    with pytest.raises(PatchError, match="no SEARCH/REPLACE blocks"):
        parse_patches("I fixed it.")


def test_editor_patches_code_and_keeps_the_rest_intact() -> None:
    editor = ScriptedModel([FIX])
    result = refine(
        "Write mean()",
        model=ScriptedModel([CODE]),
        critics=[FunctionCritic(lambda text: "len(values)" in text)],
        editor=LLMEditor(editor),
    )
    final = result.final
    assert final.edit_mode is EditMode.PATCH and final.patches_applied == 1
    assert final.text == CODE.replace("len(value)", "len(values)")
    assert "SEARCH" in editor.calls[0].prompt  # auto mode chose patches for code


def test_editor_falls_back_to_a_rewrite_when_a_patch_does_not_apply() -> None:
    bad_patch = "<<<<<<< SEARCH\nno such line\n=======\nx\n>>>>>>> REPLACE"
    rewrite = CODE.replace("len(value)", "len(values)")
    editor = ScriptedModel([bad_patch, rewrite])
    result = refine(
        "Write mean()",
        model=ScriptedModel([CODE]),
        critics=[FunctionCritic(lambda text: "len(values)" in text)],
        editor=LLMEditor(editor),
    )
    assert result.passed
    final = result.final
    assert final.patch_fallback and final.edit_mode is EditMode.REWRITE
    assert final.text == rewrite
    retry = editor.calls[1]
    assert retry.messages[-2].content == bad_patch
    assert "could not be applied: block 1's SEARCH is not in the draft" in retry.prompt
    assert final.usage.calls == 2


def test_short_prose_is_rewritten_in_auto_mode() -> None:
    editor = LLMEditor(mode="auto", patch_min_chars=100)
    from redraft.types import Draft

    assert editor.choose_mode(Draft(text="A short paragraph.")) is EditMode.REWRITE
    assert editor.choose_mode(Draft(text="x" * 100)) is EditMode.PATCH
    assert editor.choose_mode(Draft(text=CODE)) is EditMode.PATCH
    assert LLMEditor(mode="rewrite").choose_mode(Draft(text=CODE)) is EditMode.REWRITE


def test_rubric_critic_shows_criteria_reference_and_scale() -> None:
    model = judge(lambda text: 3)
    critic = LLMCritic(model, rubric="Judge the haiku.", criteria=["5-7-5 syllables", "Rain"])
    result = refine(
        Task(instruction="Write a haiku about rain", reference="Soft rain on the roof"),
        model=ScriptedModel(["a haiku"]),
        critics=[critic],
        max_rounds=1,
    )
    prompt = model.calls[0].prompt
    for expected in ("Judge the haiku.", "- 5-7-5 syllables", "- Rain", "Soft rain on the roof"):
        assert expected in prompt
    assert "5: Excellent" in prompt
    critique = result.rounds[0].critiques[0]
    assert (critique.raw_score, critique.score, critique.passed) == (3, 0.5, False)


def test_the_task_rubric_wins_over_the_critic_default_and_sets_the_pass_mark() -> None:
    model = judge(lambda text: 3)
    rubric = Rubric(description="Task rubric.", pass_score=3)
    result = refine(
        Task(instruction="t", rubric=rubric),
        model=ScriptedModel(["draft"]),
        critics=[LLMCritic(model, rubric="Critic rubric.")],
    )
    assert "Task rubric." in model.calls[0].prompt
    assert "Critic rubric." not in model.calls[0].prompt
    assert result.passed  # 3 meets the task rubric's pass mark


def test_actor_aims_at_the_rubric() -> None:
    actor = ScriptedModel(["draft"])
    refine(
        Task(instruction="t", rubric=Rubric(criteria=["Mention the moon"])),
        model=actor,
        critics=[FunctionCritic(lambda text: True)],
    )
    assert "- Mention the moon" in actor.calls[0].prompt


def test_prompt_templates_can_be_overridden_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "actor.md").write_text("CUSTOM ACTOR PROMPT for {{ task.instruction }}")
    actor = ScriptedModel(["draft"])
    Refiner(actor, critics=[FunctionCritic(lambda t: True)], prompts=tmp_path).run("haiku")
    assert actor.calls[0].messages[-1].content == "CUSTOM ACTOR PROMPT for haiku"
    # Templates not overridden keep the packaged text.
    assert actor.calls[0].messages[0].content.startswith("You are a careful expert writer")


def test_broken_prompt_templates_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "actor.md").write_text("{% if %}")
    with pytest.raises(ConfigError, match=r"actor.md:1"):
        PromptLibrary(tmp_path).render("actor.md", task=Task(instruction="t"), rubric_text="")
    with pytest.raises(ConfigError, match="prompt directory not found"):
        PromptLibrary(tmp_path / "missing")


def test_every_packaged_template_is_listed() -> None:
    names = PromptLibrary.names()
    assert {"actor.md", "critic_rubric.md", "editor.md", "repair.md"} <= set(names)
    assert all((PACKAGE_DIR / name).is_file() for name in names)


def test_result_renders_rounds_and_a_diff() -> None:
    result = refine(
        "t",
        model=ScriptedModel(["first line\nsecond line"]),
        critics=[FunctionCritic(lambda t: "fixed" in t, name="has-fix")],
        editor=LLMEditor(ScriptedModel(["first line\nfixed line"]), mode="rewrite"),
    )
    console = Console(record=True, width=100)
    console.print(result)
    text = console.export_text()
    assert "has-fix" in text and "stop: passed" in text
    assert "-second line" in text and "+fixed line" in text
    html = result._repr_html_()
    assert "<pre" in html and "fixed line" in html
