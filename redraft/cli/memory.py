"""`redraft memory ...`: add, search, list, show, delete, stats, export and import corrections.

Data goes to stdout (tables, or JSON with --json), notes to stderr, like the other commands.
Commands that only read (search, list, show, stats, export) open the memory read-only: they
work on a memory that is not writable and create no file. Only add, search and import load
the embedding model (seconds); the others never do.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from redraft.cli.inputs import check_folder, check_memory_db
from redraft.cli.numbers import number_in
from redraft.cli.options import MEMORY_EXTRA
from redraft.cli.output import emit, note
from redraft.errors import ConfigError

if TYPE_CHECKING:
    from redraft.memory import Correction, CorrectionMemory

app = typer.Typer(
    name="memory",
    help=f"The memory of past corrections that loops learn from (needs {MEMORY_EXTRA}).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Db = Annotated[
    Path | None,
    typer.Option(
        "--db",
        metavar="PATH",
        help="Memory database, in a folder that exists (default: $REDRAFT_MEMORY or the "
        "per-user data folder).",
        show_default=False,
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="sentence-transformers model name or folder (default: the one the database "
        "was built with; all-MiniLM-L6-v2 for a new one).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
Kind = Annotated[
    str | None, typer.Option(help="Only corrections of this task kind.", show_default=False)
]
Critic = Annotated[
    str | None, typer.Option(help="Only corrections from this critic.", show_default=False)
]
Tags = Annotated[
    list[str] | None,
    typer.Option("--tag", help="Only corrections with this tag (repeatable).", show_default=False),
]
# `add` files a correction under these; the filters above select by them.
AddKind = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="The kind of task it is about (e.g. poem, sql): runs of tasks of that kind are "
        "given it.",
        show_default=False,
    ),
]
AddCritic = Annotated[
    str | None,
    typer.Option(
        "--critic", help="The critic that found the problem (e.g. rubric).", show_default=False
    ),
]
AddTags = Annotated[
    list[str] | None,
    typer.Option(
        "--tag",
        help="A tag to file it under (repeatable); search and list can select by it.",
        show_default=False,
    ),
]


@contextmanager
def _opened(
    db: Path | None, model: str | None = None, *, read_only: bool = False
) -> Iterator[CorrectionMemory]:
    path = check_memory_db(db, "--db")
    if model is not None and not model.strip():
        raise ConfigError(
            "--model is empty: give a sentence-transformers model name or folder, or leave "
            "it out to use the memory's own"
        )
    from redraft.memory import CorrectionMemory, Embedder, default_path

    if model is not None and not read_only and not (path or default_path()).exists():
        Embedder(model).check()  # a wrong name fails before a file is made for it
    memory = CorrectionMemory(path, model, read_only=read_only)
    try:
        yield memory
    finally:
        memory.close()


def _given(value: str, flag: str, what: str) -> None:
    # Named by its flag: the library's own message names the field ("task: must not be empty").
    if not value.strip():
        raise ConfigError(f"{flag} is empty: say {what}")


def _names_given(kind: str | None, critic: str | None, tags: list[str] | None) -> None:
    """--kind, --critic and --tag, when given, name something: an empty one would be filed
    under "" (add) or match nothing (search, list), without a word."""
    named = [("--kind", kind), ("--critic", critic), *(("--tag", tag) for tag in tags or [])]
    for flag, value in named:
        if value is not None and not value.strip():
            raise ConfigError(f"{flag} is empty: give a name, or leave the option out")


@app.command()
def add(
    task: Annotated[str, typer.Option(help="The task the correction is about.")],
    problem: Annotated[str, typer.Option(help="What was wrong.")],
    fix: Annotated[str, typer.Option(help="How it was fixed: a short lesson.")] = "",
    excerpt: Annotated[
        str | None, typer.Option(help="The flawed passage.", show_default=False)
    ] = None,
    revised: Annotated[
        str | None, typer.Option(help="What the passage became.", show_default=False)
    ] = None,
    kind: AddKind = None,
    tag: AddTags = None,
    critic: AddCritic = None,
    db: Db = None,
    model: Model = None,
    json_output: Json = False,
) -> None:
    """Add a correction (a near-identical one is counted instead of stored twice)."""
    _given(task, "--task", "which task the correction is about")
    _given(problem, "--problem", "what was wrong")
    _names_given(kind, critic, tag)
    with _opened(db, model) as memory:
        before = len(memory)
        record = memory.add(
            task,
            problem,
            fix,
            excerpt=excerpt,
            revised=revised,
            kind=kind,
            tags=tag or [],
            critic=critic,
        )
        merged = len(memory) == before
    if json_output:
        emit(record.model_dump_json())
    else:
        emit(record.id)
        if merged:
            note(None, f"merged into a near-identical correction, used {record.use_count} times")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in any words.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Most results.")] = 5,
    min_score: Annotated[
        float | None,
        typer.Option(
            parser=number_in(-1.0, 1.0, example="0.3"),
            metavar="COSINE",
            help="Relevance threshold (cosine, -1..1).",
            show_default=False,
        ),
    ] = None,
    kind: Kind = None,
    critic: Critic = None,
    tag: Tags = None,
    db: Db = None,
    model: Model = None,
    json_output: Json = False,
) -> None:
    """Corrections most similar to QUERY, above the relevance threshold."""
    _given(query, "QUERY", "what to look for")
    _names_given(kind, critic, tag)
    with _opened(db, model, read_only=True) as memory:
        hits = memory.search(
            query, k, min_score=min_score, kind=kind, critic=critic, tags=tag or []
        )
    if json_output:
        emit(json.dumps([{"score": h.score, "record": _jsonable(h.record)} for h in hits]))
        return
    if not hits:
        note(None, "no correction is relevant enough")
    for hit in hits:
        emit(f"{hit.score:.3f}  {_line(hit.record)}")


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, help="Most corrections, newest first.")] = 50,
    kind: Kind = None,
    critic: Critic = None,
    tag: Tags = None,
    db: Db = None,
    json_output: Json = False,
) -> None:
    """List corrections, newest first."""
    _names_given(kind, critic, tag)
    with _opened(db, read_only=True) as memory:
        records = list(memory.records(kind=kind, critic=critic, tags=tag or [], limit=limit))
    if json_output:
        emit(json.dumps([_jsonable(r) for r in records]))
        return
    for record in records:
        emit(_line(record))


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="An id, or its first letters.")],
    db: Db = None,
    json_output: Json = False,
) -> None:
    """Show one correction in full."""
    with _opened(db, read_only=True) as memory:
        record = memory.get(record_id)
    if json_output:
        emit(record.model_dump_json(indent=2))
        return
    for name, value in record.model_dump(mode="json").items():
        if value not in (None, "", []):
            shown = ", ".join(value) if isinstance(value, list) else value
            emit(f"{name}: {shown}")


@app.command()
def delete(
    record_ids: Annotated[
        list[str], typer.Argument(metavar="ID...", help="Ids, or their first letters.")
    ],
    db: Db = None,
) -> None:
    """Delete corrections."""
    # Every id is looked up before any is deleted (a typo in the third deletes nothing), and
    # read-only, so that a mistyped --db is not created just to find nothing in it.
    with _opened(db, read_only=True) as memory:
        found = [memory.get(record_id).id for record_id in record_ids]
    with _opened(db) as memory:
        for record_id in dict.fromkeys(found):
            record = memory.delete(record_id)
            note(None, f"deleted {record.id}")


@app.command()
def stats(db: Db = None, json_output: Json = False) -> None:
    """How many corrections, of which kinds and critics, and the model in use."""
    with _opened(db, read_only=True) as memory:
        figures = memory.stats()
    if json_output:
        emit(json.dumps(figures))
        return
    for name, value in figures.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {n}" for k, n in value.items()) or "-"
        emit(f"{name}: {value}")


@app.command("export")
def export(
    out: Annotated[
        Path | None,
        typer.Argument(metavar="FILE", help="JSONL file to write (default: stdout)."),
    ] = None,
    db: Db = None,
) -> None:
    """Write every correction as JSON lines (vectors are left out: they depend on the model)."""
    if out is not None:
        if out.exists():
            raise ConfigError(f"{out} exists: give a new file name, or remove it first")
        check_folder(out, "export file")
    with _opened(db, read_only=True) as memory:
        if out is None:
            count = memory.export_jsonl(sys.stdout)
        else:
            try:
                with out.open("x", encoding="utf-8") as handle:
                    count = memory.export_jsonl(handle)
            except OSError as exc:
                raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    note(None, f"exported {count} corrections")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL file, or - for stdin.")],
    db: Db = None,
    model: Model = None,
) -> None:
    """Add corrections from JSON lines (as export writes them); known ids are skipped and
    near-identical lessons merged."""
    name = "stdin" if str(source) == "-" else str(source)
    with _lines(source) as lines, _opened(db, model) as memory:
        try:
            read, added = memory.import_jsonl(lines)
        except UnicodeDecodeError:
            raise ConfigError(
                f"{name} is not UTF-8 text: give JSON lines as `redraft memory export` writes them"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror or exc}") from None
    note(None, f"read {read} corrections, {added} new")


@contextmanager
def _lines(source: Path) -> Iterator[TextIO]:
    """The JSONL to import, decoded strictly as UTF-8 (stdin too: under a C locale Python
    would let bad bytes through as surrogates); checked before the memory is opened."""
    if str(source) == "-":
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None:  # a text stream standing in for stdin (tests, embedding)
            yield sys.stdin
            return
        wrapper = io.TextIOWrapper(raw, encoding="utf-8")
        try:
            yield wrapper
        finally:
            wrapper.detach()  # stdin's own buffer stays open
        return
    if source.is_dir():
        raise ConfigError(f"{source} is a directory: give the path of a JSONL file")
    try:
        handle = source.open(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"import file not found: {source}: check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _line(record: Correction) -> str:
    scope = "/".join(x for x in (record.kind, record.critic) if x) or "-"
    fix = f" → {record.fix}" if record.fix else ""
    return f"{record.id[:8]}  {scope}  ×{record.use_count}  {record.problem}{fix}"


def _jsonable(record: Correction) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json")
    return data
