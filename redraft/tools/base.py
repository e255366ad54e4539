"""A tool: a typed Python function a model may call, with its arguments checked first.

`@tool` reads the function's signature and docstring: the name, the description, a JSON
schema of the arguments (through pydantic, so `int`, `list[str]`, `Literal[...]`, models and
defaults all work), and each argument's description. The model's arguments are validated
against the same pydantic model before the function runs; a parameter annotated with
`ToolContext` is filled in by redraft and is not shown to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import queue
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast, get_type_hints, overload

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from redraft.checks import kind_of, number, shown
from redraft.errors import ConfigError
from redraft.models.base import RAW_ARGUMENTS, ToolSpec
from redraft.types import Draft, Task

# What OpenAI (and so most providers) accept as a function name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 8_000
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about the call: the task, the draft under judgement (for a
    critic's tools; the draft being revised for the editor's), the role calling it, and the
    conversation: an id the tool loop gives each of its runs (one per `complete_with_tools`),
    by which a tool that keeps state across calls keeps it apart per loop ("" outside one)."""

    task: Task | None = None
    draft: Draft | None = None
    role: str = ""
    conversation: str = ""


class ToolError(Exception):
    """A tool call that could not run or did not finish: the model is told why."""


class Tool:
    """A function the model may call: `spec` for the model, `acall` to run it.

    `timeout_s` abandons a call that takes longer (`None`: no limit); `max_output_chars`
    caps the text the model is shown of its result.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        args_model: type[BaseModel] | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"a tool needs a function, not {kind_of(fn)} {shown(fn)}")
        label = getattr(fn, "__name__", type(fn).__name__)
        if name is None and label == "<lambda>":
            raise ConfigError("a lambda has no name: pass name=... to make a tool of it")
        self.name = tool_name(name if name is not None else label)
        number("timeout_s", timeout_s, above=0.0, optional="no time limit")
        if isinstance(max_output_chars, bool) or not isinstance(max_output_chars, int):
            raise ConfigError(
                f"max_output_chars must be a whole number; got {shown(max_output_chars)}"
            )
        if max_output_chars < 100:
            raise ConfigError(f"max_output_chars must be at least 100; got {max_output_chars}")
        self.fn = fn
        self.timeout_s = timeout_s
        self.max_output_chars = max_output_chars
        docs = docstring_parser.parse(inspect.getdoc(fn) or "")
        summary = "\n\n".join(p for p in (docs.short_description, docs.long_description) if p)
        self.description = (description if description is not None else summary).strip()
        self._context_param: str | None = None
        self._model_param: str | None = None
        if args_model is not None:
            self.args_model = _checked_model(args_model, self.name)
            self._model_param = self._model_parameter(fn)
        else:
            self.args_model = self._model_from_signature(fn, docs)
        self.spec = ToolSpec(
            name=self.name, description=self.description, parameters=_schema(self.args_model)
        )
        self._is_async = _is_async(fn)

    @classmethod
    def from_model(
        cls,
        args_model: type[BaseModel],
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> Tool:
        """A tool whose arguments are `args_model`; `fn` is called with the validated model
        (and a `ToolContext`, if it takes one). Its description defaults to the model's."""
        return cls(
            fn,
            name=name,
            description=description if description is not None else (args_model.__doc__ or ""),
            args_model=args_model,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
        )

    def validate(self, arguments: Mapping[str, Any] | str) -> BaseModel:
        """The arguments as the model of this tool, or a ToolError saying what is wrong."""
        if isinstance(arguments, Mapping) and set(arguments) == {RAW_ARGUMENTS}:
            # A call whose arguments the model client could not read: say why, not that
            # `_raw` is no argument of this tool.
            raw = arguments[RAW_ARGUMENTS]
            arguments = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ToolError(f"the arguments are not JSON: {exc}") from None
        if not isinstance(arguments, Mapping):
            raise ToolError(f"the arguments must be a JSON object, not {shown(arguments)}")
        try:
            return self.args_model.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None

    async def acall(
        self, arguments: Mapping[str, Any] | str, ctx: ToolContext | None = None
    ) -> Any:
        """Validate `arguments` and run the tool: its return value. A ToolError when the
        arguments are invalid or the call outlives `timeout_s`; the tool's own exceptions
        propagate."""
        validated = self.validate(arguments)
        call = _own_timeouts(self._bound(validated, ctx or ToolContext()))
        try:
            return await asyncio.wait_for(call, self.timeout_s)
        except asyncio.TimeoutError:
            raise ToolError(f"{self.name} did not finish within {self.timeout_s:g} s") from None

    def render(self, value: Any) -> tuple[str, bool]:
        """The text the model is shown of a result, cut to `max_output_chars`; whether cut."""
        if isinstance(value, str):
            text = value
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            try:
                text = json.dumps(value, ensure_ascii=False, default=str)
            except (TypeError, ValueError):
                text = str(value)
        if len(text) <= self.max_output_chars:
            return text, False
        cut = len(text) - self.max_output_chars
        return f"{text[: self.max_output_chars]}\n[... {cut} more characters cut]", True

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"

    # -- internals -------------------------------------------------------------------------

    async def _bound(self, validated: BaseModel, ctx: ToolContext) -> Any:
        if self._model_param is not None:
            kwargs: dict[str, Any] = {self._model_param: validated}
        else:
            kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self._context_param is not None:
            kwargs[self._context_param] = ctx
        if self._is_async:
            return await self.fn(**kwargs)
        result = await _in_own_thread(self.fn, kwargs)
        return await result if inspect.isawaitable(result) else result

    def _model_from_signature(
        self, fn: Callable[..., Any], docs: docstring_parser.Docstring
    ) -> type[BaseModel]:
        params, hints = self._signature(fn)
        described = {p.arg_name: (p.description or "") for p in docs.params}
        fields: dict[str, Any] = {}
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigError(
                    f"tool {self.name}: *{param.name} cannot be described to a model; name "
                    "each argument"
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise ConfigError(
                    f"tool {self.name}: argument {param.name} is positional-only; the model "
                    "passes arguments by name"
                )
            hint = hints.get(param.name)
            if hint is ToolContext:
                self._context_param = param.name
                continue
            if hint is None:
                raise ConfigError(
                    f"tool {self.name}: argument {param.name} has no type hint; annotate it "
                    f"(e.g. {param.name}: str) so the model knows what to pass"
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hint, Field(default, description=described.get(param.name)))
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
        try:
            return create_model(f"{self.name}_arguments", __config__=config, **fields)
        except Exception as exc:  # pydantic: a type it cannot describe as JSON
            raise ConfigError(
                f"tool {self.name}: its arguments cannot be described: {exc}"
            ) from None

    def _signature(self, fn: Callable[..., Any]) -> tuple[list[inspect.Parameter], dict[str, Any]]:
        """`fn`'s parameters and their type hints, or a ConfigError saying why not."""
        try:
            return list(inspect.signature(fn).parameters.values()), get_type_hints(fn)
        except (TypeError, ValueError, NameError) as exc:
            raise ConfigError(f"tool {self.name}: cannot read its signature ({exc})") from None

    def _model_parameter(self, fn: Callable[..., Any]) -> str:
        """The parameter of `fn` that receives the arguments model (the one that is not the
        ToolContext)."""
        params, hints = self._signature(fn)
        others: list[str] = []
        for param in params:
            if hints.get(param.name) is ToolContext:
                self._context_param = param.name
            else:
                others.append(param.name)
        if len(others) != 1:
            raise ConfigError(
                f"tool {self.name}: a tool made from an arguments model calls fn(arguments) "
                f"(and a ToolContext if it takes one); fn takes {others or 'nothing'}"
            )
        return others[0]


@overload
def tool(fn: F, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> Callable[[F], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` of a typed function, sync or async: `@tool` or `@tool(name=...)`."""

    def make(function: Callable[..., Any]) -> Tool:
        return Tool(
            function,
            name=name,
            description=description,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
        )

    return make(fn) if fn is not None else make


def tools_from(given: object, where: str = "tools") -> list[Tool]:
    """`tools=` as a list of `Tool`s: tools and plain typed functions, names unique."""
    if given is None:
        return []
    if isinstance(given, (Tool, str)) or (callable(given) and not isinstance(given, Iterable)):
        given = [given]
    if not isinstance(given, Iterable):
        raise ConfigError(f"{where} must be a list of tools or typed functions; got {shown(given)}")
    found: list[Tool] = []
    for index, item in enumerate(cast(Iterable[object], given)):
        if isinstance(item, Tool):
            found.append(item)
        elif callable(item) and not isinstance(item, type):
            found.append(Tool(item))
        else:
            raise ConfigError(
                f"{where}[{index}] is {kind_of(item)} {shown(item)}: give a redraft.tools.Tool "
                "or a typed function"
            )
    names = [t.name for t in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(
            f"{where}: two tools are named {', '.join(twice)}; give one of them another "
            "name=, as the model calls tools by name"
        )
    return found


class ToolTimedOut(ToolError):
    """A tool's own TimeoutError (a connection that timed out), told apart from the
    tool's time limit running out."""


async def _own_timeouts(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except TimeoutError as exc:
        raise ToolTimedOut(f"TimeoutError: {exc}") from exc


class _DaemonThreads:
    """Daemon threads that run sync tools, reused from call to call (starting a thread per
    call cost more than the loop's own work). Daemons, because a call abandoned at its
    timeout may never return, and the interpreter must still be able to exit; a thread
    pool of the standard library would be joined at exit."""

    MOST = 256  # threads at once: tools that hang must not pile threads up without end

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            elif self._threads >= self.MOST:
                raise ToolError(
                    f"{self.MOST} sync tool calls are still running (hung ones among them): "
                    "this call was not started"
                )
            else:  # every thread is busy (or hung): one more
                self._threads += 1
                threading.Thread(target=self._serve, name="redraft-tool", daemon=True).start()
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_THREADS = _DaemonThreads()


async def _in_own_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """`fn(**kwargs)` in a daemon thread, so that a slow sync tool stalls neither the event
    loop nor, once abandoned at its timeout, the loop's shutdown."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def work() -> None:
        try:
            value = fn(**kwargs)
        except BaseException as exc:  # handed to the awaiting call, whatever it is
            # sys.exit() or Ctrl-C's exception from a tool (argparse exits) must not end the
            # run or the process when it reaches the event loop: it is the tool's failure.
            error = exc if isinstance(exc, Exception) else RuntimeError(f"{exc!r} in the tool")
            outcome: Callable[[], None] = lambda: done.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: done.set_result(value)  # noqa: E731
        # An abandoned call may end after its loop has closed: nobody waits for it then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome)

    _THREADS.submit(work)
    return await done


def tool_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"tool name {shown(name)} is not one model providers accept: use 1 to 64 letters, "
            "digits, '_' or '-'"
        )
    return name


def _checked_model(model: object, name: str) -> type[BaseModel]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(
            f"tool {name}: args_model must be a pydantic model class; got {shown(model)}"
        )
    return model


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a tool's parameters: an object that takes no other keys."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    for prop in schema["properties"].values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


def _is_async(fn: Callable[..., Any]) -> bool:
    target = inspect.unwrap(fn)
    method = type(target).__call__ if not inspect.isroutine(target) else None
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(method)
