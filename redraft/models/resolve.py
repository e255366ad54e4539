"""Turn what a user typed (a model string, an instance, or nothing) into a ChatModel."""

from __future__ import annotations

import inspect
import os

from redraft.errors import ConfigError
from redraft.models.base import ChatModel
from redraft.models.endpoints import API_BASE_ENV, OPENAI_COMPATIBLE, check_api_base, env_api_base
from redraft.models.litellm import LiteLLMModel, describe_missing_keys, model_provider

# The local module imports torch only when a model loads, so importing it here costs nothing.
from redraft.models.local import DEFAULT_LOCAL_MODEL, LOCAL_PREFIX, LocalModel, shared_local_model

__all__ = [
    "API_BASE_ENV",
    "DEFAULT_LOCAL_MODEL",
    "LOCAL_PREFIX",
    "OPENAI_COMPATIBLE",
    "check_api_base",
    "check_complete",
    "check_credentials",
    "resolve_model",
]


def resolve_model(
    spec: str | ChatModel | None,
    *,
    api_base: str | None = None,
    env_var: str = "REDRAFT_MODEL",
) -> ChatModel:
    """A ChatModel for `spec`: an instance as is, `hf:<id or folder>` for a model run in this
    process, a LiteLLM model string, else `$REDRAFT_MODEL`, else the default local model.

    `api_base` (checked: an http(s) URL) is where a LiteLLM model string is served. When it
    is not passed, `$REDRAFT_API_BASE` supplies it for model strings of an OpenAI-compatible
    provider (`openai/`, `hosted_vllm/`, `lm_studio/`, `llamafile/`, `litellm_proxy/`...),
    whether the string came from `spec` or from `$REDRAFT_MODEL`; other providers keep
    their own endpoints. A LiteLLM string is checked against LiteLLM's providers here, so a
    typo fails before any call is made. The default local model
    (`hf:Qwen/Qwen2.5-0.5B-Instruct`) is not loaded here: on its first call, fetched once
    where a hub is reachable.
    """
    if api_base is not None:
        api_base = check_api_base(api_base)
    if isinstance(spec, type):  # the class itself: its attributes pass the protocol check
        raise ConfigError(
            f"model is the class {spec.__name__}: pass an instance, e.g. {spec.__name__}(...), "
            "or a model string such as 'openai/gpt-4o-mini'"
        )
    if spec is not None and not isinstance(spec, str):
        if isinstance(spec, ChatModel):
            if api_base:
                raise ConfigError(
                    f"api_base applies to model strings, and {spec.name} is a ChatModel "
                    "instance: give the instance its endpoint, e.g. "
                    "LiteLLMModel('openai/<name>', api_base=...)"
                )
            check_complete(spec)
            return spec
        raise ConfigError(
            f"model must be a LiteLLM model string or a ChatModel, not {type(spec).__name__} "
            f"{spec!r:.60}: e.g. model='openai/gpt-4o-mini' or model='hf:<id or folder>'"
        )
    if spec is None:
        spec = os.environ.get(env_var, "").strip() or None
        if spec is None:
            asked = api_base or os.environ.get(API_BASE_ENV, "").strip()
            if asked:
                raise ConfigError(
                    f"api_base / --api-base {asked} needs the name of the model it serves: "
                    f"pass model=... / --model or set {env_var}, e.g. hosted_vllm/<name> or "
                    "openai/<name>"
                )
            return shared_local_model(DEFAULT_LOCAL_MODEL, is_default=True)
    spec = spec.strip()
    if not spec:
        raise ConfigError(
            "model is an empty string: give a LiteLLM model string such as "
            f"'openai/gpt-4o-mini', or leave it None for ${env_var}"
        )
    if spec.startswith(LOCAL_PREFIX):
        if api_base:
            raise ConfigError(
                f"{spec} runs in this process, so api_base / --api-base does not apply: drop "
                "it, or serve the model and use hosted_vllm/<name> or openai/<name> with it"
            )
        return shared_local_model(spec[len(LOCAL_PREFIX) :])
    provider = model_provider(spec)  # raises ConfigError naming good model strings
    if api_base is None:
        api_base = env_api_base(provider)
    return LiteLLMModel(spec, api_base=api_base)


# The parameters of `complete` before it took one ModelRequest.
_OLD_PARAMETERS = ("messages", "output_schema", "tools", "settings")


def check_complete(model: ChatModel) -> None:
    """Refuse a model whose `complete` still has the old signature, `complete(messages, *,
    output_schema, tools, settings)`: called with a ModelRequest it would fail only inside
    the run, with a TypeError or an error about what it took for its messages."""
    try:
        parameters = inspect.signature(model.complete).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension)
        return
    old = [name for name in _OLD_PARAMETERS if name in parameters]
    if old:
        raise ConfigError(
            f"{type(model).__name__}.complete() takes {', '.join(old)}: a ChatModel's method "
            "is complete(request: ModelRequest) -> Completion; read request.messages, "
            "request.output_schema, request.tools and request.settings"
        )


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
