"""Live progress of a run, for terminals and notebooks: each draft, each critic's score as it
arrives, each round's score, and why the run stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from redraft.types import (
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    Event,
    Result,
    RoundEvent,
    StopEvent,
    StopReason,
)

STOP_MEANINGS = {
    StopReason.PASSED: "every critic passed",
    StopReason.THRESHOLD: "the score reached the threshold",
    StopReason.MAX_ROUNDS: "no rounds left",
    StopReason.NO_IMPROVEMENT: "the score stopped improving",
    StopReason.REPEATED: "the editor repeated a rejected draft",
    StopReason.BUDGET: "a budget (tokens, cost, candidates or time) ran out",
    StopReason.EXHAUSTED: "the search made every candidate it was to make",
    StopReason.CRITICS_FAILED: "every critic failed",
    StopReason.ERROR: "a model call failed",
}


@dataclass
class ProgressView:
    """Live progress on a terminal: each draft, each critic's score as it arrives, the stop."""

    title: str
    critics: int = 1
    lines: list[Text] = field(default_factory=list)
    status: str | None = "drafting"
    _judged: int = 0
    _stopped: bool = False

    def update(self, event: Event) -> None:
        if isinstance(event, DraftEvent):
            by = "your draft" if event.draft.author == "user" else "first draft"
            self._heading(
                event.round, f"{by} · {len(event.draft.text)} chars{_lessons(event.draft)}"
            )
        elif isinstance(event, EditEvent):
            draft = event.draft
            how = draft.edit_mode.value if draft.edit_mode else "rewrite"
            if draft.patches_applied:
                how += f", {draft.patches_applied} block{'s' * (draft.patches_applied != 1)}"
            self._heading(
                event.round, f"revision ({how}) · {len(draft.text)} chars{_lessons(draft)}"
            )
        elif isinstance(event, CritiqueEvent):
            self._judged += 1
            self.lines.append(critique_line(event))
            self.status = f"round {event.round} · critics {self._judged}/{self.critics}"
        elif isinstance(event, RoundEvent):
            self._round(event)
        elif isinstance(event, StopEvent):
            # The editor can stop a run too (a repeat, a failed call): no round said so.
            if not self._stopped:
                self._stop(event.result.stop_reason)
            self.status = None

    def _heading(self, index: int, what: str) -> None:
        self.lines.append(Text.assemble((f"round {index}", "bold"), f"  {what}"))
        self._judged = 0
        self.status = f"round {index} · critics 0/{self.critics}"

    def _round(self, event: RoundEvent) -> None:
        round_ = event.judged
        best = " ★ best so far" if event.best_round == round_.index else ""
        unjudged = (
            ""
            if round_.judged
            else " (a critic failed: counted as 0; ranks below fully judged drafts)"
        )
        self.lines.append(
            Text.assemble("  score ", (f"{round_.score:.2f}", "bold"), (unjudged, "red"), best)
        )
        if event.stop_reason is None:
            self.status = f"round {round_.index + 1} · editing"
            return
        self._stop(event.stop_reason)

    def _stop(self, reason: StopReason) -> None:
        style = "green" if reason.succeeded else "red" if reason is StopReason.ERROR else "yellow"
        self.lines.append(
            Text.assemble(
                ("stop: ", "bold"), (reason.value, f"bold {style}"), f" · {STOP_MEANINGS[reason]}"
            )
        )
        self._stopped = True
        self.status = "finishing"

    def __rich__(self) -> RenderableType:
        parts: list[RenderableType] = [Text(self.title, style="bold cyan"), *self.lines]
        if self.status:
            parts.append(Spinner("dots", text=Text(self.status + "…", style="dim")))
        return Group(*parts)


def _lessons(draft: Draft) -> str:
    count = len(draft.lessons)
    return f" · {count} lesson{'s' * (count != 1)} from memory" if count else ""


def critique_line(event: CritiqueEvent) -> Text:
    critique = event.critique
    if critique.error:
        line = Text.assemble(f"  {critique.critic}  ", ("error", "red"), f"  {critique.error}")
    else:
        mark = ("✓", "green") if critique.passed else ("✗", "yellow")
        line = Text.assemble(
            f"  {critique.critic}  ",
            (f"{critique.score:.2f}", "bold"),
            " ",
            mark,
            ("  " + critique.summary) if critique.summary else "",
        )
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


async def follow(
    events: AsyncIterator[Event], view: ProgressView, console: Console | None
) -> Result:
    """Consume a run's events, showing them live on `console` (if any); return the result."""
    result: Result | None = None
    display = (
        Live(view, console=console, refresh_per_second=12, transient=False)
        if console is not None
        else nullcontext()
    )
    with display:
        async for event in events:
            view.update(event)
            if isinstance(event, StopEvent):
                result = event.result
    if console is not None and not console.is_terminal and not console.is_jupyter:
        # Off a terminal, rich's Live prints its last frame without ending the line, so
        # whatever is printed next would run on from "stop: ...".
        console.line()
    if result is None:  # pragma: no cover - every run ends with a StopEvent
        raise RuntimeError("the run ended without a result")
    return result
