"""What the `redraft` command shows: live progress on a terminal, plain text when piped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from redraft.display import summary_line
from redraft.errors import ConfigError
from redraft.types import (
    Result,
)


def terminal() -> Console | None:
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


def note(console: Console | None, text: str, style: str = "") -> None:
    """A line for people: styled on a terminal, plain and unwrapped when piped."""
    if console is not None:
        console.print(Text(text, style=style))
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def write_out(out: Path, text: str) -> None:
    try:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write --out {out}: {exc.strerror or exc}") from None


def plain_summary(result: Result) -> str:
    """The summary for a pipe or a log: the terminal view's summary line, and, as the
    terminal view shows them, why critics failed (else a log says only that they did)."""
    if result.error:
        first = (
            f"error: {one_line(result.error)} (stopped after {len(result.rounds)} rounds; "
            f"the best draft so far, round {result.best_round}, is the output)"
        )
    else:
        first = summary_line(result).plain.splitlines()[0]
    return "\n".join([first, *critic_failures(result)])


def critic_failures(result: Result) -> list[str]:
    """One line per critic and error: `critic NAME failed in rounds 0, 1: why`."""
    rounds: dict[tuple[str, str], list[int]] = {}
    for round_ in result.rounds:
        for critique in round_.critiques:
            if critique.error is not None:
                rounds.setdefault((critique.critic, one_line(critique.error)), []).append(
                    round_.index
                )
    lines = []
    for (critic, error), indexes in rounds.items():
        where = "round" if len(indexes) == 1 else "rounds"
        lines.append(f"critic {critic} failed in {where} {', '.join(map(str, indexes))}: {error}")
    return lines


def one_line(message: str) -> str:
    return " ".join(message.split())
