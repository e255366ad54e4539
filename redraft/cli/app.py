"""The root `redraft` command that every command registers on, and its --version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

app = typer.Typer(
    name="redraft",
    help="Critique-and-refine loops: an actor drafts, critics say what is wrong, an editor "
    "revises, until the critics pass the draft or a budget runs out. "
    "Try 'redraft demo' first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Interrupted(Exception):
    """Ctrl-C, carried past click (which would turn it into a silent exit 130)."""


@contextmanager
def interruptible() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted() from None


def _version_callback(value: bool) -> None:
    if value:
        print_version()
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


def print_version() -> None:
    from redraft import __version__

    typer.echo(f"redraft {__version__}")
