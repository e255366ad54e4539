"""How results and live progress look: a search's tree of candidates, Refine's chain."""

from __future__ import annotations

import io
import re
from typing import Any, cast

import pytest
from rich.console import Console, RenderableType

from redraft import FunctionCritic, Refiner, Result, ScriptedModel
from redraft.agents.critics.function import CheckFunction
from redraft.display import LARGE_TREE, candidate_label, is_tree, result_html
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall
from redraft.progress import ProgressView
from redraft.strategies import BestOfN, Reflexion, Strategy, TreeSearch
from redraft.types import Candidate, Event, Origin, SelectEvent, StopEvent

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_WALL_TIME = re.compile(r"\$0\.0000 · \d+\.\ds")


def screen(renderable: RenderableType, width: int = 120) -> str:
    """What a 120-column terminal shows, without trailing spaces."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in console.export_text().splitlines())


def edits(text: str) -> int:
    return text.count("+e")


class Editor:
    """Appends a numbered edit to the draft it is shown, so every revision is new."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, messages: list[Message], call: ScriptedCall) -> str:
        match = _ANSWER.search(call.prompt)
        assert match, "no <answer> block in the editor's prompt"
        self.count += 1
        return f"{match.group(1)}+e{self.count}"


async def stream(refiner: Refiner, view: ProgressView | None = None) -> tuple[Result, list[Event]]:
    events: list[Event] = []
    result: Result | None = None
    async for event in refiner.astream("write it"):
        events.append(event)
        if view is not None:
            view.update(event)
        if isinstance(event, StopEvent):
            result = event.result
    assert result is not None
    return result, events


# -- Refine: exactly as before searches existed ----------------------------------------------


def quality(text: str) -> float | tuple[float, str]:
    return 1.0 if edits(text) >= 2 else (0.3 + 0.3 * edits(text), "needs more edits")


def flaky(text: str) -> bool:
    if not edits(text):
        raise RuntimeError("flaky critic down")
    return True


def refine_run() -> Refiner:
    return Refiner(
        ScriptedModel(["line one\nline two"]),
        editor_model=ScriptedModel(Editor()),
        critics=[FunctionCritic(quality, in_thread=False), FunctionCritic(flaky, in_thread=False)],
    )


REFINE_SCREEN = """\
passed · stop: passed · best round 2 (score 1.00) · 3 rounds · 3 calls · 425 tokens · $0.0000 · 0.0s
                            Rounds
┏━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━┳━━━━━━━┳━━━━━━━┓
┃ round ┃ by               ┃ quality ┃  flaky ┃ score ┃ chars ┃
┡━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━╇━━━━━━━╇━━━━━━━┩
│     0 │ actor            │  0.30 ✗ │  error │  0.15 │    17 │
│     1 │ editor (rewrite) │  0.60 ✗ │ 1.00 ✓ │  0.80 │    20 │
│   2 ★ │ editor (rewrite) │  1.00 ✓ │ 1.00 ✓ │  1.00 │    23 │
└───────┴──────────────────┴─────────┴────────┴───────┴───────┘
╭─ first draft → final ─╮
│ --- before            │
│ +++ after             │
│ @@ -1,2 +1,2 @@       │
│  line one             │
│ -line two             │
│ +line two+e1+e2       │
│                       │
╰───────────────────────╯
╭─ final draft ──╮
│ line one       │
│ line two+e1+e2 │
╰────────────────╯
"""

REFINE_PROGRESS = """\
t
round 0  first draft · 17 chars
  quality  0.30 ✗  needs more edits
  flaky  error  RuntimeError: flaky critic down
  score 0.15 (a critic failed: counted as 0; ranks below fully judged drafts) ★ best so far
round 1  revision (rewrite) · 20 chars
  quality  0.60 ✗  needs more edits
  flaky  1.00 ✓
  score 0.80 ★ best so far
round 2  revision (rewrite) · 23 chars
  quality  1.00 ✓
  flaky  1.00 ✓
  score 1.00 ★ best so far
stop: passed · every critic passed
"""


async def test_refine_renders_its_rounds_as_before() -> None:
    result, _ = await stream(refine_run())
    text = _WALL_TIME.sub("$0.0000 · 0.0s", screen(result))
    assert text == REFINE_SCREEN


async def test_refine_shows_its_progress_as_before() -> None:
    view = ProgressView(title="t", critics=2)
    await stream(refine_run(), view)
    assert view.status is None
    assert screen(view) == REFINE_PROGRESS


# -- searches: the tree of candidates ---------------------------------------------------------

NODE = re.compile(r"^(?P<guide>[│├└─ ]*)(?P<star>★ )?(?P<id>c\d+) · (?P<rest>.*)$")
MORE = re.compile(r"… (\d+) more \(best \d\.\d\d\)")


def climb(text: str) -> float | tuple[float, str]:
    """Better with each edit; passes after three."""
    n = edits(text)
    return (0.2 + 0.25 * n, "needs more edits") if n < 3 else 1.0


def plateau(text: str) -> tuple[float, str]:
    """Better with each edit, never passing."""
    return 0.2 + 0.15 * edits(text), "not yet"


def flaky_once(text: str) -> bool:
    """Fails on every first revision, passes everything else."""
    if edits(text) == 1:
        raise RuntimeError("flaky critic down")
    return True


class Actor:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, messages: list[Message], call: ScriptedCall) -> str:
        self.count += 1
        return f"draft {self.count}"


def search(strategy: object, *checks: CheckFunction, **budgets: Any) -> Refiner:
    critics = [FunctionCritic(check, in_thread=False) for check in checks or (climb,)]
    return Refiner(
        ScriptedModel(Actor()),
        editor_model=ScriptedModel(Editor()),
        critics=critics,
        strategy=cast(Strategy, strategy),
        **budgets,
    )


def nodes(text: str) -> dict[str, tuple[int, int, str]]:
    """Each candidate the tree shows: its line, the column of its id (★ not counted) and
    the rest of its label."""
    found: dict[str, tuple[int, int, str]] = {}
    for number, line in enumerate(text.splitlines()):
        match = NODE.match(line)
        if match:
            assert match["id"] not in found, f"{match['id']} shown twice"
            found[match["id"]] = (number, len(match["guide"]), match["rest"])
    return found


def hung_from(text: str) -> dict[str, str | None]:
    """The node each candidate hangs from in the tree (None: the tree's root)."""
    shown = nodes(text)
    by_line = {line: (column, id_) for id_, (line, column, _) in shown.items()}
    parents: dict[str, str | None] = {}
    for id_, (line, column, _) in shown.items():
        above = [
            (number, other)
            for number, (col, other) in by_line.items()
            if number < line and col == column - 4
        ]
        parents[id_] = max(above)[1] if above else None
        if column == 4:
            parents[id_] = None
    return parents


def shown_parent_of(candidate: Candidate) -> str | None:
    return None if candidate.origin is Origin.REFLECT else candidate.parent_id


def main_line(text: str) -> list[str]:
    """The candidate ids of the main-line table's rows."""
    return re.findall(r"│\s+\d+(?: ★)? │ (c\d+)\s+│", text)


async def test_a_beam_search_shows_its_tree_of_candidates() -> None:
    result, _ = await stream(search(TreeSearch(policy="beam"), max_rounds=10))
    text = screen(result)
    shown = nodes(text)
    assert result.strategy == "beam" and len(result.candidates) == 21
    assert set(shown) == {c.id for c in result.candidates}
    parents = hung_from(text)
    for candidate in result.candidates:
        _, _, rest = shown[candidate.id]
        mark = "✓" if candidate.passed else "✗"
        assert rest.startswith(f"{candidate.origin.value} · {candidate.score:.2f} {mark}")
        assert parents[candidate.id] == candidate.parent_id, candidate.id
    # The winner, starred with why; the first line names the strategy and the count.
    assert result.final_id == "c15" and result.chain == ["c0", "c3", "c9", "c15"]
    assert text.count("★ c") == 1
    assert re.search(r"★ c15 · revise · 1\.00 ✓ · every critic passed it", text)
    first, second = text.splitlines()[:2]
    assert "stop: passed · beam · 21 candidates · best c15 (score 1.00)" in first
    assert second == f"selected c15: {result.selected_because}"
    assert main_line(text) == result.chain
    assert "…" not in text  # a tree this small shows every candidate


async def test_the_main_line_is_bold_and_the_rest_is_not() -> None:
    result, _ = await stream(search(TreeSearch(policy="beam"), max_rounds=10))
    for candidate in result.candidates:
        label = candidate_label(candidate, result)
        assert label.style == ("bold" if candidate.id in result.chain else ""), candidate.id


async def test_best_of_n_hangs_its_refinement_from_the_best_first_draft() -> None:
    result, _ = await stream(search(BestOfN(4)))
    text = screen(result)
    parents = hung_from(text)
    roots = [id_ for id_, parent in parents.items() if parent is None]
    assert roots == ["c0", "c1", "c2", "c3"]
    assert parents == {c.id: c.parent_id for c in result.candidates}
    assert result.chain == ["c0", "c4", "c5", "c6"] and "★ c6 · revise · 1.00 ✓" in text
    assert "best-of-n · 7 candidates · best c6" in text.splitlines()[0]


async def test_best_of_n_unrefined_is_a_row_of_first_drafts() -> None:
    result, _ = await stream(search(BestOfN(8, refine=False)))
    text = screen(result)
    assert hung_from(text) == {f"c{i}": None for i in range(8)}
    assert main_line(text) == ["c0"]  # the main line is the winner alone
    assert re.search(r"★ c0 · draft · 0\.20 ✗ · the highest score \(0\.20\) of 8", text)
    assert "stop: exhausted · best-of-n · 8 candidates · best c0 (score 0.20)" in text


async def test_mcts_shows_the_branches_it_expanded() -> None:
    result, _ = await stream(search(TreeSearch(policy="mcts")))
    text = screen(result)
    assert set(nodes(text)) == {c.id for c in result.candidates}
    assert hung_from(text) == {c.id: c.parent_id for c in result.candidates}
    branched = [c for c in result.candidates if c.parent_id == "c0"]
    assert len(branched) == 2  # the root was expanded twice over
    assert f"★ {result.final_id} · revise" in text and "mcts · " in text.splitlines()[0]


async def test_reflexion_shows_each_trial_as_a_branch() -> None:
    result, _ = await stream(search(Reflexion(trials=3), max_rounds=2))
    text = screen(result)
    assert [c.origin for c in result.candidates].count(Origin.REFLECT) == 2
    assert set(nodes(text)) == {c.id for c in result.candidates}
    assert hung_from(text) == {c.id: shown_parent_of(c) for c in result.candidates}
    for candidate in result.candidates:
        if candidate.origin is Origin.REFLECT:
            assert nodes(text)[candidate.id][2].startswith(f"reflect on {candidate.parent_id} · ")
    # Off the main line, the later trials are in the tree only.
    assert main_line(text) == result.chain == ["c0", "c1"]
    assert f"selected c1: {result.selected_because}" in text


async def test_a_critic_that_failed_is_marked_on_its_node() -> None:
    result, _ = await stream(search(TreeSearch(policy="beam"), climb, flaky_once, max_rounds=10))
    text = screen(result)
    shown = nodes(text)
    failed = [c for c in result.candidates if not c.judged]
    assert failed and all(c.depth == 1 for c in failed)
    for candidate in result.candidates:
        assert ("error (flaky_once)" in shown[candidate.id][2]) is (not candidate.judged)


async def test_a_large_tree_shows_the_main_line_and_counts_the_rest() -> None:
    strategy = TreeSearch(expand=4, width=4, max_depth=4)
    result, _ = await stream(search(strategy, plateau))
    assert len(result.candidates) == 68 > LARGE_TREE
    text = screen(result)
    shown = nodes(text)
    counted = sum(int(n) for n in MORE.findall(text))
    assert len(shown) + counted == len(result.candidates)  # each shown or counted, once
    assert set(result.chain) <= set(shown) and len(text.splitlines()) < 60
    by_id = {c.id: c for c in result.candidates}
    parents = hung_from(text)
    for id_ in shown:
        assert parents[id_] == by_id[id_].parent_id
        # Children show only under the main line.
        assert parents[id_] is None or parents[id_] in result.chain
    assert f"★ {result.final_id} · revise · 0.80 ✗" in text


async def test_the_notebook_view_holds_the_tree() -> None:
    result, _ = await stream(search(TreeSearch(policy="beam"), max_rounds=10))
    html = result._repr_html_()
    assert html == result_html(result) and "<pre" in html
    assert "beam · 21 candidates" in html and "└── " in html
    assert "★ " in html and "c20 · revise" in html
    refined, _ = await stream(refine_run())
    assert "└── " not in refined._repr_html_() and "Rounds" in refined._repr_html_()


async def test_a_chain_has_no_tree() -> None:
    result, _ = await stream(refine_run())
    assert not is_tree(result) and "└── " not in screen(result)
    unrefined, _ = await stream(search(BestOfN(1, refine=False)))
    assert not is_tree(unrefined)


# -- searches: live progress -----------------------------------------------------------------

CANDIDATE_LINE = re.compile(r"^  (c\d+) · (draft|revise of c\d+|reflect on c\d+) · (\d\.\d\d) ")


class Watched(ProgressView):
    """A progress view that keeps the status it showed after each event."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(title="t", **fields)
        self.statuses: list[str | None] = []

    def update(self, event: Event) -> None:
        super().update(event)
        self.statuses.append(self.status)


def candidate_lines(view: ProgressView) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in view.lines:
        match = CANDIDATE_LINE.match(line.plain)
        if match:
            assert match[1] not in found, f"{match[1]} shown twice"
            found[match[1]] = line.plain
    return found


async def test_a_searchs_progress_has_a_line_per_candidate_and_per_choice() -> None:
    view = Watched(critics=1)
    result, events = await stream(search(TreeSearch(policy="beam"), max_rounds=10), view)
    plain = [line.plain for line in view.lines]
    lines = candidate_lines(view)
    assert set(lines) == {c.id for c in result.candidates}
    for candidate in result.candidates:
        origin = "draft" if candidate.parent_id is None else f"revise of {candidate.parent_id}"
        mark = "✓" if candidate.passed else "✗"
        expected = f"  {candidate.id} · {origin} · {candidate.score:.2f} {mark}"
        assert lines[candidate.id].startswith(expected)
        assert ("needs more edits" in lines[candidate.id]) is (not candidate.passed)
    assert plain[0] == "drafting · 3 drafts"
    assert "expanding c0, c1, c2 · best c0 (0.20) · depth 0: keeping c0, c1, c2" in plain
    assert "expanding c9, c10, c11 · best c9 (0.70) · depth 2: keeping c9, c10, c11" in plain
    # No per-critic lines and no Refine round headings in a search.
    assert not any(p.startswith(("  climb  ", "round ")) for p in plain)
    assert plain[-2] == f"selected c15 (1.00) · {result.selected_because}"
    assert plain[-1] == "stop: passed · every critic passed (c15 passed)"
    assert view.status is None
    assert "depth 3 · 15 candidates judged · best c9 (0.70)" in view.statuses
    assert all(s is None or not s.startswith("round ") for s in view.statuses)
    assert len(plain) == len(result.candidates) + 4 + 2  # four choices, selected, stop
    assert sum(isinstance(e, SelectEvent) for e in events) == 5


async def test_a_candidates_line_names_the_critics_that_did_not_pass_it() -> None:
    view = ProgressView(title="t", critics=2)
    result, _ = await stream(search(TreeSearch(policy="beam"), climb, flaky_once), view)
    lines = candidate_lines(view)
    for candidate in result.candidates:
        line = lines[candidate.id]
        failed = " error · climb " if not candidate.judged else ""
        assert ("flaky_once error RuntimeError: flaky critic down" in line) is (
            not candidate.judged
        )
        assert failed in line
        assert "flaky_once 1.00" not in line  # a critic that passed is not listed


async def test_reflexions_progress_shows_each_fresh_attempt_and_why_it_stopped() -> None:
    view = ProgressView(title="t")
    result, _ = await stream(search(Reflexion(trials=3), max_rounds=2), view)
    lines = candidate_lines(view)
    assert lines["c2"].startswith("  c2 · reflect on c1 · 0.20 ✗")
    assert lines["c4"].startswith("  c4 · reflect on c3 · 0.20 ✗")
    plain = [line.plain for line in view.lines]
    assert (
        "expanding c1 · best c1 (0.45) · trial 1 failed (max_rounds): reflecting, then trial 2"
        in plain
    )
    assert plain[-1] == (
        "stop: exhausted · the search made every candidate it was to make (3 trials failed)"
    )
    assert plain[-2] == f"selected c1 (0.45) · {result.selected_because}"


async def test_mcts_says_once_what_it_expands() -> None:
    view = ProgressView(title="t")
    await stream(search(TreeSearch(policy="mcts")), view)
    plain = [line.plain for line in view.lines]
    assert plain[0] == "drafting · the root draft"
    assert "expanding c0 (UCT) · best c0 (0.20)" in plain


async def test_a_view_told_it_follows_a_search_shows_no_round_headings() -> None:
    # As when a search resumes: its drafts and critiques may come before any choice.
    result, events = await stream(search(BestOfN(2)))
    view = ProgressView(title="t", search=True)
    for event in events:
        if not isinstance(event, SelectEvent):
            view.update(event)
    plain = [line.plain for line in view.lines]
    assert CANDIDATE_LINE.match(plain[0]) and set(candidate_lines(view)) == {
        c.id for c in result.candidates
    }
    assert not any(p.startswith(("round ", "  climb ")) for p in plain)
    assert plain[-1] == "stop: passed · every critic passed"


def test_a_search_run_with_progress_prints_the_strategy_and_its_candidates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = search(TreeSearch(policy="mcts")).run("write it", progress=True)
    out = capsys.readouterr().out
    assert "redraft · mcts · expand 2, width 3, depth 4" in out
    assert all(f"  {c.id} · " in out for c in result.candidates)
    assert f"selected {result.final_id} (1.00)" in out and "stop: passed" in out
