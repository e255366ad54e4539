"""The in-memory vector index: exact cosine search, plus an HNSW index (usearch) once large.

Vectors are unit length, so cosine similarity is a dot product. Exact search reads every
vector (about 8 ms at 100k on two cores); past `approx_above` vectors an HNSW graph answers in
well under a millisecond, and its recall against exact search is measured by
benchmarks/memory.py. Building that graph takes a while (about a minute at 100k on two cores),
so it is saved next to the database and brought up to date when loaded, instead of rebuilt.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from usearch.index import Index

Keys = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]

APPROX_ABOVE = 20_000
# HNSW settings chosen with benchmarks/memory.py: recall@5 >= 0.95 on MiniLM vectors.
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 96
_OVERSAMPLE = 8  # a filtered approximate search fetches this many times more, then filters


class VectorIndex:
    """Unit vectors by integer key; `search` returns keys and cosine scores, best first."""

    def __init__(
        self,
        dimension: int,
        *,
        approx_above: int | None = APPROX_ABOVE,
        saved_at: Path | None = None,
    ) -> None:
        self.dimension = dimension
        self.approx_above = approx_above
        self.saved_at = saved_at  # where the approximate index is kept between processes
        self._unsaved = 0  # changes to the approximate index since it was last saved
        self._vectors: Vectors = np.empty((1024, dimension), dtype=np.float32)
        self._keys: Keys = np.empty(1024, dtype=np.int64)
        self._size = 0
        self._row: dict[int, int] = {}
        self._ann: Index | None = None

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        return key in self._row

    @property
    def approximate(self) -> bool:
        """Whether searches go through the HNSW index (built on the first large search)."""
        return self._ann is not None

    def add(self, keys: Keys, vectors: Vectors) -> None:
        if len(keys) == 0:
            return
        needed = self._size + len(keys)
        if needed > len(self._keys):
            capacity = max(needed, 2 * len(self._keys))
            self._vectors = _grown(self._vectors, capacity)
            self._keys = np.resize(self._keys, capacity)
        start = self._size
        self._vectors[start:needed] = vectors
        self._keys[start:needed] = keys
        for offset, key in enumerate(keys.tolist()):
            self._row[key] = start + offset
        self._size = needed
        if self._ann is not None:
            self._ann.add(keys, vectors)
            self._unsaved += len(keys)

    def remove(self, keys: Collection[int]) -> None:
        present = [key for key in keys if key in self._row]
        for key in present:
            # Move the last row into the hole, so the live rows stay one dense block.
            row, last = self._row.pop(key), self._size - 1
            if row != last:
                moved = int(self._keys[last])
                self._vectors[row] = self._vectors[last]
                self._keys[row] = moved
                self._row[moved] = row
            self._size = last
        if self._ann is not None and present:
            self._ann.remove(np.asarray(present, dtype=np.int64))
            self._unsaved += len(present)

    def vector(self, key: int) -> Vectors:
        row: Vectors = self._vectors[self._row[key]]
        return row

    def search(
        self, query: Vectors, count: int, *, allowed: Collection[int] | None = None
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        """The `count` nearest keys (only those in `allowed`, when given) and their scores."""
        if self._size == 0 or count <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if self.approx_above is not None and self._size >= self.approx_above:
            found = self._search_approx(query, count, allowed)
            if found is not None:
                return found
        return self.exact(query, count, allowed=allowed)

    def exact(
        self, query: Vectors, count: int, *, allowed: Collection[int] | None = None
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        if allowed is None:
            keys, vectors = self._keys[: self._size], self._vectors[: self._size]
        else:
            rows = np.fromiter((self._row[k] for k in allowed if k in self._row), dtype=np.int64)
            keys, vectors = self._keys[rows], self._vectors[rows]
        scores = vectors @ query
        count = min(count, len(scores))
        if count == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top], kind="stable")]
        return keys[top], scores[top].astype(np.float32)

    def nearest_many(self, queries: Vectors, count: int) -> tuple[Keys, Vectors]:
        """The `count` nearest keys of each query (one row each, unordered) and their scores;
        through the approximate index once large, so a big ingest stays fast."""
        count = min(count, self._size)
        if count == 0:
            empty = np.empty((len(queries), 0))
            return empty.astype(np.int64), empty.astype(np.float32)
        if self.approx_above is not None and self._size >= self.approx_above:
            matches = (self._ann or self._build()).search(queries, count)
            distances = np.asarray(matches.distances, dtype=np.float32).reshape(-1, count)
            keys: Keys = np.asarray(matches.keys, dtype=np.int64).reshape(-1, count)
            return keys, (1.0 - distances).astype(np.float32)
        found_keys, found_scores = [], []
        # In slices, so the score matrix stays near 64 MB however large the store.
        step = max(1, 16_000_000 // self._size)
        for start in range(0, len(queries), step):
            scores = queries[start : start + step] @ self._vectors[: self._size].T
            top = np.argpartition(-scores, count - 1, axis=1)[:, :count]
            found_keys.append(self._keys[top])
            found_scores.append(np.take_along_axis(scores, top, axis=1))
        return np.concatenate(found_keys), np.concatenate(found_scores)

    def _search_approx(
        self, query: Vectors, count: int, allowed: Collection[int] | None
    ) -> tuple[Keys, npt.NDArray[np.float32]] | None:
        ann = self._ann or self._build()
        wanted = count if allowed is None else count * _OVERSAMPLE
        matches = ann.search(query, min(wanted, self._size))
        keys = np.asarray(matches.keys, dtype=np.int64)
        scores = (1.0 - np.asarray(matches.distances, dtype=np.float32)).astype(np.float32)
        if allowed is not None:
            keep = np.fromiter((int(k) in allowed for k in keys), dtype=bool, count=len(keys))
            keys, scores = keys[keep], scores[keep]
            if len(keys) < min(count, len(allowed)):
                return None  # a narrow filter: the exact search over its subset is cheap
        return keys[:count], scores[:count]

    def _build(self) -> Index:
        ann = self._restore()
        built = ann is None
        if ann is None:
            from usearch.index import Index

            ann = Index(
                ndim=self.dimension,
                metric="cos",
                dtype="f32",
                connectivity=CONNECTIVITY,
                expansion_add=EXPANSION_ADD,
                expansion_search=EXPANSION_SEARCH,
            )
            ann.add(self._keys[: self._size], self._vectors[: self._size])
        self._ann = ann
        self.save(force=built)  # a build is the slow part: keep it
        return ann

    def _restore(self) -> Index | None:
        """The saved approximate index, brought up to date with the vectors held here."""
        if self.saved_at is None or not self.saved_at.is_file():
            return None
        from usearch.index import Index

        try:
            ann = Index.restore(self.saved_at)
        except (RuntimeError, ValueError, OSError):
            return None  # unreadable: it is only a cache, so build anew
        if ann is None or ann.ndim != self.dimension:
            return None
        # A saved index keeps its graph, not these settings. (usearch's stubs omit the setters.)
        ann.expansion_add = EXPANSION_ADD  # type: ignore[misc]
        ann.expansion_search = EXPANSION_SEARCH  # type: ignore[misc]
        saved = np.asarray(ann.keys, dtype=np.int64)
        live = self._keys[: self._size]
        stale, missing = np.setdiff1d(saved, live), np.setdiff1d(live, saved)
        if len(stale):
            ann.remove(stale)
        if len(missing):
            ann.add(missing, self._vectors[[self._row[k] for k in missing.tolist()]])
        self._unsaved = len(stale) + len(missing)
        return ann

    def save(self, *, force: bool = False) -> None:
        """Save the approximate index when enough changed since it was last saved (each load
        catches up on the rest), or when `force`d."""
        if self._ann is None or self.saved_at is None:
            return
        if not force and self._unsaved < max(1000, self._size // 20):
            return
        partial = self.saved_at.with_name(f"{self.saved_at.name}.{os.getpid()}.partial")
        try:
            self._ann.save(partial)
            os.replace(partial, self.saved_at)  # readers see the old file or the new, whole
        except (RuntimeError, OSError):
            # Only a cache: the next process builds the index again.
            partial.unlink(missing_ok=True)
            return
        self._unsaved = 0


def _grown(vectors: Vectors, capacity: int) -> Vectors:
    grown = np.empty((capacity, vectors.shape[1]), dtype=np.float32)
    grown[: len(vectors)] = vectors
    return grown
