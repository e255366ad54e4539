"""`CorrectionMemory`: store, embed and retrieve past corrections.

Retrieval is scoped: only hits at or above a cosine threshold count (verbal feedback
over-generalises to unrelated tasks), near-duplicate hits are shown once, and a task's `kind`
limits a run's lessons to corrections of the same kind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import ValidationError

from redraft.checks import flag, kind_of, number, shown, whole_number
from redraft.errors import ConfigError, EmbeddingModelMismatch, MemoryFileError
from redraft.memory.embedder import Embedder, Vectors
from redraft.memory.index import APPROX_ABOVE, VectorIndex
from redraft.memory.learn import corrections_from, problems_of
from redraft.memory.records import Correction, Hit
from redraft.memory.store import Store, default_path
from redraft.types import Critique, Lesson, Result, Task

MIN_SCORE = 0.3
DUPLICATE_SCORE = 0.95
_CANDIDATES = 4  # a search looks at this many times k, so dropping duplicates still leaves k
_MERGE_CANDIDATES = 8


class CorrectionMemory:
    """A memory of past corrections in an SQLite file, searched by meaning.

    `path` defaults to $REDRAFT_MEMORY or the per-user data folder. `model` is any
    sentence-transformers model name or folder, or an `Embedder`; left out, it is the model
    the file was built with (all-MiniLM-L6-v2 for a new file). A different model than the
    file's raises `EmbeddingModelMismatch`: vectors of two models cannot be compared.

    `min_score` is the relevance threshold, `duplicate_score` the similarity above which two
    hits count as one and a new correction merges into the old one (its `use_count` grows).
    The model loads on the first embedding (looked for on disk and in the Hugging Face cache
    first, so a wrong name fails in one line), the vectors on the first search. A new file
    records its model with its first vectors: a model that never loaded leaves no name behind.

    `read_only=True` reads without writing or creating anything, so a memory that is not
    writable can still be listed and searched (one that does not exist reads as empty); it
    lends its lessons to runs and learns nothing from them. Opened for writing, a memory that
    is not writable raises `MemoryFileError` saying it is read-only.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        model: str | Path | Embedder | None = None,
        *,
        min_score: float = MIN_SCORE,
        duplicate_score: float = DUPLICATE_SCORE,
        approx_above: int | None = APPROX_ABOVE,
        read_only: bool = False,
    ) -> None:
        if not 0.0 <= min_score <= 1.0 or not 0.0 < duplicate_score <= 1.0:
            raise ConfigError("min_score and duplicate_score are cosine similarities in 0..1")
        if path is not None and not isinstance(path, (str, Path)):
            raise ConfigError(
                "path must be the path of the memory's database file (e.g. 'memory.db'), or "
                f"None for the default one; got {kind_of(path)} {shown(path)}"
            )
        if not isinstance(model, (str, Path, Embedder)) and model is not None:
            raise ConfigError(
                "model must be a sentence-transformers model name or folder, or an Embedder; "
                f"got {kind_of(model)} {shown(model)}"
            )
        if isinstance(model, str) and not model.strip():
            raise ConfigError(
                "model is empty: give a sentence-transformers model name or folder, or leave "
                "it None for the memory's own"
            )
        flag("read_only", read_only)
        self.min_score = min_score
        self.duplicate_score = duplicate_score
        self.read_only = read_only
        self._store = Store(default_path() if path is None else path, read_only=read_only)
        self.path = self._store.path
        try:
            self.embedder = self._choose_embedder(model)
        except BaseException:
            self._store.close()
            raise
        self._approx_above = approx_above
        self._index: VectorIndex | None = None
        self._seen_version = -1
        self._last_seq = 0
        self._last_deletion = 0
        self._lock = threading.RLock()

    def _choose_embedder(self, model: str | Path | Embedder | None) -> Embedder:
        chosen = model if isinstance(model, Embedder) else Embedder(model)
        recorded = self._store.meta("model")
        if recorded is None or chosen.name == recorded:
            return chosen  # a new memory records its model with its first vectors (`_embed`)
        if model is None:
            return Embedder(recorded)
        raise self._mismatch(recorded, chosen.name)

    def _mismatch(self, recorded: str, chosen: str) -> EmbeddingModelMismatch:
        return EmbeddingModelMismatch(
            f"memory {self.path} was built with embedding model {recorded!r}, not "
            f"{chosen!r}: use model={recorded!r} (--model), leave the model unset, "
            "or give another --db path"
        )

    # -- context and size ------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._index is not None and not self.read_only:
                self._index.save()
        self._store.close()

    def __enter__(self) -> CorrectionMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        with self._store.reading() as db:
            count: int = db.execute("SELECT count(*) FROM corrections").fetchone()[0]
        return count

    def __repr__(self) -> str:
        return f"CorrectionMemory({str(self.path)!r}, model={self.embedder.name!r})"

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        task: str,
        problem: str,
        fix: str = "",
        *,
        excerpt: str | None = None,
        revised: str | None = None,
        kind: str | None = None,
        tags: Sequence[str] = (),
        critic: str | None = None,
        score_before: float | None = None,
        score_after: float | None = None,
        models: Sequence[str] = (),
        run_id: str | None = None,
    ) -> Correction:
        """Store one correction, or count it on a near-identical one; returns what is stored."""
        for name, names in (("tags", tags), ("models", models)):
            if isinstance(names, str):
                raise ConfigError(f"{name} must be a list of strings, e.g. {name}=[{names!r}]")
        tags = list(tags)
        for name, value in (("kind", kind), ("critic", critic)):
            if isinstance(value, str) and not value.strip():
                raise ConfigError(f"{name} is empty: give a name, or leave it None")
        if any(isinstance(tag, str) and not tag.strip() for tag in tags):
            raise ConfigError(f"tags holds an empty tag: give each tag a name; got {shown(tags)}")
        try:
            record = Correction(
                task=task,
                problem=problem,
                fix=fix,
                excerpt=excerpt,
                revised=revised,
                kind=kind,
                tags=list(tags),
                critic=critic,
                score_before=score_before,
                score_after=score_after,
                models=list(models),
                run_id=run_id,
            )
        except ValidationError as exc:
            raise ConfigError(_first_error(exc)) from None
        return self.add_many([record])[0]

    def add_many(self, records: Sequence[Correction]) -> list[Correction]:
        """Store corrections, embedded in one batch; an id already stored is kept as it is,
        and a near-identical correction (stored or earlier in `records`) is counted instead."""
        if not records:
            return []
        vectors = self._embed([r.key_text for r in records])
        stored: list[int] = []
        inserted: list[int] = []  # positions in `records`
        with self._lock, self._store.transaction() as db:
            index = self._sync(force=True)
            # The merge candidates of the whole batch at once, not one search each.
            near_keys, near_scores = index.nearest_many(vectors, _MERGE_CANDIDATES)
            within = vectors @ vectors.T
            try:
                for position, record in enumerate(records):
                    close = near_keys[position][near_scores[position] >= self.duplicate_score]
                    earlier = {
                        stored[j]: records[j]
                        for j in inserted
                        if within[position, j] >= self.duplicate_score
                    }
                    seq, new = self._add_one(db, record, vectors[position], close.tolist(), earlier)
                    if new:
                        inserted.append(position)
                    stored.append(seq)
            except BaseException:
                self._index = None  # rolled back: reload from the file on next use
                raise
            if inserted:
                keys = np.array([stored[j] for j in inserted], dtype=np.int64)
                index.add(keys, vectors[inserted])
                self._last_seq = int(keys[-1])
        found = self._store.get(stored)
        return [found[seq] for seq in stored]

    def _add_one(
        self,
        db: Any,
        record: Correction,
        vector: Vectors,
        close: list[int],
        earlier: dict[int, Correction],
    ) -> tuple[int, bool]:
        """The row that holds `record` now, and whether it is a new row."""
        row = db.execute("SELECT seq FROM corrections WHERE id = ?", (record.id,)).fetchone()
        if row is not None:
            return int(row[0]), False
        candidates = {**self._store.get(close), **earlier}
        for seq, other in candidates.items():
            if other.kind == record.kind and other.says_the_same_as(record):
                self._store.merge(db, seq, record)
                return seq, False
        return self._store.insert(db, record, vector), True

    def delete(self, record_id: str) -> Correction:
        """Delete one correction by id (or a unique start of it); returns what was deleted."""
        seq, record = self._find(record_id)
        with self._lock:
            self._store.delete([seq])
            if self._index is not None:
                self._index.remove([seq])
        return record

    # -- reading ---------------------------------------------------------------------------

    def get(self, record_id: str) -> Correction:
        """One correction by id, or by a unique start of it (as `list` shows ids)."""
        return self._find(record_id)[1]

    def _find(self, record_id: str) -> tuple[int, Correction]:
        if not isinstance(record_id, str):
            raise ConfigError(
                f"a correction's id is a string (or its first letters); got {shown(record_id)}"
            )
        prefix = record_id.strip()
        if len(prefix) < 4:
            raise ConfigError("give at least 4 characters of a correction's id")
        found = self._store.find(prefix)
        if not found:
            raise ConfigError(f"no correction with id {prefix!r} in {self.path}")
        if len(found) > 1:
            raise ConfigError(f"more than one correction's id starts with {prefix!r}: give more")
        return found[0]

    def records(
        self,
        *,
        kind: str | None = None,
        critic: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> Iterator[Correction]:
        """Stored corrections, newest first."""
        whole_number("limit", limit, minimum=0, optional="no limit", example=50)
        return self._store.records(kind=kind, critic=critic, tags=tags, limit=limit)

    def stats(self) -> dict[str, Any]:
        stats = self._store.stats()
        stats["path"] = str(self.path)
        stats["model"] = self.embedder.name
        stats["dimension"] = int(self._store.meta("dimension") or 0) or None
        return stats

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        min_score: float | None = None,
        kind: str | None = None,
        critic: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[Hit]:
        """The `k` corrections most similar to `query` at or above the relevance threshold,
        best first, near-duplicates shown once. Filters: task kind, critic, tags (all of)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be at least 1, a whole number such as k=5; got {shown(k)}")
        number(
            "min_score",
            min_score,
            minimum=-1.0,
            maximum=1.0,
            meaning="a cosine similarity",
            optional="the memory's own",
        )
        if not isinstance(query, str):
            raise ConfigError(f"the query must be a string; got {kind_of(query)} {shown(query)}")
        if not query.strip():
            raise ConfigError("the query is empty: say what to look for")
        vector = self._embed([query])[0]
        return self.search_vector(
            vector, k, min_score=min_score, kind=kind, critic=critic, tags=tags
        )

    def search_vector(
        self,
        vector: Vectors,
        k: int = 5,
        *,
        min_score: float | None = None,
        kind: str | None = None,
        critic: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[Hit]:
        """`search` with a query already embedded by this memory's model (unit length)."""
        threshold = self.min_score if min_score is None else min_score
        if self._store.meta("dimension") is None:
            return []  # nothing was ever embedded: an empty memory (read-only, else recorded)
        filtered = kind is not None or critic is not None or bool(tags)
        allowed = self._store.matching(kind=kind, critic=critic, tags=tags) if filtered else None
        with self._lock:
            index = self._sync()
            keys, scores = index.search(vector, k * _CANDIDATES, allowed=allowed)
            relevant = [
                (key, score)
                for key, score in zip(keys.tolist(), scores.tolist(), strict=True)
                if score >= threshold
            ]
            vectors = {key: index.vector(key).copy() for key, _ in relevant}
        records = self._store.get([key for key, _ in relevant])
        hits: list[Hit] = []
        shown: list[tuple[int, Hit]] = []
        for key, score in relevant:
            record = records.get(key)  # None: deleted by another process meanwhile
            if record is None or any(
                float(vectors[key] @ vectors[seq]) >= self.duplicate_score
                and record.says_the_same_as(other.record)
                for seq, other in shown
            ):
                continue
            hits.append(Hit(record, score))
            shown.append((key, hits[-1]))
            if len(hits) == k:
                break
        return hits

    # -- the loop's side -------------------------------------------------------------------

    def recall(self, task: Task, critiques: Sequence[Critique] = (), k: int = 3) -> list[Lesson]:
        """Lessons for a run: corrections relevant to the task (and to what its critics just
        said, when revising), of the task's kind when it has one; each use is counted."""
        query = "\n".join([task.instruction, *problems_of(critiques)])
        kind = task.metadata.get("kind")
        hits = self.search(query, k, kind=kind if isinstance(kind, str) else None)
        if not hits:
            return []
        if not self.read_only:
            self._store.count_use([hit.record.id for hit in hits])
        return [hit.record.lesson(hit.score) for hit in hits]

    def learn(self, result: Result) -> list[Correction]:
        """Store the corrections a finished run made: issues that a revision improved on
        (none with `read_only`: the run's result must not be lost to a refused write)."""
        if self.read_only:
            return []
        return self.add_many(corrections_from(result))

    # -- JSONL -----------------------------------------------------------------------------

    def export_jsonl(self, out: IO[str]) -> int:
        """Write every correction as one JSON line (no vectors: they depend on the model)."""
        count = 0
        for record in self._store.records():
            out.write(record.model_dump_json() + "\n")
            count += 1
        return count

    def import_jsonl(self, lines: Iterable[str], *, batch: int = 256) -> tuple[int, int]:
        """Add corrections from JSON lines; returns (lines read, records now stored anew).
        Ids already in the memory are skipped, near-identical lessons merged."""
        if isinstance(lines, str):  # the whole text, not its lines
            lines = lines.splitlines()
        read, pending, before = 0, [], len(self)
        for line_number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                pending.append(Correction.model_validate_json(line))
            except ValidationError as exc:
                raise ConfigError(
                    f"line {line_number} is not a correction ({_first_error(exc)}): give one "
                    "JSON object per line, as `redraft memory export` writes them"
                ) from None
            read += 1
            if len(pending) >= batch:
                self.add_many(pending)
                pending = []
        self.add_many(pending)
        return read, len(self) - before

    # -- vectors ---------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> Vectors:
        vectors = self.embedder.embed(texts)
        dim = vectors.shape[1]
        model, recorded = self._store.meta("model"), self._store.meta("dimension")
        if (model is None or recorded is None) and not self.read_only:
            with self._store.transaction() as db:
                # Re-read under the write lock: another process may have just recorded them.
                model, recorded = self._store.meta("model"), self._store.meta("dimension")
                if model is None:
                    self._store.set_meta(db, "model", self.embedder.name)
                elif model != self.embedder.name:
                    raise self._mismatch(model, self.embedder.name)
                if recorded is None:
                    self._store.set_meta(db, "dimension", str(dim))
                    recorded = str(dim)
        if recorded is not None and int(recorded) != dim:
            raise EmbeddingModelMismatch(
                f"memory {self.path} holds {recorded}-dimensional vectors but model "
                f"{self.embedder.name!r} makes {dim}-dimensional ones: give another --db path"
            )
        return vectors

    def _index_path(self) -> Path | None:
        """Where the approximate index is saved: named after this database's own id, so a
        database replaced by another never picks up the old one's index."""
        uid = self._store.meta("uid")
        return None if uid is None else _index_saved_at(self.path, uid)

    def _sync(self, *, force: bool = False) -> VectorIndex:
        """The index, brought up to date with what other processes wrote (cheap when none)."""
        version = self._store.data_version()
        if self._index is not None and not force and version == self._seen_version:
            return self._index
        if self._index is None:
            dim = self._store.meta("dimension")
            if dim is None:  # pragma: no cover - embedding records it before any search
                raise MemoryFileError(f"memory {self.path} has no vector size recorded")
            self._index = VectorIndex(
                int(dim), approx_above=self._approx_above, saved_at=self._index_path()
            )
            self._last_seq = self._last_deletion = 0
        changes = self._store.changes_since(
            self._last_seq, self._last_deletion, self._index.dimension
        )
        self._index.remove(changes.deleted)
        fresh = [i for i, key in enumerate(changes.keys.tolist()) if key not in self._index]
        self._index.add(changes.keys[fresh], changes.vectors[fresh])
        self._last_seq, self._last_deletion = changes.last_seq, changes.last_deletion
        self._seen_version = version
        return self._index


def _index_saved_at(path: Path, uid: str) -> Path:
    return path.with_name(f"{path.name}-hnsw-{uid[:12]}")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")  # pydantic's prefix, noise here
    return f"{where}: {message}" if where else message
