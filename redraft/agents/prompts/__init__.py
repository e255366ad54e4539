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
        override_dir = None if overrides is None else _override_dir(overrides)
        if override_dir is not None:
            search_path.insert(0, str(override_dir))
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search_path),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
            # A library is read once: checking each file's mtime at every render cost more
            # than the render itself. Edited templates take effect in a new PromptLibrary.
            auto_reload=False,
        )
        self._static: dict[str, str] = {}
        # Jinja's own lookup checks its loader cache each time: a dict is cheaper per render.
        self._templates: dict[str, jinja2.Template] = {}
        if override_dir is not None:  # a broken template fails now, not in the middle of a run
            for name in self.names():
                if (override_dir / name).is_file():
                    self._template(name)

    def render(self, name: str, **values: Any) -> str:
        if not values:  # a template without values (a system prompt) renders the same always
            cached = self._static.get(name)
            if cached is None:
                cached = self._static[name] = self._render(name)
            return cached
        return self._render(name, **values)

    def _template(self, name: str) -> jinja2.Template:
        template = self._templates.get(name)
        if template is not None:
            return template
        try:
            template = self._templates[name] = self._env.get_template(name)
            return template
        except jinja2.TemplateNotFound as exc:
            raise ConfigError(f"prompt template not found: {name}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"prompt template {exc.filename}:{exc.lineno}: {exc.message}; fix the "
                "template's Jinja syntax there"
            ) from exc
        except UnicodeDecodeError:
            raise ConfigError(
                f"prompt template {name} is not UTF-8 text: save it as UTF-8"
            ) from None

    def _render(self, name: str, **values: Any) -> str:
        template = self._template(name)
        try:
            return template.render(**values).strip()
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {name}: {exc.message}") from exc

    @staticmethod
    def names() -> list[str]:
        """The template names a user may override."""
        return sorted(path.name for path in PACKAGE_DIR.glob("*.md"))


def _override_dir(overrides: str | Path) -> Path:
    """The user's folder of templates, checked."""
    if not str(overrides).strip():
        raise ConfigError("prompts is an empty path: give the folder of your prompt templates")
    folder = Path(overrides).expanduser()
    if folder.is_file():
        raise ConfigError(
            f"prompts {folder} is a file: give the folder that holds your copies of the "
            "templates (such as actor.md)"
        )
    if not folder.is_dir():
        raise ConfigError(f"prompt directory not found: {folder}: check the path")
    return folder


DEFAULT_PROMPTS = PromptLibrary()
