"""A search tool over the user's own sources: BM25 over passages of their files or texts.

Sources are a folder (its text files, recursively), files, texts, or a mapping of names to
texts. They are read, split into passages and indexed on the first search, once; the index
is kept, and shared by every SearchTool over the same unchanged sources (the same files with
the same sizes and modification times, or the same texts). Nothing is fetched from anywhere.

Passages follow the text's own breaks: each paragraph (lines between blank lines) is one; a
short one (a heading, a one-line comment) joins the next, and one longer than
`passage_chars` is cut at line ends, or a very long line at spaces. There is no overlap:
passages rarely cut a thought that overlap would mend, and overlapping ones would show the
model the same lines twice.

With `rerank=True` the best BM25 candidates are ordered again by the cosine similarity of
their embeddings to the query's (the memory's sentence-transformers model), which finds the
passage that means what the query asks, not only the one that repeats its words.
"""

from __future__ import annotations

import functools
import hashlib
import html
import importlib.util
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from redraft.checks import flag, kind_of, shown, whole_number
from redraft.errors import ConfigError
from redraft.tools.base import DEFAULT_MAX_OUTPUT_CHARS, Tool, ToolError

if TYPE_CHECKING:
    from redraft.memory.embedder import Embedder

# Union, not |: the alias is evaluated at run time on Python 3.10 too.
Sources = Union[  # noqa: UP007
    str, os.PathLike[str], Iterable[Union[str, os.PathLike[str]]], Mapping[str, str]  # noqa: UP007
]

DEFAULT_PASSAGE_CHARS = 1_000
MAX_TOP_K = 50
MAX_FILE_BYTES = 5_000_000
MAX_FILES = 20_000
# Candidates BM25 hands to the reranker: enough that the passage meant is usually among them.
RERANK_POOL = 30
_CACHED_INDEXES = 8
_SKIPPED_DIRS = {"__pycache__", "node_modules"}
# Read without opening; any other file is text if it is UTF-8 with no NUL byte.
_BINARY_NAMES = (
    ".png .jpg .jpeg .gif .bmp .ico .webp .tif .tiff .pdf .zip .gz .tgz .bz2 .xz .7z "
    ".tar .whl .egg .so .dylib .dll .exe .bin .o .a .pyc .pyo .class .jar .db .sqlite "
    ".sqlite3 .npy .npz .pt .pth .ckpt .safetensors .onnx .parquet .arrow .feather .pkl "
    ".pickle .mp3 .mp4 .wav .flac .ogg .mov .avi .mkv .woff .woff2 .ttf .otf .eot .docx "
    ".xlsx .pptx .odt"
)
_BINARY_SUFFIXES = frozenset(_BINARY_NAMES.split())
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_WORD = re.compile(r"\w+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_LOOKS_LIKE_FILE = re.compile(r"^[^\s]*(/|\\|\.[A-Za-z][A-Za-z0-9]{0,4})$")


class SearchArguments(BaseModel):
    """What to search for."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1, max_length=2_000, description="What to look for, in words or keywords."
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOP_K,
        description="How many passages to return; by default the tool's own number.",
    )


class Passage(BaseModel):
    """A passage found: where it is (`source`, lines) and how well it matched (`score`)."""

    source: str = Field(description="The file (relative to the folder searched) or the text.")
    start_line: int
    end_line: int
    position: str = Field(description="The passage's lines in its source, e.g. 'lines 3-7'.")
    score: float = Field(
        description="BM25's score, or the cosine similarity to the query when reranked."
    )
    text: str


class SearchResults(BaseModel):
    """The passages found for `query`, best first."""

    query: str
    ranking: Literal["bm25", "bm25+embeddings"]
    passages: list[Passage]
    note: str | None = None


class SearchTool(Tool):
    """A tool that searches the user's own sources; the model passes `query` (and `top_k`).

    `sources` is a folder or a file (a path), a list of files (`pathlib.Path`s) and texts
    (`str`s), or a mapping of names to texts. A folder's text files are read recursively,
    skipping hidden files and folders, binary files (a NUL byte, not UTF-8, or a binary
    suffix) and files over 5 MB. A missing path is refused here; sources with nothing to
    search are refused by the first search (or by `prepare()`). The index reflects the
    sources as they were at the first search: make a new SearchTool to see changes.
    """

    def __init__(
        self,
        sources: Sources,
        *,
        top_k: int = 5,
        passage_chars: int = DEFAULT_PASSAGE_CHARS,
        rerank: bool = False,
        embedder: Embedder | str | os.PathLike[str] | None = None,
        name: str = "search",
        description: str | None = None,
        timeout_s: float | None = 60.0,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        whole_number("top_k", top_k, minimum=1, maximum=MAX_TOP_K, example=5)
        whole_number("passage_chars", passage_chars, minimum=100, maximum=100_000, example=1000)
        self.top_k = top_k
        self.passage_chars = passage_chars
        self.rerank = flag("rerank", rerank)
        if embedder is not None and not self.rerank:
            raise ConfigError("embedder= is used to rerank: pass rerank=True with it")
        self._sources = _read_sources(sources)
        self._embedder = _reranker(embedder) if self.rerank else None
        self._lock = threading.Lock()
        self._index: _Index | None = None
        super().__init__(
            self._run,
            name=name,
            description=description if description is not None else self._description(),
            args_model=SearchArguments,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
        )

    def prepare(self) -> SearchTool:
        """Index the sources now rather than at the first search; raises ConfigError when
        there is nothing to search. Returns the tool."""
        self._indexed()
        return self

    @property
    def passage_count(self) -> int:
        """How many passages the index holds (indexing the sources if not yet done)."""
        return len(self._indexed().passages)

    @property
    def skipped(self) -> list[str]:
        """The files of the sources that were not indexed, each with why."""
        return list(self._indexed().skipped)

    def search(self, query: str, top_k: int | None = None) -> SearchResults:
        """The passages that best match `query`, best first."""
        if top_k is not None:
            whole_number("top_k", top_k, minimum=1, maximum=MAX_TOP_K, example=5)
        index = self._indexed()
        wanted = top_k if top_k is not None else self.top_k
        terms = _terms(query)
        if not terms:
            raise ToolError(
                f"the query {shown(query)} has no word to search for; use content words"
            )
        scores = index.bm25.get_scores(terms)
        order = sorted(
            (i for i in range(len(index.passages)) if scores[i] > 0),
            key=lambda i: (-float(scores[i]), i),
        )
        if self._embedder is None:
            found = [(i, float(scores[i])) for i in order[:wanted]]
        else:
            found = index.reranked(self._embedder, query, order[: max(RERANK_POOL, wanted)])
            found = found[:wanted]
        return SearchResults(
            query=query,
            ranking="bm25" if self._embedder is None else "bm25+embeddings",
            passages=[index.passages[i].found(score) for i, score in found],
            note=None if found else "no passage has any word of the query; try other words",
        )

    def render(self, value: Any) -> tuple[str, bool]:
        """The results as JSON; passages that do not fit `max_output_chars` are left out
        from the last, so the model is shown whole passages in valid JSON."""
        if not isinstance(value, SearchResults):
            return super().render(value)
        shown_results = value
        left_out = 0
        text = shown_results.model_dump_json(exclude_none=True)
        while len(text) > self.max_output_chars and len(shown_results.passages) > 1:
            left_out += 1
            shown_results = value.model_copy(
                update={
                    "passages": value.passages[:-left_out],
                    "note": f"{left_out} more passage(s) left out to fit the output limit",
                }
            )
            text = shown_results.model_dump_json(exclude_none=True)
        if left_out == 0:
            return super().render(text)
        cut_text, _ = super().render(text)
        return cut_text, True

    # -- internals -------------------------------------------------------------------------

    def _run(self, arguments: SearchArguments) -> SearchResults:
        return self.search(arguments.query, arguments.top_k)

    def _description(self) -> str:
        ranked = (
            "ranked by BM25, then reordered by meaning (the score is the cosine similarity)"
            if self.rerank
            else "ranked by BM25 keyword relevance"
        )
        return (
            "Search the user's own documents for passages relevant to a query: "
            f"{_describe(self._sources)}. Returns up to {self.top_k} passages by default, "
            f"{ranked}, each with its source, its position (lines) and its text. Keywords "
            "that would appear in the passage work best."
        )

    def _indexed(self) -> _Index:
        with self._lock:
            if self._index is None:
                self._index = _cached_index(self._sources, self.passage_chars)
            return self._index


# -- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Text:
    name: str
    text: str


@dataclass(frozen=True)
class _Path:
    path: Path
    # How its files are named: relative to the folder when it is the only source.
    prefix: str
    is_folder: bool


_Source = Union[_Text, _Path]  # noqa: UP007


def _read_sources(sources: object) -> list[_Source]:
    if isinstance(sources, (str, os.PathLike)):
        return [_path_source(sources, "sources", alone=True)]
    if isinstance(sources, Mapping):
        return _named_texts(sources)
    if not isinstance(sources, Iterable) or isinstance(sources, (bytes, bytearray)):
        raise ConfigError(
            "sources must be a folder or file path, a list of files (pathlib.Path) and texts "
            f"(str), or a mapping of names to texts; got {kind_of(sources)} {shown(sources)}"
        )
    items = list(sources)
    if not items:
        raise ConfigError("sources is empty: give a folder, files or texts to search")
    found: list[_Source] = []
    for i, item in enumerate(items):
        where = f"sources[{i}]"
        if isinstance(item, os.PathLike):
            found.append(_path_source(item, where, alone=len(items) == 1))
        elif isinstance(item, str):
            if _LOOKS_LIKE_FILE.match(item):
                raise ConfigError(
                    f"{where} {shown(item)} looks like a file path, and a str is searched as "
                    f"a text: pass pathlib.Path({item!r}) for the file, or {{name: text}} for "
                    "the words"
                )
            found.append(_Text(f"text[{i}]", item))
        else:
            raise ConfigError(
                f"{where} is {kind_of(item)} {shown(item)}: give a pathlib.Path or a text (str)"
            )
    _check_texts(found)
    return found


def _named_texts(sources: Mapping[Any, Any]) -> list[_Source]:
    if not sources:
        raise ConfigError("sources is an empty mapping: give {name: text} pairs to search")
    found: list[_Source] = []
    for name, text in sources.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"sources: a text's name must be a non-empty str; got {shown(name)}")
        if not isinstance(text, str):
            raise ConfigError(
                f"sources[{name!r}] must be a text (str); got {kind_of(text)} {shown(text)}"
            )
        found.append(_Text(name, text))
    _check_texts(found)
    return found


def _check_texts(found: list[_Source]) -> None:
    if all(isinstance(s, _Text) and not s.text.strip() for s in found):
        raise ConfigError("sources: every text is empty; give texts with words to search")


def _path_source(given: str | os.PathLike[str], where: str, *, alone: bool) -> _Path:
    path = Path(given).expanduser()
    if path.is_dir():
        return _Path(path, "" if alone else f"{Path(given).as_posix()}/", is_folder=True)
    if path.is_file():
        return _Path(path, str(given), is_folder=False)
    hint = ""
    if isinstance(given, str) and (len(given.split()) > 1 or "\n" in given):
        hint = "; to search a text, pass a list of texts: SearchTool([text])"
    raise ConfigError(f"{where}: no such folder or file: {shown(str(given))}{hint}")


def _describe(sources: list[_Source]) -> str:
    folders = [s for s in sources if isinstance(s, _Path) and s.is_folder]
    files = [s for s in sources if isinstance(s, _Path) and not s.is_folder]
    texts = [s for s in sources if isinstance(s, _Text)]
    parts = [f"the folder {s.path.name or s.path}" for s in folders[:3]]
    if len(folders) > 3:
        parts.append(f"{len(folders) - 3} more folders")
    if files:
        parts.append(f"{len(files)} file(s)")
    if texts:
        parts.append(f"{len(texts)} text(s)")
    return ", ".join(parts)


@dataclass(frozen=True)
class _File:
    path: Path
    name: str


def _files(sources: list[_Source]) -> tuple[list[_File], list[str]]:
    """The files to read, sorted as found, and those skipped without reading, with why."""
    files: list[_File] = []
    skipped: list[str] = []
    seen: set[Path] = set()
    for source in sources:
        if not isinstance(source, _Path):
            continue
        found = _walk(source) if source.is_folder else [_File(source.path, source.prefix)]
        for file in found:
            resolved = file.path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            if file.path.suffix.lower() in _BINARY_SUFFIXES:
                skipped.append(f"{file.name} (binary)")
            else:
                files.append(file)
            if len(files) > MAX_FILES:
                raise ConfigError(
                    f"the sources hold over {MAX_FILES:,} files; point SearchTool at a "
                    "smaller folder"
                )
    return files, skipped


def _walk(source: _Path) -> Iterator[_File]:
    root = source.path.resolve()
    for folder, dirs, names in os.walk(source.path):
        # Hidden folders (.git, .venv) and caches hold no documents of the user's.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder, name)
            if name.startswith(".") or not path.is_file():
                continue
            # A link to a file outside the folder (~/.aws/credentials, /etc/passwd) would
            # send that file to the model's provider: only the folder's own files are read.
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                continue
            yield _File(path, source.prefix + path.relative_to(source.path).as_posix())


def _read(path: Path) -> tuple[str | None, str]:
    """(text, "") for a text file, (None, why) for one that is skipped."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, f"over {MAX_FILE_BYTES // 1_000_000} MB"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if b"\x00" in data[:8192]:
        return None, "binary"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    if path.suffix.lower() in _HTML_SUFFIXES:
        text = _html_text(text)
    return text, ""


def _html_text(text: str) -> str:
    """The words of an HTML page: markup, scripts and styles blanked out, but their line
    breaks kept so that line numbers still point into the file.

    A scan, not a regular expression: with many unclosed `<script` tags a lazy pattern
    looks for the closing tag from each of them, which is quadratic (and holds the GIL, so
    no timeout can stop it). Once a closing mark is known to be absent from some point on,
    it is not looked for again."""
    lower = text.lower()
    pieces: list[str] = []
    absent: set[str] = set()  # closing marks not found from some earlier point on

    def find(mark: str, start: int) -> int:
        if mark in absent:
            return -1
        found = lower.find(mark, start)
        if found < 0:
            absent.add(mark)
        return found

    at, size = 0, len(text)
    while at < size:
        opening = text.find("<", at)
        if opening < 0:
            pieces.append(text[at:])
            break
        pieces.append(text[at:opening])
        end = -1
        if lower.startswith("<!--", opening):
            close = find("-->", opening + 4)
            end = close + 3 if close >= 0 else -1
        else:
            for tag in ("script", "style"):
                after = opening + 1 + len(tag)
                if lower.startswith(tag, opening + 1) and lower[after : after + 1] in (
                    " ",
                    ">",
                    "\t",
                    "\n",
                    "/",
                ):
                    close = find(f"</{tag}", after)
                    if close >= 0:
                        stop = find(">", close)
                        end = stop + 1 if stop >= 0 else -1
                    break
        if end < 0:
            stop = find(">", opening)
            if stop < 0:  # an unclosed '<': the rest is text
                pieces.append(text[opening:])
                break
            end = stop + 1
        pieces.append("\n" * text.count("\n", opening, end) + " ")
        at = end
    return html.unescape("".join(pieces))


# -- passages and the index ------------------------------------------------------------------


@dataclass(frozen=True)
class _Passage:
    source: str
    start_line: int
    end_line: int
    text: str

    def found(self, score: float) -> Passage:
        lines = (
            f"line {self.start_line}"
            if self.start_line == self.end_line
            else f"lines {self.start_line}-{self.end_line}"
        )
        return Passage(
            source=self.source,
            start_line=self.start_line,
            end_line=self.end_line,
            position=lines,
            score=round(score, 4),
            text=self.text,
        )


def split_passages(text: str, passage_chars: int) -> list[tuple[int, int, str]]:
    """`text` as passages `(first line, last line, text)`, lines counted from 1: paragraphs,
    short ones joined to the next, long ones cut at line ends (a long line at spaces)."""
    short = passage_chars // 4
    passages: list[tuple[int, int, str]] = []
    current: list[tuple[int, str]] = []  # (line number, line) of the passage being made

    def flush() -> None:
        if current:
            body = "\n".join(line for _, line in current).strip("\n")
            if body.strip():
                passages.append((current[0][0], current[-1][0], body.rstrip()))
            current.clear()

    def size(lines: list[tuple[int, str]]) -> int:
        return sum(len(line) + 1 for _, line in lines)

    for paragraph in _paragraphs(text):
        pieces = _cut(paragraph, passage_chars)
        first = pieces[0]
        if current and (size(current) >= short or size(current) + size(first) > passage_chars):
            flush()
        if current:
            current.append((first[0][0], ""))  # the blank line between the two paragraphs
        current.extend(first)
        for piece in pieces[1:]:
            flush()
            current.extend(piece)
    flush()
    return passages


def _paragraphs(text: str) -> Iterator[list[tuple[int, str]]]:
    paragraph: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            paragraph.append((number, line.rstrip()))
        elif paragraph:
            yield paragraph
            paragraph = []
    if paragraph:
        yield paragraph


def _cut(paragraph: list[tuple[int, str]], limit: int) -> list[list[tuple[int, str]]]:
    """A paragraph in pieces of at most `limit` characters, cut at line ends; a line longer
    than `limit` is cut at spaces (or anywhere, if it has none) into pieces of its own."""
    pieces: list[list[tuple[int, str]]] = []
    piece: list[tuple[int, str]] = []
    used = 0
    for number, line in paragraph:
        parts = [line] if len(line) <= limit else _cut_line(line, limit)
        for part in parts:
            if piece and used + len(part) + 1 > limit:
                pieces.append(piece)
                piece, used = [], 0
            piece.append((number, part))
            used += len(part) + 1
    if piece:
        pieces.append(piece)
    return pieces


def _cut_line(line: str, limit: int) -> list[str]:
    parts: list[str] = []
    rest = line
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


def _terms(text: str) -> list[str]:
    """The words BM25 matches on: lower-cased, stop words and single letters dropped, and
    identifiers also split into their parts (load_model and loadModel also give load,
    model), so that code is found by the words of its names."""
    stop = _stopwords()
    terms: list[str] = []
    for word in _WORD.findall(text):
        pieces = [p for p in word.split("_") if p]
        if word.isascii():
            pieces = [part for piece in pieces for part in _CAMEL.findall(piece)]
        for term in (word, *pieces) if len(pieces) > 1 else (word,):
            term = term.lower()
            if (len(term) > 1 or term.isdigit()) and term not in stop:
                terms.append(term)
    return terms


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@dataclass
class _Index:
    passages: list[_Passage]
    bm25: Any
    skipped: list[str]
    # Passage embeddings, by embedding model, computed as reranking first needs them.
    vectors: dict[str, dict[int, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reranked(
        self, embedder: Embedder, query: str, candidates: list[int]
    ) -> list[tuple[int, float]]:
        if not candidates:
            return []
        with self.lock:
            known = self.vectors.setdefault(embedder.name, {})
        missing = [i for i in candidates if i not in known]
        if missing:
            made = embedder.embed([self.passages[i].text for i in missing])
            with self.lock:
                known.update(zip(missing, made, strict=True))
        asked = embedder.embed([query])[0]
        similar = [(i, float(known[i] @ asked)) for i in candidates]
        return sorted(similar, key=lambda pair: -pair[1])


def _build_index(
    files: list[_File], texts: list[_Text], skipped: list[str], passage_chars: int
) -> _Index:
    """Read, split and index the sources (the one slow step, done once per sources)."""
    import bm25s

    passages: list[_Passage] = []
    skipped = list(skipped)
    named: list[tuple[str, str]] = [(t.name, t.text) for t in texts]
    for file in files:
        text, why = _read(file.path)
        if text is None:
            skipped.append(f"{file.name} ({why})")
        else:
            named.append((file.name, text))
    terms: list[list[str]] = []
    for name, text in named:
        for first, last, body in split_passages(text, passage_chars):
            words = _terms(body)
            if words:  # a passage of punctuation alone cannot match anything
                passages.append(_Passage(name, first, last, body))
                terms.append(words)
    if not passages:
        return _Index([], None, skipped)
    bm25 = bm25s.BM25()
    bm25.index(terms, show_progress=False)
    return _Index(passages, bm25, skipped)


_cache: OrderedDict[tuple[object, ...], _Index] = OrderedDict()
_cache_lock = threading.Lock()


def _cached_index(sources: list[_Source], passage_chars: int) -> _Index:
    """The index of `sources`, built once while they stay the same (files by size and
    modification time, texts by content)."""
    files, skipped = _files(sources)
    texts = [s for s in sources if isinstance(s, _Text)]
    key = (passage_chars, *map(_fingerprint, files), *map(_fingerprint, texts))
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    index = _build_index(files, texts, skipped, passage_chars)
    if not index.passages:
        raise ConfigError(_nothing_found(sources, index.skipped))
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > _CACHED_INDEXES:
            _cache.popitem(last=False)
    return index


def _fingerprint(source: _File | _Text) -> tuple[object, ...]:
    if isinstance(source, _Text):
        return ("text", source.name, hashlib.sha256(source.text.encode()).hexdigest())
    try:
        stat = source.path.stat()
    except OSError:
        return ("file", source.name, str(source.path), None)
    return ("file", source.name, str(source.path.resolve()), stat.st_mtime_ns, stat.st_size)


def _nothing_found(sources: list[_Source], skipped: list[str]) -> str:
    listed = ""
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        listed = f" (skipped {', '.join(skipped[:3])}{more})"
    return (
        f"nothing to search in {_describe(sources)}: no text to index{listed}; give text "
        "files or texts"
    )


def _reranker(embedder: object) -> Embedder:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigError(
            "SearchTool(rerank=True) needs sentence-transformers: pip install 'redraft[memory]'"
        )
    from redraft.memory.embedder import Embedder

    if isinstance(embedder, Embedder):
        chosen = embedder
    elif embedder is None or isinstance(embedder, (str, os.PathLike)):
        chosen = Embedder(None if embedder is None else str(embedder))
    else:
        raise ConfigError(
            f"embedder must be a redraft.memory.Embedder or a model name; got {shown(embedder)}"
        )
    chosen.check()  # a model that cannot be loaded fails here, in one line; loads nothing
    return chosen
