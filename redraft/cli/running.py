"""Running one refinement from a command: live progress, the outputs, the exit code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from redraft.cli import threads
from redraft.cli.codes import EXIT_MODEL_FAILED, EXIT_NOT_PASSED, EXIT_PASSED, EXIT_WAITING
from redraft.cli.human import ask_person, waiting_hint
from redraft.cli.output import emit, note, plain_summary, terminal, write_out
from redraft.display import render_result
from redraft.progress import ProgressView, follow
from redraft.refiner import Refiner
from redraft.strategies.search import Search
from redraft.types import HumanAnswer, Result, StopReason, Task


@dataclass(frozen=True)
class Checkpointed:
    """Where a run is checkpointed, and its thread there."""

    db: Path
    thread_id: str


@dataclass(frozen=True)
class Built:
    """A command's refiner, the title of its progress view, and what --out receives."""

    refiner: Refiner
    title: str
    final_text: Callable[[Result], str] = lambda result: result.text


def begin_thread(
    db: Path | None, thread_id: str | None, command: str, settings: dict[str, Any], *, quiet: bool
) -> Checkpointed | None:
    """Record a checkpointed run's thread and settings before it starts, and say how to
    continue it (its id is also the result's `thread_id`)."""
    if db is None:
        return None
    thread = thread_id or threads.new_thread_id()
    threads.start(db, thread, command, settings)
    if not quiet:
        note(
            terminal(),
            f"checkpointed in {db} as thread {thread}: if it stops, continue it with "
            f"'redraft resume {thread} --checkpoint {db}'",
            "dim",
        )
    return Checkpointed(db, thread)


def run_built(
    built: Built,
    task: Task | None,
    *,
    json_output: bool,
    out: Path | None,
    quiet: bool,
    checkpointed: Checkpointed | None,
    answer: HumanAnswer | None = None,
) -> int:
    """`run_loop` for a built command; what the refiner opened is closed after it."""
    try:
        return run_loop(
            built.refiner,
            task,
            ProgressView(title=built.title),
            json_output=json_output,
            out=out,
            quiet=quiet,
            final_text=built.final_text,
            checkpointed=checkpointed,
            answer=answer,
        )
    finally:
        built.refiner.close()  # a tests critic's sandbox pool, a local model's worker


def run_loop(
    refiner: Refiner,
    task: Task | None,
    view: ProgressView,
    *,
    json_output: bool,
    out: Path | None,
    quiet: bool,
    final_text: Callable[[Result], str] = lambda result: result.text,
    checkpointed: Checkpointed | None = None,
    answer: HumanAnswer | None = None,
) -> int:
    """Run the loop with live progress; `final_text` is what --out and stdout receive.
    With no `task`, the checkpointed thread is continued (given `answer`, if it waits for
    a person). A run that pauses for a person asks the one at the terminal."""
    console = None if quiet else terminal()
    view.critics = len(refiner.critics)
    view.search = isinstance(refiner.strategy, Search)  # a resumed search starts with drafts
    thread_id = None if checkpointed is None else checkpointed.thread_id
    result = asyncio.run(_follow_person(refiner, task, thread_id, answer, view, console))
    if checkpointed is not None and result.waiting is None:
        threads.finish(checkpointed.db, checkpointed.thread_id, result.stop_reason.value)
    if result.waiting is not None:
        where = None if checkpointed is None else str(checkpointed.db)
        note(console, waiting_hint(result, where), "yellow")
    if out is not None:
        write_out(out, final_text(result))
    if console is not None:
        # The final text itself follows on stdout.
        console.print(render_result(result, show_final=False))
        if out is not None:
            note(console, f"final text written to {out}", "dim")
    elif not quiet:
        note(None, plain_summary(result))
    if json_output:
        emit(result.model_dump_json(indent=2))
    elif out is None:
        emit(final_text(result))
    return exit_code(result)


async def _follow_person(
    refiner: Refiner,
    task: Task | None,
    thread_id: str | None,
    answer: HumanAnswer | None,
    view: ProgressView,
    console: Console | None,
) -> Result:
    """The run, shown live; each time it waits for a person, the one at the terminal is
    asked and the run goes on with their answer, until it ends or they give none."""
    events = refiner.astream(task, thread_id=thread_id, answer=answer)
    result = await follow(events, view, console)
    while result.waiting is not None:
        # Read off the event loop: the loop keeps the refiner's connections alive meanwhile.
        given = await asyncio.to_thread(ask_person, result, console)
        if given is None:
            return result
        view = ProgressView(title=view.title, critics=view.critics, search=view.search)
        events = refiner.astream(None, thread_id=result.thread_id, answer=given)
        result = await follow(events, view, console)
    return result


def exit_code(result: Result) -> int:
    """0 passed, 3 a model failure stopped it, 4 it waits for a person, 1 any other stop
    without passing."""
    if result.passed:
        return EXIT_PASSED
    if result.stop_reason is StopReason.ERROR:
        return EXIT_MODEL_FAILED
    if result.stop_reason is StopReason.WAITING:
        return EXIT_WAITING
    return EXIT_NOT_PASSED
