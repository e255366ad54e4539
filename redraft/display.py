"""Rich rendering of results for terminals and notebooks: rounds, scores, diffs, and a
search's tree of candidates."""

from __future__ import annotations

import difflib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from redraft.engine.selection import rank
from redraft.types import Candidate, Origin, Result, Round, ToolInvocation, Waiting

LARGE_TREE = 60  # candidates beyond which the tree shows the main line's surroundings only
MOST_CHILDREN = 8  # in a large tree, the children shown under one node (the rest counted)


def rounds_table(result: Result) -> Table:
    critic_names = list(dict.fromkeys(c.critic for r in result.rounds for c in r.critiques))
    searched = is_tree(result)
    table = Table(title="Main line" if searched else "Rounds", show_lines=False, expand=False)
    table.add_column("round", justify="right")
    if searched:
        table.add_column("candidate")
    table.add_column("by")
    for name in critic_names:
        table.add_column(name, justify="right")
    table.add_column("score", justify="right")
    table.add_column("chars", justify="right")
    with_tools = any(_tool_calls(r) for r in result.rounds)
    if with_tools:
        table.add_column("tools", justify="right")
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
        ids = [round_.candidate_id or ""] if searched else []
        table.add_row(
            f"{round_.index}{marker}",
            *ids,
            _author(round_),
            *cells,
            f"{round_.score:.2f}",
            str(len(round_.draft.text)),
            *([_tools_cell(round_)] if with_tools else []),
        )
    return table


def _tool_calls(round_: Round) -> list[ToolInvocation]:
    """Every tool call made for this round: by its author and by its critics."""
    return [*round_.draft.tool_calls, *(t for c in round_.critiques for t in c.tool_calls)]


MOST_TOOL_LINES = 20


def tool_calls_text(result: Result) -> Text:
    """The tool calls of the main line, one a line: who called what, and what came back."""
    lines: list[tuple[int, str, ToolInvocation]] = []
    for round_ in result.rounds:
        lines.extend((round_.index, round_.draft.author, t) for t in round_.draft.tool_calls)
        lines.extend((round_.index, c.critic, t) for c in round_.critiques for t in c.tool_calls)
    text = Text("tool calls\n", style="bold")
    for index, who, call in lines[:MOST_TOOL_LINES]:
        called, outcome, style = tool_call_parts(call, 160)
        text.append(f"  round {index} · {who} · ")
        text.append(called, style="cyan")
        text.append(f" → {outcome}\n", style=style)
    if len(lines) > MOST_TOOL_LINES:
        text.append(f"  … and {len(lines) - MOST_TOOL_LINES} more\n", style="dim")
    return text


def tool_call_parts(call: ToolInvocation, most_chars: int) -> tuple[str, str, str]:
    """A tool call as `name(arguments)`, what came back on one line (at most `most_chars`),
    and the style to show that in."""
    arguments = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
    outcome = f"error: {call.error}" if call.error is not None else (call.result or "")
    style = "red" if call.error is not None else ""
    return f"{call.name}({arguments})", " ".join(outcome.split())[:most_chars], style


def _tools_cell(round_: Round) -> str:
    calls = _tool_calls(round_)
    failed = sum(not call.ok for call in calls)
    return f"{len(calls)}" + (f" [red]({failed} failed)[/]" if failed else "")


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
    """Whether it passed, why it stopped, the final candidate and what the run spent; for a
    search, also the strategy, how many candidates it made and why the final one won."""
    if result.strategy != "refine":
        return _search_summary(result)
    total = result.usage.total
    status = "[green]passed[/]" if result.passed else "[yellow]not passed[/]"
    return Text.from_markup(
        f"{status} · stop: [bold]{result.stop_reason.value}[/] · best round "
        f"{result.best_round} (score {result.score:.2f}) · {len(result.rounds)} rounds · "
        f"{total.calls} calls · {total.total_tokens} tokens · ${total.cost_usd:.4f} · "
        f"{result.wall_time_s:.1f}s" + (f"\n[red]error:[/] {result.error}" if result.error else "")
    )


def _search_summary(result: Result) -> Text:
    total = result.usage.total
    count = len(result.candidates)
    best = (
        f"best {result.final_id} (score {result.score:.2f})"
        if result.final_id is not None
        else "no candidate"
    )
    text = Text.assemble(
        ("passed", "green") if result.passed else ("not passed", "yellow"),
        " · stop: ",
        (result.stop_reason.value, "bold"),
        f" · {result.strategy} · {count} candidate{'s' * (count != 1)} · {best} · "
        f"{total.calls} calls · {total.total_tokens} tokens · ${total.cost_usd:.4f} · "
        f"{result.wall_time_s:.1f}s",
    )
    if result.selected_because and result.final_id is not None:
        text.append(f"\nselected {result.final_id}: {result.selected_because}")
    if result.error:
        text.append("\nerror: ", "red")
        text.append(result.error)
    return text


def is_tree(result: Result) -> bool:
    """Whether the run made more than its main line: several first drafts or fresh attempts,
    branches, or candidates off the main line. Refine's chain is none of these."""
    several_roots = len(_Layout.of(result).children.get(None, [])) > 1
    return several_roots or [c.id for c in result.candidates] != result.chain


def shown_parent(candidate: Candidate) -> str | None:
    """The node a candidate hangs from in the tree: a fresh attempt after a reflection
    (Reflexion's next trial) starts a branch of its own; its label names what it followed."""
    return None if candidate.origin is Origin.REFLECT else candidate.parent_id


@dataclass
class _Layout:
    """A result's candidates as the tree shows them."""

    result: Result
    children: dict[str | None, list[Candidate]] = field(default_factory=dict)
    on_chain: frozenset[str] = frozenset()
    large: bool = False

    @classmethod
    def of(cls, result: Result) -> _Layout:
        known = {c.id for c in result.candidates}
        children: dict[str | None, list[Candidate]] = {}
        for candidate in result.candidates:
            parent = shown_parent(candidate)
            children.setdefault(parent if parent in known else None, []).append(candidate)
        return cls(result, children, frozenset(result.chain), len(result.candidates) > LARGE_TREE)

    def below(self, candidate_id: str) -> list[Candidate]:
        """Every candidate under this one in the tree."""
        found: list[Candidate] = []
        todo = list(self.children.get(candidate_id, []))
        while todo:
            candidate = todo.pop()
            found.append(candidate)
            todo.extend(self.children.get(candidate.id, []))
        return found

    def split(self, kids: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
        """The children to show and those to count: in a large tree, those on the main line
        and the best of the rest, up to `MOST_CHILDREN`."""
        if not self.large or len(kids) <= MOST_CHILDREN:
            return kids, []
        keep = {k.id for k in kids if k.id in self.on_chain}
        for kid in sorted(kids, key=rank, reverse=True):
            if len(keep) >= MOST_CHILDREN:
                break
            keep.add(kid.id)
        return [k for k in kids if k.id in keep], [k for k in kids if k.id not in keep]


def candidate_tree(result: Result) -> Tree:
    """Every candidate under the one it revises; the main line in bold, the final one ★.
    Beyond `LARGE_TREE` candidates, only the main line's nodes show their children."""
    layout = _Layout.of(result)
    count = len(result.candidates)
    title = Text(f"{result.strategy} · {count} candidate{'s' * (count != 1)}", style="bold")
    tree = Tree(title, guide_style="dim")
    _add_children(tree, None, layout)
    return tree


def _add_children(node: Tree, parent_id: str | None, layout: _Layout) -> None:
    shown, hidden = layout.split(layout.children.get(parent_id, []))
    for kid in shown:
        branch = node.add(candidate_label(kid, layout.result))
        if kid.id in layout.on_chain or not layout.large:
            _add_children(branch, kid.id, layout)
        elif below := layout.below(kid.id):
            branch.add(more_label(below))
    if hidden:
        node.add(more_label([c for k in hidden for c in (k, *layout.below(k.id))]))


def candidate_label(candidate: Candidate, result: Result) -> Text:
    """`c3 · revise · 0.74 ✗`: ★ and why for the final candidate, bold on the main line."""
    winner = candidate.id == result.final_id
    on_chain = candidate.id in result.chain
    text = Text(style="bold" if on_chain else "")
    if winner:
        text.append("★ ", "yellow")
    text.append(candidate.id, "cyan" if on_chain else "")
    text.append(f" · {_origin(candidate)} · {candidate.score:.2f} ")
    text.append(*_mark(candidate))
    if winner and result.selected_because:
        text.append(f" · {result.selected_because}", "italic")
    return text


def _origin(candidate: Candidate) -> str:
    if candidate.origin is Origin.REFLECT and candidate.parent_id is not None:
        return f"reflect on {candidate.parent_id}"
    return candidate.origin.value


def _mark(candidate: Candidate) -> tuple[str, str]:
    if not candidate.judged:
        failed = ", ".join(c.critic for c in candidate.critiques if c.error is not None)
        return f"error ({failed})", "red"
    return ("✓", "green") if candidate.passed else ("✗", "yellow")


def more_label(candidates: Sequence[Candidate]) -> Text:
    """`… 12 more (best 0.70)`: candidates a large tree does not show."""
    best = max(candidates, key=rank)
    return Text(f"… {len(candidates)} more (best {best.score:.2f})", style="dim")


def render_result(
    result: Result, *, show_diff: bool = True, show_final: bool = True
) -> RenderableType:
    """Summary, a search's tree of candidates, the rounds table (the main line), the diff
    from the first draft to the final one, the final text."""
    parts: list[RenderableType] = [summary_line(result)]
    if is_tree(result):
        parts.append(candidate_tree(result))
    parts.append(rounds_table(result))
    if any(_tool_calls(r) for r in result.rounds):
        parts.append(tool_calls_text(result))
    if result.lessons:
        parts.append(lessons_text(result))
    if result.waiting is not None:
        parts.append(waiting_panel(result))
    final = result.final  # None when the run failed before any draft: nothing to show
    if show_diff and final is not None and result.rounds and result.best_round > 0:
        first = result.rounds[0].draft.text
        parts.append(Panel(diff_text(first, final.text), title="first draft → final", expand=False))
    if show_final and final is not None:
        parts.append(Panel(Text(final.text), title="final draft", expand=False))
    return Group(*parts)


def waiting_panel(result: Result) -> RenderableType:
    """The candidate a paused run waits on, and how to answer."""
    waiting = result.waiting
    assert waiting is not None
    candidate = waiting.candidate
    lines: list[RenderableType] = [*waiting_lines(waiting)]
    lines.append(
        Text(
            f"{waiting.question}\nanswer with refiner.resume({result.thread_id!r}, "
            "feedback=..., score=..., accept=True)",
            style="bold",
        )
    )
    title = f"{candidate.id} waits for {waiting.critic}"
    return Panel(Group(*lines), title=title, expand=False, border_style="yellow")


def waiting_lines(waiting: Waiting) -> list[Text]:
    """The draft a person is asked about, and what the other critics said of it."""
    lines = [Text(waiting.candidate.draft.text)]
    for critique in waiting.candidate.critiques:
        mark = "✓" if critique.passed else "✗"
        lines.append(Text(f"{mark} {critique.critic} {critique.score:.2f}: {critique.summary}"))
    return lines


def result_html(result: Result) -> str:
    """The rich rendering as HTML, for notebooks."""
    console = Console(record=True, width=110, file=io.StringIO(), force_jupyter=False)
    console.print(render_result(result))
    return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
