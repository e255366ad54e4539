"""Options that several commands share, defined once so their flags and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from redraft.models.local import DEFAULT_LOCAL_MODEL, LOCAL_PREFIX
from redraft.refiner import MODEL_ENV

# Help texts are rich markup: unescaped, "redraft[memory]" shows as "redraft".
MEMORY_EXTRA = escape("redraft[memory]")

TaskArgument = Annotated[
    str | None,
    typer.Argument(
        help="What to produce: the text itself, @FILE to read it from a file, "
        "or - (or nothing) to read it from stdin.",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Model for every role: a LiteLLM model string such as openai/gpt-4o-mini, or "
        f"{LOCAL_PREFIX}<id or folder> for a local one (default: ${MODEL_ENV}, else "
        f"{LOCAL_PREFIX}{DEFAULT_LOCAL_MODEL}).",
        show_default=False,
    ),
]
EditorModelOption = Annotated[
    str | None,
    typer.Option(help="Model for the editor (default: --model).", show_default=False),
]
ApiBaseOption = Annotated[
    str | None,
    typer.Option(
        help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama...) "
        "for the models given here, e.g. http://localhost:8000/v1.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the full result as JSON on stdout.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or summary; only the result.")
]


def out_option(what: str) -> Any:  # typer.Option is typed as returning Any
    """--out/-o FILE, saying what is written there."""
    return typer.Option(
        "--out",
        "-o",
        metavar="FILE",
        help=f"Write {what} to FILE instead of stdout.",
        show_default=False,
    )


OutOption = Annotated[Path | None, out_option("the final text")]
CodeOutOption = Annotated[Path | None, out_option("the final code")]
MemoryOption = Annotated[
    bool,
    typer.Option(
        "--memory",
        help="Learn from past corrections: the actor and editor are given the relevant ones, "
        f"and what this run fixed is stored (needs {MEMORY_EXTRA}).",
    ),
]
MemoryDbOption = Annotated[
    Path | None,
    typer.Option(
        "--memory-db",
        metavar="PATH",
        help="The memory database, in a folder that exists (implies --memory; default: "
        "$REDRAFT_MEMORY or the per-user data folder).",
        show_default=False,
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        metavar="FILE",
        help="Checkpoint the run in this SQLite file after every step, so that a run that "
        "is killed can be continued with 'redraft resume THREAD --checkpoint FILE'.",
        show_default=False,
    ),
]
ThreadIdOption = Annotated[
    str | None,
    typer.Option(
        "--thread-id",
        metavar="ID",
        help="The run's id in --checkpoint (default: a new one, printed when it starts).",
        show_default=False,
    ),
]
