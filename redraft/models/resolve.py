"""Turn what a user typed (a model string, an instance, or nothing) into a ChatModel."""

from __future__ import annotations

import os

from redraft.errors import ConfigError
from redraft.models.base import ChatModel
from redraft.models.litellm import LiteLLMModel, describe_missing_keys, model_provider

NO_MODEL_MESSAGE = (
    "no model configured: pass --model / model=... or set REDRAFT_MODEL, "
    "e.g. REDRAFT_MODEL=openai/gpt-4o-mini (run 'redraft demo' to see a loop without a model)"
)


def resolve_model(
    spec: str | ChatModel | None,
    *,
    api_base: str | None = None,
    env_var: str = "REDRAFT_MODEL",
) -> ChatModel:
    """A ChatModel for `spec`: an instance as is, a LiteLLM model string, or `$REDRAFT_MODEL`.

    With no spec, `REDRAFT_API_BASE` supplies `api_base` unless one is passed. A string is
    checked against LiteLLM's providers here, so a typo fails before any call is made.
    """
    if spec is not None and not isinstance(spec, str):
        if isinstance(spec, ChatModel):
            return spec
        raise ConfigError(
            f"model must be a LiteLLM model string or a ChatModel, not {type(spec).__name__}"
        )
    if spec is None:
        spec = os.environ.get(env_var, "").strip() or None
        if spec is None:
            raise ConfigError(NO_MODEL_MESSAGE)
        api_base = api_base or os.environ.get("REDRAFT_API_BASE", "").strip() or None
    spec = spec.strip()
    model_provider(spec)  # raises ConfigError naming good model strings
    return LiteLLMModel(spec, api_base=api_base)


def check_credentials(model: ChatModel) -> None:
    """Raise ConfigError when a LiteLLM model's provider key is not in the environment.

    Only LiteLLM models without an explicit api_base/api_key are checked; anything else
    brings its own way of authenticating.
    """
    if not isinstance(model, LiteLLMModel):
        return
    missing = model.missing_keys()
    if missing:
        raise ConfigError(f"missing API key for {model.name}: set {describe_missing_keys(missing)}")
