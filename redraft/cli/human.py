"""`--human`: the person at the terminal is a critic. A run that waits for them is shown the
candidate, asks for feedback, a score or acceptance, and goes on with their answer."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from redraft.agents.critics.base import Critic
from redraft.agents.critics.human import HumanCritic
from redraft.agents.critics.llm import LLMCritic
from redraft.display import waiting_lines
from redraft.types import HumanAnswer, Result, Waiting

HumanOption = Annotated[
    bool,
    typer.Option(
        "--human",
        help="Be a critic yourself: the run pauses at each draft and asks you on the terminal "
        "(feedback, a score from 0 to 1, or accept). The model critic judges too only with "
        "--rubric or --critic-model.",
    ),
]
ACCEPT_WORDS = ("accept", "a", "y", "yes", "ok")
_MOST_TRIES = 3  # of one question, before the run is left waiting


def human_critics(*, with_model_critic: bool) -> list[Critic]:
    """The critics of `--human`: the person, after the model critic if one is asked for."""
    person = HumanCritic()
    return [LLMCritic(), person] if with_model_critic else [person]


def ask_person(result: Result, console: Console | None) -> HumanAnswer | None:
    """The person's answer about the candidate `result` waits on; None when stdin has no
    more to read (the run is left waiting)."""
    waiting = result.waiting
    if waiting is None:  # pragma: no cover - only called for a waiting result
        return None
    _show(waiting, console)
    try:
        for _ in range(_MOST_TRIES):
            reply = _read("Feedback for the editor, or 'accept' to accept this draft: ", console)
            if reply.lower() in ACCEPT_WORDS:
                return HumanAnswer(accept=True)
            if reply:
                return HumanAnswer(feedback=reply, score=_score(console))
            _say("say what to change, or type accept", console)
    except EOFError:
        return None
    return None


def waiting_hint(result: Result, checkpoint: str | None) -> str:
    """How to continue a run left waiting."""
    waiting = result.waiting
    who = f"{waiting.critic}'s critique of {waiting.candidate.id}" if waiting else "a critique"
    if checkpoint is None:
        return (
            f"the run waits for {who} and was not checkpointed, so it ends here: run it with "
            "--checkpoint FILE to answer later"
        )
    return (
        f"the run waits for {who}: continue it with 'redraft resume {result.thread_id} "
        f"--checkpoint {checkpoint} --feedback TEXT' (or --accept, --score 0..1)"
    )


def _score(console: Console | None) -> float | None:
    for _ in range(_MOST_TRIES):
        reply = _read("Score from 0 to 1 (Enter to skip): ", console)
        if not reply:
            return None
        try:
            score = float(reply)
        except ValueError:
            score = -1.0
        if 0.0 <= score <= 1.0:
            return score
        _say(f"{reply!r} is not a score from 0 to 1", console)
    return None


def _show(waiting: Waiting, console: Console | None) -> None:
    lines = waiting_lines(waiting)
    title = f"{waiting.candidate.id} waits for {waiting.critic}"
    if console is not None:
        console.print(Panel(Group(*lines), title=title, expand=False))
        console.print(Text(waiting.question, style="bold"))
    else:
        sys.stderr.write(f"--- {title} ---\n" + "\n".join(t.plain for t in lines))
        sys.stderr.write(f"\n{waiting.question}\n")
        sys.stderr.flush()


def _read(prompt: str, console: Console | None) -> str:
    """One line from stdin; EOFError when there is none."""
    if console is not None:
        console.print(prompt, end="")
    else:
        sys.stderr.write(prompt)
        sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    if not sys.stdin.isatty():  # piped answers are not echoed: end the prompt's line
        if console is not None:
            console.print()
        else:
            sys.stderr.write("\n")
    return line.strip()


def _say(text: str, console: Console | None) -> None:
    if console is not None:
        console.print(Text(text, style="yellow"))
    else:
        sys.stderr.write(text + "\n")
