"""Bad input to every `redraft` command: exit code 2 and exactly one `error: ` line on stderr
that names the fix, never a traceback, and nothing left behind (no folder, file or image
made for a mistyped path or name).

The cases run `redraft.cli.main` in this process, with the working directory set to a
folder of prepared files; a few end-to-end checks use the installed entry point in a fresh
interpreter (stdin bytes, the hub's environment, a read-only file system).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from redraft.cli import main
from redraft.memory import DEFAULT_MODEL, Correction, CorrectionMemory, Embedder
from redraft.testing.openai_server import ChatRequest, OpenAIServer, ServerReply

# Variables that would change what the CLI does; each test starts without them.
_ENV = (
    "REDRAFT_MODEL",
    "REDRAFT_API_BASE",
    "OPENAI_API_KEY",
    "TTY_COMPATIBLE",
    "FORCE_COLOR",
    "DOCKER_HOST",
)


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    fix: str | tuple[str, ...]  # words of the fix the line must name (any one, if several)
    stdin: bytes | None = None
    not_made: tuple[str, ...] = ()  # paths the command must not create
    absent: tuple[str, ...] = ()  # words the line must not hold (parser internals...)
    read_only: bool = False  # ro.db is not writable


M = "-m openai/x"  # a model whose key is missing: a run never starts
STORED_ID = "abcdef0123456789abcdef0123456789"  # the correction in ro.db
NODIR = "nodir/inner"  # a folder that does not exist


def case(
    command: str,
    *,
    fix: str | tuple[str, ...],
    stdin: bytes | None = None,
    not_made: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    read_only: bool = False,
) -> Case:
    """A command line as a shell would split it; $M, $ID and $NODIR stand for the above."""
    line = command.replace("$M", M).replace("$ID", STORED_ID[:8]).replace("$NODIR", NODIR)
    return Case(tuple(shlex.split(line)), fix, stdin, not_made, absent, read_only)


CASES: dict[str, Case] = {
    # -- refine: the task --------------------------------------------------------------------------
    "refine-empty-task": case("refine $M ''", fix="give an instruction"),
    "refine-blank-task": case("refine $M '   '", fix="give an instruction"),
    "refine-at-alone": case("refine $M @", fix="@FILE reads the task"),
    "refine-task-file-missing": case("refine $M @missing.txt", fix="check the path"),
    "refine-task-file-is-dir": case("refine $M @adir", fix="path of a file"),
    "refine-task-file-binary": case("refine $M @binary.txt", fix="save it as UTF-8"),
    "refine-task-file-empty": case("refine $M @empty.txt", fix="write what to produce"),
    "refine-stdin-not-utf8": case(
        "refine $M",
        fix="send it as UTF-8",
        stdin=b"\xff\xfe caf\xe9 \x80",
    ),
    "refine-stdin-latin1": case("refine $M -", fix="not UTF-8", stdin=b"caf\xe9"),
    "refine-stdin-blank": case("refine $M", fix="pipe in what to produce", stdin=b"  \n "),
    # -- refine: models and the server -------------------------------------------------------------
    "refine-model-empty": case("refine -m '' hi", fix="--model is empty"),
    "refine-model-unknown": case("refine -m nonexistent-provider/x hi", fix="LiteLLM model string"),
    "refine-missing-key": case("refine $M hi", fix="set OPENAI_API_KEY"),
    "refine-critic-model-empty": case(
        "refine $M --critic-model '' hi",
        fix="--critic-model is empty",
    ),
    "refine-editor-model-empty": case(
        "refine $M --editor-model '' hi",
        fix="--editor-model is empty",
    ),
    "refine-critic-model-unknown": case(
        "refine $M --critic-model bad/x hi",
        fix="LiteLLM model string",
    ),
    "refine-api-base-not-url": case(
        "refine $M --api-base 'not a url' hi",
        fix="http://localhost:8000/v1",
    ),
    "refine-api-base-empty": case("refine $M --api-base '' hi", fix="http://localhost:8000/v1"),
    "refine-api-base-ftp": case("refine $M --api-base ftp://host/v1 hi", fix="http:// or https://"),
    "refine-api-base-no-host": case("refine $M --api-base http://:8000 hi", fix="names no host"),
    "refine-api-base-local-model": case(
        "refine -m hf:x --api-base http://localhost:1/v1 hi",
        fix="drop it",
    ),
    # -- refine: numbers ---------------------------------------------------------------------------
    "refine-rounds-zero": case("refine $M --rounds 0 hi", fix="greater than or equal"),
    "refine-rounds-negative": case("refine $M --rounds -1 hi", fix="greater than or equal"),
    "refine-rounds-text": case("refine $M --rounds abc hi", fix="valid integer"),
    "refine-rounds-decimal": case("refine $M --rounds 2.5 hi", fix="valid integer"),
    "refine-patience-negative": case("refine $M --patience -1 hi", fix="or 'off'"),
    "refine-patience-zero": case("refine $M --patience 0 hi", fix="'off' for no patience rule"),
    "refine-patience-text": case("refine $M --patience never hi", fix="or 'off'"),
    "refine-max-tokens-zero": case("refine $M --max-tokens 0 hi", fix="greater than or equal to 1"),
    "refine-max-cost-negative": case("refine $M --max-cost -1 hi", fix="above 0"),
    "refine-max-cost-nan": case("refine $M --max-cost nan hi", fix="not a number"),
    "refine-max-cost-inf": case(
        "refine $M --max-cost inf hi",
        fix="leave --max-cost out for no limit",
    ),
    "refine-threshold-nan": case(
        "refine $M --threshold nan hi",
        fix="give a number in 0..1",
        absent=("less than or equal",),
    ),
    "refine-threshold-inf": case("refine $M --threshold inf hi", fix="finite"),
    "refine-threshold-minus-inf": case("refine $M --threshold -inf hi", fix="finite"),
    "refine-threshold-above-one": case("refine $M --threshold 1.5 hi", fix="in 0..1"),
    "refine-threshold-negative": case("refine $M --threshold -0.1 hi", fix="in 0..1"),
    "refine-threshold-text": case("refine $M --threshold high hi", fix="is not a number"),
    # -- refine: files -----------------------------------------------------------------------------
    "refine-rubric-missing": case("refine $M --rubric missing.yaml hi", fix="check the path"),
    "refine-rubric-is-dir": case("refine $M --rubric adir hi", fix="path of a file"),
    "refine-rubric-bad-yaml": case(
        "refine $M --rubric bad.yaml hi",
        fix="fix the syntax",
        absent=("<unicode",),
    ),
    "refine-rubric-truncated-json": case(
        "refine $M --rubric truncated.json hi",
        fix="fix the syntax",
    ),
    "refine-rubric-binary": case("refine $M --rubric binary.txt hi", fix="UTF-8"),
    "refine-context-is-dir": case("refine $M --context adir hi", fix="path of a file"),
    "refine-reference-missing": case("refine $M --reference missing.txt hi", fix="check the path"),
    "refine-reference-empty": case("refine $M --reference empty.txt hi", fix="fill it in"),
    "refine-out-is-dir": case("refine $M --out adir hi", fix="give a file name"),
    "refine-out-no-folder": case(
        "refine $M --out $NODIR/o.txt hi",
        fix="create it first",
        not_made=("nodir",),
    ),
    "refine-memory-db-no-folder": case(
        "refine $M --memory-db $NODIR/m.db hi",
        fix="create it first",
        not_made=("nodir",),
    ),
    "refine-memory-db-is-dir": case("refine $M --memory-db adir hi", fix="give a file name"),
    "refine-unknown-option": case("refine $M --bogus hi", fix="No such option"),
    # -- code --------------------------------------------------------------------------------------
    "code-no-tests": case("code $M hi", fix="--tests"),
    "code-tests-missing": case("code $M -t missing_test.py hi", fix="not found"),
    "code-tests-is-dir": case(
        "code $M -t adir hi",
        fix=("inside it", "path of a file"),
        absent=("Errno",),
    ),
    "code-tests-binary": case("code $M -t binary.py hi", fix="UTF-8", absent=("codec", "0x")),
    "code-tests-truncated-json": case(
        "code $M -t truncated.json hi",
        fix="line 2",
        absent=("<unicode string>", "^", "while parsing"),
    ),
    "code-tests-bad-yaml": case(
        "code $M -t bad.yaml hi",
        fix="line 2",
        absent=("<unicode string>",),
    ),
    "code-tests-not-a-list": case(
        "code $M -t mapping.json hi",
        fix="list of {input, output} cases",
    ),
    "code-sandbox-unknown": case("code $M -t ok_test.py --sandbox nope hi", fix="choose one of"),
    "code-timeout-zero": case("code $M -t ok_test.py --timeout 0 hi", fix="of at least 0.1"),
    "code-timeout-nan": case("code $M -t ok_test.py --timeout nan hi", fix="not a number"),
    "code-timeout-inf": case("code $M -t ok_test.py --timeout inf hi", fix="finite"),
    "code-memory-mb-small": case(
        "code $M -t ok_test.py --memory-mb 1 hi",
        fix="greater than or equal",
    ),
    "code-rounds-zero": case("code $M -t ok_test.py --rounds 0 hi", fix="greater than or equal"),
    "code-empty-task": case("code $M -t ok_test.py ''", fix="give an instruction"),
    "code-entry-point-not-a-name": case(
        "code $M -t ok_test.py --entry-point 1bad hi",
        fix="function name",
    ),
    "code-api-base-not-url": case(
        "code $M -t ok_test.py --api-base 'not a url' hi",
        fix="http://localhost:8000/v1",
    ),
    "code-out-no-folder": case(
        "code $M -t ok_test.py --out $NODIR/x.py hi",
        fix="create it first",
        not_made=("nodir",),
    ),
    "code-memory-db-no-folder": case(
        "code $M -t ok_test.py --memory-db $NODIR/m.db hi",
        fix="create it first",
        not_made=("nodir",),
    ),
    # -- demo --------------------------------------------------------------------------------------
    "demo-unknown-option": case("demo --bogus", fix="No such option"),
    "demo-extra-argument": case("demo extra", fix="unexpected extra argument"),
    # -- sandbox -----------------------------------------------------------------------------------
    "build-image-bad-name": case(
        "sandbox build-image --name 'Bad Name!!'",
        fix="lowercase",
        absent=("bug",),
    ),
    "build-image-uppercase": case("sandbox build-image --name UPPER", fix="lowercase"),
    "build-image-empty-name": case("sandbox build-image --name ''", fix="give an image name"),
    "build-image-dangling-tag": case(
        "sandbox build-image --name sandbox:",
        fix="e.g. redraft-sandbox:latest",
    ),
    "build-image-digest-as-name": case(
        "sandbox build-image --name img@sha256:" + "a" * 64,
        fix="optionally a /path",
    ),
    "build-image-bad-source": case(
        "sandbox build-image --from-image 'bad image!!'",
        fix="Docker image name",
    ),
    "sandbox-check-unknown": case("sandbox check --backend nope", fix="choose one of"),
    "sandbox-unknown-command": case("sandbox nope", fix="No such command"),
    # -- memory ------------------------------------------------------------------------------------
    "memory-unknown-command": case("memory nope", fix="No such command"),
    "memory-add-empty-task": case("memory add --task '' --problem p", fix="--task is empty"),
    "memory-add-empty-problem": case("memory add --task t --problem ' '", fix="--problem is empty"),
    "memory-add-no-problem": case("memory add --task t", fix="--problem"),
    "memory-add-db-is-dir": case(
        "memory add --task t --problem p --db adir",
        fix="give a file name",
    ),
    "memory-add-db-no-folder": case(
        "memory add --task t --problem p --db $NODIR/m.db",
        fix="create it first",
        not_made=("nodir",),
    ),
    "memory-add-db-not-sqlite": case(
        "memory add --task t --problem p --db binary.txt",
        fix="give another --db path",
    ),
    "memory-add-db-foreign": case(
        "memory add --task t --problem p --db foreign.db",
        fix="another program",
    ),
    "memory-add-model-not-downloaded": case(
        "memory add --task t --problem p --db new.db --model nonexistent/x",
        fix="HF_HUB_OFFLINE",
        not_made=("new.db",),
    ),
    "memory-add-model-folder-missing": case(
        "memory add --task t --problem p --db new.db --model ./no-such-model",
        fix="check the path",
        not_made=("new.db",),
    ),
    "memory-add-model-not-a-folder": case(
        "memory add --task t --problem p --db new.db --model adir",
        fix="model folder",
        not_made=("new.db",),
    ),
    "memory-add-model-bad-name": case(
        "memory add --task t --problem p --db new.db --model 'Bad Name!!'",
        fix="owner/name",
        not_made=("new.db",),
    ),
    "memory-add-model-empty": case(
        "memory add --task t --problem p --model ''",
        fix="--model is empty",
    ),
    "memory-add-read-only": case(
        "memory add --task t --problem p --db ro.db",
        fix="read-only",
        read_only=True,
    ),
    "memory-delete-read-only": case(
        "memory delete --db ro.db $ID",
        fix="read-only",
        read_only=True,
    ),
    "memory-import-read-only": case(
        "memory import --db ro.db broken.jsonl",
        fix="make it writable",
        read_only=True,
    ),
    "memory-search-empty": case("memory search ''", fix="QUERY is empty"),
    "memory-search-k-zero": case("memory search q -k 0", fix="greater than"),
    "memory-search-min-score-nan": case("memory search q --min-score nan", fix="not a number"),
    "memory-search-min-score-big": case("memory search q --min-score 2", fix="in -1..1"),
    "memory-show-short-id": case("memory show abc", fix="at least 4 characters"),
    "memory-show-unknown-id": case(
        "memory show --db fresh.db abcdef",
        fix="no correction with id",
        not_made=("fresh.db",),
    ),
    "memory-delete-no-id": case("memory delete", fix="Missing argument"),
    "memory-delete-unknown-id": case(
        "memory delete --db fresh.db abcdef",
        fix="no correction with id",
        not_made=("fresh.db",),
    ),
    "memory-list-limit-zero": case("memory list --limit 0", fix="greater than"),
    "memory-list-foreign": case("memory list --db foreign.db", fix="another program"),
    "memory-list-db-no-folder": case(
        "memory list --db $NODIR/m.db",
        fix="create it first",
        not_made=("nodir",),
    ),
    "memory-import-missing": case("memory import missing.jsonl", fix="check the path"),
    "memory-import-is-dir": case("memory import adir", fix="JSONL file"),
    "memory-import-binary": case("memory import binary.txt", fix="UTF-8", absent=("codec", "0x")),
    "memory-import-stdin-binary": case("memory import -", fix="UTF-8", stdin=b"\xff\xfe\x00{"),
    "memory-import-not-a-correction": case("memory import broken.jsonl", fix="not a correction"),
    "memory-export-exists": case("memory export adir", fix="give a new file name"),
    "memory-export-no-folder": case(
        "memory export $NODIR/x.jsonl",
        fix="create it first",
        not_made=("nodir",),
    ),
    # -- found by an adversarial pass: refused in one line, before any run -----------------------
    "refine-task-file-nul": case("refine $M @nul.txt", fix="save it as UTF-8", absent=("codec",)),
    "refine-stdin-nul": case("refine $M", fix="send it as UTF-8", stdin=b"Write\x00 a haiku"),
    "refine-rubric-nul": case("refine $M --rubric nul.txt hi", fix="NUL bytes"),
    "refine-context-utf16": case("refine $M --context utf16.txt hi", fix="UTF-16"),
    "refine-max-cost-zero": case(
        "refine $M --max-cost 0 hi",
        fix="above 0",
        absent=("max_cost_usd", "at least 0"),
    ),
    "refine-api-base-credentials": case(
        "refine $M --api-base http://user:secret@localhost:8000/v1 hi",
        fix="drop them",
    ),
    "refine-rubric-a-number": case("refine $M --rubric number.yaml hi", fix="not an int"),
    "refine-rubric-blank-criterion": case(
        "refine $M --rubric blank_criterion.yaml hi",
        fix="fill it in or drop it",
    ),
    "code-api-base-credentials": case(
        "code $M -t ok_test.py --api-base http://user@localhost:8000/v1 hi",
        fix="drop them",
    ),
    "code-tests-nul": case("code $M -t nul_test.py hi", fix="null bytes", absent=("line None",)),
    "code-cases-not-mappings": case(
        "code $M -t numbers.json hi",
        fix="write each case as {input: ..., output: ...}",
        absent=("IOCase", "(:"),
    ),
    "code-cases-missing-output-named": case("code $M -t no_output.json hi", fix="I/O case 2"),
    "code-memory-mb-huge": case(
        "code $M -t ok_test.py --memory-mb 99999999999999999999 hi",
        fix="less than or equal to 1048576",
    ),
    "code-entry-point-keyword": case(
        "code $M -t check_test.py --entry-point class hi",
        fix="function name",
    ),
    "memory-add-empty-kind": case(
        "memory add --task t --problem p --kind ''", fix="--kind is empty"
    ),
    "memory-add-empty-tag": case("memory add --task t --problem p --tag ' '", fix="--tag is empty"),
    "memory-add-empty-critic": case(
        "memory add --task t --problem p --critic ''",
        fix="--critic is empty",
    ),
    "memory-list-empty-kind": case("memory list --kind ''", fix="--kind is empty"),
    "memory-search-empty-tag": case("memory search q --tag ''", fix="--tag is empty"),
    "memory-import-not-json": case(
        "memory import not_json.jsonl",
        fix="as `redraft memory export` writes them",
    ),
}


class _FixedEmbedder(Embedder):
    """Stores records without loading a model (the vectors only need the right size)."""

    def __init__(self) -> None:
        super().__init__(DEFAULT_MODEL)

    def embed(self, texts: object) -> np.ndarray:  # type: ignore[override]
        count = len(texts)  # type: ignore[arg-type]
        vectors = np.ones((count, 384), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    # No case may touch the user's own memory.
    monkeypatch.setenv("REDRAFT_MEMORY", str(tmp_path / "default" / "memory.db"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad image name must be refused before Docker or debootstrap is touched: reaching
    them fails the case (as a bug, exit 70)."""
    import redraft.sandboxes.image as image

    def reached(*args: object, **kwargs: object) -> str:
        raise AssertionError("the image name reached docker unchecked")

    monkeypatch.setattr(image, "build_image", reached)
    monkeypatch.setattr(image, "use_image", reached)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of bad (and a few good) input files."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "adir").mkdir()
    (work / "empty.txt").write_text("  \n", encoding="utf-8")
    (work / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    (work / "binary.py").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    (work / "bad.yaml").write_text("criteria: [\n", encoding="utf-8")
    (work / "truncated.json").write_text('[{"input": "1", "output": "2"\n', encoding="utf-8")
    (work / "mapping.json").write_text('{"input": "1"}', encoding="utf-8")
    (work / "ok_test.py").write_text("def test_one():\n    assert True\n", encoding="utf-8")
    (work / "broken.jsonl").write_text('{"task": "t"}\n', encoding="utf-8")
    (work / "not_json.jsonl").write_text("task: t\n", encoding="utf-8")
    (work / "nul.txt").write_bytes(b"Write a haiku\x00\x00")
    (work / "utf16.txt").write_bytes("Notes".encode("utf-16-le"))  # no BOM: UTF-8 with NULs
    (work / "nul_test.py").write_bytes(b"def test_one():\n    assert True\x00\n")
    (work / "check_test.py").write_text(
        "def check(candidate):\n    assert candidate() == 1\n", encoding="utf-8"
    )
    (work / "numbers.json").write_text("[1, 2]", encoding="utf-8")
    (work / "no_output.json").write_text(
        '[{"input": "1", "output": "1"}, {"input": "2"}]', encoding="utf-8"
    )
    (work / "number.yaml").write_text("42\n", encoding="utf-8")
    (work / "blank_criterion.yaml").write_text("criteria: [short, '']\n", encoding="utf-8")
    with sqlite3.connect(work / "foreign.db") as db:
        db.execute("CREATE TABLE other (x)")
    db.close()
    with CorrectionMemory(work / "ro.db", _FixedEmbedder()) as memory:
        memory.add_many([Correction(id=STORED_ID, task="Write a haiku", problem="too long")])
    monkeypatch.chdir(work)
    return work


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def the_error_line(err: str) -> str:
    """The one line on stderr: `error: ...`, and nothing else (no bars, no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert len(lines[0]) > len("error: ") + 10, err
    return lines[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_naming_the_fix(
    name: str,
    files: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = CASES[name]
    if bad.stdin is not None:
        # The raw bytes, decoded as Python does under a C locale (surrogateescape).
        stdin = io.TextIOWrapper(io.BytesIO(bad.stdin), encoding="utf-8", errors="surrogateescape")
        monkeypatch.setattr(sys, "stdin", stdin)
    if bad.read_only:
        # As root nothing is read-only but a read-only file system (tested end to end below),
        # so this memory is declared read-only where redraft asks.
        import redraft.memory.store as store

        real = store.read_only_reason
        monkeypatch.setattr(
            store,
            "read_only_reason",
            lambda path: "the file is not writable" if path.name == "ro.db" else real(path),
        )
    code, _, err = run(capsys, list(bad.args))
    line = the_error_line(err)
    assert code == 2, err
    wanted = (bad.fix,) if isinstance(bad.fix, str) else bad.fix
    assert any(word.lower() in line.lower() for word in wanted), line
    for word in bad.absent:
        assert word not in line, line
    for path in bad.not_made:
        assert not (files / path).exists(), f"{path} was created"


def test_there_are_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60


# -- end to end, in a fresh interpreter ------------------------------------------------------


def fresh_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    env.update(PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8", **extra)
    return env


def test_non_utf8_stdin_through_the_entry_point(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "redraft", "refine", "-m", "openai/x"],
        input=b"\xff\xfe not text \x80",
        capture_output=True,
        env=fresh_env(OPENAI_API_KEY="sk-test", REDRAFT_MEMORY=str(tmp_path / "m.db")),
        timeout=120,
    )
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2, err
    assert "not UTF-8" in the_error_line(err)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_embedding_model_the_hub_cannot_be_asked_about_is_one_line(tmp_path: Path) -> None:
    """Online mode, but the hub unreachable: one question, one line (not minutes of download
    retries), and no memory file made for the model."""
    env = fresh_env(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HOME=str(tmp_path))
    env.pop("HF_HUB_OFFLINE", None)
    db = tmp_path / "m.db"
    args = ["memory", "add", "--db", str(db), "--model", "nonexistent/x"]
    done = subprocess.run(
        [sys.executable, "-m", "redraft", *args, "--task", "t", "--problem", "p"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    line = the_error_line(done.stderr)
    assert "cannot be reached" in line and "local model folder" in line
    assert not db.exists()


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user+mount namespaces")
def test_a_memory_on_a_read_only_file_system_is_read_and_refuses_writes(tmp_path: Path) -> None:
    """A real read-only mount (as root, permissions do not stop writes): list, show, stats,
    export and search read it; add says it is read-only; nothing is written."""
    source, mounted = tmp_path / "src", tmp_path / "ro"
    source.mkdir()
    mounted.mkdir()
    with CorrectionMemory(source / "m.db", _FixedEmbedder()) as memory:
        record = memory.add("Write a haiku about rain", "line two has eight syllables")
    before = sorted(p.name for p in source.iterdir())
    db = mounted / "m.db"
    redraft = f"{sys.executable} -m redraft memory"
    script = " && ".join(
        [
            f"mount --bind {source} {mounted}",
            f"mount -o remount,ro,bind {mounted}",
            f"{redraft} list --db {db} --json > {tmp_path}/list.json",
            f"{redraft} show --db {db} {record.id[:8]} > {tmp_path}/show.txt",
            f"{redraft} stats --db {db} --json > {tmp_path}/stats.json",
            f"{redraft} search --db {db} --min-score -1 --json rain > {tmp_path}/search.json",
            f"! {redraft} add --db {db} --task t --problem p 2> {tmp_path}/add.err",
        ]
    )
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=fresh_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads((tmp_path / "list.json").read_text())] == [record.id]
    assert f"id: {record.id}" in (tmp_path / "show.txt").read_text()
    assert json.loads((tmp_path / "stats.json").read_text())["corrections"] == 1
    [hit] = json.loads((tmp_path / "search.json").read_text())
    assert hit["record"]["id"] == record.id
    line = the_error_line((tmp_path / "add.err").read_text())
    assert "read-only" in line and "read-only file system" in line
    assert sorted(p.name for p in source.iterdir()) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_memory_file_is_read_and_refuses_writes(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = files / "ro.db"
    db.chmod(0o444)
    code, _, err = run(capsys, ["memory", "list", "--db", str(db)])
    assert code == 0 and err == ""
    code, _, err = run(capsys, ["memory", "add", "--db", str(db), "--task", "t", "--problem", "p"])
    assert code == 2 and "chmod u+w" in the_error_line(err)


# -- reading commands, help texts, output ----------------------------------------------------


def test_reading_commands_never_load_the_model_nor_create_a_file(
    files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redraft.memory.embedder as embedder

    def load(name: str) -> object:
        raise AssertionError("the embedding model was loaded")

    monkeypatch.setattr(embedder, "_load_model", load)
    missing = files / "none.db"
    for args in (["list"], ["stats"], ["export"], ["list", "--json"]):
        code, out, err = run(capsys, ["memory", *args, "--db", str(missing)])
        assert code == 0, err
        assert "error" not in err
    assert not missing.exists()
    code, out, _ = run(capsys, ["memory", "stats", "--db", str(files / "ro.db"), "--json"])
    assert code == 0 and json.loads(out)["corrections"] == 1
    code, out, _ = run(capsys, ["memory", "show", "--db", str(files / "ro.db"), STORED_ID[:6]])
    assert code == 0 and f"id: {STORED_ID}" in out


def test_a_limit_beyond_sqlite_integers_lists_everything(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Was reported as an unreadable memory ("restore it from a backup") for SQLite's overflow.
    code, out, err = run(capsys, ["memory", "list", "--db", "ro.db", "--limit", "9" * 25])
    assert code == 0 and err == ""
    assert out.startswith(STORED_ID[:8])


def test_loading_the_model_prints_no_progress_bars(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["memory", "add", "--db", "m.db", "--task", "Write a haiku", "--problem", "too long"]
    code, out, err = run(capsys, args)
    assert code == 0, err
    assert len(out.strip()) == 32  # the new record's id
    assert err == ""


def test_help_texts_show_the_memory_extra_and_what_add_does(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    for args in (["memory", "--help"], ["refine", "--help"], ["code", "--help"]):
        assert main(args) == 0
        out, _ = capsys.readouterr()
        assert "redraft[memory]" in out, args
    assert main(["memory", "add", "--help"]) == 0
    out, _ = capsys.readouterr()
    assert "Only corrections" not in out  # the filters' help, which add had
    assert "The critic that found the problem" in out and "A tag to file it under" in out


def _reply(request: ChatRequest) -> ServerReply | str:
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    if request.response_format is not None or "strict, fair reviewer" in system:
        return "this is not JSON"  # the critic fails, every time
    return "A haiku about rain"


def test_piped_output_says_why_critics_failed(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIServer(_reply) as server:
        args = ["refine", "-m", "openai/x", "--api-base", server.base_url, "--rounds", "2", "hi"]
        code, out, err = run(capsys, args)
    assert code == 1
    assert out.strip() == "A haiku about rain"
    lines = err.splitlines()
    assert "critics_failed" in lines[0]
    assert lines[1].startswith("critic rubric failed in round 0: ") and "JSON" in lines[1]


def test_an_api_key_refused_names_the_variable_to_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with OpenAIServer(lambda request: ServerReply("bad key", status=401)) as server:
        code, _, err = run(
            capsys, ["refine", "-m", "openai/x", "--api-base", server.base_url, "hi"]
        )
    assert code == 2
    line = the_error_line(err)
    assert "wants an API key: set OPENAI_API_KEY" in line


def test_progress_off_a_terminal_ends_its_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    from redraft.demo import DEMO_TASK, demo_refiner

    result = demo_refiner(delay_s=0.0).run(DEMO_TASK, progress=True)
    out, _ = capsys.readouterr()
    assert result.passed
    assert "stop: passed" in out and out.endswith("\n")
