"""A ChatModel over LiteLLM, so one model string reaches any provider.

`import litellm` takes seconds, so it happens on the first call, never at import time.
Retries are ours (tenacity), with LiteLLM's and the OpenAI SDK's own retries switched off, so
that one layer decides how long to keep trying and every failure ends in one clear line.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import json
import logging
import os
import re
import socket
import time
import warnings
import weakref
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from redraft.errors import ConfigError, ModelError
from redraft.models.base import RAW_ARGUMENTS, Completion, ModelRequest, ToolCall, with_parsed
from redraft.models.endpoints import check_api_base
from redraft.types import Usage

# Sent when an OpenAI-compatible local server needs no key: the SDK refuses to run without one.
PLACEHOLDER_API_KEY = "sk-redraft-no-key"
# A server asking us to wait longer than this is treated as down rather than obeyed.
MAX_RETRY_AFTER_S = 60.0
# Providers that can authenticate without environment keys (IAM roles, ADC, Azure AD).
_AMBIENT_CREDENTIALS = frozenset(
    {"bedrock", "bedrock_converse", "sagemaker", "sagemaker_chat", "vertex_ai", "vertex_ai_beta"}
)
EXAMPLE_MODELS = (
    "'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', 'ollama/llama3.1' "
    "or 'hosted_vllm/<name>' with --api-base"
)

# 0.5 s, 1 s, 2 s ... up to 20 s, plus jitter so that many clients do not retry in step.
# (Composed rather than wait_exponential_jitter, whose arguments changed in tenacity 9.)
_BACKOFF = wait_exponential(multiplier=0.5, max=20) + wait_random(0, 0.5)

_litellm_module: Any = None

# True while a LiteLLMModel awaits `acompletion` for a model that LiteLLM has no price for.
_unpriced_call: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "redraft_unpriced_call", default=False
)


def load_litellm() -> Any:
    """Import and configure LiteLLM once: offline price map, no banners, no own retries."""
    global _litellm_module
    if _litellm_module is None:
        # Without this LiteLLM fetches its price map from GitHub at import and hangs offline.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        module: Any = importlib.import_module("litellm")
        module.suppress_debug_info = True
        module.set_verbose = False
        module.num_retries = None
        # Each new event loop (every sync call) makes LiteLLM warn that its logging queue moved.
        logging.getLogger("LiteLLM").addFilter(_drop_loop_change_warnings)
        # LiteLLM builds each request's coroutine in a thread, then awaits it: a call
        # cancelled in between (Ctrl-C) drops it unstarted, with nothing sent, and Python
        # would print a RuntimeWarning about it after the KeyboardInterrupt.
        warnings.filterwarnings(
            "ignore",
            message=r"coroutine '\w+\.a?completion' was never awaited",
            category=RuntimeWarning,
        )
        _skip_pricing_of_unpriced_calls()
        _litellm_module = module
    return _litellm_module


def _skip_pricing_of_unpriced_calls() -> None:
    """Let LiteLLM skip pricing a response that it has already failed to price for this model.

    LiteLLM prices every response twice, once for `_hidden_params["response_cost"]` and once
    in its background success logging. For a model it has no price for (any local or
    self-hosted server) each attempt walks its price tables, raises and catches an exception,
    and runs a zero-cost diagnostic: about 1-1.5 ms of CPU a call, a fifth to a quarter of all
    the CPU a call costs, and no setting or call parameter of LiteLLM's turns it off. So
    `Logging.response_cost_calculator` is wrapped to return None, what it returns for such a
    model anyway, while `_unpriced_call` is set: only inside a LiteLLMModel call that has
    already seen LiteLLM fail to price that model. (Skipped with it: the failure's debug record
    and zero-cost diagnostic LiteLLM keeps for logging callbacks, which redraft registers none
    of.) Every other call, a priced model's or anyone else's, goes through unchanged. When
    LiteLLM's internals differ from the version this was written for, nothing is wrapped.
    """
    try:
        logging_module = importlib.import_module("litellm.litellm_core_utils.litellm_logging")
    except ImportError:
        return
    logging_class: Any = getattr(logging_module, "Logging", None)
    original: Any = getattr(logging_class, "response_cost_calculator", None)
    if not callable(original) or getattr(original, "_redraft_wrapped", False):
        return

    @functools.wraps(original)
    def response_cost_calculator(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _unpriced_call.get():
            return None
        return original(self, *args, **kwargs)

    response_cost_calculator._redraft_wrapped = True  # type: ignore[attr-defined]
    logging_class.response_cost_calculator = response_cost_calculator
    if getattr(logging_class, "_response_cost_calculator", None) is original:  # an alias
        logging_class._response_cost_calculator = response_cost_calculator


def _drop_loop_change_warnings(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("LoggingWorker: event loop changed")


def unknown_model_message(model: str) -> str:
    return (
        f"unknown model '{model}': use a LiteLLM model string such as {EXAMPLE_MODELS}, "
        "or pass a ChatModel instance"
    )


def model_provider(model: str) -> str:
    """The LiteLLM provider of a model string, or ConfigError when LiteLLM cannot route it."""
    litellm = load_litellm()
    try:
        name, provider, _, _ = litellm.get_llm_provider(model=model)
    except Exception as exc:
        raise ConfigError(unknown_model_message(model)) from exc
    if not provider or not str(name).strip():
        raise ConfigError(unknown_model_message(model))
    return str(provider)


def _is_key_name(name: str) -> bool:
    # validate_environment also lists base URLs (OLLAMA_API_BASE) that have working defaults.
    return any(word in name for word in ("KEY", "TOKEN", "SECRET"))


def missing_key_names(model: str) -> list[str]:
    """Environment variables holding credentials that `model` needs and that are unset."""
    litellm = load_litellm()
    try:
        report = litellm.validate_environment(model=model)
    except Exception:
        return []
    return [name for name in report.get("missing_keys", []) if _is_key_name(str(name))]


def describe_missing_keys(names: list[str]) -> str:
    # Several *_API_KEY names are alternatives (GEMINI_API_KEY or GOOGLE_API_KEY); other
    # sets are needed together (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    if len(names) > 1 and all(name.endswith("_API_KEY") for name in names):
        return " or ".join(names)
    return " and ".join(names)


FailureKind = Literal[
    "timeout", "connection", "auth", "forbidden", "not_found", "rate_limit", "server",
    "empty", "context", "bad_request", "internal", "other",
]  # fmt: skip
# An answer without a reply ("empty") is retried like a 5xx: the next answer may have one.
_RETRYABLE: frozenset[str] = frozenset({"timeout", "connection", "rate_limit", "server", "empty"})
# Providers (or LiteLLM for them) that report a missing key as a 500 rather than a 401.
_MISSING_KEY = re.compile(
    r"missing credentials|missing .*api[ _]key|api[ _]key .*(?:is not set|must be set|missing)"
    r"|\b[A-Z][A-Z0-9_]*_(?:API_KEY|TOKEN)\b.* not set",
    re.IGNORECASE,
)
# LiteLLM's words for an HTTP 200 whose JSON holds no usable choice.
_NO_REPLY = re.compile(r"Invalid response object|response with no 'choices'")


class EmptyAnswer(Exception):
    """A successful HTTP answer that holds no reply: no choices, or a choice without a message.

    Raised inside an attempt so that the retry policy treats it like a server error.
    """


@dataclass(frozen=True)
class _Failure:
    kind: FailureKind
    status: int | None
    message: str

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is e for e in seen) and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _short(text: str, limit: int = 200) -> str:
    """One line of a provider's error text, without LiteLLM's class-name prefixes."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    previous = None
    while previous != first:
        previous = first
        first = re.sub(r"^(?:litellm\.)?\w+(?:Error|Exception|Timeout):\s*", "", first)
        first = re.sub(r"^\w+(?:Error|Exception)\s+-\s+", "", first)
    try:  # a JSON error body: keep its message
        body = json.loads(first)
        if isinstance(body, dict):
            error = body.get("error", body)
            inner = error.get("message") if isinstance(error, dict) else error
            first = str(inner or first)
    except ValueError:
        pass
    first = " ".join(first.split())
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _connection_reason(chain: list[BaseException]) -> str:
    for error in reversed(chain):  # the root cause says most
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return "host not found"
        if isinstance(error, ConnectionResetError):
            return "connection reset"
    return _short(str(chain[-1])) or "connection failed"


def _classify(exc: BaseException) -> _Failure:
    chain = _chain(exc)
    names = {
        cls.__module__.split(".")[0] + "." + cls.__name__ for e in chain for cls in type(e).__mro__
    }
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    message = _short(str(getattr(exc, "message", None) or exc))
    # LiteLLM reports its own failures as a 500 (e.g. an optional module missing): not retried.
    internal = next((e for e in chain if isinstance(e, ImportError)), None)
    if internal is not None:
        return _Failure("internal", None, f"{type(internal).__name__}: {_short(str(internal))}")
    # LiteLLM reports transport failures as a 500 "Connection error.", so look at the causes.
    if any(isinstance(e, TimeoutError | asyncio.TimeoutError) for e in chain) or names & {
        "openai.APITimeoutError",
        "httpx.TimeoutException",
    }:
        return _Failure("timeout", status, message)
    if any(isinstance(e, ConnectionError | socket.gaierror) for e in chain) or names & {
        "httpx.TransportError",
        "aiohttp.ClientConnectionError",
    }:
        return _Failure("connection", status, _connection_reason(chain))
    # The OpenAI SDK refuses to build a client without a key: a bare OpenAIError, no HTTP.
    if status == 401 or any(type(e).__name__ == "AuthenticationError" for e in chain):
        return _Failure("auth", status, message)
    if any(type(e).__module__ == "openai" and type(e).__name__ == "OpenAIError" for e in chain):
        return _Failure("auth", status, message)
    if isinstance(exc, EmptyAnswer):
        return _Failure("empty", None, str(exc))
    if _NO_REPLY.search(message):
        return _Failure("empty", status, "the answer held a choice without a message")
    if _MISSING_KEY.search(message):
        return _Failure("auth", status, message)
    if type(exc).__name__ == "ContextWindowExceededError":
        return _Failure("context", status, message)
    if status == 403:
        return _Failure("forbidden", status, message)
    if status == 404:
        return _Failure("not_found", status, message)
    if status == 429:
        return _Failure("rate_limit", status, message)
    if status == 408:
        return _Failure("timeout", status, message)
    if status is not None and status >= 500:
        return _Failure("server", status, message)
    if status is not None and 400 <= status < 500:
        return _Failure("bad_request", status, message)
    return _Failure("other", status, message)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and _classify(exc).retryable


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        value = headers.get(name)
        if value is None:  # a plain dict is case-sensitive
            lowered = {str(k).lower(): v for k, v in dict(headers).items()}
            value = lowered.get(name)
    except Exception:
        return None
    return None if value is None else str(value)


def retry_after_s(exc: BaseException) -> float | None:
    """The wait a server asked for with `retry-after-ms` or `Retry-After`, in seconds.

    LiteLLM rebuilds `exc.response` without the provider's headers; it keeps them on
    `exc.litellm_response_headers` (an `httpx.Headers`). `exc.headers` and `exc.response.headers`
    are read as fallbacks for other code paths.
    """
    sources = (
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    )
    for headers in sources:
        millis = _header(headers, "retry-after-ms")
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000)
            except ValueError:
                pass
        value = _header(headers, "retry-after")
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:  # an HTTP date
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


class LiteLLMModel:
    """Any LiteLLM model string: `openai/gpt-4o-mini`, `anthropic/...`, `ollama/llama3.1`...

    Calls are retried on rate limits, server errors, timeouts and connection failures, with
    exponential backoff and jitter, or exactly the server's `Retry-After`, for at most
    `max_attempts` attempts and `max_retry_s` seconds. `max_concurrency` caps the calls this
    instance has in flight at once.
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120,
        max_attempts: int = 6,
        max_retry_s: float = 120,
        temperature: float | None = None,
        max_tokens: int | None = None,
        max_concurrency: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if not model.strip():
            raise ConfigError(unknown_model_message(model))
        if max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1 (or None for no limit)")
        self.model = model
        self.api_base = None if api_base is None else check_api_base(api_base)
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_retry_s = max_retry_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency
        self.extra = dict(extra or {})
        # Facts looked up in LiteLLM's tables once per instance: each lookup costs ~0.2 ms.
        self._provider: str | None = None
        self._needs_placeholder: bool | None = None
        self._schema_support: bool | None = None
        self._keys_found = False  # set once no credential was missing; unset keys are rechecked
        # False once LiteLLM failed to price this model, until its price table changes size
        # (`litellm.register_model`), when pricing is tried again.
        self._priced = True
        self._unpriced_table_size = 0
        # asyncio primitives belong to one loop, and each sync call runs a new loop.
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    @property
    def name(self) -> str:
        return self.model

    def __repr__(self) -> str:
        base = f", api_base={self.api_base!r}" if self.api_base else ""
        return f"LiteLLMModel({self.model!r}{base})"

    @property
    def provider(self) -> str:
        if self._provider is None:
            self._provider = model_provider(self.model)
        return self._provider

    def missing_keys(self) -> list[str]:
        """Credential variables this model needs that are unset; none with api_base/api_key."""
        if self.api_key or self.api_base or self.provider in _AMBIENT_CREDENTIALS:
            return []
        return missing_key_names(self.model)

    def _key_names(self) -> list[str]:
        return missing_key_names(self.model) or [f"{self.provider.upper()}_API_KEY"]

    def _semaphore(self) -> asyncio.Semaphore | None:
        if self.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = asyncio.Semaphore(self.max_concurrency)
            self._semaphores[loop] = semaphore
        return semaphore

    def _arguments(self, request: ModelRequest) -> dict[str, Any]:
        """The keyword arguments of `litellm.acompletion` for `request`."""
        litellm = load_litellm()
        settings, tools, output_schema = request.settings, request.tools, request.output_schema
        arguments: dict[str, Any] = {
            "model": self.model,
            "timeout": self.timeout_s,
            "num_retries": 0,  # LiteLLM's own retry wrapper
            "max_retries": 0,  # the OpenAI SDK's retries inside LiteLLM
            "drop_params": True,
        }
        if self.api_base:
            arguments["api_base"] = self.api_base
        api_key = self.api_key
        if api_key is None and self.api_base:
            if self._needs_placeholder is None:
                self._needs_placeholder = bool(missing_key_names(self.model))
            if self._needs_placeholder:
                api_key = PLACEHOLDER_API_KEY
        if api_key is not None:
            arguments["api_key"] = api_key
        temperature = settings.temperature if settings else None
        max_tokens = settings.max_tokens if settings else None
        temperature = self.temperature if temperature is None else temperature
        max_tokens = self.max_tokens if max_tokens is None else max_tokens
        if temperature is not None:
            arguments["temperature"] = temperature
        if max_tokens is not None:
            arguments["max_tokens"] = max_tokens
        if settings and settings.stop:
            arguments["stop"] = settings.stop
        if tools:
            arguments["tools"] = [tool.to_openai() for tool in tools]
            # Any tools make LiteLLM import its MCP gateway, which needs the optional `mcp`
            # package; ours are plain functions, so skip that path.
            arguments["_skip_mcp_handler"] = True
        if output_schema is not None and self._supports_schema(litellm):
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": re.sub(r"[^A-Za-z0-9_-]", "_", output_schema.__name__)[:64],
                    "schema": output_schema.model_json_schema(),
                    # strict mode rejects ordinary pydantic schemas (defaults, optional fields)
                    "strict": False,
                },
            }
        arguments.update(self.extra)
        arguments["messages"] = [message.to_openai() for message in request.messages]
        return arguments

    def _supports_schema(self, litellm: Any) -> bool:
        if self._schema_support is None:
            try:
                self._schema_support = bool(litellm.supports_response_schema(model=self.model))
            except Exception:
                self._schema_support = False
        return self._schema_support

    async def complete(self, request: ModelRequest) -> Completion:
        if _litellm_module is None:  # the import takes seconds: keep the loop responsive
            await asyncio.to_thread(load_litellm)
        litellm = load_litellm()
        started = time.monotonic()
        _ = self.provider  # an unroutable model string fails here, once, as a ConfigError
        self._check_keys()
        arguments = self._arguments(request)
        semaphore = self._semaphore()
        attempts = 0
        if not self._priced and len(litellm.model_cost) != self._unpriced_table_size:
            self._priced = True  # prices were registered since: try again
        unpriced = not self._priced

        async def attempt_once() -> Any:
            nonlocal attempts
            attempts += 1
            # Seen by LiteLLM's pricing, here and in the logging it queues from this context.
            token = _unpriced_call.set(unpriced)
            try:
                if semaphore is None:
                    response = await litellm.acompletion(**arguments)
                else:
                    async with semaphore:
                        response = await litellm.acompletion(**arguments)
            finally:
                _unpriced_call.reset(token)
            _check_reply(response)
            return response

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_retry_s),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        try:
            response: Any = await retrying(attempt_once)
        except Exception as exc:
            raise self._error(exc, attempts, time.monotonic() - started) from exc
        latency = time.monotonic() - started
        completion = self._completion(litellm, response, latency)
        return with_parsed(completion, request.output_schema)

    def _check_keys(self) -> None:
        """Fail before any call when the provider's key is unset, as the CLI does.

        Some providers answer a missing key with a 500 that would otherwise be retried and
        reported as a server error; a key set later is found, since only success is cached.
        """
        if self._keys_found:
            return
        missing = self.missing_keys()
        if missing:
            raise ConfigError(
                f"missing API key for {self.model}: set {describe_missing_keys(missing)}"
            )
        self._keys_found = True

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_s(exc) if exc is not None else None
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER_S)
        return float(_BACKOFF(state))

    def _completion(self, litellm: Any, response: Any, latency: float) -> Completion:
        choice = response.choices[0]
        message = choice.message
        usage = getattr(response, "usage", None)
        return Completion(
            text=message.content or "",
            tool_calls=[_tool_call(call) for call in (getattr(message, "tool_calls", None) or [])],
            usage=Usage(
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost_usd=self._cost(litellm, response),
                calls=1,
                latency_s=latency,
            ),
            model=str(getattr(response, "model", None) or self.model),
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def _cost(self, litellm: Any, response: Any) -> float:
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        if isinstance(cost, int | float):
            return float(cost)
        if not self._priced:
            return 0.0
        try:
            return float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # a model without a price (a local server) costs nothing we know of
            self._priced = False  # and failing to price it again costs ~1 ms a call
            self._unpriced_table_size = len(litellm.model_cost)
            return 0.0

    def _error(self, exc: Exception, attempts: int, elapsed: float) -> Exception:
        if isinstance(exc, ConfigError | ModelError):
            return exc
        failure = _classify(exc)
        name = self.model
        tries = f"{attempts} attempt" + ("" if attempts == 1 else "s")
        after = f"after {tries} in {elapsed:.1f}s"
        status = failure.status
        if failure.kind == "timeout":
            return ModelError(f"{name}: timed out after {self.timeout_s:g}s ({tries})")
        if failure.kind == "connection":
            where = self.api_base or _default_base(self.provider)
            return ModelError(f"{name}: cannot connect to {where}: {failure.message} ({after})")
        if failure.kind == "auth":
            return ConfigError(self._auth_message(failure))
        if failure.kind == "forbidden":
            return ConfigError(
                f"{name}: permission denied (403): {failure.message}; "
                "check that your API key may use this model"
            )
        if failure.kind == "not_found":
            where = f" at {self.api_base}" if self.api_base else ""
            return ConfigError(
                f"{name}: model or endpoint not found{where} (404): {failure.message}"
            )
        if failure.kind in ("rate_limit", "server"):
            what = (
                "rate limited (429)" if failure.kind == "rate_limit" else f"server error {status}"
            )
            asked = retry_after_s(exc)
            if asked is not None and (
                asked > MAX_RETRY_AFTER_S or elapsed + asked > self.max_retry_s
            ):
                # we gave up early because the server asked for more than the retry budget
                after += f" (it asked to retry after {asked:.0f}s)"
            return ModelError(f"{name}: {what} {after}: {failure.message}")
        if failure.kind == "empty":
            return ModelError(
                f"{name}: the server answered without a reply ({failure.message}) {after}"
            )
        if failure.kind == "context":
            return ModelError(f"{name}: the prompt is too long for the model: {failure.message}")
        if failure.kind == "internal":
            return ModelError(f"{name}: LiteLLM failed before calling the model: {failure.message}")
        if failure.kind == "bad_request":
            return ModelError(f"{name}: request rejected ({status}): {failure.message}")
        return ModelError(f"{name}: call failed ({type(exc).__name__}): {failure.message}")

    def _auth_message(self, failure: _Failure) -> str:
        keys = describe_missing_keys(self._key_names())
        if self.api_key:
            return f"{self.model}: the API key was rejected: {failure.message}"
        if self.api_base:
            return (
                f"{self.model}: the server at {self.api_base} wants an API key: "
                f"set {keys} (in Python, api_key=... works too)"
            )
        if missing_key_names(self.model):
            return f"missing API key for {self.model}: set {keys}"
        return f"{self.model}: the API key was rejected: {failure.message}; check {keys}"

    async def aclose(self) -> None:
        """Close the HTTP clients LiteLLM cached for this model on the running loop.

        LiteLLM keeps one client per event loop and closes it only when the cache evicts it,
        so a loop that ends without this leaves its connections open until then.
        """
        if _litellm_module is None:
            return
        cache: Any = getattr(_litellm_module, "in_memory_llm_clients_cache", None)
        entries = getattr(cache, "cache_dict", None)
        if not isinstance(entries, dict):
            return
        suffix = _loop_key_suffix(cache)
        for key in [k for k in list(entries) if isinstance(k, str) and k.endswith(suffix)]:
            if self.api_base and f"api_base={self.api_base}" not in key:
                continue
            # Dropped from the cache directly: its eviction path would queue a second close.
            client = entries.pop(key, None)
            ttls = getattr(cache, "ttl_dict", None)
            if isinstance(ttls, dict):
                ttls.pop(key, None)
            closer = getattr(client, "close", None) or getattr(client, "aclose", None)
            if closer is None:
                continue
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                pass  # closing is best effort; the loop is ending anyway


def _loop_key_suffix(cache: Any) -> str:
    """What LiteLLM appends to a client's cache key on the running loop.

    Older LiteLLM appends `-{id(loop)}`, newer a per-loop counter; asking the cache itself
    keeps this right for both.
    """
    scoped = getattr(cache, "update_cache_key_with_event_loop", None)
    if callable(scoped):
        return str(scoped(""))
    return f"-{id(asyncio.get_running_loop())}"


def _default_base(provider: str) -> str:
    if provider in ("ollama", "ollama_chat"):  # the one local provider without an api_base
        return os.environ.get("OLLAMA_API_BASE", "http://localhost:11434")
    return f"the {provider} API"


def _check_reply(response: Any) -> None:
    """Raise EmptyAnswer for a response without a first choice that has a message."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise EmptyAnswer("HTTP 200 with an empty 'choices' list")
    if getattr(choices[0], "message", None) is None:
        raise EmptyAnswer("the answer held a choice without a message")


def _tool_call(call: Any) -> ToolCall:
    function = call.function
    raw = function.arguments or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        arguments = None
    if not isinstance(arguments, dict):
        # Keep what the model sent, so the tool's argument validation can say what is wrong.
        arguments = {RAW_ARGUMENTS: raw}
    return ToolCall(id=str(call.id or ""), name=str(function.name or ""), arguments=arguments)
