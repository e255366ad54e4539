"""Retrieval with real MiniLM embeddings: quality, threshold, duplicates, filters, JSONL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import ConfigError
from redraft.memory import Correction, CorrectionMemory
from redraft.types import Critique, Issue, Task
from tests.memory_cases import CASES, UNRELATED


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorrectionMemory]:
    """Every case stored once; the tests below only read it."""
    path = tmp_path_factory.mktemp("memory") / "memory.db"
    with CorrectionMemory(path) as memory:
        memory.add_many(
            [
                Correction(kind=kind, task=task, problem=problem, fix=fix)
                for kind, task, problem, fix, _ in CASES
            ]
        )
        yield memory


def test_the_relevant_correction_is_in_the_top_3_for_differently_phrased_queries(
    filled: CorrectionMemory,
) -> None:
    assert len(CASES) >= 40 and len(filled) == len(CASES)
    found = 0
    for _, task, _, _, query in CASES:
        hits = filled.search(query, k=3)
        found += any(hit.record.task == task for hit in hits)
    assert found / len(CASES) >= 0.9


def test_unrelated_queries_retrieve_nothing_above_the_threshold(
    filled: CorrectionMemory,
) -> None:
    for query in UNRELATED:
        assert filled.search(query, k=5) == [], query
    # The threshold is what keeps them out: with none, the same queries do return hits.
    assert filled.search(UNRELATED[0], k=5, min_score=-1.0)


def test_hits_are_best_first_with_scores(filled: CorrectionMemory) -> None:
    hits = filled.search("an SQL query that groups rows and counts them", k=5)
    assert hits
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(filled.min_score <= score <= 1.0 for score in scores)


def test_filters_by_kind_critic_and_tags(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        memory.add(
            "Write a haiku about rain",
            "line two has eight syllables",
            "count 5-7-5",
            kind="poem",
            critic="rubric",
            tags=["japanese", "short"],
        )
        memory.add(
            "Write a haiku about snow",
            "no seasonal word",
            "add a kigo",
            kind="poem",
            critic="style",
            tags=["japanese"],
        )
        memory.add(
            "Write a short rhyme about rain",
            "no rhyme",
            "rhyme lines 1 and 2",
            kind="song",
            critic="rubric",
        )
        query = "a poem about the rain"
        assert {h.record.kind for h in memory.search(query, k=5)} == {"poem", "song"}
        assert {h.record.kind for h in memory.search(query, k=5, kind="poem")} == {"poem"}
        by_critic = memory.search(query, k=5, critic="style")
        assert [h.record.problem for h in by_critic] == ["no seasonal word"]
        short = memory.search(query, k=5, tags=["japanese", "short"])
        assert [h.record.problem for h in short] == ["line two has eight syllables"]
        assert memory.search(query, k=5, kind="sql") == []


def test_a_near_identical_lesson_is_merged_and_its_use_count_grows(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        first = memory.add(
            "Write a haiku about rain",
            "Line two has eight syllables.",
            "Count 5-7-5.",
            kind="poem",
            score_after=0.8,
        )
        again = memory.add(
            "Write a haiku about rain.",
            "line two has eight syllables",
            "count 5-7-5",
            kind="poem",
            score_after=0.9,
        )
        assert len(memory) == 1
        assert again.id == first.id
        assert again.use_count == 2
        assert again.score_after == 0.9
        # The same words for another kind of task are a different lesson...
        memory.add("Write a haiku about rain", "Line two has eight syllables.", kind="quiz")
        # ...and so are lessons that differ in a number, however similar their vectors.
        memory.add("Write a haiku about rain", "Line three has eight syllables.", kind="poem")
        memory.add("Write a haiku about rain", "Line 2 has 8 syllables.", kind="poem")
        memory.add("Write a haiku about rain", "Line 2 has 9 syllables.", kind="poem")
        assert len(memory) == 5


def test_near_identical_lessons_in_one_batch_are_merged(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        stored = memory.add_many(
            [
                Correction(task="Write a haiku", problem="Too many syllables."),
                Correction(task="Write a haiku.", problem="too many syllables"),
                Correction(task="Write a limerick", problem="no rhyme"),
            ]
        )
        assert stored[0].id == stored[1].id and stored[1].use_count == 2
        assert len(memory) == 2
        assert len(memory.search("a haiku with too many syllables", k=5)) == 2
        # Adding an id that is already stored changes nothing.
        assert memory.add_many([stored[2]])[0] == stored[2]
        assert len(memory) == 2


def test_similar_templated_corrections_are_all_kept(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        for i in range(30):
            memory.add(f"task number {i}", f"problem {i} of the batch")
        assert len(memory) == 30
        hits = memory.search("problem 17 of the batch", k=3, min_score=0.0)
        assert hits[0].record.task == "task number 17"
        assert len(hits) == 3


def test_near_duplicate_hits_are_shown_once(tmp_path: Path) -> None:
    # duplicate_score=1.0 stores near-duplicates apart; a search still shows them once.
    with CorrectionMemory(tmp_path / "m.db", duplicate_score=0.999) as memory:
        memory.add("Write a haiku about rain", "Line two has eight syllables.")
        memory.add("Write a haiku about rain.", "line two has eight syllables")
        memory.add("Write a haiku about rain", "the poem has no title")
        assert len(memory) == 3
    with CorrectionMemory(tmp_path / "m.db", duplicate_score=0.95) as memory:
        hits = memory.search("haiku about rainfall", k=5)
        problems = [h.record.problem.lower().rstrip(".") for h in hits]
        assert problems.count("line two has eight syllables") == 1
        assert "the poem has no title" in problems


def test_recall_scopes_lessons_by_kind_and_counts_their_use(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        memory.add(
            "Write a SQL query for customers without orders",
            "LEFT JOIN filtered in WHERE becomes an inner join",
            kind="sql",
        )
        memory.add(
            "Write a SQL query for customers without orders",
            "the query selects every column",
            kind="review",
        )
        task = Task(
            instruction="SQL: clients that never ordered anything", metadata={"kind": "sql"}
        )
        lessons = memory.recall(task)
        assert [lesson.problem for lesson in lessons] == [
            "LEFT JOIN filtered in WHERE becomes an inner join"
        ]
        assert memory.get(lessons[0].id).use_count == 2
        # Revising, the critics' words join the query.
        critique = Critique(
            critic="sql",
            score=0.2,
            passed=False,
            issues=[Issue(problem="every column is selected")],
        )
        unscoped = Task(instruction="SQL: clients that never ordered anything")
        revised = memory.recall(unscoped, [critique], k=1)
        assert revised[0].problem == "the query selects every column"


def test_export_and_import_round_trip_as_jsonl(tmp_path: Path) -> None:
    out = io.StringIO()
    with CorrectionMemory(tmp_path / "a.db") as memory:
        memory.add(
            "Write a haiku about rain",
            "line two has eight syllables",
            "count 5-7-5",
            excerpt="the rain falls softly on the roof",
            kind="poem",
            tags=["x"],
        )
        memory.add("Binary search over a sorted list", "off-by-one in the loop condition")
        assert memory.export_jsonl(out) == 2
        originals = {r.id: r for r in memory.records()}
    lines = out.getvalue().splitlines()
    with CorrectionMemory(tmp_path / "b.db") as copy:
        assert copy.import_jsonl(lines) == (2, 2)
        assert {r.id: r for r in copy.records()} == originals
        assert copy.import_jsonl(lines) == (2, 0)  # known ids are skipped
        assert len(copy) == 2
        with pytest.raises(ConfigError, match="line 1 is not a correction"):
            copy.import_jsonl(['{"task": "no problem given"}'])


def test_get_and_delete_by_id_prefix(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        record = memory.add("Write a haiku about rain", "line two has eight syllables")
        assert memory.get(record.id[:6]) == record
        assert memory.search("haiku about rain", k=1)
        assert memory.delete(record.id[:6]).id == record.id
        assert len(memory) == 0
        assert memory.search("haiku about rain", k=1) == []
        with pytest.raises(ConfigError, match="no correction with id"):
            memory.get(record.id)
        with pytest.raises(ConfigError, match="at least 4 characters"):
            memory.get("ab")


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with CorrectionMemory(tmp_path / "m.db") as memory:
        with pytest.raises(ConfigError, match=r"problem: .*must not be empty"):
            memory.add("a task", "  ")
        with pytest.raises(ConfigError, match="query is empty"):
            memory.search(" ")
        with pytest.raises(ConfigError, match="k must be at least 1"):
            memory.search("x", k=0)
