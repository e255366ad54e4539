"""`redraft code`: refine code until it passes the user's tests, run in a sandbox."""

from __future__ import annotations

import keyword
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from redraft.agents.critics.base import Critic
from redraft.agents.critics.llm import LLMCritic
from redraft.agents.critics.tests import MAX_MEMORY_MB, TestsCritic, TestSuite, extract_code
from redraft.agents.editor import LLMEditor
from redraft.agents.prompts import DEFAULT_PROMPTS
from redraft.cli import threads
from redraft.cli.app import app, interruptible
from redraft.cli.inputs import (
    ChosenModels,
    check_memory_db,
    check_writable,
    open_memory,
    precheck,
    read_task,
)
from redraft.cli.numbers import number_in
from redraft.cli.options import (
    ApiBaseOption,
    CheckpointOption,
    CodeOutOption,
    EditorModelOption,
    JsonOption,
    MemoryDbOption,
    MemoryOption,
    ModelOption,
    QuietOption,
    TaskArgument,
    ThreadIdOption,
)
from redraft.cli.output import terminal
from redraft.cli.running import Built, begin_thread, run_built
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
from redraft.refiner import Refiner
from redraft.rubrics import load_rubric
from redraft.sandboxes.choose import NAMES
from redraft.strategies.config import describe_strategy, strategy_from
from redraft.types import Task


@app.command()
def code(
    task: TaskArgument = None,
    tests: Annotated[
        Path,
        typer.Option(
            "--tests",
            "-t",
            metavar="FILE",
            help="Tests: a .py file (test_* functions, asserts, or check(candidate)) or a "
            ".json/.yaml list of {input, output} cases for a stdin/stdout program.",
            show_default=False,
        ),
    ] = ...,  # type: ignore[assignment]
    sandbox: Annotated[
        str,
        typer.Option(
            help="Where the code runs: auto (bwrap, then docker), bwrap, docker, or "
            "subprocess (no isolation: trusted code only).",
        ),
    ] = "auto",
    model: ModelOption = None,
    critic_model: Annotated[
        str | None,
        typer.Option(
            help="Model for the optional LLM critic (implies --llm-critic).", show_default=False
        ),
    ] = None,
    editor_model: EditorModelOption = None,
    api_base: ApiBaseOption = None,
    llm_critic: Annotated[
        bool,
        typer.Option(help="Also judge the code with an LLM critic (style, the task's intent)."),
    ] = False,
    rubric: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Rubric for the LLM critic (implies --llm-critic).",
            show_default=False,
        ),
    ] = None,
    entry_point: Annotated[
        str | None,
        typer.Option(
            help="Function that check(candidate) tests receive (default: the last one defined).",
            show_default=False,
        ),
    ] = None,
    show_tests: Annotated[
        bool, typer.Option(help="Show the tests to the model along with the task.")
    ] = True,
    rounds: Annotated[
        int,
        typer.Option(
            "--max-rounds",
            "--rounds",
            min=1,
            help="Most drafts to test, the first one included (max_rounds in Python).",
        ),
    ] = 4,
    timeout: Annotated[
        float,
        typer.Option(
            parser=number_in(0.1, example="5"),
            metavar="SECONDS",
            help="Time limit of each test (at least 0.1).",
        ),
    ] = 5.0,
    memory_mb: Annotated[
        int,
        typer.Option(min=16, max=MAX_MEMORY_MB, metavar="MB", help="Memory limit of the code."),
    ] = 512,
    memory: MemoryOption = False,
    memory_db: MemoryDbOption = None,
    json_output: JsonOption = False,
    out: CodeOutOption = None,
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
) -> None:
    """Write code for TASK and revise it until it passes --tests, run in a sandbox."""
    with interruptible():
        if sandbox not in NAMES:
            raise typer.BadParameter(f"choose one of {', '.join(NAMES)}", param_hint="--sandbox")
        if entry_point is not None and (
            not entry_point.isidentifier() or keyword.iskeyword(entry_point)
        ):
            raise typer.BadParameter(
                f"{entry_point!r} is not a Python function name: give the name of the "
                "function that check(candidate) receives",
                param_hint="--entry-point",
            )
        precheck(model, critic_model, editor_model, api_base)
        memory_db = check_memory_db(memory_db)
        suite = TestSuite.from_file(tests, entry_point=entry_point)
        instruction = read_task(task)
        if out is not None:
            check_writable(out)
        db = threads.checkpoint_of(checkpoint, thread_id)
        settings = {
            "tests": str(tests.resolve()),
            "entry_point": entry_point,
            "sandbox": sandbox,
            "model": model,
            "critic_model": critic_model,
            "editor_model": editor_model,
            "api_base": api_base,
            "llm_critic": llm_critic or rubric is not None or critic_model is not None,
            "rounds": rounds,
            "timeout": timeout,
            "memory_mb": memory_mb,
            "memory": memory,
            "memory_db": None if memory_db is None else str(memory_db.resolve()),
            "max_candidates": max_candidates,
            "max_time": max_time,
            **strategy_settings(
                strategy, n=n, expand=expand, width=width, max_depth=max_depth, trials=trials
            ),
        }
        built = build_code(settings, db, quiet=quiet, suite=suite)
        try:
            the_task = Task(
                instruction=instruction,
                context=DEFAULT_PROMPTS.render(
                    "code_task.md", suite=suite, show_tests=show_tests, cases=list(suite.cases)
                ),
                rubric=load_rubric(rubric) if rubric is not None else None,
            )
            checkpointed = begin_thread(db, thread_id, "code", settings, quiet=quiet)
        except BaseException:
            built.refiner.close()  # its sandbox pool
            raise
        exit_code = run_built(
            built, the_task, json_output=json_output, out=out, quiet=quiet,
            checkpointed=checkpointed,
        )  # fmt: skip
    raise typer.Exit(exit_code)


def build_code(
    settings: dict[str, Any], db: Path | None, *, quiet: bool, suite: TestSuite | None = None
) -> Built:
    """The refiner of `redraft code` from its settings (also those of a resumed run, whose
    tests are read again from their file)."""
    if suite is None:
        suite = TestSuite.from_file(Path(settings["tests"]), entry_point=settings["entry_point"])
    tests_critic = TestsCritic(
        suite,
        sandbox=settings["sandbox"],
        test_timeout_s=settings["timeout"],
        memory_mb=settings["memory_mb"],
    )
    console = None if quiet else terminal()
    checking = console.status("checking the sandbox and the model…") if console else nullcontext()
    try:
        with checking:
            check = getattr(tests_critic.sandbox, "check", None)
            if callable(check):
                check()  # a missing bwrap or a dead Docker daemon fails here, in one line
            models = ChosenModels.resolve(
                settings["model"], settings["critic_model"], settings["editor_model"],
                settings["api_base"],
            )  # fmt: skip
        critics: list[Critic] = [tests_critic]
        if settings["llm_critic"]:
            critics.append(LLMCritic(name="review"))
        memory_db = settings["memory_db"]
        strategy = strategy_from(settings)
        refiner = Refiner(
            models.main,
            critics=critics,
            critic_model=models.critic,
            editor=LLMEditor(mode="patch"),
            editor_model=models.editor,
            max_rounds=settings["rounds"],
            max_candidates=settings.get("max_candidates"),
            max_time_s=settings.get("max_time"),
            strategy=strategy,
            memory=open_memory(settings["memory"], None if memory_db is None else Path(memory_db)),
            checkpointer=db,
        )
    except BaseException:
        tests_critic.close()
        raise
    title = (
        f"redraft code · {models.describe()} · {describe_strategy(strategy, settings['rounds'])}"
    )
    return Built(refiner, title, final_text=lambda result: extract_code(result.text))
