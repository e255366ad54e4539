"""The memory's file: persistence and concurrent writers across real processes, damaged and
foreign files (a clear error, the file untouched), and the embedding model it was built with."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from redraft import ConfigError
from redraft.errors import EmbeddingModelMismatch, MemoryFileError
from redraft.memory import Correction, CorrectionMemory
from redraft.memory.embedder import DEFAULT_MODEL, bundled_model_dir

REPO = Path(__file__).resolve().parents[1]
PER_WRITER = 20

# A writer process: checks it sees what the parent stored, waits for the go, then adds its
# corrections one transaction each, so the two writers interleave.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from redraft.memory import Correction, CorrectionMemory

    path, name, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    with CorrectionMemory(path) as memory:
        assert [h.record.problem for h in memory.search("a haiku about rain", k=1)] == [
            "line two has eight syllables"
        ]
        memory.embedder.embed(["warm up"])
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.01)
        for i in range(count):
            memory.add(f"task number {i} for writer {name}", f"problem {i} seen by {name}")
    """
)


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.db", tmp_path / "go"
    with CorrectionMemory(path) as memory:
        memory.add("Write a haiku about rain", "line two has eight syllables", kind="poem")
        assert len(memory.search("a haiku about rain", k=5)) == 1  # the index is loaded now
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), name, str(go), str(PER_WRITER)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name in ("alpha", "beta")
        ]
        for writer in writers:
            assert writer.stdout is not None
            line = writer.stdout.readline()
            assert line == "ready\n", writer.communicate()[1]
        go.touch()
        for writer in writers:
            _, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
        # Nothing lost, and this process's open memory sees the other processes' writes.
        assert len(memory) == 1 + 2 * PER_WRITER
        problems = {r.problem for r in memory.records()}
        for name in ("alpha", "beta"):
            assert {f"problem {i} seen by {name}" for i in range(PER_WRITER)} <= problems
        hits = memory.search("problem 7 seen by beta", k=1, min_score=0.0)
        assert hits[0].record.task == "task number 7 for writer beta"
    # And a fresh process-level open reads it all back from the file.
    with CorrectionMemory(path) as reopened:
        assert len(reopened) == 1 + 2 * PER_WRITER


def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"my shopping list\n" * 100)
    before = path.read_bytes()
    with pytest.raises(MemoryFileError, match=r"not a redraft memory.*left as it is"):
        CorrectionMemory(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_another_programs_database_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ada')")
    db.close()
    before = path.read_bytes()
    with pytest.raises(MemoryFileError, match="another program"):
        CorrectionMemory(path)
    assert path.read_bytes() == before


def test_a_damaged_memory_is_a_clear_error_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with CorrectionMemory(path) as memory:
        for i in range(60):
            memory.add(f"task {i} " + "context " * 40, f"problem {i}")
    damaged = bytearray(path.read_bytes())
    assert len(damaged) > 4 * 4096
    damaged[2 * 4096 : 3 * 4096] = b"\xff" * 4096  # one page in the middle
    path.write_bytes(bytes(damaged))
    with pytest.raises(MemoryFileError, match=r"unreadable .* left as it is"):
        CorrectionMemory(path)
    assert path.read_bytes() == bytes(damaged)


def test_a_truncated_memory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with CorrectionMemory(path) as memory:
        for i in range(60):
            memory.add(f"task {i} " + "context " * 40, f"problem {i}")
    cut = path.read_bytes()[: 3 * 4096]
    path.write_bytes(cut)
    with pytest.raises(MemoryFileError):
        CorrectionMemory(path)
    assert path.read_bytes() == cut


def test_a_directory_is_not_a_memory(tmp_path: Path) -> None:
    with pytest.raises(MemoryFileError, match="is a directory"):
        CorrectionMemory(tmp_path)


def test_a_new_path_creates_the_folders_and_a_wal_database(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "memory.db"
    with CorrectionMemory(path) as memory:
        memory.add("Write a haiku", "too long")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_the_model_recorded_in_the_file_must_match(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with CorrectionMemory(path) as memory:
        memory.add("Write a haiku", "too long")
        assert memory.embedder.name == DEFAULT_MODEL
    before = path.read_bytes()
    with pytest.raises(EmbeddingModelMismatch, match=r"built with embedding model .*all-MiniLM"):
        CorrectionMemory(path, model="sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert path.read_bytes() == before
    # The bundled model's folder is the default model under another name.
    bundled = bundled_model_dir()
    assert bundled is not None
    with CorrectionMemory(path, model=bundled) as same:
        assert len(same.search("a haiku that is too long", k=1)) == 1


def test_a_memory_built_with_another_model_needs_that_model(tmp_path: Path) -> None:
    # A real second model: a copy of MiniLM in a folder of its own is another model to the
    # memory (it cannot know the weights are the same).
    bundled = bundled_model_dir()
    assert bundled is not None
    other = tmp_path / "my-model"
    shutil.copytree(bundled, other)
    path = tmp_path / "memory.db"
    with CorrectionMemory(path, model=other) as memory:
        memory.add("Write a haiku", "too long")
    with pytest.raises(EmbeddingModelMismatch, match="my-model"):
        CorrectionMemory(path, model=DEFAULT_MODEL)
    with CorrectionMemory(path) as recorded:  # no model given: the file's own
        assert recorded.embedder.name == str(other.resolve())
        assert len(recorded.search("a haiku that is too long", k=1)) == 1


def test_a_model_that_cannot_be_loaded_is_a_clear_error(tmp_path: Path) -> None:
    memory = CorrectionMemory(tmp_path / "m.db", model=tmp_path / "no-such-model")
    with memory, pytest.raises(ConfigError, match="cannot load embedding model"):
        memory.add("Write a haiku", "too long")


def test_missing_memory_extra_names_the_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    memory = CorrectionMemory(tmp_path / "m.db", model="some/uncached-model")
    with memory, pytest.raises(ConfigError, match=r"pip install 'redraft\[memory\]'"):
        memory.search("anything")


def test_importing_redraft_does_not_import_the_memory_stack() -> None:
    code = (
        "import sys, redraft, redraft.cli.commands; "
        "loaded = [m for m in ('torch', 'sentence_transformers', 'usearch', 'redraft.memory') "
        "if m in sys.modules]; print(loaded)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_default_path_is_per_user_and_can_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redraft.memory import default_path

    monkeypatch.delenv("REDRAFT_MEMORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert default_path() == tmp_path / "redraft" / "memory.db"
    monkeypatch.setenv("REDRAFT_MEMORY", str(tmp_path / "mine.db"))
    assert default_path() == tmp_path / "mine.db"
    with CorrectionMemory() as memory:
        assert memory.path == tmp_path / "mine.db"


def test_the_approximate_index_is_saved_next_to_the_database(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with CorrectionMemory(path, approx_above=20) as memory:
        memory.add_many(
            [Correction(task=f"task number {i}", problem=f"problem {i}") for i in range(40)]
        )
        assert memory.search("problem 12", k=1, min_score=0.0)[0].record.task == "task number 12"
    [saved] = tmp_path.glob("memory.db-hnsw-*")
    with CorrectionMemory(path, approx_above=20) as reopened:
        reopened.add("task number 40", "problem 40")
        assert reopened.search("problem 40", k=1, min_score=0.0)[0].record.task == (
            "task number 40"
        )
    assert saved.is_file()
