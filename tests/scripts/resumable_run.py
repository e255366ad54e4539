"""A checkpointed run that a test kills part-way and then resumes in a new process.

    python resumable_run.py DB LOG PHASE   (PHASE: crash | resume | resume-by-id)

Every model and critic call is appended to LOG, so the test can see what was redone.
In the crash phase the editor hangs when asked for the third draft, waiting to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from redraft import FunctionCritic, LLMEditor, Refiner, ScriptedModel
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall

db, log, phase = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
SCORES = {"v0": 0.2, "v1": 0.4, "v2": 0.6, "v3": 1.0}


def record(line: str) -> None:
    with log.open("a") as handle:
        handle.write(line + "\n")


def actor(messages: list[Message], call: ScriptedCall) -> str:
    record("actor")
    return "v0"


async def editor(messages: list[Message], call: ScriptedCall) -> str:
    current = next(v for v in SCORES if f"<answer>\n{v}\n</answer>" in call.prompt)
    following = f"v{int(current[1]) + 1}"
    record(f"edit {current}->{following}")
    if phase == "crash" and following == "v2":
        record("waiting to be killed")
        await asyncio.sleep(600)
    return following


def judge(text: str) -> float:
    record(f"judge {text}")
    return SCORES[text]


refiner = Refiner(
    ScriptedModel(actor),
    critics=[FunctionCritic(judge, name="judge")],
    editor=LLMEditor(ScriptedModel(editor), mode="rewrite"),
    max_rounds=6,
    checkpointer=db,
)
if phase == "resume-by-id":  # the task comes from the checkpoint
    result = refiner.resume("job-1")
else:
    result = refiner.run("count up", thread_id="job-1")
print(result.model_dump_json())
