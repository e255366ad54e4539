"""Rich rendering of results for terminals and notebooks: rounds, scores, diffs."""

from __future__ import annotations

import difflib
import io

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from redraft.types import Result, Round


def rounds_table(result: Result) -> Table:
    critic_names = list(dict.fromkeys(c.critic for r in result.rounds for c in r.critiques))
    table = Table(title="Rounds", show_lines=False, expand=False)
    table.add_column("round", justify="right")
    table.add_column("by")
    for name in critic_names:
        table.add_column(name, justify="right")
    table.add_column("score", justify="right")
    table.add_column("chars", justify="right")
    for round_ in result.rounds:
        by_critic = {c.critic: c for c in round_.critiques}
        cells = []
        for name in critic_names:
            critique = by_critic.get(name)
            if critique is None:
                cells.append("")
            elif critique.error:
                cells.append("[red]error[/]")
            else:
                mark = "[green]✓[/]" if critique.passed else "[yellow]✗[/]"
                cells.append(f"{critique.score:.2f} {mark}")
        marker = " ★" if round_.index == result.best_round else ""
        table.add_row(
            f"{round_.index}{marker}",
            _author(round_),
            *cells,
            f"{round_.score:.2f}",
            str(len(round_.draft.text)),
        )
    return table


def _author(round_: Round) -> str:
    draft = round_.draft
    if draft.author != "editor" or draft.edit_mode is None:
        return draft.author
    mode = draft.edit_mode.value
    return f"editor ({mode}{', after failed patch' if draft.patch_fallback else ''})"


def lessons_text(result: Result) -> Text:
    """The past corrections the run was given, and in which rounds."""
    text = Text("Lessons from memory", style="bold")
    for lesson in result.lessons:
        rounds = [r.index for r in result.rounds if lesson.id in {x.id for x in r.draft.lessons}]
        where = ", ".join(str(i) for i in rounds)
        text.append(f"\n  {lesson.id[:8]}  ", style="dim")
        text.append(f"{lesson.score:.2f}", style="bold")
        text.append(f"  round {where}  {lesson.problem}")
    return text


def diff_text(before: str, after: str) -> Text:
    """A unified diff of two drafts, coloured."""
    text = Text()
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "before", "after", lineterm="", n=2
    )
    for line in lines:
        style = (
            "green"
            if line.startswith("+") and not line.startswith("+++")
            else "red"
            if line.startswith("-") and not line.startswith("---")
            else "cyan"
            if line.startswith("@@")
            else "dim"
        )
        text.append(line + "\n", style=style)
    return text


def summary_line(result: Result) -> Text:
    total = result.usage.total
    status = "[green]passed[/]" if result.passed else "[yellow]not passed[/]"
    return Text.from_markup(
        f"{status} · stop: [bold]{result.stop_reason.value}[/] · best round "
        f"{result.best_round} (score {result.score:.2f}) · {len(result.rounds)} rounds · "
        f"{total.calls} calls · {total.total_tokens} tokens · ${total.cost_usd:.4f} · "
        f"{result.wall_time_s:.1f}s" + (f"\n[red]error:[/] {result.error}" if result.error else "")
    )


def render_result(
    result: Result, *, show_diff: bool = True, show_final: bool = True
) -> RenderableType:
    """Summary, rounds table, the diff from the first draft to the final one, the final text."""
    parts: list[RenderableType] = [summary_line(result), rounds_table(result)]
    if result.lessons:
        parts.append(lessons_text(result))
    final = result.final  # None when the run failed before any draft: nothing to show
    if show_diff and final is not None and result.rounds and result.best_round > 0:
        first = result.rounds[0].draft.text
        parts.append(Panel(diff_text(first, final.text), title="first draft → final", expand=False))
    if show_final and final is not None:
        parts.append(Panel(Text(final.text), title="final draft", expand=False))
    return Group(*parts)


def result_html(result: Result) -> str:
    """The rich rendering as HTML, for notebooks."""
    console = Console(record=True, width=110, file=io.StringIO(), force_jupyter=False)
    console.print(render_result(result))
    return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
