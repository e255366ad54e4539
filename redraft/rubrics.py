"""Rubrics from files: YAML or JSON for a structured `Rubric`, anything else as free text.

Every failure is a `ConfigError` of one line that names the file and says how to fix it,
because a rubric is usually hand-written and the CLI shows the message as is.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from redraft.errors import ConfigError
from redraft.types import Rubric

STRUCTURED_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_KEYS = ("description", "criteria", "scale", "pass_score")
_EXPECTED = {
    "description": "a string saying what a good answer does",
    "criteria": "a list of strings, one criterion each",
    "scale": "a mapping of each score 1, 2, 3, 4 and 5 to what it means",
    "pass_score": "an integer from 1 to 5",
}


def read_text_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of `path`; `what` names the file in errors ('rubric file', 'task file')."""
    path = Path(path)
    try:
        # utf-8-sig: editors on Windows add a byte-order mark that is not part of the text.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}: check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory: give the path of a file") from None
    except PermissionError:
        raise ConfigError(
            f"cannot read {what} {path}: permission denied; make it readable (chmod +r)"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (bad byte at offset {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read {what} {path}: {reason}") from None
    if "\x00" in text:  # valid UTF-8, but no text holds NUL: UTF-16, or a binary file
        raise ConfigError(
            f"{what} {path} holds NUL bytes, so it is not text (UTF-16, or a binary file?): "
            "save it as UTF-8"
        )
    return text


def load_rubric(path: str | Path) -> str | Rubric:
    """A `Rubric` from a .yaml/.yml/.json mapping, or the file's text as a free-text rubric."""
    path = Path(path)
    text = read_text_file(path, "rubric file")
    if not text.strip():
        raise ConfigError(f"rubric file {path} is empty: write the rubric in it")
    suffix = path.suffix.lower()
    if suffix not in STRUCTURED_SUFFIXES:
        return text.strip()
    data = _parse_json(path, text) if suffix == ".json" else _parse_yaml(path, text)
    if data is None:  # a YAML file of comments only
        raise ConfigError(f"rubric file {path} is empty: write the rubric in it")
    if not isinstance(data, dict):
        raise ConfigError(
            f"rubric file {path} must hold a mapping with the keys {', '.join(_KEYS)}, "
            f"not {_kind(data)} (for a free-text rubric use a .md or .txt file)"
        )
    return _validate(path, data)


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(
            f"rubric file {path} is not valid YAML{where}: {problem}; fix the syntax there"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"rubric file {path} is not valid YAML: {exc}") from None


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"rubric file {path} is not valid JSON at line {exc.lineno}: {exc.msg}; "
            "fix the syntax there"
        ) from None


def _validate(path: Path, data: dict[Any, Any]) -> Rubric:
    unknown = [key for key in data if key not in _KEYS]
    if unknown:
        key = str(unknown[0])
        close = difflib.get_close_matches(key, _KEYS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"rubric file {path} has an unknown key '{key}': {hint}the keys are {', '.join(_KEYS)}"
        )
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, data, exc)) from None
    if not rubric.description.strip() and not rubric.criteria:
        raise ConfigError(
            f"rubric file {path} says nothing to judge by: give a 'description' or 'criteria'"
        )
    return rubric


def _describe(path: Path, data: dict[Any, Any], exc: ValidationError) -> str:
    """One line for the first problem: which key, what it should be, what it was."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = loc[0] if loc else "rubric"
    if key == "scale" and error["type"] == "value_error":
        # The scale validator: its keys were not exactly 1..5.
        got = ", ".join(str(k) for k in (data.get("scale") or {}))
        return f"rubric file {path}: 'scale' must describe exactly the scores 1 to 5 (got {got})"
    got = _show(error.get("input"))
    if key == "criteria" and error["type"] == "value_error":  # the validator: a blank one
        return f"rubric file {path}: 'criteria' holds an empty criterion: fill it in or drop it"
    if key == "criteria" and len(loc) > 1:
        return f"rubric file {path}: 'criteria' item {int(loc[1]) + 1} must be a string (got {got})"
    if key == "scale" and len(loc) > 2:  # a bad key: ('scale', key, '[key]')
        return f"rubric file {path}: 'scale' keys must be the scores 1 to 5 (got {got})"
    if key == "scale" and len(loc) > 1:
        return (
            f"rubric file {path}: 'scale' entry {loc[1]} must be a string saying what that "
            f"score means (got {got})"
        )
    expected = _EXPECTED.get(key, "a valid value")
    return f"rubric file {path}: '{key}' must be {expected} (got {got})"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


def _show(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
