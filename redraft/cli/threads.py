"""The runs the CLI checkpoints: which command started each thread, and with what settings.

A checkpoint holds a run's state and task, not how its agents were made (models, critics,
budgets). `refine --checkpoint` and `code --checkpoint` keep their settings in a table of
their own in the same SQLite file, so that `redraft resume THREAD` rebuilds the same run.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redraft.checkpoints import check_checkpoint_path
from redraft.errors import ConfigError

TABLE = "redraft_cli_runs"
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (thread_id TEXT PRIMARY KEY, command TEXT NOT NULL, "
    "settings TEXT NOT NULL, created_at REAL NOT NULL, finished TEXT)"
)


@dataclass(frozen=True)
class Thread:
    """A checkpointed CLI run: its id, the command that started it and its settings."""

    thread_id: str
    command: str
    settings: dict[str, Any]
    finished: str | None  # the stop reason once the run has ended


def new_thread_id() -> str:
    return uuid.uuid4().hex[:12]


def start(db: Path, thread_id: str, command: str, settings: dict[str, Any]) -> None:
    """Record a new thread before its run starts; a thread id in use is refused."""
    with _connect(db) as conn:
        conn.execute(_SCHEMA)
        taken = conn.execute(
            f"SELECT command FROM {TABLE} WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        if taken is not None or _has_checkpoints(conn, thread_id):
            raise ConfigError(
                f"thread '{thread_id}' already exists in {db}: continue it with "
                f"'redraft resume {thread_id} --checkpoint {db}', or give another --thread-id"
            )
        conn.execute(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, NULL)",
            (thread_id, command, json.dumps(settings), time.time()),
        )


def finish(db: Path, thread_id: str, stop_reason: str) -> None:
    """Mark the thread's run as ended, so that resuming it is refused with why."""
    with _connect(db) as conn:
        conn.execute(
            f"UPDATE {TABLE} SET finished = ? WHERE thread_id = ?", (stop_reason, thread_id)
        )


def find(db: Path, thread_id: str) -> Thread:
    """The thread to resume, or a ConfigError saying why there is none."""
    if not db.exists():
        raise ConfigError(f"checkpoint file {db} does not exist: give the file the run used")
    check_checkpoint_path(db)
    with _connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        row = None
        if TABLE in tables:
            row = conn.execute(
                f"SELECT command, settings, finished FROM {TABLE} WHERE thread_id = ?",
                (thread_id,),
            ).fetchone()
        if row is None:
            if "checkpoints" in tables and _has_checkpoints(conn, thread_id):
                raise ConfigError(
                    f"thread '{thread_id}' in {db} was not started by the CLI, so its "
                    "settings are unknown: resume it from Python with Refiner(..., "
                    f"checkpointer='{db}').resume('{thread_id}')"
                )
            raise ConfigError(
                f"no run with thread id '{thread_id}' in {db}: check the id (refine and code "
                "print it when they start)"
            )
    command, settings, finished = row
    return Thread(thread_id, command, json.loads(settings), finished)


def _has_checkpoints(conn: sqlite3.Connection, thread_id: str) -> bool:
    try:
        found = conn.execute(
            "SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (thread_id,)
        ).fetchone()
    except sqlite3.OperationalError:  # no checkpoints table yet: a new file
        return False
    return found is not None


def _connect(db: Path) -> closing[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(db, timeout=30)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open checkpoint file {db}: {exc}") from None
    conn.isolation_level = None  # each statement commits on its own
    return closing(conn)


def checkpoint_of(checkpoint: Path | None, thread_id: str | None) -> Path | None:
    """--checkpoint checked before anything runs; --thread-id without it is refused."""
    if checkpoint is None:
        if thread_id is not None:
            raise ConfigError(
                "--thread-id names a run in a checkpoint file: give --checkpoint FILE too"
            )
        return None
    if thread_id is not None and not thread_id.strip():
        raise ConfigError("--thread-id is empty: give an id, or leave it out for a new one")
    return check_checkpoint_path(checkpoint).resolve()
