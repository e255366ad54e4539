"""Errors a user can act on. Each message is one line that names the fix."""

from __future__ import annotations


class RedraftError(Exception):
    """Base class of every error redraft raises on purpose."""


class ConfigError(RedraftError):
    """The run is configured wrongly: unknown model, missing API key, broken rubric..."""


class ModelError(RedraftError):
    """A model call failed for good (after retries) or answered something unusable."""


class StructuredOutputError(ModelError):
    """A model's answer did not match the requested schema, even after a repair re-ask."""


class MemoryFileError(ConfigError):
    """A memory database file is corrupted, foreign or from an unknown schema version."""


class EmbeddingModelMismatch(ConfigError):
    """A memory is opened with a different embedding model than the one that built it."""
