"""The vector index: exact search, the approximate (HNSW) index's recall against it, and
incremental updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from redraft.memory.index import VectorIndex

DIM = 64


def clustered(count: int, seed: int) -> npt.NDArray[np.float32]:
    """Unit vectors in clusters, like embeddings of texts on a few hundred topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM))
    vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.normal(size=(count, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def saved_keys(path: Path) -> set[int]:
    from usearch.index import Index

    restored = Index.restore(path)
    assert restored is not None
    return set(np.asarray(restored.keys).tolist())


def test_exact_search_returns_the_nearest_in_order() -> None:
    vectors = clustered(500, seed=1)
    index = VectorIndex(DIM, approx_above=None)
    index.add(np.arange(500, dtype=np.int64) + 1000, vectors)
    keys, scores = index.search(vectors[42], 5)
    assert keys[0] == 1042
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    expected = np.argsort(-(vectors @ vectors[42]))[:5] + 1000
    assert keys.tolist() == expected.tolist()
    assert list(scores) == sorted(scores, reverse=True)


def test_approximate_recall_at_5_against_exact_search() -> None:
    vectors = clustered(6000, seed=2)
    queries = clustered(200, seed=3)
    keys = np.arange(len(vectors), dtype=np.int64)
    index = VectorIndex(DIM, approx_above=1000)
    index.add(keys, vectors)
    found = 0
    for query in queries:
        approx, _ = index.search(query, 5)
        exact, _ = index.exact(query, 5)
        found += len(set(approx.tolist()) & set(exact.tolist()))
    assert index.approximate
    assert found / (5 * len(queries)) >= 0.95


def test_removed_and_added_vectors_are_searched_correctly_both_ways() -> None:
    vectors = clustered(3000, seed=4)
    for approx_above in (None, 100):
        index = VectorIndex(DIM, approx_above=approx_above)
        index.add(np.arange(2000, dtype=np.int64), vectors[:2000])
        index.search(vectors[0], 1)  # builds the approximate index when enabled
        index.remove([0, 5, 1999])
        index.add(np.arange(2000, 3000, dtype=np.int64), vectors[2000:])
        assert len(index) == 2997
        assert 0 not in index and 1999 not in index and 2500 in index
        keys, _ = index.search(vectors[0], 3)
        assert 0 not in keys.tolist()
        keys, scores = index.search(vectors[2500], 1)
        assert keys.tolist() == [2500] and scores[0] == pytest.approx(1.0, abs=1e-3)
        # A moved row (the last one fills a hole) still holds its own vector.
        assert np.allclose(index.vector(2999), vectors[2999])


def test_a_filtered_search_only_returns_allowed_keys() -> None:
    vectors = clustered(3000, seed=5)
    index = VectorIndex(DIM, approx_above=100)
    index.add(np.arange(3000, dtype=np.int64), vectors)
    allowed = set(range(0, 3000, 7))
    for query in vectors[:20]:
        keys, _ = index.search(query, 5, allowed=allowed)
        assert len(keys) == 5 and set(keys.tolist()) <= allowed
        exact, _ = index.exact(query, 5, allowed=allowed)
        assert keys[0] == exact[0]
    assert index.search(vectors[0], 5, allowed=set())[0].size == 0


def test_a_saved_approximate_index_is_restored_and_brought_up_to_date(tmp_path: Path) -> None:
    saved = tmp_path / "memory.db-hnsw"
    vectors = clustered(3000, seed=6)
    first = VectorIndex(DIM, approx_above=100, saved_at=saved)
    first.add(np.arange(2000, dtype=np.int64), vectors[:2000])
    first.search(vectors[0], 5)  # builds, and saves since building is the slow part
    assert saved_keys(saved) == set(range(2000))

    # Another process: the file has lost some rows and gained others since.
    later = VectorIndex(DIM, approx_above=100, saved_at=saved)
    later.add(np.arange(100, 3000, dtype=np.int64), vectors[100:])
    for query in (vectors[5], vectors[2500], vectors[1500]):
        keys, _ = later.search(query, 5)
        exact, _ = later.exact(query, 5)
        assert keys[0] == exact[0]
        assert not set(keys.tolist()) & set(range(100))
    assert later.approximate
    # 1100 changes since the save: enough to save it again, up to date.
    assert saved_keys(saved) == set(range(100, 3000))


def test_an_unreadable_saved_index_is_rebuilt(tmp_path: Path) -> None:
    saved = tmp_path / "memory.db-hnsw"
    saved.write_bytes(b"not an index")
    vectors = clustered(500, seed=7)
    index = VectorIndex(DIM, approx_above=100, saved_at=saved)
    index.add(np.arange(500, dtype=np.int64), vectors)
    keys, _ = index.search(vectors[3], 1)
    assert keys.tolist() == [3]
    assert saved.read_bytes() != b"not an index"
