"""Turn what a user typed (a model string, an instance, or nothing) into a ChatModel."""

from __future__ import annotations

import os

from redraft.errors import ConfigError
from redraft.models.base import ChatModel
from redraft.models.litellm import LiteLLMModel, describe_missing_keys, model_provider

# The local module imports torch only when a model loads, so importing it here costs nothing.
from redraft.models.local import DEFAULT_LOCAL_MODEL, LOCAL_PREFIX, LocalModel, shared_local_model

__all__ = ["DEFAULT_LOCAL_MODEL", "LOCAL_PREFIX", "check_credentials", "resolve_model"]


def resolve_model(
    spec: str | ChatModel | None,
    *,
    api_base: str | None = None,
    env_var: str = "REDRAFT_MODEL",
) -> ChatModel:
    """A ChatModel for `spec`: an instance as is, `hf:<id or folder>` for a model run in this
    process, a LiteLLM model string, else `$REDRAFT_MODEL`, else the default local model.

    With no spec, `REDRAFT_API_BASE` supplies `api_base` unless one is passed. A LiteLLM string
    is checked against LiteLLM's providers here, so a typo fails before any call is made. The
    default local model (`hf:Qwen/Qwen2.5-0.5B-Instruct`) is not loaded here: on its first call,
    fetched once where a hub is reachable.
    """
    if spec is not None and not isinstance(spec, str):
        if isinstance(spec, ChatModel):
            return spec
        raise ConfigError(
            f"model must be a LiteLLM model string or a ChatModel, not {type(spec).__name__}"
        )
    if spec is None:
        spec = os.environ.get(env_var, "").strip() or None
        api_base = api_base or os.environ.get("REDRAFT_API_BASE", "").strip() or None
        if spec is None:
            if api_base:
                raise ConfigError(
                    f"--api-base {api_base} needs the name of the model it serves: pass "
                    "--model / set REDRAFT_MODEL, e.g. hosted_vllm/<name> or openai/<name>"
                )
            return shared_local_model(DEFAULT_LOCAL_MODEL, is_default=True)
    spec = spec.strip()
    if spec.startswith(LOCAL_PREFIX):
        if api_base:
            raise ConfigError(
                f"{spec} runs in this process, so --api-base does not apply: drop it, or "
                "serve the model and use hosted_vllm/<name> or openai/<name> with --api-base"
            )
        return shared_local_model(spec[len(LOCAL_PREFIX) :])
    model_provider(spec)  # raises ConfigError naming good model strings
    return LiteLLMModel(spec, api_base=api_base)


def check_credentials(model: ChatModel) -> None:
    """Raise ConfigError when a model cannot be used: a LiteLLM model's provider key is not in
    the environment, or a local model is neither on disk nor fetchable (no weights are loaded).

    Only LiteLLM models without an explicit api_base/api_key are checked for keys; anything
    else brings its own way of authenticating.
    """
    if isinstance(model, LocalModel):
        model.check_available()
        return
    if not isinstance(model, LiteLLMModel):
        return
    missing = model.missing_keys()
    if missing:
        raise ConfigError(f"missing API key for {model.name}: set {describe_missing_keys(missing)}")
