"""The `redraft` command: refine a task with a real model, or watch the offline demo.

Output contract: the final text (or `--json`) goes to stdout, everything for people to stderr.
Exit codes: 0 passed, 1 stopped without passing, 2 usage or configuration error, 3 a model or
network failure ended the run, 130 interrupted, 70 a bug in redraft (with its traceback).
Every expected error is one line on stderr that starts with `error: `.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.text import Text

from redraft.display import diff_text, rounds_table, summary_line
from redraft.errors import ConfigError, ModelError, RedraftError
from redraft.models.base import ChatModel
from redraft.refiner import MODEL_ENV, Refiner
from redraft.rubrics import load_rubric, read_text_file
from redraft.types import (
    CritiqueEvent,
    DraftEvent,
    EditEvent,
    Event,
    Result,
    RoundEvent,
    StopEvent,
    StopReason,
    Task,
)

EXIT_PASSED = 0
EXIT_NOT_PASSED = 1
EXIT_USAGE = 2
EXIT_MODEL_FAILED = 3
EXIT_BUG = 70  # EX_SOFTWARE: distinct from 1, which scripts read as "did not pass"
EXIT_INTERRUPTED = 130

DEMO_LABEL = "offline demo: the model replies are scripted, no model or API key is used"
DEMO_HINT = (
    "run it with a real model: export OPENAI_API_KEY=...; "
    "redraft refine --model openai/gpt-4o-mini 'Write a haiku about rain' "
    "(or --api-base http://localhost:8000/v1 --model hosted_vllm/<name> for a local server)"
)
# Paces the scripted demo on a terminal so the live view can be followed.
DEMO_DELAY_S = 0.6

STOP_MEANINGS = {
    StopReason.PASSED: "every critic passed",
    StopReason.THRESHOLD: "the score reached the threshold",
    StopReason.MAX_ROUNDS: "no rounds left",
    StopReason.NO_IMPROVEMENT: "the score stopped improving",
    StopReason.REPEATED: "the editor repeated a rejected draft",
    StopReason.BUDGET: "the token or cost budget ran out",
    StopReason.CRITICS_FAILED: "every critic failed",
    StopReason.ERROR: "a model call failed",
}

app = typer.Typer(
    name="redraft",
    help="Critique-and-refine loops: an actor drafts, critics say what is wrong, an editor "
    "revises, until the critics pass the draft or a budget runs out. "
    "Try 'redraft demo' first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Interrupted(Exception):
    """Ctrl-C, carried past click (which would turn it into a silent exit 130)."""


@contextmanager
def _interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        raise _Interrupted() from None


def _version_callback(value: bool) -> None:
    if value:
        _print_version()
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Only here for --version; the app's help text describes the command."""


@app.command()
def version() -> None:
    """Print the version."""
    _print_version()


def _print_version() -> None:
    from redraft import __version__

    typer.echo(f"redraft {__version__}")


@app.command()
def refine(
    task: Annotated[
        str | None,
        typer.Argument(
            help="What to produce: the text itself, @FILE to read it from a file, "
            "or - (or nothing) to read it from stdin.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help=f"LiteLLM model string for every role, e.g. openai/gpt-4o-mini "
            f"(default: ${MODEL_ENV}).",
            show_default=False,
        ),
    ] = None,
    critic_model: Annotated[
        str | None,
        typer.Option(help="Model for the critic (default: --model).", show_default=False),
    ] = None,
    editor_model: Annotated[
        str | None,
        typer.Option(help="Model for the editor (default: --model).", show_default=False),
    ] = None,
    api_base: Annotated[
        str | None,
        typer.Option(
            help="Base URL of an OpenAI-compatible server (vLLM, llama.cpp, Ollama...) "
            "for the models given here, e.g. http://localhost:8000/v1.",
            show_default=False,
        ),
    ] = None,
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
        typer.Option(min=1, help="Most drafts to judge, the first one included."),
    ] = 4,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Stop once the score (0..1) reaches this, even if a critic has not passed.",
            show_default=False,
        ),
    ] = None,
    patience: Annotated[
        int,
        typer.Option(min=0, help="Stop after N rounds without a better score (0: never)."),
    ] = 2,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, help="Token budget for the whole run.", show_default=False),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            min=0.0, metavar="USD", help="Cost budget for the whole run.", show_default=False
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the full result as JSON on stdout.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FILE",
            help="Write the final text to FILE instead of stdout.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or summary; only the result.")
    ] = False,
) -> None:
    """Refine TASK with a model: draft, critique, revise until the critics pass it."""
    with _interruptible():
        # Cheap checks first: a typo in a path should not wait for LiteLLM to import.
        the_task = Task(
            instruction=_read_task(task),
            rubric=load_rubric(rubric) if rubric is not None else None,
            reference=_read_optional(reference, "reference file"),
            context=_read_optional(context, "context file"),
        )
        if out is not None:
            _check_writable(out)
        console = None if quiet else _terminal()
        # Resolving imports LiteLLM (seconds): say so rather than sit silent.
        checking = console.status("checking the model…") if console else nullcontext()
        with checking:
            models = _Models.resolve(model, critic_model, editor_model, api_base)
        refiner = Refiner(
            models.main,
            critic_model=models.critic,
            editor_model=models.editor,
            max_rounds=rounds,
            threshold=threshold,
            patience=patience or None,
            max_tokens=max_tokens,
            max_cost_usd=max_cost,
        )
        view = _View(title=f"redraft · {models.describe()} · up to {rounds} rounds")
        code = _run(refiner, the_task, view, json_output=json_output, out=out, quiet=quiet)
    raise typer.Exit(code)


@app.command()
def demo(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the full result as JSON on stdout.")
    ] = False,
) -> None:
    """Run a bundled example loop offline: scripted models fix a buggy function."""
    from redraft.demo import DEMO_TASK, demo_refiner

    with _interruptible():
        console = _terminal()
        _note(console, DEMO_LABEL, "bold magenta")
        refiner = demo_refiner(delay_s=DEMO_DELAY_S if console else 0.0)
        view = _View(title=f"redraft demo · up to {refiner.rules.max_rounds} rounds")
        code = _run(refiner, DEMO_TASK, view, json_output=json_output, out=None, quiet=False)
        _note(console, DEMO_HINT, "dim")
    raise typer.Exit(code)


# -- inputs ----------------------------------------------------------------------------------


def _read_task(task: str | None) -> str:
    if task is None or task == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError(
                "no task: give it as an argument, as @FILE, or on stdin "
                "(e.g. echo 'Write a haiku' | redraft refine -m MODEL)"
            )
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise ConfigError("the task on stdin is not UTF-8 text: send it as UTF-8") from None
        if not text.strip():
            raise ConfigError("the task on stdin is empty: pipe in what to produce")
        return text.strip()
    if task.startswith("@@"):  # an escaped literal '@'
        task = task[1:]
    elif task.startswith("@"):
        if len(task) == 1:
            raise ConfigError("'@' needs a file name: @FILE reads the task from FILE")
        text = read_text_file(task[1:], "task file")
        if not text.strip():
            raise ConfigError(f"task file {task[1:]} is empty: write what to produce in it")
        return text.strip()
    if not task.strip():
        raise ConfigError("the task is empty: give an instruction saying what to produce")
    return task


def _read_optional(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    text = read_text_file(path, what)
    if not text.strip():
        raise ConfigError(f"{what} {path} is empty: fill it in or leave the option out")
    return text.strip()


def _check_writable(out: Path) -> None:
    # Checked before the run, so a typo does not throw away a paid-for result.
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory: give a file name")
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out} is not writable: choose another path")


@dataclass
class _Models:
    main: ChatModel
    critic: ChatModel | None
    editor: ChatModel | None

    @classmethod
    def resolve(
        cls,
        model: str | None,
        critic_model: str | None,
        editor_model: str | None,
        api_base: str | None,
    ) -> _Models:
        # Imported here: it names LiteLLM's providers and keys (LiteLLM itself loads lazily).
        from redraft.models.resolve import check_credentials, resolve_model

        main = resolve_model(model, api_base=api_base)  # None: $REDRAFT_MODEL or how to set it
        critic = resolve_model(critic_model, api_base=api_base) if critic_model else None
        editor = resolve_model(editor_model, api_base=api_base) if editor_model else None
        for chosen in (main, critic, editor):
            if chosen is not None:
                check_credentials(chosen)  # a missing key fails now, not after the first draft
        return cls(main, critic, editor)

    def describe(self) -> str:
        parts = [self.main.name]
        if self.critic is not None and self.critic.name != self.main.name:
            parts.append(f"critic {self.critic.name}")
        if self.editor is not None and self.editor.name != self.main.name:
            parts.append(f"editor {self.editor.name}")
        return ", ".join(parts)


# -- running and reporting -------------------------------------------------------------------


def _terminal() -> Console | None:
    """A console for stderr when it is a terminal (live progress, tables), else None."""
    # TTY_COMPATIBLE is rich's own override; FORCE_COLOR, which many CI systems set, asks
    # for colour rather than for a live display, so it does not count here.
    setting = os.environ.get("TTY_COMPATIBLE", "")
    if setting in ("0", "1"):
        interactive = setting == "1"
    else:
        isatty = getattr(sys.stderr, "isatty", None)
        interactive = bool(isatty is not None and isatty())
    return Console(stderr=True, highlight=False, force_terminal=True) if interactive else None


def _note(console: Console | None, text: str, style: str = "") -> None:
    """A line for people: styled on a terminal, plain and unwrapped when piped."""
    if console is not None:
        console.print(Text(text, style=style))
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _run(
    refiner: Refiner,
    task: Task,
    view: _View,
    *,
    json_output: bool,
    out: Path | None,
    quiet: bool,
) -> int:
    console = None if quiet else _terminal()
    view.critics = len(refiner.critics)
    result = asyncio.run(_drive(refiner, task, view, console))
    if out is not None:
        _write_out(out, result.text)
    if console is not None:
        console.print(_report(result))
        if out is not None:
            _note(console, f"final text written to {out}", "dim")
    elif not quiet:
        _note(None, _plain_summary(result))
    if json_output:
        _emit(result.model_dump_json(indent=2))
    elif out is None:
        _emit(result.text)
    return exit_code(result)


async def _drive(refiner: Refiner, task: Task, view: _View, console: Console | None) -> Result:
    result: Result | None = None
    display = (
        Live(view, console=console, refresh_per_second=12, transient=False)
        if console is not None
        else nullcontext()
    )
    with display:
        async for event in refiner.astream(task):
            view.update(event)
            if isinstance(event, StopEvent):
                result = event.result
    if result is None:  # pragma: no cover - every run ends with a StopEvent
        raise RuntimeError("the run ended without a result")
    return result


def exit_code(result: Result) -> int:
    """0 passed, 3 a model failure stopped it, 1 any other stop without passing."""
    if result.passed:
        return EXIT_PASSED
    if result.stop_reason is StopReason.ERROR:
        return EXIT_MODEL_FAILED
    return EXIT_NOT_PASSED


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _write_out(out: Path, text: str) -> None:
    try:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from None


def _plain_summary(result: Result) -> str:
    if result.error:
        return (
            f"error: {_one_line(result.error)} (stopped after {len(result.rounds)} rounds; "
            f"the best draft so far, round {result.best_round}, is the output)"
        )
    return summary_line(result).plain.splitlines()[0]


def _report(result: Result) -> RenderableType:
    """The summary, rounds table and diff; the final text itself follows on stdout."""
    parts: list[RenderableType] = [summary_line(result), rounds_table(result)]
    if result.best_round > 0:
        first, best = result.rounds[0].draft.text, result.final.text
        parts.append(Panel(diff_text(first, best), title="first draft → final", expand=False))
    return Group(*parts)


@dataclass
class _View:
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
            self._heading(event.round, f"{by} · {len(event.draft.text)} chars")
        elif isinstance(event, EditEvent):
            draft = event.draft
            how = draft.edit_mode.value if draft.edit_mode else "rewrite"
            if draft.patches_applied:
                how += f", {draft.patches_applied} block{'s' * (draft.patches_applied != 1)}"
            self._heading(event.round, f"revision ({how}) · {len(draft.text)} chars")
        elif isinstance(event, CritiqueEvent):
            self._judged += 1
            self.lines.append(_critique_line(event))
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
        round_ = event.round
        best = " ★ best so far" if event.best_round == round_.index else ""
        self.lines.append(Text.assemble("  score ", (f"{round_.score:.2f}", "bold"), best))
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


def _critique_line(event: CritiqueEvent) -> Text:
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


# -- entry point -----------------------------------------------------------------------------


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _error(message: str) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors become one `error: ` line on stderr."""
    try:
        return _main(argv)
    except ModelError as exc:
        _error(str(exc))
        return EXIT_MODEL_FAILED
    except RedraftError as exc:  # ConfigError and any other mistake a user can fix
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}: this is a bug in redraft; please report it")
        return EXIT_BUG


def _main(argv: Sequence[str] | None) -> int:
    try:
        code = app(
            args=list(argv) if argv is not None else None,
            prog_name="redraft",
            standalone_mode=False,  # so errors reach the handlers below, not click's printer
        )
    except (_Interrupted, KeyboardInterrupt, typer.Abort):
        _error("interrupted")
        return EXIT_INTERRUPTED
    except RedraftError:
        raise
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        return _click_error(exc)
    return code if isinstance(code, int) else EXIT_PASSED


def _is_click_error(exc: Exception) -> bool:
    # Typer 0.29 vendors click (typer._click) while older typers raise click's own classes;
    # both have these two members.
    return hasattr(exc, "exit_code") and callable(getattr(exc, "format_message", None))


def _click_error(exc: Exception) -> int:
    """Usage errors as one `error: ` line (click's own printer takes several)."""
    code: int = getattr(exc, "exit_code", EXIT_USAGE)
    message: str = exc.format_message()  # type: ignore[attr-defined]
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `redraft`: the help was the answer
        if message.strip():
            sys.stderr.write(message + "\n")
        return code
    ctx = getattr(exc, "ctx", None)
    where = getattr(ctx, "command_path", None) or "redraft"
    _error(f"{message} (see '{where} --help')" if code == EXIT_USAGE else message)
    return code


if __name__ == "__main__":
    sys.exit(main())
