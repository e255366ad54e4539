"""How results and live progress look: a search's tree of candidates, Refine's chain."""

from __future__ import annotations

import io
import re

from rich.console import Console, RenderableType

from redraft import FunctionCritic, Refiner, Result, ScriptedModel
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall
from redraft.progress import ProgressView
from redraft.types import Event, StopEvent

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
