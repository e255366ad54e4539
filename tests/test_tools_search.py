"""The search tool: BM25 over a folder, files or texts; positions; one index; reranking."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redraft import ConfigError, ScriptedModel
from redraft.models.base import Completion, ModelRequest, ToolCall, user
from redraft.tools import (
    Passage,
    SearchResults,
    SearchTool,
    ToolContext,
    ToolError,
    complete_with_tools,
)
from redraft.tools import search as search_module
from redraft.tools.search import split_passages

INSTALL = (
    "To install redraft, run pip install redraft in a fresh virtual environment. The "
    "package needs Python 3.10 or newer and pulls in LangGraph and LiteLLM."
)
KEYS = (
    "Set the API key of your model provider in the environment before the first run, "
    "for example OPENAI_API_KEY for OpenAI models."
)
CODE = '''def load_model(name):
    """Read the embedding model from disk, once."""
    return name


def shutdown():
    """Close every open connection."""
'''


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    search_module._cache.clear()
    yield
    search_module._cache.clear()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "setup.md").write_text(f"# Setup\n\n{INSTALL}\n\n{KEYS}\n")
    (root / "api.py").write_text(CODE)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 install pip")
    (root / "blob.txt").write_bytes(b"install\x00pip\x00binary")
    (root / "latin.txt").write_bytes("install café".encode("latin-1"))
    (root / ".git").mkdir()
    (root / ".git" / "notes.txt").write_text("zebracorn hidden install notes")
    (root / "page.html").write_text(
        "<html><head><style>p { color: red }</style></head>\n"
        "<body><p>Refunds are paid within thirty days &amp; by card.</p></body></html>\n"
    )
    return root


def sources_of(results: SearchResults) -> list[str]:
    return [p.source for p in results.passages]


# -- finding passages --------------------------------------------------------------------------


def test_a_folder_search_names_the_file_and_the_lines(docs: Path) -> None:
    tool = SearchTool(docs, passage_chars=300)
    results = tool.search("API key environment")
    best = results.passages[0]
    assert best.source == "guide/setup.md"
    assert (best.start_line, best.end_line, best.position) == (5, 5, "line 5")
    assert best.text == KEYS and best.score > 0
    assert results.ranking == "bm25"
    # The lines are the file's: line 5 of the file is the passage.
    assert (docs / "guide" / "setup.md").read_text().splitlines()[4] == KEYS


def test_code_is_found_by_the_words_of_its_names(docs: Path) -> None:
    best = SearchTool(docs, passage_chars=200).search("load model").passages[0]
    assert best.source == "api.py" and best.position == "lines 1-3"
    assert best.text.startswith("def load_model(name):")


def test_binary_hidden_and_non_utf8_files_are_skipped(docs: Path) -> None:
    tool = SearchTool(docs)
    assert sorted(tool.skipped) == [
        "blob.txt (binary)",
        "latin.txt (not UTF-8 text)",
        "logo.png (binary)",
    ]
    found = {p.source for p in tool.search("install pip", top_k=20).passages}
    assert found == {"guide/setup.md"}
    assert tool.search("zebracorn").passages == []  # .git is not read


def test_html_is_searched_by_its_words_at_its_lines(docs: Path) -> None:
    best = SearchTool(docs).search("refunds card").passages[0]
    assert best.source == "page.html" and best.position == "line 2"
    assert "<p>" not in best.text and "thirty days & by card" in best.text


def test_links_to_files_outside_the_folder_are_not_read(docs: Path, tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = zebrasecret\n")
    (docs / "notes.md").symlink_to(secret)
    (docs / "same.md").symlink_to(docs / "guide" / "setup.md")  # inside: read as any file
    tool = SearchTool(docs)
    assert tool.search("zebrasecret aws").passages == []
    assert "same.md" in {p.source for p in tool.search("API key environment").passages}


@pytest.mark.timeout(30)  # a guard against a hang, not a speed check
def test_pathological_html_is_read_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "refund policy\n" + "<script " * 40_000 + "\n<!--" * 20_000 + "\n<" * 20_000
    )
    best = SearchTool(tmp_path).search("refund policy").passages[0]
    assert best.source == "page.html" and best.start_line == 1


def test_texts_are_named_by_their_index_or_their_key() -> None:
    listed = SearchTool(["Cats sleep all day.", "Dogs bark at the mail carrier.\nLoudly."])
    best = listed.search("bark").passages[0]
    assert (best.source, best.position) == ("text[1]", "lines 1-2")
    named = SearchTool({"pets.md": "Dogs bark.", "plants.md": "Ferns like shade."})
    assert sources_of(named.search("shade")) == ["plants.md"]


def test_files_are_named_as_given(docs: Path) -> None:
    setup = docs / "guide" / "setup.md"
    tool = SearchTool([setup, "Notes: the API key lives in a vault."])
    assert set(sources_of(tool.search("API key"))) == {str(setup), "text[1]"}


def test_top_k_bounds_the_passages(docs: Path) -> None:
    texts = [f"apple number {i} and some other words" for i in range(8)]
    tool = SearchTool(texts, top_k=3)
    assert tool.prepare().passage_count == 8
    assert len(tool.search("apple").passages) == 3
    assert len(tool.search("apple", top_k=5).passages) == 5
    with pytest.raises(ConfigError, match="top_k"):
        tool.search("apple", top_k=0)


def test_a_query_with_no_match_returns_nothing_and_says_so() -> None:
    results = SearchTool(["Cats sleep all day."]).search("quantum chromodynamics")
    assert results.passages == [] and results.note is not None
    with pytest.raises(ToolError, match="no word to search for"):
        SearchTool(["Cats sleep all day."]).search("the of and")


# -- the index ---------------------------------------------------------------------------------


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    builds: list[int] = []
    real = search_module._build_index

    def counted(*args: Any, **kwargs: Any) -> Any:
        builds.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search_module, "_build_index", counted)
    return builds


def test_the_index_is_built_once_lazily_and_shared(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = count_builds(monkeypatch)
    tool = SearchTool(docs)
    assert builds == []  # nothing is read until the first search
    tool.search("install")
    tool.search("model")
    assert len(builds) == 1
    SearchTool(docs).search("install")  # the same unchanged folder: the same index
    assert len(builds) == 1
    setup = docs / "guide" / "setup.md"
    setup.write_text("Completely new words: kumquat.\n")
    os.utime(setup, ns=(setup.stat().st_atime_ns, setup.stat().st_mtime_ns + 10**9))
    assert tool.search("kumquat").passages == []  # a tool keeps the index it built
    assert sources_of(SearchTool(docs).search("kumquat")) == ["guide/setup.md"]
    assert len(builds) == 2


async def test_concurrent_calls_in_the_tool_loop_build_one_index(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = count_builds(monkeypatch)
    tool = SearchTool(docs, passage_chars=300)
    model = ScriptedModel(
        [
            Completion(
                text="",
                tool_calls=[
                    ToolCall(id="a", name="search", arguments={"query": "API key"}),
                    ToolCall(id="b", name="search", arguments={"query": "install", "top_k": 1}),
                    ToolCall(id="c", name="search", arguments={"query": "x", "top_k": 0}),
                ],
            ),
            "Set OPENAI_API_KEY (guide/setup.md, line 5).",
        ]
    )
    run = await complete_with_tools(
        model, ModelRequest(messages=[user("How do I set my key?")]), [tool], ToolContext()
    )
    assert len(builds) == 1
    keys, install, bad = run.invocations
    found = json.loads(keys.result or "")
    assert found["passages"][0]["source"] == "guide/setup.md"
    assert found["passages"][0]["position"] == "line 5"
    assert len(json.loads(install.result or "")["passages"]) == 1
    assert bad.error is not None and "top_k" in bad.error
    assert "guide/setup.md" in model.calls[1].prompt


async def test_acall_takes_query_and_top_k(docs: Path) -> None:
    tool = SearchTool(docs)
    assert set(tool.spec.parameters["properties"]) == {"query", "top_k"}
    assert tool.spec.parameters["required"] == ["query"]
    results = await tool.acall({"query": "install", "top_k": 1})
    assert isinstance(results, SearchResults) and len(results.passages) == 1
    assert isinstance(results.passages[0], Passage)


def test_results_too_long_for_the_output_keep_whole_passages() -> None:
    texts = [f"apple {i} " + "filler words here " * 20 for i in range(5)]
    tool = SearchTool(texts, max_output_chars=1_000)
    text, cut = tool.render(tool.search("apple"))
    shown = json.loads(text)  # still valid JSON
    assert cut and 0 < len(shown["passages"]) < 5 and "left out" in shown["note"]


# -- passages ----------------------------------------------------------------------------------


def test_paragraphs_are_passages_short_ones_joined_long_ones_cut() -> None:
    long_line = " ".join(["word"] * 60)  # 299 characters
    text = "Title\n\nFirst paragraph line one.\nline two.\n\n\n" + long_line + "\n"
    passages = split_passages(text, 100)
    assert passages[0] == (1, 4, "Title\n\nFirst paragraph line one.\nline two.")
    rest = passages[1:]
    assert len(rest) == 3 and all(start == end == 7 for start, end, _ in rest)
    assert all(len(body) <= 100 for _, _, body in rest)
    assert " ".join(body for _, _, body in rest) == long_line


def test_a_long_paragraph_is_cut_at_line_ends() -> None:
    lines = [f"line {i} of a long paragraph" for i in range(1, 21)]
    passages = split_passages("\n".join(lines), 200)
    assert [p[0] for p in passages] == [1, 8, 15]
    assert "\n".join(body for _, _, body in passages) == "\n".join(lines)


# -- bad sources -------------------------------------------------------------------------------


def test_a_missing_folder_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder or file"):
        SearchTool(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"pass a list of texts"):
        SearchTool("some words to search")


@pytest.mark.parametrize(
    ("sources", "says"),
    [
        ([], "sources is empty"),
        ({}, "empty mapping"),
        (["  ", ""], "every text is empty"),
        (["notes.md"], "looks like a file path"),
        ([3], "give a pathlib.Path or a text"),
        (42, "sources must be"),
        ({"a": 1}, "must be a text"),
    ],
)
def test_bad_sources_are_refused_at_construction(sources: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        SearchTool(sources)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"top_k": 0}, "top_k"),
        ({"passage_chars": 10}, "passage_chars"),
        ({"rerank": "yes"}, "rerank"),
        ({"embedder": "all-MiniLM-L6-v2"}, "pass rerank=True"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        SearchTool(["Cats sleep."], **options)


async def test_a_folder_with_nothing_to_index_fails_on_first_use(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG\x00")
    tool = SearchTool(tmp_path)  # a folder that exists: accepted
    with pytest.raises(ConfigError, match=r"nothing to search .*image\.png \(binary\)"):
        await tool.acall({"query": "anything"})
    with pytest.raises(ConfigError, match="nothing to search"):
        SearchTool(tmp_path).prepare()


def test_rerank_without_sentence_transformers_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def without(name: str, *args: Any) -> Any:
        return None if name == "sentence_transformers" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    with pytest.raises(ConfigError, match=r"redraft\[memory\]"):
        SearchTool(["Cats sleep."], rerank=True)


# -- reranking with real embeddings ------------------------------------------------------------

REFUNDS = {
    "refunds.md": (
        "Refund policy: a customer who returns an item within thirty days receives the full "
        "purchase price; the money is paid back to the original card."
    ),
    # Repeats the query's words without being about refunds at all.
    "blog.md": (
        "Get back to work: how my team saves money on coffee, buying back time so I get more done."
    ),
    "shipping.md": (
        "Orders ship within two business days; tracking numbers are emailed when the parcel "
        "leaves the warehouse."
    ),
    "security.md": "Passwords are hashed with a slow key derivation function, never stored.",
}
QUERY = "how do I get my money back after buying something"


def test_rerank_puts_the_passage_that_means_the_query_first() -> None:
    plain = SearchTool(REFUNDS).search(QUERY)
    assert sources_of(plain)[:2] == ["blog.md", "refunds.md"]  # the decoy wins on words
    reranked = SearchTool(REFUNDS, rerank=True).search(QUERY)
    assert reranked.ranking == "bm25+embeddings"
    assert sources_of(reranked)[:2] == ["refunds.md", "blog.md"]
    first, second = reranked.passages[:2]
    assert -1.0 <= second.score < first.score <= 1.0  # cosine similarities


def test_a_bad_embedding_model_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="embedding model"):
        SearchTool(REFUNDS, rerank=True, embedder=tmp_path / "no-model")
