"""Live progress of a run, for terminals and notebooks: each draft, each critic's score as it
arrives, each round's score, and why the run stopped; for a search, each judged candidate
and each choice of what to expand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from redraft.display import tool_call_parts
from redraft.types import (
    Candidate,
    CandidateEvent,
    Critique,
    CritiqueEvent,
    Draft,
    DraftEvent,
    EditEvent,
    Event,
    Result,
    RoundEvent,
    SelectEvent,
    StopEvent,
    StopReason,
    ToolEvent,
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
    StopReason.WAITING: "paused for a person's critique",
}


@dataclass
class ProgressView:
    """Live progress on a terminal: each draft, each critic's score as it arrives, the stop.

    For a search (`search=True`, or once a candidate or select event arrives) the drafts and
    critics of concurrent candidates are not shown one by one: each judged candidate gets a
    line, with the critics that did not pass it, and each choice of the strategy another.
    """

    title: str
    critics: int = 1
    lines: list[Text] = field(default_factory=list)
    status: str | None = "drafting"
    search: bool = False
    _judged: int = 0
    _stopped: bool = False
    _scores: dict[str, float] = field(default_factory=dict)
    _depth: int = 0
    _best: str = ""
    _stop_note: str = ""

    def update(self, event: Event) -> None:
        if isinstance(event, CandidateEvent | SelectEvent):
            self.search = True
        if self.search:
            self._search_update(event)
        elif isinstance(event, DraftEvent):
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
        elif isinstance(event, ToolEvent):
            self.lines.append(tool_line(event))
        elif isinstance(event, StopEvent):
            # The editor can stop a run too (a repeat, a failed call): no round said so.
            if not self._stopped:
                self._stop(event.result.stop_reason)
            self.status = None

    def _search_update(self, event: Event) -> None:
        """Drafts, edits and critiques are many and interleaved: only the judged candidates,
        the strategy's choices and the stop get lines."""
        if isinstance(event, CandidateEvent):
            self._scores[event.candidate.id] = event.candidate.score
            self.lines.append(candidate_line(event.candidate))
            self.status = self._search_status()
        elif isinstance(event, SelectEvent):
            self._select(event)
        elif isinstance(event, StopEvent):
            result = event.result
            if result.final_id is not None and result.selected_because:
                score = f" ({result.score:.2f})"
                self.lines.append(
                    Text.assemble(
                        ("selected ", "bold"),
                        (result.final_id, "bold cyan"),
                        score,
                        f" · {result.selected_because}",
                    )
                )
            if not self._stopped:
                self._stop(result.stop_reason, self._stop_note)
            self.status = None

    def _select(self, event: SelectEvent) -> None:
        self._best = event.best_id
        if event.stop_reason is not None:
            # The stop line waits for the result, to follow the line saying what was selected.
            self._stop_note = event.note
            self.status = "finishing"
            return
        self._depth = event.round
        note = event.note
        if event.expand:
            line = Text.assemble(("expanding ", "bold"), ", ".join(event.expand))
            if note.startswith(line.plain):  # "expanding c3 (UCT)": say it once
                line.append(note[len(line.plain) :], "dim")
                note = ""
            if event.best_id:
                line.append(f" · best {self._described(event.best_id)}")
        else:
            line = Text("drafting", style="bold")
        if note:
            line.append(f" · {note}", "dim")
        self.lines.append(line)
        self.status = self._search_status()

    def _described(self, candidate_id: str) -> str:
        score = self._scores.get(candidate_id)
        return candidate_id if score is None else f"{candidate_id} ({score:.2f})"

    def _search_status(self) -> str:
        count = len(self._scores)
        status = f"depth {self._depth} · {count} candidate{'s' * (count != 1)} judged"
        return status + (f" · best {self._described(self._best)}" if self._best else "")

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

    def _stop(self, reason: StopReason, note: str = "") -> None:
        style = "green" if reason.succeeded else "red" if reason is StopReason.ERROR else "yellow"
        meaning = STOP_MEANINGS[reason]
        self.lines.append(
            Text.assemble(
                ("stop: ", "bold"),
                (reason.value, f"bold {style}"),
                f" · {meaning}",
                (f" ({note})" if note and note != meaning else "", "dim"),
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


def tool_line(event: ToolEvent) -> Text:
    """`  tool add(a=2, b=3) → 5 · editor · 0.01s`: one tool call and what came of it."""
    call = event.invocation
    called, outcome, style = tool_call_parts(call, 200)
    line = Text.assemble(
        "  tool ",
        (called, "cyan"),
        " → ",
        (outcome, style),
        (f" · {event.role} · {call.duration_s:.2f}s", "dim"),
    )
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def candidate_line(candidate: Candidate) -> Text:
    """`c4 · revise of c0 · 0.45 ✗ · quality 0.45 needs more edits`: a judged candidate,
    and each critic that did not pass it."""
    origin = candidate.origin.value
    if candidate.parent_id is not None:
        origin += f" {'on' if origin == 'reflect' else 'of'} {candidate.parent_id}"
    if not candidate.judged:
        mark = ("error", "red")
    else:
        mark = ("✓", "green") if candidate.passed else ("✗", "yellow")
    line = Text.assemble(
        "  ",
        (candidate.id, "bold cyan"),
        f" · {origin} · ",
        (f"{candidate.score:.2f}", "bold"),
        " ",
        mark,
    )
    for critique in candidate.critiques:
        if critique.error is not None or not critique.passed:
            line.append(" · ")
            line.append_text(_verdict(critique))
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def _verdict(critique: Critique) -> Text:
    if critique.error is not None:
        return Text.assemble(f"{critique.critic} ", ("error", "red"), f" {critique.error}")
    summary = f" {critique.summary}" if critique.summary else ""
    return Text.assemble(f"{critique.critic} ", (f"{critique.score:.2f}", "bold"), summary)


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
