"""The commands `redraft refine`, `redraft demo` and `redraft version`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from redraft.cli import threads
from redraft.cli.app import app, interruptible, print_version
from redraft.cli.human import HumanOption, human_critics
from redraft.cli.inputs import (
    ChosenModels,
    check_memory_db,
    check_writable,
    open_memory,
    precheck,
    read_optional,
    read_task,
)
from redraft.cli.numbers import number_in, patience_rounds
from redraft.cli.options import (
    ApiBaseOption,
    CheckpointOption,
    EditorModelOption,
    JsonOption,
    MemoryDbOption,
    MemoryOption,
    ModelOption,
    OutOption,
    QuietOption,
    TaskArgument,
    ThreadIdOption,
)
from redraft.cli.output import (
    note,
    terminal,
)
from redraft.cli.running import Built, begin_thread, run_built, run_loop
from redraft.cli.strategy import (
    ExpandOption,
    MaxCandidatesOption,
    MaxDepthOption,
    MaxTimeOption,
    NOption,
    StrategyOption,
    TrialsOption,
    WidthOption,
    strategy_settings,
)
from redraft.progress import ProgressView
from redraft.refiner import Refiner
from redraft.rubrics import load_rubric
from redraft.strategies.config import describe_strategy, strategy_from
from redraft.types import Task

DEMO_LABEL = "offline demo: the model replies are scripted, no model or API key is used"
DEMO_HINT = (
    "run it with a real model: export OPENAI_API_KEY=...; "
    "redraft refine --model openai/gpt-4o-mini 'Write a haiku about rain' "
    "(or --api-base http://localhost:8000/v1 --model hosted_vllm/<name> for a local server)"
)
# Paces the scripted demo on a terminal so the live view can be followed.
DEMO_DELAY_S = 0.6


@app.command()
def refine(
    ctx: typer.Context,
    task: TaskArgument = None,
    model: ModelOption = None,
    critic_model: Annotated[
        str | None,
        typer.Option(help="Model for the critic (default: --model).", show_default=False),
    ] = None,
    editor_model: EditorModelOption = None,
    api_base: ApiBaseOption = None,
    rubric: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Rubric to judge by: YAML/JSON with description, criteria, scale and "
            "pass_score, or free text (.md, .txt).",
            show_default=False,
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="A reference answer shown to the critic.", show_default=False
        ),
    ] = None,
    context: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Background material for every role (documents, code, notes).",
            show_default=False,
        ),
    ] = None,
    rounds: Annotated[
        int,
        typer.Option(
            "--max-rounds",
            "--rounds",
            min=1,
            help="Most drafts to judge, the first one included (max_rounds in Python).",
        ),
    ] = 4,
    threshold: Annotated[
        float | None,
        typer.Option(
            parser=number_in(0.0, 1.0, example="0.8"),
            metavar="SCORE",
            help="Stop once the score (0..1) reaches this, even if a critic has not passed.",
            show_default=False,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            parser=patience_rounds,
            metavar="N|off",
            help="Stop after N rounds without a better score; off: never.",
        ),
    ] = 2,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="Token budget for the whole run.", show_default=False),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            parser=number_in(
                0.0, above=True, example="0.50", unlimited="leave --max-cost out for no limit"
            ),
            metavar="USD",
            help="Cost budget for the whole run (USD, above 0).",
            show_default=False,
        ),
    ] = None,
    memory: MemoryOption = False,
    memory_db: MemoryDbOption = None,
    json_output: JsonOption = False,
    out: OutOption = None,
    quiet: QuietOption = False,
    strategy: StrategyOption = "refine",
    n: NOption = None,
    expand: ExpandOption = None,
    width: WidthOption = None,
    max_depth: MaxDepthOption = None,
    trials: TrialsOption = None,
    max_candidates: MaxCandidatesOption = None,
    max_time: MaxTimeOption = None,
    checkpoint: CheckpointOption = None,
    thread_id: ThreadIdOption = None,
    human: HumanOption = False,
) -> None:
    """Refine TASK with a model: draft, critique, revise until the critics pass it."""
    with interruptible():
        # Cheap checks first: a typo in a path should not wait for LiteLLM to import.
        precheck(model, critic_model, editor_model, api_base)
        memory_db = check_memory_db(memory_db)
        the_task = Task(
            instruction=read_task(task),
            rubric=load_rubric(rubric) if rubric is not None else None,
            reference=read_optional(reference, "reference file"),
            context=read_optional(context, "context file"),
        )
        if out is not None:
            check_writable(out)
        db = threads.checkpoint_of(checkpoint, thread_id)
        settings = {
            "model": model,
            "critic_model": critic_model,
            "editor_model": editor_model,
            "api_base": api_base,
            "rounds": rounds,
            "threshold": threshold,
            "patience": patience,
            "max_tokens": max_tokens,
            "max_cost": max_cost,
            "memory": memory,
            "memory_db": None if memory_db is None else str(memory_db.resolve()),
            "max_candidates": max_candidates,
            "max_time": max_time,
            "human": human,
            # With the person as the only critic, the run follows them (Refiner's defaults).
            "human_only": human and rubric is None and critic_model is None,
            "patience_given": _given(ctx, "patience"),
            **strategy_settings(
                strategy, n=n, expand=expand, width=width, max_depth=max_depth, trials=trials
            ),
        }
        built = build_refine(settings, db, quiet=quiet)
        checkpointed = begin_thread(db, thread_id, "refine", settings, quiet=quiet)
        code = run_built(
            built, the_task, json_output=json_output, out=out, quiet=quiet,
            checkpointed=checkpointed,
        )  # fmt: skip
    raise typer.Exit(code)


def _given(ctx: typer.Context, option: str) -> bool:
    """Whether `option` was given on the command line (or by its environment variable)."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def build_refine(settings: dict[str, Any], db: Path | None, *, quiet: bool) -> Built:
    """The refiner of `redraft refine` from its settings (also those of a resumed run)."""
    console = None if quiet else terminal()
    # Resolving imports LiteLLM (seconds): say so rather than sit silent.
    checking = console.status("checking the model…") if console else nullcontext()
    with checking:
        models = ChosenModels.resolve(
            settings["model"], settings["critic_model"], settings["editor_model"],
            settings["api_base"],
        )  # fmt: skip
    memory_db = settings["memory_db"]
    strategy = strategy_from(settings)
    human_only = bool(settings.get("human_only"))
    refiner = Refiner(
        models.main,
        critic_model=models.critic,
        editor_model=models.editor,
        critics=(
            human_critics(with_model_critic=not human_only) if settings.get("human") else None
        ),
        max_rounds=settings["rounds"],
        max_candidates=settings.get("max_candidates"),
        max_time_s=settings.get("max_time"),
        strategy=strategy,
        threshold=settings["threshold"],
        # Not given: the Refiner's own default (2, or off with a person as the only critic).
        patience=settings["patience"] if settings.get("patience_given", True) else "auto",
        max_tokens=settings["max_tokens"],
        max_cost_usd=settings["max_cost"],
        memory=open_memory(settings["memory"], None if memory_db is None else Path(memory_db)),
        checkpointer=db,
    )
    title = f"redraft · {models.describe()} · {describe_strategy(strategy, settings['rounds'])}"
    return Built(refiner, title)


@app.command()
def demo(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the full result as JSON on stdout.")
    ] = False,
) -> None:
    """Run a bundled example loop offline: scripted models fix a buggy function."""
    from redraft.demo import DEMO_TASK, demo_refiner

    with interruptible():
        console = terminal()
        note(console, DEMO_LABEL, "bold magenta")
        refiner = demo_refiner(delay_s=DEMO_DELAY_S if console else 0.0)
        view = ProgressView(title=f"redraft demo · up to {refiner.budgets.max_rounds} rounds")
        code = run_loop(refiner, DEMO_TASK, view, json_output=json_output, out=None, quiet=False)
        note(console, DEMO_HINT, "dim")
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version."""
    print_version()
