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


@asynccontextmanager
async def sqlite_checkpointer(path: str | Path) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """The embedded checkpointer: one SQLite file, loading only redraft's own types."""
    import aiosqlite
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db_path = Path(path).expanduser()  # noqa: ASYNC240 - a stat call, once a run
    if not db_path.parent.is_dir():
        raise ConfigError(f"checkpoint folder does not exist: {db_path.parent}")
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
