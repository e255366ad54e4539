"""The memory's SQLite file: corrections with their vectors, in WAL mode, safe to share.

A file is only ever written once it is known to be a redraft memory (or a new, empty file):
anything else, a corrupted file included, raises `MemoryFileError` and is left as it was.
Several processes may write the same file: writes take SQLite's write lock (BEGIN IMMEDIATE)
and wait for it, so none is lost.

A store opened `read_only` never writes or creates anything, so it reads a memory that is
not writable (a read-only file, folder or file system); one that does not exist yet reads
as empty. A store opened for writing refuses a read-only memory at once, saying so.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from redraft.errors import MemoryFileError
from redraft.memory.index import Keys, Vectors
from redraft.memory.records import Correction, new_id, now

APPLICATION_ID = 0x72647266  # "rdrf" in the SQLite header marks the file as ours
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 60_000
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_ROWS = 2**63 - 1  # SQLite's largest integer
_MEMORY_ENV = "REDRAFT_MEMORY"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE corrections (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    kind TEXT,
    tags TEXT NOT NULL,
    excerpt TEXT,
    problem TEXT NOT NULL,
    fix TEXT NOT NULL,
    revised TEXT,
    score_before REAL,
    score_after REAL,
    critic TEXT,
    models TEXT NOT NULL,
    run_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    use_count INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX corrections_kind ON corrections (kind);
CREATE INDEX corrections_critic ON corrections (critic);
CREATE TABLE deletions (seq INTEGER PRIMARY KEY AUTOINCREMENT, row INTEGER NOT NULL);
"""
_FIELDS = [
    "id",
    "task",
    "kind",
    "tags",
    "excerpt",
    "problem",
    "fix",
    "revised",
    "score_before",
    "score_after",
    "critic",
    "models",
    "run_id",
    "created_at",
    "updated_at",
    "use_count",
]
_COLUMNS = ", ".join(_FIELDS)


def default_path() -> Path:
    """$REDRAFT_MEMORY, else memory.db in the per-user data folder."""
    chosen = os.environ.get(_MEMORY_ENV)
    if chosen:
        return Path(chosen).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "redraft" / "memory.db"


@dataclass(frozen=True)
class Changes:
    """What other processes wrote since a sync: new rows (with vectors) and deleted rows."""

    keys: Keys
    vectors: Vectors
    deleted: list[int]
    last_seq: int
    last_deletion: int


class Store:
    """One SQLite connection, shared by threads under a lock."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        _check_file(self.path)
        self._lock = threading.RLock()
        if read_only:
            self._db = self._connect_read_only()
        else:
            self._db = self._connect()
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        problem = read_only_reason(self.path)
        if problem is not None:
            raise MemoryFileError(read_only_message(self.path, problem))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MemoryFileError(
                f"cannot create the folder of memory {self.path}: {exc.strerror or exc}; "
                "give another --db path"
            ) from None
        try:
            return sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise MemoryFileError(f"cannot open memory {self.path}: {exc}") from None

    def _connect_read_only(self) -> sqlite3.Connection:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return _empty()  # nothing stored yet, and reading creates no file
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            return _connect_uri(uri)
        except sqlite3.OperationalError:
            pass
        # A WAL file in a folder this process cannot write: readers need a shared-memory file
        # beside it that cannot be made. Read it as immutable: a snapshot, which is all a
        # listing or a search needs (no writer can reach the file without that folder either,
        # unless it is another user's).
        try:
            return _connect_uri(f"{uri}&immutable=1")
        except sqlite3.Error as exc:
            raise MemoryFileError(f"cannot open memory {self.path} to read it: {exc}") from None

    def _open(self) -> None:
        with self._errors():
            # Read-only checks first: a foreign database must not even get our journal mode.
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app_id != APPLICATION_ID and tables:
                raise MemoryFileError(
                    f"{self.path} is an SQLite database of another program, not a redraft "
                    "memory; give another --db path"
                )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if app_id != APPLICATION_ID:
                if self.read_only:  # an SQLite file with nothing in it: an empty memory
                    self._db.close()
                    self._db = _empty()
                    return
                self._create()
            self._check_version()
            # Finds a damaged file now, before anything is written to it.
            verdict = self._db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")

    def _create(self) -> None:
        with self._writing():
            # Another process may have created it while this one waited for the lock.
            if self._db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT INTO meta (key, value) VALUES ('uid', ?)", (new_id(),))
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise MemoryFileError(
                f"memory {self.path} has schema version {version}, this redraft reads "
                f"version {SCHEMA_VERSION}: upgrade redraft or give another --db path"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions and errors -----------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise MemoryFileError(
                    f"memory {self.path} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_MS // 1000}s: try again when it is done"
                ) from None
            reason = " ".join(str(exc).replace("*", "").split())
            if "readonly" in reason or "read-only" in reason or "unable to open" in reason:
                problem = read_only_reason(self.path)
                if problem is not None:
                    raise MemoryFileError(read_only_message(self.path, problem)) from None
            raise MemoryFileError(
                f"memory {self.path} is unreadable ({reason}); it was left as it is: restore "
                "it from a backup or an export, or give another --db path"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: holds SQLite's write lock from the start, so reads inside it
        see every committed write and no other writer can slip in between."""
        if self.read_only:
            raise MemoryFileError(
                f"memory {self.path} was opened read-only: open it without read_only to change it"
            )
        with self._writing() as db:
            yield db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._db

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self.reading() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def data_version(self) -> int:
        """Changes whenever another connection commits (SQLite's own counter)."""
        with self.reading() as db:
            version: int = db.execute("PRAGMA data_version").fetchone()[0]
        return version

    # -- records ---------------------------------------------------------------------------

    def insert(self, db: sqlite3.Connection, record: Correction, vector: Vectors) -> int:
        values = _row_values(record)
        cursor = db.execute(
            f"INSERT INTO corrections ({_COLUMNS}, vector) VALUES "
            f"({', '.join('?' * len(_FIELDS))}, ?)",
            (*values, vector.astype(np.float32).tobytes()),
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def merge(self, db: sqlite3.Connection, seq: int, record: Correction) -> None:
        """Count a near-identical correction learned again, keeping its best outcome."""
        db.execute(
            "UPDATE corrections SET use_count = use_count + ?, updated_at = ?, "
            "score_after = max(coalesce(score_after, ?), coalesce(?, score_after)) "
            "WHERE seq = ?",
            (record.use_count, now().isoformat(), record.score_after, record.score_after, seq),
        )

    def count_use(self, ids: Sequence[str]) -> None:
        """One more use of each correction: it was given to a run."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE corrections SET use_count = use_count + 1, updated_at = ? WHERE id = ?",
                [(now().isoformat(), record_id) for record_id in ids],
            )

    def delete(self, seqs: Sequence[int]) -> None:
        with self.transaction() as db:
            for seq in seqs:
                db.execute("DELETE FROM corrections WHERE seq = ?", (seq,))
                db.execute("INSERT INTO deletions (row) VALUES (?)", (seq,))

    def get(self, seqs: Sequence[int]) -> dict[int, Correction]:
        if not seqs:
            return {}
        marks = ", ".join("?" * len(seqs))
        with self.reading() as db:
            rows = db.execute(
                f"SELECT seq, {_COLUMNS} FROM corrections WHERE seq IN ({marks})", list(seqs)
            ).fetchall()
        return {row[0]: _record(row[1:]) for row in rows}

    def find(self, id_prefix: str) -> list[tuple[int, Correction]]:
        """Records whose id starts with `id_prefix` (ids are shown shortened)."""
        escaped = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.reading() as db:
            rows = db.execute(
                f"SELECT seq, {_COLUMNS} FROM corrections WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (escaped.lower() + "%",),
            ).fetchall()
        return [(row[0], _record(row[1:])) for row in rows]

    def matching(
        self, *, kind: str | None = None, critic: str | None = None, tags: Sequence[str] = ()
    ) -> set[int]:
        """The rows a filtered search may return."""
        where, params = _filters(kind, critic, tags)
        with self.reading() as db:
            rows = db.execute(f"SELECT seq FROM corrections WHERE {where}", params).fetchall()
        return {row[0] for row in rows}

    def records(
        self,
        *,
        kind: str | None = None,
        critic: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> Iterator[Correction]:
        """Records, newest first, streamed (an export may be large)."""
        where, params = _filters(kind, critic, tags)
        query = f"SELECT {_COLUMNS} FROM corrections WHERE {where} ORDER BY seq DESC"
        if limit is not None:
            # SQLite's LIMIT is a 64-bit integer: a larger one (asking for all) would fail
            # as a "datatype mismatch", which reads as a damaged file.
            query += f" LIMIT {min(int(limit), _MAX_ROWS)}"
        with self.reading() as db:
            rows = db.execute(query, params).fetchall()
        for row in rows:
            yield _record(row)

    def changes_since(self, last_seq: int, last_deletion: int, dimension: int) -> Changes:
        with self.reading() as db:
            rows = db.execute(
                "SELECT seq, vector FROM corrections WHERE seq > ? ORDER BY seq", (last_seq,)
            ).fetchall()
            deleted = db.execute(
                "SELECT seq, row FROM deletions WHERE seq > ? ORDER BY seq", (last_deletion,)
            ).fetchall()
        keys = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
        if vectors.size != len(rows) * dimension:
            raise MemoryFileError(
                f"memory {self.path} holds vectors of another size than {dimension}: it was "
                "changed outside redraft; rebuild it from an export"
            )
        return Changes(
            keys=keys,
            vectors=vectors.reshape(len(rows), dimension),
            deleted=[row[1] for row in deleted],
            last_seq=int(keys[-1]) if len(keys) else last_seq,
            last_deletion=deleted[-1][0] if deleted else last_deletion,
        )

    def stats(self) -> dict[str, Any]:
        with self.reading() as db:
            total, uses, first, last = db.execute(
                "SELECT count(*), coalesce(sum(use_count), 0), min(created_at), max(updated_at) "
                "FROM corrections"
            ).fetchone()
            kinds = db.execute(
                "SELECT coalesce(kind, ''), count(*) FROM corrections GROUP BY kind "
                "ORDER BY count(*) DESC"
            ).fetchall()
            critics = db.execute(
                "SELECT coalesce(critic, ''), count(*) FROM corrections GROUP BY critic "
                "ORDER BY count(*) DESC"
            ).fetchall()
        return {
            "corrections": total,
            "uses": uses,
            "oldest": first,
            "newest": last,
            "kinds": {k or "(none)": n for k, n in kinds},
            "critics": {c or "(none)": n for c, n in critics},
            "file_bytes": self.path.stat().st_size if self.path.is_file() else 0,
        }


def _connect_uri(uri: str) -> sqlite3.Connection:
    db = sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
    )
    try:
        db.execute("PRAGMA schema_version").fetchone()  # SQLite opens the file only now
    except BaseException:
        db.close()
        raise
    return db


def _empty() -> sqlite3.Connection:
    """An empty memory in RAM: what reading a memory that does not exist yet shows."""
    db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return db


def read_only_reason(path: Path) -> str | None:
    """Why this process cannot write the memory at `path`, or None if it can (a path whose
    folder does not exist yet is left to the folder's creation to judge)."""
    target = path if path.exists() else path.parent
    if not target.exists():
        return None
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return "it is on a read-only file system"
    except (AttributeError, OSError):  # no statvfs on Windows
        pass
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return f"its folder {path.parent} is not writable (SQLite writes its journal there)"
    return None


def read_only_message(path: Path, problem: str) -> str:
    fix = (
        "copy it to a writable place"
        if "file system" in problem
        else "make it writable (chmod u+w)"
        if "file is" in problem
        else "make the folder writable"
    )
    return (
        f"memory {path} is read-only ({problem}): {fix}, or give another --db path; "
        "reading it (memory list, show, search, stats, export) works as it is"
    )


def _check_file(path: Path) -> None:
    """Refuse what is not an SQLite file before SQLite sees it (it would only say 'not a
    database' on the first query, or treat some files as empty)."""
    if path.is_dir():
        raise MemoryFileError(f"memory path {path} is a directory: give a file path")
    if not path.exists():
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise MemoryFileError(f"cannot read memory {path}: {exc.strerror or exc}") from None
    if header and header != _SQLITE_MAGIC:
        raise MemoryFileError(
            f"{path} is not a redraft memory (not an SQLite database) and was left as it is; "
            "give another --db path"
        )


def _filters(kind: str | None, critic: str | None, tags: Sequence[str]) -> tuple[str, list[Any]]:
    clauses, params = ["1"], []
    if kind is not None:
        clauses.append("kind = ?")
        params.append(kind)
    if critic is not None:
        clauses.append("critic = ?")
        params.append(critic)
    for tag in tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        params.append(tag)
    return " AND ".join(clauses), params


def _row_values(record: Correction) -> tuple[Any, ...]:
    data = record.model_dump()
    data["tags"] = json.dumps(record.tags)
    data["models"] = json.dumps(record.models)
    data["created_at"] = record.created_at.isoformat()
    data["updated_at"] = record.updated_at.isoformat()
    return tuple(data[name] for name in _FIELDS)


def _record(row: Sequence[Any]) -> Correction:
    data = dict(zip(_FIELDS, row, strict=True))
    data["tags"] = json.loads(data["tags"])
    data["models"] = json.loads(data["models"])
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["updated_at"] = datetime.fromisoformat(data["updated_at"])
    return Correction.model_validate(data)
