"""`--strategy` and its options, shared by `redraft refine` and `redraft code`, and the
strategy they make. Each option belongs to one strategy; given to another it is refused."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from redraft.cli.numbers import number_in
from redraft.errors import ConfigError
from redraft.strategies.config import check_strategy_keys


def strategy_name(value: object) -> str:
    """A typer `parser=` for `--strategy`."""
    text = str(value).strip().lower()
    try:
        return check_strategy_keys({"strategy": text})
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


StrategyOption = Annotated[
    str,
    typer.Option(
        parser=strategy_name,
        metavar="NAME",
        help="How to search: refine (one chain of revisions), best-of-n (n drafts at once, "
        "the best refined), beam or mcts (a tree of revisions), reflexion (trials with "
        "reflections).",
    ),
]
NOption = Annotated[
    int | None,
    typer.Option("--n", min=1, help="best-of-n: first drafts made at once [default: 4].",
                 show_default=False),
]  # fmt: skip
ExpandOption = Annotated[
    int | None,
    typer.Option(min=1, help="beam, mcts: revisions of each expanded candidate [default: 2].",
                 show_default=False),
]  # fmt: skip
WidthOption = Annotated[
    int | None,
    typer.Option(min=1, help="beam: candidates kept per depth; mcts: sets the expansions "
                 "(width x depth) [default: 3].", show_default=False),
]  # fmt: skip
MaxDepthOption = Annotated[
    int | None,
    typer.Option(min=1, help="beam, mcts: most revisions from a first draft [default: 4].",
                 show_default=False),
]  # fmt: skip
TrialsOption = Annotated[
    int | None,
    typer.Option(min=1, help="reflexion: most trials, each a refine loop [default: 3].",
                 show_default=False),
]  # fmt: skip
MaxCandidatesOption = Annotated[
    int | None,
    typer.Option(min=1, help="Most candidates (drafts and revisions) of the whole run.",
                 show_default=False),
]  # fmt: skip
MaxTimeOption = Annotated[
    float | None,
    typer.Option(
        parser=number_in(0.0, above=True, example="120", unlimited="leave --max-time out"),
        metavar="SECONDS",
        help="Wall-time budget of the whole run, in seconds.",
        show_default=False,
    ),
]


def strategy_settings(strategy: str, **options: int | None) -> dict[str, Any]:
    """The strategy's settings, as kept beside a checkpoint; an option that does not apply
    to `strategy` is refused."""
    settings = {"strategy": strategy, **options}
    try:
        check_strategy_keys(settings, as_flags=True)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    return settings
