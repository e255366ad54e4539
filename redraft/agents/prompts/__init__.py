"""Prompt templates as files. A user directory with files of the same names overrides them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from redraft.errors import ConfigError

PACKAGE_DIR = Path(__file__).parent


class PromptLibrary:
    """Renders the Jinja templates in this folder, or the user's copies of them."""

    def __init__(self, overrides: str | Path | None = None) -> None:
        search_path = [str(PACKAGE_DIR)]
        if overrides is not None:
            override_dir = Path(overrides)
            if not override_dir.is_dir():
                raise ConfigError(f"prompt directory not found: {override_dir}")
            search_path.insert(0, str(override_dir))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search_path),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
        self._static: dict[str, str] = {}

    def render(self, name: str, **values: Any) -> str:
        if not values:  # a template without values (a system prompt) renders the same always
            cached = self._static.get(name)
            if cached is None:
                cached = self._static[name] = self._render(name)
            return cached
        return self._render(name, **values)

    def _render(self, name: str, **values: Any) -> str:
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"prompt template not found: {name}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"prompt template {exc.filename}:{exc.lineno}: {exc.message}"
            ) from exc
        try:
            return template.render(**values).strip()
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {name}: {exc.message}") from exc

    @staticmethod
    def names() -> list[str]:
        """The template names a user may override."""
        return sorted(path.name for path in PACKAGE_DIR.glob("*.md"))


DEFAULT_PROMPTS = PromptLibrary()
