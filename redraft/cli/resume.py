"""`redraft resume THREAD --checkpoint FILE`: continue a checkpointed run of `refine` or
`code` that stopped part-way (killed, a crash, Ctrl-C), redoing no judged draft."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from redraft.cli import threads
from redraft.cli.app import app, interruptible
from redraft.cli.inputs import check_writable, precheck
from redraft.cli.numbers import number_in
from redraft.cli.options import ApiBaseOption, JsonOption, ModelOption, OutOption, QuietOption
from redraft.cli.running import Checkpointed, run_built
from redraft.errors import ConfigError
from redraft.types import HumanAnswer


@app.command()
def resume(
    thread: Annotated[
        str,
        typer.Argument(
            metavar="THREAD",
            help="The run's thread id, printed when it started.",
            show_default=False,
        ),
    ],
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            metavar="FILE",
            help="The checkpoint file the run was started with.",
            show_default=False,
        ),
    ] = ...,  # type: ignore[assignment]
    model: ModelOption = None,
    api_base: ApiBaseOption = None,
    json_output: JsonOption = False,
    out: OutOption = None,
    quiet: QuietOption = False,
    feedback: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            help="For a run waiting for your critique: what the editor should change.",
            show_default=False,
        ),
    ] = None,
    score: Annotated[
        float | None,
        typer.Option(
            parser=number_in(0.0, 1.0, example="0.7"),
            metavar="SCORE",
            help="For a run waiting for your critique: your score, from 0 to 1.",
            show_default=False,
        ),
    ] = None,
    accept: Annotated[
        bool,
        typer.Option("--accept", help="For a run waiting for your critique: accept the draft."),
    ] = False,
) -> None:
    """Continue the checkpointed run THREAD with the settings it was started with.

    The task and every judged draft come from the checkpoint. --model and
    --api-base replace the run's own (for every role), if its server moved. A run
    started with --human that waits for you takes your answer from --feedback,
    --score and --accept, or asks on the terminal.
    """
    from redraft.cli.code import build_code
    from redraft.cli.commands import build_refine

    with interruptible():
        precheck(model, None, None, api_base)
        answer = (
            HumanAnswer(feedback=feedback, score=score, accept=True if accept else None)
            if feedback is not None or score is not None or accept
            else None
        )
        if out is not None:
            check_writable(out)
        db = checkpoint.expanduser().resolve()
        found = threads.find(db, thread)
        if found.finished is not None:
            raise ConfigError(
                f"thread '{thread}' in {db} already finished (stop: {found.finished}); there "
                "is nothing to resume: start a new run for the task"
            )
        settings = dict(found.settings)
        if model is not None:
            settings.update(model=model, critic_model=None, editor_model=None)
        if api_base is not None:
            settings["api_base"] = api_base
        if found.command == "code":
            built = build_code(settings, db, quiet=quiet)
        elif found.command == "refine":
            built = build_refine(settings, db, quiet=quiet)
        else:
            raise ConfigError(
                f"thread '{thread}' was started by 'redraft {found.command}', which this "
                "version cannot resume"
            )
        code = run_built(
            built, None, json_output=json_output, out=out, quiet=quiet,
            checkpointed=Checkpointed(db, thread), answer=answer,
        )  # fmt: skip
    raise typer.Exit(code)
