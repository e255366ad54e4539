"""The operations every strategy is built from: draft, judge, revise, reflect.

They are the only code that stamps a candidate's id, parent, depth, timing, usage and
lessons, and that detects a revision repeating an earlier draft. Agents return content and
usage; strategies decide which candidate to work on next.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, overload

from langgraph.errors import GraphBubbleUp

from redraft._interrupts import RunInterrupted, contained
from redraft._tasks import all_of
from redraft.agents.actor import Actor
from redraft.agents.base import AgentContext
from redraft.agents.critics.base import Critic, compares, pauses
from redraft.agents.editor import Editor
from redraft.agents.prompts import PromptLibrary
from redraft.agents.reflector import LLMReflector, Reflector
from redraft.engine.selection import aggregate
from redraft.errors import describe
from redraft.events import emit
from redraft.models.base import ChatModel
from redraft.tools.base import Tool
from redraft.tools.loop import DEFAULT_TOOL_LIMITS, ToolLimits
from redraft.types import (
    Candidate,
    Critique,
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    Lesson,
    Origin,
    Reflection,
    Result,
    Round,
    Task,
    Usage,
    UsageReport,
    Variant,
)

if TYPE_CHECKING:  # needs the [memory] extra; a run without a memory never loads it
    from redraft.memory import CorrectionMemory

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Agents:
    """Who does what in a run, and the models each role falls back to."""

    actor: Actor
    critics: Sequence[Critic]
    editor: Editor
    actor_model: ChatModel | None
    critic_model: ChatModel | None
    editor_model: ChatModel | None
    prompts: PromptLibrary
    memory: CorrectionMemory | None = None
    lessons: int = 3  # most past corrections given to the actor or editor per call
    tools: Sequence[Tool] = ()  # for every role without tools of its own
    tool_limits: ToolLimits = DEFAULT_TOOL_LIMITS
    # Reflects on a failed attempt, with the editor's model unless it has its own.
    reflector: Reflector = field(default_factory=LLMReflector)


@dataclass(frozen=True)
class Revised:
    """What `revise` or `reflect` made: a new candidate, or why there is none (`stop`, with
    `error` when an agent failed), and what the attempts cost either way."""

    candidate: Candidate | None
    spent: Usage
    stop: str | None = None  # "repeated" or "error"
    error: str | None = None


def candidate_id(number: int) -> str:
    """The id of the candidate numbered `number` (from 0). Numbers are handed out in the
    order candidates are asked for, so a job that made none leaves a gap."""
    return f"c{number}"


@lru_cache(maxsize=4096)  # each revision compares with every earlier draft, each round
def normalise(text: str) -> str:
    """Text as compared for repetition: whitespace differences do not make a new draft."""
    return _SPACE.sub(" ", text).strip()


def repeated(text: str, earlier: Sequence[Candidate]) -> Candidate | None:
    """The earlier candidate whose draft this text repeats, if any."""
    key = normalise(text)
    for candidate in earlier:
        if normalise(candidate.draft.text) == key:
            return candidate
    return None


class RoundsView(Sequence[Round]):
    """A main line of candidates as the rounds agents are shown, each made when first read:
    most critics never look at earlier rounds, and a long run would make them every step."""

    def __init__(self, line: Sequence[Candidate]) -> None:
        self._line = line
        self._made: dict[int, Round] = {}

    def __len__(self) -> int:
        return len(self._line)

    @overload
    def __getitem__(self, index: int) -> Round: ...

    @overload
    def __getitem__(self, index: slice) -> list[Round]: ...

    def __getitem__(self, index: int | slice) -> Round | list[Round]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._line)))]
        position = index + len(self._line) if index < 0 else index
        if not 0 <= position < len(self._line):
            raise IndexError(index)
        made = self._made.get(position)
        if made is None:
            made = self._made[position] = self._line[position].as_round(position)
        return made


class Operations:
    """Draft, judge and revise candidates with one run's agents."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents

    async def draft(self, task: Task, number: int, variant: Variant | None = None) -> Candidate:
        """A first draft as candidate `number`: the task's own, or the actor's. Of several
        drafts made at once (`variant`), only the first is the task's own."""
        started = time.perf_counter()
        lessons: list[Lesson] = []
        given = task.draft is not None and (variant is None or variant.index == 0)
        if given:
            draft = Draft(text=task.draft or "", author="user")
        else:
            lessons = await self.recall(task)
            ctx = AgentContext(
                self.agents.actor_model,
                self.agents.prompts,
                lessons=lessons,
                variant=variant,
                tools=self.agents.tools,
                tool_limits=self.agents.tool_limits,
            )
            draft = await contained(self.agents.actor.draft(task, ctx))
        draft = draft.model_copy(
            update={
                "round": 0,
                "author": "user" if given else "actor",
                "duration_s": time.perf_counter() - started,
                "lessons": lessons,
                "revises": None,
            }
        )
        emit(DraftEvent(round=0, draft=draft))
        return Candidate(id=candidate_id(number), draft=draft, origin=Origin.DRAFT)

    @property
    def pauses(self) -> bool:
        """A critic waits for a person: judging is then two steps, `judge` and `review`."""
        return any(pauses(critic) for critic in self.agents.critics)

    async def judge(self, task: Task, candidate: Candidate, line: Sequence[Candidate]) -> Candidate:
        """`candidate` with every critic's critique (run concurrently), its score and verdict.
        `line` is what came before it on the main line, shown to critics that compare; a
        critic that compares with the parent is not given a first draft.

        Critics that pause for a person are left to `review`, which a strategy runs as a
        step of its own: a run resumed after the pause then repeats that step alone."""
        started = time.perf_counter()
        parent = _parent_in(candidate, line)
        ctx = AgentContext(
            self.agents.critic_model,
            self.agents.prompts,
            RoundsView(line),
            parent=parent,
            tools=self.agents.tools,
            tool_limits=self.agents.tool_limits,
        )
        critics = [c for c in self.agents.critics if not pauses(c) and _applies(c, parent)]
        critiques = await all_of([self._one(critic, candidate, task, ctx) for critic in critics])
        return _scored(candidate, critiques, time.perf_counter() - started)

    async def review(
        self, task: Task, candidate: Candidate, line: Sequence[Candidate]
    ) -> Candidate:
        """`candidate` (judged by the other critics) with the critiques of those that pause
        for a person, one after the other, and its score and verdict over all of them."""
        started = time.perf_counter()
        parent = _parent_in(candidate, line)
        critiques = list(candidate.critiques)
        for critic in self.agents.critics:
            if not pauses(critic) or not _applies(critic, parent):
                continue
            shown = candidate.model_copy(update={"critiques": list(critiques)})
            ctx = AgentContext(
                self.agents.critic_model,
                self.agents.prompts,
                RoundsView(line),
                parent=parent,
                candidate=shown,
                tools=self.agents.tools,
                tool_limits=self.agents.tool_limits,
            )
            critiques.append(await self._one(critic, candidate, task, ctx))
        duration = candidate.duration_s + time.perf_counter() - started
        reviewed = _scored(candidate, critiques, duration)
        # A person who accepts a draft has the last word: it passes, and the run ends.
        people = critiques[len(candidate.critiques) :]
        if any(c.passed and c.error is None for c in people) and not reviewed.passed:
            reviewed = reviewed.model_copy(update={"passed": True})
        return reviewed

    async def _one(
        self, critic: Critic, candidate: Candidate, task: Task, ctx: AgentContext
    ) -> Critique:
        critique = await _verdict(critic, candidate.draft, task, ctx)
        emit(CritiqueEvent(round=candidate.draft.round, critique=critique))
        return critique

    async def revise(
        self,
        task: Task,
        parent: Candidate,
        line: Sequence[Candidate],
        number: int,
        *,
        variant: Variant | None = None,
        siblings: Sequence[Candidate] = (),
    ) -> Revised:
        """The editor's revision of `parent` from its critiques, as candidate `number`.
        `line` is the main line up to `parent`; `siblings` are revisions of `parent` that
        already exist, which the editor is shown so as not to duplicate them.

        A revision that repeats a draft of `line` or a sibling is asked for once more, the
        editor told which; an empty one likewise. A second such reply makes no candidate.
        """
        started = time.perf_counter()
        lessons = await self.recall(task, parent.critiques)
        spent = Usage()
        avoid: list[Draft] = []
        empty = False
        for _ in range(2):
            ctx = AgentContext(
                self.agents.editor_model,
                self.agents.prompts,
                RoundsView(line),
                lessons,
                avoid,
                variant=variant,
                siblings=[s.draft for s in siblings],
                tools=self.agents.tools,
                tool_limits=self.agents.tool_limits,
            )
            try:
                draft = await contained(
                    self.agents.editor.edit(parent.draft, parent.critiques, task, ctx)
                )
            except RunInterrupted:
                raise
            except Exception as exc:  # the best draft so far is kept, with why it stopped
                return Revised(None, spent, stop="error", error=describe(exc))
            spent = spent + draft.usage
            empty = not draft.text.strip()
            earlier = None if empty else repeated(draft.text, [*line, *siblings])
            if empty or earlier is not None:
                avoid = [] if earlier is None else [earlier.draft]
                continue
            draft = draft.model_copy(
                update={
                    "round": len(line),
                    "author": "editor",
                    "usage": spent,
                    "duration_s": time.perf_counter() - started,
                    "revises": parent.draft.round,
                    "lessons": lessons,
                }
            )
            emit(EditEvent(round=draft.round, draft=draft))
            return Revised(_child(parent, number, Origin.REVISE, draft), Usage())
        if empty:
            who = f" ({draft.model})" if draft.model else ""
            error = f"the editor{who} returned an empty draft twice; the best draft so far is kept"
            return Revised(None, spent, stop="error", error=error)
        return Revised(None, spent, stop="repeated")

    async def reflect(
        self,
        task: Task,
        attempt: Sequence[Candidate],
        reflections: Sequence[str],
        number: int,
    ) -> Revised:
        """A fresh first draft after the failed `attempt` (its judged candidates, in the order
        made), as candidate `number`, a child of the attempt's last candidate.

        The reflector says what went wrong and what to do differently; the actor then drafts
        from scratch, given that and the `reflections` of earlier attempts (all are on the
        new draft as `reflections`). The draft's usage includes the reflection's.
        """
        if not attempt:
            raise ValueError("reflect needs the candidates of an attempt")
        started = time.perf_counter()
        parent = attempt[-1]
        # The editor's model: its own, if it was given one, else the run's for the editor.
        own = getattr(self.agents.editor, "model", None)
        model = own if isinstance(own, ChatModel) else self.agents.editor_model
        ctx = AgentContext(model, self.agents.prompts, reflections=tuple(reflections))  # no tools
        try:
            reflection = await contained(self.agents.reflector.reflect(attempt, task, ctx))
        except RunInterrupted:
            raise
        except Exception as exc:
            return Revised(None, Usage(), stop="error", error=describe(exc))
        if not isinstance(reflection, Reflection) or not reflection.text.strip():
            got = "an empty reflection" if isinstance(reflection, Reflection) else "no Reflection"
            spent = reflection.usage if isinstance(reflection, Reflection) else Usage()
            return Revised(None, spent, stop="error", error=f"the reflector returned {got}")
        learned = [*reflections, reflection.text]
        lessons = await self.recall(task, parent.critiques)
        ctx = AgentContext(
            self.agents.actor_model,
            self.agents.prompts,
            lessons=lessons,
            reflections=learned,
            tools=self.agents.tools,
            tool_limits=self.agents.tool_limits,
        )
        try:
            draft = await contained(self.agents.actor.draft(task, ctx))
        except RunInterrupted:
            raise
        except Exception as exc:
            return Revised(None, reflection.usage, stop="error", error=describe(exc))
        draft = draft.model_copy(
            update={
                "round": 0,  # the first round of a new attempt
                "author": "actor",
                "usage": reflection.usage + draft.usage,
                "duration_s": time.perf_counter() - started,
                "lessons": lessons,
                "reflections": learned,
                "revises": None,
            }
        )
        emit(DraftEvent(round=draft.round, draft=draft))
        return Revised(_child(parent, number, Origin.REFLECT, draft), Usage())

    async def recall(self, task: Task, critiques: Sequence[Critique] = ()) -> list[Lesson]:
        """Past corrections relevant to the task (and to what the critics said)."""
        memory = self.agents.memory
        if memory is None or self.agents.lessons < 1:
            return []
        # Embedding and SQLite block: off the event loop, so concurrent runs keep going.
        return await contained(
            asyncio.to_thread(memory.recall, task, critiques, self.agents.lessons)
        )

    async def learn(self, result: Result) -> Result:
        """Write the run's corrections back to memory; a failed write-back is noted on the
        result, which survives it."""
        if self.agents.memory is None:
            return result
        try:
            await contained(asyncio.to_thread(self.agents.memory.learn, result))
        except RunInterrupted:
            raise
        except Exception as exc:
            note = f"memory write-back failed ({type(exc).__name__}: {exc})"
            error = f"{result.error}; {note}" if result.error else note
            result = result.model_copy(update={"error": error})
        return result


def _parent_in(candidate: Candidate, line: Sequence[Candidate]) -> Candidate | None:
    """The judged candidate `candidate` was made from, found on `line`."""
    if candidate.parent_id is None:
        return None
    return next((c for c in line if c.id == candidate.parent_id), None)


def _applies(critic: Critic, parent: Candidate | None) -> bool:
    """Whether `critic` judges a candidate with this parent: one that compares a revision
    with its parent has nothing to say of a first draft."""
    return parent is not None or not compares(critic)


def _scored(candidate: Candidate, critiques: list[Critique], duration_s: float) -> Candidate:
    score, passed = aggregate(critiques)
    return candidate.model_copy(
        update={"critiques": critiques, "score": score, "passed": passed, "duration_s": duration_s}
    )


def _child(parent: Candidate, number: int, origin: Origin, draft: Draft) -> Candidate:
    """Candidate `number`, made from `parent` by `origin`."""
    return Candidate(
        id=candidate_id(number),
        parent_id=parent.id,
        depth=parent.depth + 1,
        origin=origin,
        draft=draft,
    )


def usage_report(candidates: Sequence[Candidate], discarded: Usage) -> UsageReport:
    """Usage per role, from the drafts and critiques of every candidate."""
    drafts = [c.draft for c in candidates]
    return UsageReport(
        actor=Usage.total_of(d.usage for d in drafts if d.author == "actor"),
        critic=Usage.total_of(c.usage for cand in candidates for c in cand.critiques),
        editor=Usage.total_of([discarded, *(d.usage for d in drafts if d.author == "editor")]),
    )


def total_usage(candidates: Sequence[Candidate], discarded: Usage) -> Usage:
    return Usage.total_of(
        [
            discarded,
            *(c.draft.usage for c in candidates),
            *(critique.usage for c in candidates for critique in c.critiques),
        ]
    )


async def _verdict(critic: Critic, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
    """The critic's critique; whatever the critic itself raises is a failed critique.

    The critic runs as a task of its own so that a `CancelledError` it raises (a timeout
    inside it, a cancelled helper task) is told apart from the run being cancelled: only
    the latter cancels this coroutine while it waits.
    """

    async def run() -> object:  # even a critic that fails before awaiting fails in here
        return await critic.critique(draft, task, ctx)

    attempt = asyncio.ensure_future(contained(run()))
    try:
        await asyncio.wait({attempt})
    except asyncio.CancelledError:
        attempt.cancel()
        await asyncio.wait({attempt})
        raise
    if attempt.cancelled():
        error = "CancelledError: the critic was cancelled while the run was not"
    else:
        exc = attempt.exception()
        verdict = attempt.result() if exc is None else None
        if isinstance(verdict, Critique):
            return verdict
        if isinstance(exc, (RunInterrupted, GraphBubbleUp)):  # stopped, or paused for a person
            raise exc
        error = (
            f"{type(exc).__name__}: {exc}"
            if exc is not None
            else f"returned {type(verdict).__name__}, not a Critique"
        )
    critique = Critique.failed(critic.name, error)
    weight = getattr(critic, "weight", None)  # it counts as 0 with its own weight
    if isinstance(weight, (int, float)) and not isinstance(weight, bool):
        critique = critique.model_copy(update={"weight": float(weight)})
    return critique
