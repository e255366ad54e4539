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
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise ConfigError("the task on stdin is not UTF-8 text: send it as UTF-8") from None
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


def read_optional(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    text = read_text_file(path, what)
    if not text.strip():
        raise ConfigError(f"{what} {path} is empty: fill it in or leave the option out")
    return text.strip()


def check_writable(out: Path) -> None:
    # Checked before the run, so a typo does not throw away a paid-for result.
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory: give a file name")
    if not parent.is_dir():
        raise ConfigError(f"--out {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"--out {out} is not writable: choose another path")


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
    """The memory a run learns from, when --memory or --memory-db asks for one."""
    if not enabled and path is None:
        return None
    from redraft.memory import CorrectionMemory  # needs the [memory] extra: only when asked

    return CorrectionMemory(path)
