"""Checkpointers for resumable runs: the embedded SQLite one, and the types they may load."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from redraft import types
from redraft.errors import ConfigError


def state_types() -> list[tuple[str, str]]:
    """(module, name) of every class a loop's state holds, for LangGraph's load allowlist."""
    classes = [
        value
        for value in vars(types).values()
        if isinstance(value, type)
        and issubclass(value, (BaseModel, Enum))
        and value.__module__ == types.__name__
    ]
    return [(cls.__module__, cls.__name__) for cls in classes]


def allow_state_types(checkpointer: BaseCheckpointSaver[Any]) -> BaseCheckpointSaver[Any]:
    """A user's checkpointer, told that redraft's types are safe to load."""
    with_allowlist = getattr(checkpointer, "with_allowlist", None)
    return checkpointer if with_allowlist is None else with_allowlist(state_types())


_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_checkpoint_path(path: str | Path) -> Path:
    """The embedded checkpointer's file, checked when a Refiner is built rather than at the
    first run: its folder exists, and it is a new file or an SQLite database (a text file
    that SQLite would take over is left alone)."""
    db_path = Path(path).expanduser()
    if db_path.is_dir():
        raise ConfigError(
            f"checkpointer {db_path} is a directory: give a file name, e.g. {db_path / 'runs.db'}"
        )
    parent = db_path.parent
    if not parent.is_dir():
        raise ConfigError(
            f"checkpointer {db_path}: folder {parent} does not exist; create it first "
            f"(mkdir -p {parent}) or give another path"
        )
    try:
        with db_path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return db_path
    except OSError as exc:
        raise ConfigError(
            f"cannot read checkpointer {db_path}: {exc.strerror or exc}; give another path"
        ) from None
    if head and head != _SQLITE_MAGIC:
        raise ConfigError(
            f"{db_path} is not a redraft checkpoint database (not an SQLite file) and was left "
            "as it is: give checkpointer= a new file name, e.g. 'runs.db'"
        )
    return db_path


def memory_checkpointer() -> BaseCheckpointSaver[Any]:
    """A checkpointer in memory, loading only redraft's own types: a run paused for a person
    can be resumed as long as the Refiner lives."""
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=state_types()))


@asynccontextmanager
async def sqlite_checkpointer(path: str | Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The embedded checkpointer: one SQLite file, loading only redraft's own types."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db_path = Path(path).expanduser()  # noqa: ASYNC240 - a stat call, once a run
    if not db_path.parent.is_dir():  # checked when built, but it may have gone since
        raise ConfigError(
            f"checkpoint folder does not exist: {db_path.parent}; create it or give another path"
        )
    serde = JsonPlusSerializer(allowed_msgpack_modules=state_types())
    try:
        conn = await aiosqlite.connect(db_path)
    except Exception as exc:  # sqlite3.Error and OSError both mean an unusable path
        raise ConfigError(f"cannot open checkpoint database {db_path}: {exc}") from exc
    try:
        saver = AsyncSqliteSaver(conn, serde=serde)
        try:
            await saver.setup()
        except Exception as exc:
            raise ConfigError(
                f"{db_path} is not a redraft checkpoint database ({exc}); "
                "pass a new path or the right file"
            ) from exc
        yield saver
    finally:
        await conn.close()
