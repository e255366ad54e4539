"""Scripted replies shared by the loop tests."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from redraft import ScriptedModel
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)


def verdict(score: int, summary: str = "", problem: str = "it is wrong") -> str:
    issues = [] if score >= 4 else [{"problem": problem, "suggestion": "fix it"}]
    return json.dumps(
        {
            "feedback": f"Reasoning for {score}.",
            "summary": summary or f"scored {score}",
            "issues": issues,
            "score": score,
        }
    )


def answer_in(call: ScriptedCall) -> str:
    """The draft a critic or editor was shown."""
    match = _ANSWER.search(call.messages[-1].content)
    assert match, "no <answer> block in the prompt"
    return match.group(1)


def judge(score_of: Callable[[str], int]) -> ScriptedModel:
    """A critic model that scores each draft with `score_of(draft_text)`."""

    def reply(messages: list[Message], call: ScriptedCall) -> str:
        return verdict(score_of(answer_in(call)))

    return ScriptedModel(reply, model_name="judge")


def scores_by_draft(table: dict[str, int]) -> ScriptedModel:
    return judge(lambda text: table[text])
