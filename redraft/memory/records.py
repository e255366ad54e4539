"""What the memory stores: one correction (what was wrong, what fixed it, for what task)."""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator

from redraft.types import Lesson

_SAME_WORDING = 0.9
_NUMBER = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[\W_]+")


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class Correction(BaseModel):
    """A past correction: the task, the flawed excerpt, the problem named, and the fix."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    task: str = Field(description="The task's instruction.")
    kind: str | None = Field(default=None, description="The kind of task, e.g. 'sql', 'email'.")
    tags: list[str] = Field(default_factory=list)
    excerpt: str | None = Field(default=None, description="The flawed passage of the draft.")
    problem: str = Field(description="What the critic said was wrong.")
    fix: str = Field(default="", description="How it was fixed: a short lesson.")
    revised: str | None = Field(default=None, description="What the flawed passage became.")
    score_before: float | None = None
    score_after: float | None = None
    critic: str | None = None
    models: list[str] = Field(default_factory=list)
    run_id: str | None = Field(default=None, description="The run (thread id) it came from.")
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    use_count: int = Field(
        default=1, ge=1, description="Times it was learned again or given to a run."
    )

    @field_validator("task", "problem")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @property
    def key_text(self) -> str:
        """What is embedded: the task and the problem, the two things a new run can match."""
        return f"{self.task}\n{self.problem}"

    def says_the_same_as(self, other: Correction) -> bool:
        """Nearly the same words and exactly the same numbers ("line 7" is not "line 8"):
        the text-level half of near-identity; the other half is the vectors' similarity."""
        mine, theirs = _normalised(self), _normalised(other)
        if _NUMBER.findall(mine) != _NUMBER.findall(theirs):
            return False
        return difflib.SequenceMatcher(None, mine, theirs).ratio() >= _SAME_WORDING

    def lesson(self, score: float) -> Lesson:
        return Lesson(
            id=self.id,
            task=self.task,
            problem=self.problem,
            fix=self.fix,
            excerpt=self.excerpt,
            revised=self.revised,
            critic=self.critic,
            score=score,
        )


def _normalised(record: Correction) -> str:
    text = f"{record.task} {record.problem} {record.fix}".lower()
    return " ".join(_NOT_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class Hit:
    """One search result: the correction and its cosine similarity to the query."""

    record: Correction
    score: float
