"""Errors a user can act on. Each message is one line that names the fix."""

from __future__ import annotations


class RedraftError(Exception):
    """Base class of every error redraft raises on purpose."""


class ConfigError(RedraftError, ValueError):
    """The run is configured wrongly: unknown model, missing API key, broken rubric...

    Also a `ValueError`, so code that catches pydantic's validation errors (which are
    ValueErrors) or bad arguments in general still catches a refused value.
    """


class ModelError(RedraftError):
    """A model call failed for good (after retries) or answered something unusable."""


class StructuredOutputError(ModelError):
    """A model's answer did not match the requested schema, even after a repair re-ask."""


class MemoryFileError(ConfigError):
    """A memory database file is corrupted, foreign or from an unknown schema version."""


class EmbeddingModelMismatch(ConfigError):
    """A memory is opened with a different embedding model than the one that built it."""


def describe(exc: BaseException) -> str:
    """An error as `Result.error` reports it: redraft's own say what happened, on one line;
    any other exception is named by its type."""
    return str(exc) if isinstance(exc, RedraftError) else f"{type(exc).__name__}: {exc}"
