"""The Python API: a reusable `Refiner`, and `refine` / `arefine` for one-off runs."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import os
import time
import uuid
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar, cast, overload

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typing_extensions import Unpack

from redraft._interrupts import RunInterrupted
from redraft._sync import LoopThread
from redraft._tasks import all_of
from redraft.agents.actor import Actor, LLMActor
from redraft.agents.critics.base import Critic, pauses
from redraft.agents.critics.function import CheckFunction, FunctionCritic
from redraft.agents.critics.llm import LLMCritic
from redraft.agents.editor import Editor, LLMEditor
from redraft.agents.prompts import DEFAULT_PROMPTS, PromptLibrary
from redraft.checkpoints import (
    allow_state_types,
    check_checkpoint_path,
    memory_checkpointer,
    sqlite_checkpointer,
)
from redraft.checks import kind_of, number, shown, whole_number
from redraft.engine.budgets import Budgets
from redraft.engine.operations import Agents, Operations
from redraft.engine.selection import Selection
from redraft.errors import ConfigError, describe
from redraft.events import event_sink
from redraft.models.base import ChatModel
from redraft.models.limits import model_limits
from redraft.models.litellm import LiteLLMModel
from redraft.models.resolve import check_api_base, check_credentials, resolve_model
from redraft.strategies import Refine, Strategy
from redraft.strategies.config import describe_strategy
from redraft.strategies.paused import Paused as _Paused
from redraft.strategies.search import Search
from redraft.tools.base import Tool, tools_from
from redraft.tools.loop import DEFAULT_MAX_STEPS, DEFAULT_TOOL_TIME_S, ToolLimits
from redraft.types import Event, HumanAnswer, Result, StopEvent, Task

if TYPE_CHECKING:  # the memory needs the [memory] extra; only a configured one loads it
    from redraft.memory import CorrectionMemory

ModelSpec = ChatModel | str
MODEL_ENV = "REDRAFT_MODEL"
T = TypeVar("T")
Checkpointer = BaseCheckpointSaver[Any] | str | Path
# A critic object, or a plain function fn(text) / fn(text, task), wrapped in a FunctionCritic.
CriticSpec = Critic | CheckFunction
RunGraph = CompiledStateGraph[Any, None, Any, Any]


class Refiner:
    """A configured refinement loop, reusable across tasks and safe to run concurrently.

    `model` is the default for every role; `critic_model` and `editor_model` override it for
    those roles, and an agent constructed with its own model keeps it. `api_base` is where
    the model strings given here (or `$REDRAFT_MODEL`) are served, e.g.
    `http://localhost:8000/v1`; without it, `$REDRAFT_API_BASE` applies to model strings of
    OpenAI-compatible providers (see `resolve_model`). A LiteLLM model whose provider key is
    unset is refused here, naming the variable to set.

    Without critics, one `LLMCritic` judges against the task's rubric; a plain function
    among `critics` is wrapped in a `FunctionCritic`.

    With a `memory` (a `redraft.memory.CorrectionMemory`, or the path of its database
    file), the actor and the editor are given up to `lessons` relevant past corrections
    (shown on each `Draft` as `lessons`), scoped to the task's `metadata["kind"]` when it has
    one; after each run, every critique a revision improved on is stored as a new correction.

    `select` (which candidate a run returns and revises) is "best" and `patience` 2, except
    when people are the only critics (`HumanCritic`): then the run follows them, "last" and
    no patience, unless given. A critic that pauses for a person needs a checkpointer to be
    resumed after a restart; without one, pauses are kept in memory for this refiner's life.

    `tools` (`redraft.tools.Tool`s or typed functions) are given to every role that has no
    tools of its own (`LLMActor(tools=...)`, `LLMEditor`, `LLMCritic`); each answer may make
    up to `max_tool_steps` turns of tool calls and spend `max_tool_time_s` in tools.

    Every value is checked here: a wrong one is a one-line `ConfigError` saying what to give.
    """

    def __init__(
        self,
        model: ModelSpec | None = None,
        *,
        critics: Sequence[CriticSpec] | CriticSpec | None = None,
        editor: Editor | None = None,
        actor: Actor | None = None,
        critic_model: ModelSpec | None = None,
        editor_model: ModelSpec | None = None,
        api_base: str | None = None,
        max_rounds: int = 4,
        threshold: float | None = None,
        patience: int | Literal["auto"] | None = "auto",
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        max_candidates: int | None = None,
        max_time_s: float | None = None,
        select: Selection | None = None,
        strategy: Strategy | None = None,
        checkpointer: Checkpointer | None = None,
        prompts: str | Path | PromptLibrary | None = None,
        memory: CorrectionMemory | str | Path | None = None,
        lessons: int = 3,
        tools: Sequence[Tool | Callable[..., Any]] | None = None,
        max_tool_steps: int = DEFAULT_MAX_STEPS,
        max_tool_time_s: float = DEFAULT_TOOL_TIME_S,
    ) -> None:
        lessons = cast(int, whole_number("lessons", lessons, minimum=0))
        run_tools = tools_from(tools)
        whole_number("max_tool_steps", max_tool_steps, minimum=1, example=8)
        number("max_tool_time_s", max_tool_time_s, above=0.0, meaning="seconds in tools per answer")
        self.critics = _critics(critics)
        # A run judged by people alone follows them: each revision revises the draft they
        # answered on last (their answers need not carry scores), until they accept one.
        people_only = all(pauses(critic) for critic in self.critics)
        if patience == "auto":
            patience = None if people_only else 2
        self.budgets = Budgets(
            max_rounds=max_rounds,
            threshold=threshold,
            patience=patience,
            max_tokens=max_tokens,
            max_cost_usd=max_cost_usd,
            max_candidates=max_candidates,
            max_time_s=max_time_s,
            select=select if select is not None else ("last" if people_only else "best"),
        )
        self.strategy: Strategy = _strategy(strategy)
        self.actor = _agent(actor, "actor", "draft", LLMActor, "LLMActor()", "model")
        self.editor = _agent(editor, "editor", "edit", LLMEditor, "LLMEditor()", "editor_model")
        models = _RoleModels(api_base)
        # Every role resolves alike: with nothing configured each gets the same default (the
        # local model, not loaded until called) or the same error.
        actor_model = models.pick(model, self.actor, "actor", fallback=None)
        critic_default = models.pick(critic_model, self.critics, "critic", fallback=model)
        editor_default = models.pick(editor_model, self.editor, "editor", fallback=model)
        models.check_used()
        own = [getattr(agent, "model", None) for agent in (self.actor, *self.critics, self.editor)]
        for chosen in (*own, actor_model, critic_default, editor_default):
            if isinstance(chosen, LiteLLMModel):
                check_credentials(chosen)  # a missing key fails now, naming the variable
        self._sqlite_path: Path | None = None
        saver: BaseCheckpointSaver[Any] | None = None
        if isinstance(checkpointer, (str, Path)):
            if not str(checkpointer).strip():
                raise ConfigError("checkpointer is an empty path: give a file such as 'runs.db'")
            self._sqlite_path = check_checkpoint_path(checkpointer)
        elif isinstance(checkpointer, BaseCheckpointSaver):
            saver = allow_state_types(checkpointer)
        elif checkpointer is not None:
            raise ConfigError(
                "checkpointer must be the path of a SQLite file (e.g. 'runs.db') or a "
                f"LangGraph checkpointer, not {kind_of(checkpointer)} {shown(checkpointer)}"
            )
        elif any(pauses(critic) for critic in self.critics):
            # A pause is a checkpoint: without a file, it lasts as long as this refiner.
            saver = memory_checkpointer()
        self.agents = Agents(
            actor=self.actor,
            critics=self.critics,
            editor=self.editor,
            actor_model=actor_model,
            critic_model=critic_default,
            editor_model=editor_default,
            prompts=_prompts(prompts),
            memory=_memory(memory),  # opened last: nothing above can fail after it
            lessons=lessons,
            tools=run_tools,
            tool_limits=ToolLimits(max_steps=max_tool_steps, tool_time_s=max_tool_time_s),
        )
        self._builder = self.strategy.build(Operations(self.agents), self.budgets)
        self.graph: RunGraph = self._builder.compile(checkpointer=saver, name="redraft")
        """The compiled LangGraph graph; embed it as a subgraph or drive it directly."""
        # The sync API's one event loop, started by the first sync call. A refiner that is
        # never closed releases it and what was opened on it when it is collected.
        self._loop = LoopThread()
        weakref.finalize(self, _shut_down, self._loop, self.resources())

    @property
    def memory(self) -> CorrectionMemory | None:
        """The memory the loop learns from and writes to, if one was given."""
        return self.agents.memory

    @property
    def checkpointed(self) -> bool:
        return self._sqlite_path is not None or self.graph.checkpointer is not None

    # -- running ---------------------------------------------------------------------------
    #
    # The public methods re-raise a KeyboardInterrupt or SystemExit from inside a run once
    # the run has unwound (see redraft/_interrupts.py); the private ones carry it as
    # RunInterrupted, so that it crosses event loops and threads like any exception.

    async def arun(
        self, task: str | Task, *, thread_id: str | None = None, progress: bool = False
    ) -> Result:
        """Refine one task. With a checkpointer and a known `thread_id`, resume that run.

        A run that fails before its first draft (the actor's model failed) raises; after
        that, a failing model stops the run with the best draft kept and `error` set.
        """
        try:
            return await self._arun(task, thread_id, progress)
        except RunInterrupted as exc:
            exc.reraise()

    def run(
        self, task: str | Task, *, thread_id: str | None = None, progress: bool = False
    ) -> Result:
        """Refine one task; `progress=True` shows each step live (terminal or notebook)."""
        work = self._arun(task, thread_id, progress)
        try:
            return self._loop.run(work)
        except RunInterrupted as exc:
            exc.reraise()

    async def aresume(
        self,
        thread_id: str,
        *,
        feedback: str | None = None,
        score: float | None = None,
        accept: bool | None = None,
        progress: bool = False,
    ) -> Result:
        """Continue the checkpointed run `thread_id` from its last checkpoint: one that was
        killed part-way (no judged candidate is judged again), or one waiting for a person
        (`Result.stop_reason` "waiting"), given their answer: `feedback` (what to change),
        `score` (0..1) and/or `accept=True`. A waiting run resumed without an answer is
        still waiting, and returns the same result; a run that had finished returns its
        result. An answer for a run that is not waiting is a ConfigError.

        Needs this refiner's checkpointer (a file or LangGraph checkpointer for a run of an
        earlier process); the task comes from the checkpoint."""
        answer = _answer(feedback, score, accept)
        try:
            return await self._arun(None, _resumed_thread(thread_id), progress, answer)
        except RunInterrupted as exc:
            exc.reraise()

    def resume(
        self,
        thread_id: str,
        *,
        feedback: str | None = None,
        score: float | None = None,
        accept: bool | None = None,
        progress: bool = False,
    ) -> Result:
        """`aresume` from sync code (a notebook cell, a script)."""
        answer = _answer(feedback, score, accept)
        work = self._arun(None, _resumed_thread(thread_id), progress, answer)
        try:
            return self._loop.run(work)
        except RunInterrupted as exc:
            exc.reraise()

    async def _arun(
        self,
        task: str | Task | None,
        thread_id: str | None,
        progress: bool,
        answer: HumanAnswer | None = None,
    ) -> Result:
        task = None if task is None else _coerce_task(task)
        thread_id = _thread_id(thread_id)
        if progress:
            return await self._arun_shown(task, thread_id, answer)
        async with AsyncExitStack() as stack:
            run = await self._prepare(stack, task, thread_id, answer)
            if run.finished is not None:
                return run.finished
            with event_sink(_ignore):
                return await run.invoke()

    async def _arun_shown(
        self, task: Task | None, thread_id: str | None, answer: HumanAnswer | None
    ) -> Result:
        from redraft.progress import ProgressView, follow

        search = isinstance(self.strategy, Search)  # a resumed search starts with drafts
        title = f"redraft · {describe_strategy(self.strategy, self.budgets.max_rounds)}"
        view = ProgressView(title=title, critics=len(self.critics), search=search)
        return await follow(self._astream(task, thread_id, answer), view, Console())

    def models(self) -> list[ChatModel]:
        """Every distinct model this refiner may call."""
        agents: list[object] = [self.actor, *self.critics, self.editor]
        found = [getattr(agent, "model", None) for agent in agents]
        found += [self.agents.actor_model, self.agents.critic_model, self.agents.editor_model]
        unique = {id(m): m for m in found if isinstance(m, ChatModel)}
        return list(unique.values())

    def resources(self) -> list[object]:
        """Everything this refiner may open and must release: its models, and every agent and
        tool with a `close` or `aclose` (a `TestsCritic`'s sandbox pool, a `PythonTool`'s, a
        local model's worker)."""
        agents: list[object] = [self.actor, *self.critics, self.editor]
        tools = [*self.agents.tools, *(t for a in agents for t in getattr(a, "tools", None) or [])]
        found: list[object] = [*self.models(), *agents, *tools]
        unique = {id(r): r for r in found if _closer(r) is not None}
        return list(unique.values())

    async def aclose(self) -> None:
        """Release every resource of `resources()`: model connections, sandbox pools, local
        models' workers. The refiner stays usable; a later run opens what it needs again."""
        await _close_all(self.resources())

    def close(self) -> None:
        """`aclose` from sync code, on the loop the sync calls ran on, which then stops."""
        try:
            self._loop.run(self.aclose())
        finally:
            self._loop.stop()

    def __enter__(self) -> Refiner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Refiner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def astream(
        self,
        task: str | Task | None,
        *,
        thread_id: str | None = None,
        answer: HumanAnswer | None = None,
    ) -> AsyncIterator[Event]:
        """Yield an event as each step happens: draft, critique, round, edit, stop. A run
        that pauses for a person ends with a `StopEvent` whose result is waiting.

        With `task=None`, the checkpointed run `thread_id` is continued, as by `aresume`,
        with the person's `answer` if it is waiting for one.
        """
        if task is None:
            thread_id = _resumed_thread(thread_id)
        answer = _checked_answer(answer)
        events = self._astream(task, thread_id, answer)
        try:
            async for event in events:
                yield event
        except RunInterrupted as exc:
            exc.reraise()
        finally:  # closed early, the run is cancelled now rather than when collected
            await events.aclose()

    async def _astream(
        self, task: str | Task | None, thread_id: str | None, answer: HumanAnswer | None = None
    ) -> AsyncGenerator[Event, None]:
        task = None if task is None else _coerce_task(task)
        thread_id = _thread_id(thread_id)
        async with AsyncExitStack() as stack:
            run = await self._prepare(stack, task, thread_id, answer)
            if run.finished is not None:
                yield StopEvent(result=run.finished)
                return
            events: asyncio.Queue[Event | None] = asyncio.Queue()
            with event_sink(events.put_nowait):
                running = asyncio.create_task(run.invoke())
            running.add_done_callback(lambda _: events.put_nowait(None))
            try:
                while (event := await events.get()) is not None:
                    yield event
                result = await running  # raises what the run raised
                if result.waiting is not None:  # paused: its last step made no StopEvent
                    yield StopEvent(result=result)
            finally:
                if not running.done():
                    running.cancel()
                    with suppress(asyncio.CancelledError):
                        await running

    async def _prepare(
        self,
        stack: AsyncExitStack,
        task: Task | None,
        thread_id: str | None,
        answer: HumanAnswer | None = None,
    ) -> _Run:
        """The graph and config of a run, and whether a checkpoint already holds it; with no
        `task`, the run `thread_id` holds is resumed (with `answer` if it waits for one)."""
        if task is None and not self.checkpointed:
            raise ConfigError(
                "resume needs the checkpoints of the run: make the Refiner with "
                "checkpointer='runs.db' (the file the run was checkpointed to)"
            )
        graph = self.graph
        if self._sqlite_path is not None:
            saver = await stack.enter_async_context(sqlite_checkpointer(self._sqlite_path))
            graph = self._builder.compile(checkpointer=saver, name="redraft")
        config: RunnableConfig = {"recursion_limit": self.strategy.recursion_limit(self.budgets)}
        paused = _Paused(self.strategy, self.budgets.select)
        if graph.checkpointer is None:
            return _Run(graph, config, {"task": task}, paused)
        thread_id = thread_id or uuid.uuid4().hex
        config["configurable"] = {"thread_id": thread_id}
        snapshot = await graph.aget_state(config)
        if not snapshot.values:
            if task is None:
                where = f" in {self._sqlite_path}" if self._sqlite_path is not None else ""
                raise ConfigError(
                    f"no run with thread id '{thread_id}'{where}: check the id (it is "
                    "Result.thread_id) and the checkpoint file"
                )
            return _Run(graph, config, {"task": task}, paused)
        if task is not None and snapshot.values.get("task") != task:
            raise ConfigError(
                f"thread '{thread_id}' holds a run of a different task; "
                "use a new thread_id for a new task"
            )
        if "result" in snapshot.values:  # finished before: hand back its result
            finished: Result = snapshot.values["result"]
            if answer is not None:
                raise ConfigError(
                    f"thread '{thread_id}' is not waiting for a person: it finished (stop: "
                    f"{finished.stop_reason.value}); start a new run to refine it further"
                )
            return _Run(graph, config, None, paused, finished=finished)
        if snapshot.interrupts:
            if answer is None:  # still waiting: say so again
                waiting = paused.result(snapshot.values, snapshot.interrupts, thread_id)
                return _Run(graph, config, None, paused, finished=waiting)
            return _Run(graph, config, Command(resume=answer.model_dump()), paused)
        if answer is not None:
            raise ConfigError(
                f"thread '{thread_id}' is not waiting for a person: it stopped part-way; "
                "resume it without feedback, score or accept"
            )
        return _Run(graph, config, None, paused)  # resume from the last checkpoint

    def stream(
        self,
        task: str | Task | None,
        *,
        thread_id: str | None = None,
        answer: HumanAnswer | None = None,
    ) -> Iterator[Event]:
        """`astream` from sync code: the run goes on in the refiner's event loop thread."""
        # A bad task, thread id or answer fails here, not at the first event.
        checked = None if task is None else _coerce_task(task)
        thread_id = _resumed_thread(thread_id) if task is None else _thread_id(thread_id)
        answer = _checked_answer(answer)
        return _interruptible(self._loop.iterate(lambda: self._astream(checked, thread_id, answer)))

    @overload
    async def abatch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = ...,
        model_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        progress: bool = ...,
    ) -> list[Result]: ...

    @overload
    async def abatch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = ...,
        model_concurrency: int | None = ...,
        return_exceptions: bool,
        progress: bool = ...,
    ) -> list[Result | BaseException]: ...

    async def abatch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = 16,
        model_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> list[Result] | list[Result | BaseException]:
        """Refine many tasks at once in this event loop, results in the order of `tasks`.

        A task whose run fails does not stop the others: its result has `error` set (and no
        `final` draft when it failed before drafting), or with `return_exceptions=True` the
        exception itself takes its place. At most `concurrency` loops run together, and at
        most `model_concurrency` calls are in flight to any one model (rate limits are per
        model, not per loop). `progress=True` shows a progress bar of finished loops.
        """
        try:
            return await self._abatch(
                tasks, concurrency, model_concurrency, return_exceptions, progress
            )
        except RunInterrupted as exc:
            exc.reraise()

    async def _abatch(
        self,
        tasks: Iterable[str | Task],
        concurrency: int,
        model_concurrency: int | None,
        return_exceptions: bool,
        progress: bool,
    ) -> list[Result | BaseException]:
        slots = asyncio.Semaphore(cast(int, whole_number("concurrency", concurrency, minimum=1)))
        per_model = whole_number(
            "model_concurrency", model_concurrency, minimum=1, optional="no per-model limit"
        )
        todo = _batch_tasks(tasks)
        with _batch_progress(len(todo), enabled=progress) as advance:

            async def one(task: Task) -> Result | BaseException:
                async with slots:
                    started = time.perf_counter()
                    try:
                        return await self._arun(task, None, False)
                    except RunInterrupted:
                        raise  # stops the whole batch, as it would a loop of runs
                    except Exception as exc:  # one task's failure must not lose the others
                        if return_exceptions:
                            return exc
                        elapsed = time.perf_counter() - started
                        return Result.failed(
                            task, describe(exc), wall_time_s=elapsed, strategy=self.strategy.name
                        )
                    finally:
                        advance()

            # After an interrupt (or a cancel), no run outlives the batch.
            with model_limits(per_model):
                return await all_of([one(task) for task in todo])

    @overload
    def batch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = ...,
        model_concurrency: int | None = ...,
        return_exceptions: Literal[False] = ...,
        progress: bool = ...,
    ) -> list[Result]: ...

    @overload
    def batch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = ...,
        model_concurrency: int | None = ...,
        return_exceptions: bool,
        progress: bool = ...,
    ) -> list[Result | BaseException]: ...

    def batch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = 16,
        model_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> list[Result] | list[Result | BaseException]:
        """`abatch` from sync code."""
        work = self._abatch(tasks, concurrency, model_concurrency, return_exceptions, progress)
        try:
            return self._loop.run(work)
        except RunInterrupted as exc:
            exc.reraise()


class _RoleModels:
    """Resolves each role's default model once, applying `api_base` to model strings."""

    def __init__(self, api_base: str | None) -> None:
        self.api_base = None if api_base is None else check_api_base(api_base)
        self._applied = False

    def pick(
        self,
        spec: ModelSpec | None,
        agents: object,
        role: str,
        *,
        fallback: ModelSpec | None,
    ) -> ChatModel | None:
        """The default model of a role; an error if an agent needs one and none is set."""
        chosen = spec if spec is not None else fallback
        members = agents if isinstance(agents, list) else [agents]
        needs_default = any(getattr(a, "model", False) is None for a in members)
        if chosen is None and not needs_default:
            chosen = os.environ.get(MODEL_ENV) or None
            if chosen is None:
                return None
        if isinstance(chosen, ChatModel):
            return resolve_model(chosen)
        self._applied = True
        # None reads REDRAFT_MODEL or says how to choose one.
        return resolve_model(chosen, api_base=self.api_base)

    def check_used(self) -> None:
        """An api_base that no model string took would be silently ignored: refuse it."""
        if self.api_base is not None and not self._applied:
            raise ConfigError(
                "api_base applies to model strings (model=, critic_model=, editor_model= or "
                "$REDRAFT_MODEL) and every model here is a ChatModel instance: give the "
                "instance its endpoint, e.g. LiteLLMModel('openai/<name>', api_base=...)"
            )


def _agent(
    agent: object, role: str, method: str, default: Callable[[], T], example: str, model_arg: str
) -> T:
    """The actor or editor: the default one, or an object with the role's async method."""
    if agent is None:
        return default()
    if isinstance(agent, type) or not callable(getattr(agent, method, None)):
        hint = (
            f"; to choose the {role}'s model pass {model_arg}={agent!r}"
            if isinstance(agent, str)
            else f"; pass an instance: {agent.__name__}()"
            if isinstance(agent, type)
            else ""
        )
        raise ConfigError(
            f"{role} must be an object with an async {method}() method such as {example}, "
            f"not {kind_of(agent)} {shown(agent)}{hint}"
        )
    _check_async(getattr(agent, method), f"the {role}'s {method}()")
    return cast(T, agent)


def _check_async(method: object, what: str) -> None:
    """A role's method must be awaitable: a plain `def` would fail inside the run, at its
    first call, as "object ... can't be used in 'await' expression"."""
    function = inspect.unwrap(getattr(method, "__func__", method))  # type: ignore[arg-type]
    if inspect.isfunction(function) and not inspect.iscoroutinefunction(function):
        raise ConfigError(f"{what} is not async: the loop awaits it, so define it as async def")


def _critics(critics: object) -> list[Critic]:
    """The critics as a list; a single critic or function is accepted as a list of one."""
    if critics is None:
        return [LLMCritic()]
    if isinstance(critics, (str, bytes)) or not isinstance(critics, Iterable):
        critics = [critics]
    found = [_critic(critic, index) for index, critic in enumerate(critics)]
    if not found:
        raise ConfigError("no critics: pass at least one critic, or leave critics unset")
    return found


def _critic(critic: object, index: int) -> Critic:
    is_class = isinstance(critic, type)
    if is_class and callable(getattr(critic, "critique", None)):
        raise ConfigError(
            f"critics[{index}] is the class {getattr(critic, '__name__', critic)}: pass an "
            f"instance, e.g. {getattr(critic, '__name__', 'LLMCritic')}()"
        )
    if not is_class and isinstance(critic, Critic):
        _check_async(critic.critique, f"critics[{index}].critique()")
        return critic
    if callable(critic):
        return FunctionCritic(critic)  # what a plain function among the critics means
    hint = "; for a rubric text use LLMCritic(rubric=...)" if isinstance(critic, str) else ""
    raise ConfigError(
        f"critics[{index}] is {kind_of(critic)} {shown(critic)}: a critic is an object such as "
        "LLMCritic() or TestsCritic(...), or a function fn(text) returning a bool, a score in "
        f"0..1 or (score, feedback){hint}"
    )


def _memory(memory: object) -> CorrectionMemory | None:
    """A CorrectionMemory, opened here when given as the path of its database file."""
    if memory is None:
        return None
    if isinstance(memory, (str, Path)):
        if not str(memory).strip():
            raise ConfigError("memory is an empty path: give a file such as 'memory.db'")
        try:
            from redraft.memory import CorrectionMemory
        except ImportError as exc:  # the [memory] extra is missing
            raise ConfigError(
                f"memory={str(memory)!r} needs the memory extra: pip install 'redraft[memory]'"
                f" ({exc})"
            ) from None
        return CorrectionMemory(memory)
    if callable(getattr(memory, "recall", None)) and callable(getattr(memory, "learn", None)):
        return cast("CorrectionMemory", memory)
    raise ConfigError(
        "memory must be a redraft.memory.CorrectionMemory or the path of its database file "
        f"(e.g. 'memory.db'), not {kind_of(memory)} {shown(memory)}"
    )


def _batch_tasks(tasks: object) -> list[Task]:
    """The tasks of a batch, each checked before any runs."""
    if isinstance(tasks, (str, Task)):
        raise ConfigError(
            "batch takes a list of tasks, and got one task: use run(task), or batch([task])"
        )
    if not isinstance(tasks, Iterable) or isinstance(tasks, (bytes, bytearray)):
        raise ConfigError(f"batch takes a list of tasks, not {kind_of(tasks)} {shown(tasks)}")
    todo: list[Task] = []
    for index, task in enumerate(tasks):
        try:
            todo.append(_coerce_task(task))
        except ConfigError as exc:
            raise ConfigError(f"tasks[{index}]: {exc}") from None
    return todo


def _answer(feedback: object, score: object, accept: object) -> HumanAnswer | None:
    """A person's answer from `resume`'s arguments; None when none was given."""
    if feedback is None and score is None and accept is None:
        return None
    if feedback is not None and not isinstance(feedback, str):
        raise ConfigError(f"feedback must be a text, not {kind_of(feedback)} {shown(feedback)}")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise ConfigError(f"score must be a number from 0 to 1; got {shown(score)}")
    if accept is not None and not isinstance(accept, bool):
        raise ConfigError(f"accept must be True or False; got {shown(accept)}")
    return HumanAnswer(feedback=feedback, score=score, accept=accept)


def _checked_answer(answer: object) -> HumanAnswer | None:
    if answer is None or isinstance(answer, HumanAnswer):
        return answer
    raise ConfigError(
        f"answer must be a redraft.HumanAnswer(feedback=..., score=..., accept=...), not "
        f"{kind_of(answer)} {shown(answer)}"
    )


def _resumed_thread(thread_id: object) -> str:
    if isinstance(thread_id, str) and thread_id.strip():
        return thread_id
    raise ConfigError(
        f"resume needs the thread id of a checkpointed run (Result.thread_id); got "
        f"{shown(thread_id)}"
    )


def _thread_id(thread_id: object) -> str | None:
    if thread_id is None or (isinstance(thread_id, str) and thread_id.strip()):
        return thread_id
    raise ConfigError(f"thread_id must be a non-empty string; got {shown(thread_id)}")


def _interruptible(events: Iterator[Event]) -> Iterator[Event]:
    """Sync events, re-raising an interrupt from inside the run as itself."""
    try:
        yield from events
    except RunInterrupted as exc:
        exc.reraise()


@dataclass(frozen=True)
class _Run:
    graph: RunGraph
    config: RunnableConfig
    start: dict[str, Any] | Command[Any] | None  # None resumes from the checkpoint
    paused: _Paused
    finished: Result | None = None

    async def invoke(self) -> Result:
        """The run's result; a waiting one if it paused for a person."""
        if self.graph.checkpointer is None:
            state = await self.graph.ainvoke(self.start, self.config)
        else:
            # Each checkpoint must be on disk before the next step starts, or a killed run
            # would redo finished work when resumed.
            state = await self.graph.ainvoke(self.start, self.config, durability="sync")
        if "result" in state:
            result: Result = state["result"]
            return result
        snapshot = await self.graph.aget_state(self.config)
        thread_id = self.config.get("configurable", {}).get("thread_id")
        return self.paused.result(snapshot.values, snapshot.interrupts, thread_id)


@contextmanager
def _batch_progress(total: int, *, enabled: bool) -> Iterator[Callable[[], None]]:
    """A progress bar of finished loops (terminal or notebook), or a no-op."""
    if not enabled:
        yield lambda: None
        return
    with Progress(
        TextColumn("refining"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(),
    ) as bar:
        task_id = bar.add_task("loops", total=total)
        yield lambda: bar.advance(task_id)


def _ignore(event: Event) -> None:
    return None


def _coerce_task(task: object) -> Task:
    """A Task from a Task or an instruction string; anything else is a ConfigError."""
    return Task.coerce(task)  # type: ignore[arg-type]  # checked there, at run time


async def _close_all(resources: Sequence[object]) -> None:
    """Close each resource; one that fails does not leave the rest open."""
    failures: list[BaseException] = []
    for resource in resources:
        try:
            close = _closer(resource)
            if close is not None:
                await close()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


def _shut_down(loop: LoopThread, resources: Sequence[object]) -> None:
    """A collected refiner's loop: what was opened on it is closed, then the loop."""
    if not loop.running:
        return
    with suppress(Exception):  # nobody is left to tell
        loop.run(_close_all(resources))
    loop.stop()


def _closer(resource: object) -> Callable[[], Awaitable[None]] | None:
    """How to release `resource` (`aclose`, else `close` in a thread), if it has either."""
    aclose = getattr(resource, "aclose", None)
    if callable(aclose):
        return cast(Callable[[], Awaitable[None]], aclose)
    close = getattr(resource, "close", None)
    if callable(close):
        return lambda: asyncio.to_thread(close)
    return None


def _strategy(strategy: object) -> Strategy:
    if strategy is None:
        return Refine()
    if isinstance(strategy, type):  # the class has the methods too: check it first
        raise ConfigError(
            f"strategy must be an instance: pass strategy={strategy.__name__}(), not the class"
        )
    if isinstance(strategy, Strategy):
        return strategy
    raise ConfigError(
        "strategy must be a redraft.strategies.Strategy such as Refine(), not "
        f"{kind_of(strategy)} {shown(strategy)}"
    )


def _check_options(options: dict[str, Any]) -> None:
    """`**options` are Refiner's: a misspelt one is named with the option meant (a plain
    TypeError would not say which options there are)."""
    known = list(RefinerOptions.__annotations__)
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}=? " if close else ""
            raise ConfigError(
                f"unknown option {name}=: {hint}the options are {', '.join(known)}, "
                "thread_id and progress"
            )


def _check_answerable(refiner: Refiner, options: RefinerOptions) -> None:
    """`refine` closes its refiner on return: a pause for a person kept only in its memory
    could never be answered."""
    if options.get("checkpointer") is None and any(pauses(c) for c in refiner.critics):
        raise ConfigError(
            "refine() ends with its Refiner, so a pause for a person (HumanCritic) could never "
            "be answered: use Refiner(...).run(task) and .resume(thread_id, feedback=...), or "
            "give checkpointer='runs.db'"
        )


def _prompts(prompts: object) -> PromptLibrary:
    if prompts is None:
        return DEFAULT_PROMPTS
    if isinstance(prompts, PromptLibrary):
        return prompts
    if isinstance(prompts, (str, Path)):
        return PromptLibrary(prompts)
    raise ConfigError(
        "prompts must be a folder of prompt templates (a path) or a PromptLibrary, not "
        f"{kind_of(prompts)} {shown(prompts)}"
    )


class RefinerOptions(TypedDict, total=False):
    """The keyword arguments of `Refiner`, for `refine` and `arefine` (see `Refiner`)."""

    model: ModelSpec | None
    critics: Sequence[CriticSpec] | CriticSpec | None
    editor: Editor | None
    actor: Actor | None
    critic_model: ModelSpec | None
    editor_model: ModelSpec | None
    api_base: str | None
    max_rounds: int
    threshold: float | None
    patience: int | Literal["auto"] | None
    max_tokens: int | None
    max_cost_usd: float | None
    max_candidates: int | None
    max_time_s: float | None
    select: Selection | None
    strategy: Strategy | None
    checkpointer: Checkpointer | None
    prompts: str | Path | PromptLibrary | None
    memory: CorrectionMemory | str | Path | None
    lessons: int
    tools: Sequence[Tool | Callable[..., Any]] | None
    max_tool_steps: int
    max_tool_time_s: float


async def arefine(
    task: str | Task,
    *,
    thread_id: str | None = None,
    progress: bool = False,
    **options: Unpack[RefinerOptions],
) -> Result:
    """Refine one task with a `Refiner` made from `options` (its keyword arguments)."""
    task = _coerce_task(task)  # a bad task is named before any model is looked at
    _check_options(dict(options))
    async with Refiner(**options) as refiner:
        _check_answerable(refiner, options)
        return await refiner.arun(task, thread_id=thread_id, progress=progress)


def refine(
    task: str | Task,
    *,
    thread_id: str | None = None,
    progress: bool = False,
    **options: Unpack[RefinerOptions],
) -> Result:
    """Refine one task and return the best draft with every round; sync form of `arefine`.

    `options` are the keyword arguments of `Refiner` (`model`, `critics`, `max_rounds`,
    `api_base`, `strategy`, ...); `progress=True` shows each step live.
    """
    task = _coerce_task(task)  # a bad task is named before any model is looked at
    _check_options(dict(options))
    with Refiner(**options) as refiner:
        _check_answerable(refiner, options)
        return refiner.run(task, thread_id=thread_id, progress=progress)
