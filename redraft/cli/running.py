"""Running one refinement from a command: live progress, the outputs, the exit code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from redraft.cli.codes import EXIT_MODEL_FAILED, EXIT_NOT_PASSED, EXIT_PASSED
from redraft.cli.output import emit, note, plain_summary, terminal, write_out
from redraft.display import render_result
from redraft.progress import ProgressView, follow
from redraft.refiner import Refiner
from redraft.types import Result, StopReason, Task


def run_loop(
    refiner: Refiner,
    task: Task,
    view: ProgressView,
    *,
    json_output: bool,
    out: Path | None,
    quiet: bool,
    final_text: Callable[[Result], str] = lambda result: result.text,
) -> int:
    """Run the loop with live progress; `final_text` is what --out and stdout receive."""
    console = None if quiet else terminal()
    view.critics = len(refiner.critics)
    result = asyncio.run(follow(refiner.astream(task), view, console))
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


def exit_code(result: Result) -> int:
    """0 passed, 3 a model failure stopped it, 1 any other stop without passing."""
    if result.passed:
        return EXIT_PASSED
    if result.stop_reason is StopReason.ERROR:
        return EXIT_MODEL_FAILED
    return EXIT_NOT_PASSED
