"""A prompts folder of the user's reaches every prompt: the tests critic's report and the
structured-output instruction of models that take it in the prompt."""

from __future__ import annotations

import json
from pathlib import Path

from redraft import LLMCritic, Refiner, ScriptedModel, TestsCritic
from redraft.agents.base import AgentContext
from redraft.agents.prompts import PromptLibrary
from redraft.types import Draft, Task


def _library(tmp_path: Path, name: str, text: str) -> PromptLibrary:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return PromptLibrary(tmp_path)


async def test_the_tests_critic_reports_in_the_users_words(tmp_path: Path) -> None:
    prompts = _library(tmp_path, "tests_report.md", "OWN REPORT: {{ failed | length }} failed")
    critic = TestsCritic("assert add(1, 2) == 3\nassert add(2, 2) == 5", sandbox="subprocess")
    try:
        ctx = AgentContext(None, prompts)
        code = "def add(a, b):\n    return a + b\n"
        critique = await critic.critique(Draft(text=code), Task(instruction="add"), ctx)
    finally:
        critic.close()
    assert critique.feedback == "OWN REPORT: 1 failed"


def test_a_model_without_response_format_is_asked_in_the_users_words(tmp_path: Path) -> None:
    (tmp_path / "structured_output.md").write_text("GIVE JSON PLEASE: {{ schema }}", "utf-8")
    verdict = json.dumps({"feedback": "fine", "summary": "ok", "issues": [], "score": 5})
    judge = ScriptedModel([verdict])
    judge.schema_in_prompt = True  # type: ignore[attr-defined]  # as a local model is
    refiner = Refiner(ScriptedModel(["draft"]), critics=[LLMCritic(judge)], prompts=str(tmp_path))
    assert refiner.run("task").passed
    assert "GIVE JSON PLEASE: {" in judge.calls[0].prompt
    plain = ScriptedModel([verdict])
    Refiner(ScriptedModel(["draft"]), critics=[LLMCritic(plain)]).run("task")
    assert "JSON schema" not in plain.calls[0].prompt  # asked through response_format instead
