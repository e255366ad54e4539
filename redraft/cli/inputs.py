"""Reading what the user gave on the command line: the task, files, models."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redraft.errors import ConfigError

if TYPE_CHECKING:
    from redraft.memory import CorrectionMemory
from redraft.models.base import ChatModel
from redraft.rubrics import read_text_file


def read_task(task: str | None) -> str:
    if task is None or task == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError(
                "no task: give it as an argument, as @FILE, or on stdin "
                "(e.g. echo 'Write a haiku' | redraft refine -m MODEL)"
            )
        text = _read_stdin()
        if not text.strip():
            raise ConfigError("the task on stdin is empty: pipe in what to produce")
        return text.strip()
    if task.startswith("@@"):  # an escaped literal '@'
        task = task[1:]
    elif task.startswith("@"):
        if len(task) == 1:
            raise ConfigError("'@' needs a file name: @FILE reads the task from FILE")
        text = read_text_file(task[1:], "task file")
        if not text.strip():
            raise ConfigError(f"task file {task[1:]} is empty: write what to produce in it")
        return text.strip()
    if not task.strip():
        raise ConfigError("the task is empty: give an instruction saying what to produce")
    return task


def _read_stdin() -> str:
    """stdin as UTF-8, strictly: Python decodes it with `surrogateescape` under a C or POSIX
    locale, so a text read would let bad bytes through to fail as a server error later."""
    raw = getattr(sys.stdin, "buffer", None)
    try:
        if raw is not None:
            data: bytes = raw.read()
            text = data.decode("utf-8-sig").replace("\r\n", "\n")
        else:
            text = sys.stdin.read()
            text.encode("utf-8")  # lone surrogates: bytes that were not UTF-8
    except UnicodeError as exc:
        where = f" (bad byte at offset {exc.start})" if isinstance(exc, UnicodeDecodeError) else ""
        raise ConfigError(
            f"the task on stdin is not UTF-8 text{where}: send it as UTF-8 "
            "(e.g. through iconv -t UTF-8), or give it as @FILE"
        ) from None
    if "\x00" in text:  # valid UTF-8, but no text holds NUL: UTF-16, or binary data
        raise ConfigError(
            "the task on stdin holds NUL bytes, so it is not text (UTF-16, or binary data?): "
            "send it as UTF-8 (e.g. through iconv -t UTF-8), or give it as @FILE"
        )
    return text


def read_optional(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    text = read_text_file(path, what)
    if not text.strip():
        raise ConfigError(f"{what} {path} is empty: fill it in or leave the option out")
    return text.strip()


def check_folder(path: Path, flag: str) -> None:
    """The one rule for every file the CLI writes (--out, --memory-db, memory --db, export):
    its folder must exist, and is never created, so a typo in a path fails here in one line
    rather than leaving a stray folder behind."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a directory: give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.is_dir():
        return
    if parent.exists():
        raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder; give another path")
    raise ConfigError(
        f"{flag} {path}: folder {parent} does not exist; create it first (mkdir -p {parent}) "
        "or give another path"
    )


def check_writable(out: Path) -> None:
    # Checked before the run, so a typo does not throw away a paid-for result.
    check_folder(out, "--out")
    parent = out.parent if str(out.parent) else Path(".")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out} is not writable: choose another path")


def check_memory_db(path: Path | None, flag: str = "--memory-db") -> Path | None:
    """A memory path given on the command line, checked like --out (None: the default
    memory, whose per-user folder is created when needed)."""
    if path is None:
        return None
    chosen = path.expanduser()
    check_folder(chosen, flag)
    return chosen


def check_model_name(value: str | None, flag: str) -> str | None:
    """An empty --model would otherwise be taken as "not given" or as an unknown model."""
    if value is not None and not value.strip():
        raise ConfigError(
            f"{flag} is empty: give a model string such as openai/gpt-4o-mini, "
            "or leave the option out"
        )
    return value


def precheck(
    model: str | None, critic_model: str | None, editor_model: str | None, api_base: str | None
) -> None:
    """What can be told wrong about the model options without resolving them (cheap: no
    LiteLLM import), so that it fails before slower checks and before any call; a bad
    --api-base would otherwise be retried as a server error."""
    check_model_name(model, "--model")
    check_model_name(critic_model, "--critic-model")
    check_model_name(editor_model, "--editor-model")
    if api_base is not None:
        from redraft.models.resolve import check_api_base

        check_api_base(api_base, name="--api-base")


@dataclass
class ChosenModels:
    main: ChatModel
    critic: ChatModel | None
    editor: ChatModel | None

    @classmethod
    def resolve(
        cls,
        model: str | None,
        critic_model: str | None,
        editor_model: str | None,
        api_base: str | None,
    ) -> ChosenModels:
        # Imported here: it names LiteLLM's providers and keys (LiteLLM itself loads lazily).
        from redraft.models.resolve import check_credentials, resolve_model

        precheck(model, critic_model, editor_model, api_base)
        main = resolve_model(model, api_base=api_base)  # None: $REDRAFT_MODEL or how to set it
        critic = resolve_model(critic_model, api_base=api_base) if critic_model else None
        editor = resolve_model(editor_model, api_base=api_base) if editor_model else None
        for chosen in (main, critic, editor):
            if chosen is not None:
                check_credentials(chosen)  # a missing key fails now, not after the first draft
        return cls(main, critic, editor)

    def describe(self) -> str:
        parts = [self.main.name]
        if self.critic is not None and self.critic.name != self.main.name:
            parts.append(f"critic {self.critic.name}")
        if self.editor is not None and self.editor.name != self.main.name:
            parts.append(f"editor {self.editor.name}")
        return ", ".join(parts)


def open_memory(enabled: bool, path: Path | None) -> CorrectionMemory | None:
    """The memory a run learns from, when --memory or --memory-db asks for one; a run
    stores what it learned, so a read-only memory is refused here, before the run."""
    if not enabled and path is None:
        return None
    from redraft.memory import CorrectionMemory  # needs the [memory] extra: only when asked

    return CorrectionMemory(check_memory_db(path))
