"""Where an API model is served: validating `api_base`, and when `REDRAFT_API_BASE` applies.

A small module of its own so that both the LiteLLM client and the resolver (and the CLI,
through `redraft.models.resolve`) check a URL the same way, before any call is retried on it.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from redraft.errors import ConfigError

API_BASE_ENV = "REDRAFT_API_BASE"
# LiteLLM providers that speak the OpenAI chat API to a server the user names: the ones
# REDRAFT_API_BASE applies to. Others (anthropic/, ollama/ ...) keep their own endpoints.
OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "openai_like",
        "custom_openai",
        "text-completion-openai",
        "hosted_vllm",
        "lm_studio",
        "llamafile",
        "litellm_proxy",
        "xinference",
        "aiohttp_openai",
    }
)
_EXAMPLE = "http://localhost:8000/v1"


def check_api_base(value: object, *, name: str = "api_base") -> str:
    """`value` as an API base URL (http or https, with a host), trailing slashes dropped;
    anything else is a ConfigError naming `name` (e.g. "--api-base" for the CLI)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{name} must be the URL of an OpenAI-compatible server, e.g. {_EXAMPLE}; got {value!r}"
        )
    url = value.strip()
    problem = _url_problem(url)
    if problem:
        raise ConfigError(f"{name} {url!r} is not a server URL ({problem}): give e.g. {_EXAMPLE}")
    return url.rstrip("/")


def _url_problem(url: str) -> str | None:
    if any(ch.isspace() for ch in url):
        return "it contains spaces"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        return str(exc)
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if parts.username is not None or parts.password is not None:
        # aiohttp refuses them next to the key's header, and the refusal is retried as a 500.
        return (
            "it holds a user name or password: drop them and set the server's key in its "
            "provider's variable, e.g. OPENAI_API_KEY"
        )
    if port == 0:
        return "port 0 is not a server's port"
    return None


def env_api_base(provider: str) -> str | None:
    """`REDRAFT_API_BASE` (checked) when it is set and applies to `provider`, else None."""
    value = os.environ.get(API_BASE_ENV, "").strip()
    if not value or provider not in OPENAI_COMPATIBLE:
        return None
    return check_api_base(value, name=API_BASE_ENV)
