"""A checkpointed tree search that a test kills part-way through a fan-out, then resumes.

    python resumable_search.py DB LOG PHASE POLICY   (PHASE: crash | resume; POLICY: beam | mcts)

beam: 2 first drafts; the 2 best of each depth are revised twice each at once; 2 depths deep
(10 candidates). mcts: one first draft; 3 expansions of 2 revisions each (7 candidates).
Every draft, edit and judging is appended to LOG ("judge X" when the critic starts on draft
X, "judged X" when it is done). In the crash phase the critic hangs on HANG, a revision of
the first fan-out of revisions, waiting to be killed while the others of that fan-out finish.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from redraft import FunctionCritic, LLMEditor, Refiner, ScriptedModel
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall
from redraft.strategies import TreeSearch

THREAD = "search-1"
TASK = "grow a tree"
HANG = "d0.1"
_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_VARIANT = re.compile(r"This is (?:attempt|revision) (\d+) of (\d+)")


def variant_of(prompt: str) -> int:
    """Which of several drafts or revisions made at once a prompt asks for (from 0)."""
    found = _VARIANT.search(prompt)
    return int(found.group(1)) - 1 if found else 0


def score(text: str) -> float:
    """Deterministic, never passing: later revisions of the second variant score higher."""
    return min(0.9, 0.1 + 0.1 * text.count(".") + 0.05 * text.count("1"))


STRATEGIES = {
    "beam": lambda: TreeSearch(policy="beam", width=2, expand=2, max_depth=2),
    "mcts": lambda: TreeSearch(policy="mcts", expand=2, max_depth=3, iterations=3),
}


def refiner(db: str | None, log: Path, phase: str, policy: str) -> Refiner:
    """The search; without `db`, not checkpointed."""

    def record(line: str) -> None:
        with log.open("a") as handle:
            handle.write(line + "\n")

    def actor(messages: list[Message], call: ScriptedCall) -> str:
        text = f"d{variant_of(call.prompt)}"
        record(f"draft {text}")
        return text

    def editor(messages: list[Message], call: ScriptedCall) -> str:
        shown = _ANSWER.search(call.prompt)
        assert shown is not None
        text = f"{shown.group(1)}.{variant_of(call.prompt)}"
        record(f"edit {text}")
        return text

    async def judge(text: str) -> float:
        record(f"judge {text}")
        if phase == "crash" and text == HANG:
            record("waiting to be killed")
            await asyncio.sleep(600)
        record(f"judged {text}")
        return score(text)

    return Refiner(
        ScriptedModel(actor),
        critics=[FunctionCritic(judge, name="judge")],
        editor=LLMEditor(ScriptedModel(editor), mode="rewrite"),
        strategy=STRATEGIES[policy](),
        patience=None,
        checkpointer=db,
    )


if __name__ == "__main__":
    db, log, phase, policy = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    result = refiner(db, log, phase, policy).run(TASK, thread_id=THREAD)
    print(result.model_dump_json())
