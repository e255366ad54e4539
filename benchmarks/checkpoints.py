"""Checkpoint growth per round of a real run on the embedded SQLite checkpointer.

A `Refiner` with `checkpointer=<tmp>/runs.db` runs the full number of rounds: the actor and the
editor are `ScriptedModel`s answering with distinct texts of `--draft-mib` each, the critic an
`LLMCritic` on a scripted judge that never passes. After each round is on disk (measured when
the next edit is asked for; for the last round, when the run hands its result to the memory, a
stand-in that learns nothing), the write-ahead log is folded into the database
(`PRAGMA wal_checkpoint(TRUNCATE)`) and the file's size is read. The run's final step, which
writes the result, is shown on a line of its own: the file's growth from then to the end of the
run (if the memory is never called, what SQLite stores for that step: the last checkpoint and
the writes made from its parent). A round's new data is its draft's text plus its critiques
(as JSON). With `--given-draft` the first draft comes in the task (`Task(draft=...)`) instead
of from the actor; `--edit-mib` makes the editor's drafts another size (small edits of a large
given draft, say). Target: growth per round at most 2x the round's new data.

    python benchmarks/checkpoints.py [--draft-mib 5] [--rounds 5] [--given-draft] [--edit-mib M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, cast

# The same never-passing rubric verdict as the overhead benchmark's (this folder is on the
# path when a benchmark runs).
from overhead import VERDICT

from redraft import LLMCritic, LLMEditor, Refiner, ScriptedModel, Task
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall
from redraft.types import Round, StopEvent

MIB = 1024 * 1024
TARGET = 2.0
THREAD = "bench"


def text_of(index: int, size: int) -> str:
    """A distinct ASCII text of `size` bytes: no two drafts repeat, none is empty."""
    head = f"draft {index}: "
    filler = f"line {index} of a long draft that the critic will never accept.\n"
    body = filler * (max(size - len(head), 0) // len(filler) + 1)
    return (head + body)[:size]


def on_disk(db: Path) -> int:
    """Bytes the checkpoint database holds once its write-ahead log is folded in."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def stored_bytes(db: Path) -> tuple[int, int]:
    """Bytes of checkpoint blobs (with metadata) and of pending writes, as SQLite stores them."""
    with sqlite3.connect(db) as conn:
        (blobs,) = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(checkpoint) + LENGTH(metadata)), 0) FROM checkpoints"
        ).fetchone()
        (writes,) = conn.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes").fetchone()
    return int(blobs), int(writes)


def final_step_bytes(db: Path, thread_id: str) -> int:
    """Bytes stored for the run's last step: its checkpoint, and the writes made from its
    parent checkpoint (the last step's own output)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT checkpoint_id, parent_checkpoint_id, metadata, "
            "LENGTH(checkpoint) + LENGTH(metadata) FROM checkpoints "
            "WHERE thread_id = ? AND checkpoint_ns = ''",
            (thread_id,),
        ).fetchall()
        _, parent, _, blob = max(rows, key=lambda row: json.loads(row[2])["step"])
        (writes,) = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(value)), 0) FROM writes "
            "WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?",
            (thread_id, parent),
        ).fetchone()
    return int(blob) + int(writes)


class SizeAtFinish:
    """A memory that recalls and learns nothing: the run hands it the result just before its
    final step is checkpointed, which is when the last round's size is read."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.size: int | None = None

    def recall(self, task: Task, critiques: object = (), limit: int = 3) -> list[object]:
        return []

    def learn(self, result: object) -> None:
        self.size = on_disk(self.db)


def new_data(judged: Round) -> int:
    """What a round adds: its draft's text and its critiques."""
    critiques = sum(len(c.model_dump_json().encode()) for c in judged.critiques)
    return len(judged.draft.text.encode()) + critiques


async def measure(
    draft_bytes: int, edit_bytes: int, rounds: int, db: Path, given: bool
) -> tuple[list[int], int, list[int]]:
    """File size once each round is on disk, the final step's growth, each round's new data."""
    sizes: list[int] = []
    drafts = iter(range(10**9))

    def write(messages: list[Message], call: ScriptedCall) -> str:
        return text_of(next(drafts), draft_bytes)

    def edit(messages: list[Message], call: ScriptedCall) -> str:
        # Asked for an edit only once the round before is checkpointed (durability "sync").
        sizes.append(on_disk(db))
        return text_of(next(drafts), edit_bytes)

    at_finish = SizeAtFinish(db)
    refiner = Refiner(
        ScriptedModel(write, model_name="actor"),
        critics=[LLMCritic(ScriptedModel(lambda m, c: VERDICT, model_name="judge"))],
        editor=LLMEditor(ScriptedModel(edit, model_name="editor"), mode="rewrite"),
        max_rounds=rounds,
        patience=None,
        checkpointer=db,
        memory=cast(Any, at_finish),  # a stand-in with the memory's two methods
    )
    task = Task(
        instruction="Write a very long report.",
        draft=text_of(next(drafts), draft_bytes) if given else None,
    )
    result = None
    async for event in refiner.astream(task, thread_id=THREAD):
        if isinstance(event, StopEvent):
            result = event.result
    assert result is not None and len(result.rounds) == rounds, result
    end = on_disk(db)
    if at_finish.size is not None:
        sizes.append(at_finish.size)
    else:  # the memory was not called: the final step is what SQLite stores for it
        sizes.append(end - final_step_bytes(db, THREAD))
    return sizes, end - sizes[-1], [new_data(judged) for judged in result.rounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draft-mib", type=float, default=5.0, help="size of each draft")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--given-draft", action="store_true", help="the first draft comes in the task"
    )
    parser.add_argument(
        "--edit-mib",
        type=float,
        default=None,
        help="size of the editor's drafts (default: --draft-mib)",
    )
    args = parser.parse_args()
    draft_bytes = max(int(args.draft_mib * MIB), 1)
    edit_mib = args.draft_mib if args.edit_mib is None else args.edit_mib
    edit_bytes = max(int(edit_mib * MIB), 1)
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "runs.db"
        sizes, final, added = asyncio.run(
            measure(draft_bytes, edit_bytes, args.rounds, db, args.given_draft)
        )
        blobs, writes = stored_bytes(db)
    given = ", first draft given in the task" if args.given_draft else ""
    edits = f", {edit_mib:g} MiB edits" if edit_mib != args.draft_mib else ""
    print(
        f"checkpoint growth, SQLite checkpointer, {args.draft_mib:g} MiB drafts x "
        f"{args.rounds} rounds{given}{edits}"
    )
    print(f"{'round':<7}{'file':>12}{'growth':>12}{'new data':>12}{'ratio':>9}")
    ratios = []
    before = 0
    for index, (size, new) in enumerate(zip(sizes, added, strict=True)):
        ratios.append((size - before) / new)
        print(
            f"{index:<7}{size / MIB:>8.2f} MiB{(size - before) / MIB:>8.2f} MiB"
            f"{new / MIB:>8.2f} MiB{ratios[-1]:>8.2f}x"
        )
        before = size
    print(
        f"final step (writes the result): {final / MIB:.2f} MiB, "
        f"{final / sum(added):.2f}x the whole run's new data ({sum(added) / MIB:.2f} MiB)"
    )
    print(
        f"file at the end {(sizes[-1] + final) / MIB:.2f} MiB: checkpoint blobs "
        f"{blobs / MIB:.2f} MiB, pending writes {writes / MIB:.2f} MiB"
    )
    worst = max(ratios)
    verdict = "met" if worst <= TARGET else "NOT met"
    print(
        f"worst growth per round {worst:.2f}x the round's new data; "
        f"target <= {TARGET:g}x: {verdict}"
    )


if __name__ == "__main__":
    main()
