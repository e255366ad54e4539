"""The Python API: a reusable `Refiner`, and `refine` / `arefine` for one-off runs."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from redraft._sync import iterate_sync, run_sync
from redraft.agents.actor import Actor, LLMActor
from redraft.agents.critics.base import Critic
from redraft.agents.critics.llm import LLMCritic
from redraft.agents.editor import Editor, LLMEditor
from redraft.agents.prompts import DEFAULT_PROMPTS, PromptLibrary
from redraft.checkpoints import allow_state_types, sqlite_checkpointer
from redraft.errors import ConfigError
from redraft.events import event_sink
from redraft.loop import LoopAgents, LoopState, build_graph, recursion_limit
from redraft.models.base import ChatModel
from redraft.models.limits import model_limits
from redraft.models.resolve import resolve_model
from redraft.stopping import Selection, StopRules
from redraft.types import Event, Result, StopEvent, Task

if TYPE_CHECKING:  # the memory needs the [memory] extra; only a configured one loads it
    from redraft.memory import CorrectionMemory

ModelSpec = ChatModel | str
MODEL_ENV = "REDRAFT_MODEL"
T = TypeVar("T")
Checkpointer = BaseCheckpointSaver[Any] | str | Path
LoopGraph = CompiledStateGraph[LoopState, None, LoopState, LoopState]


class Refiner:
    """A configured refinement loop, reusable across tasks and safe to run concurrently.

    `model` is the default for every role; `critic_model` and `editor_model` override it for
    those roles, and an agent constructed with its own model keeps it. Without critics, one
    `LLMCritic` judges against the task's rubric.

    With a `memory` (a `redraft.memory.CorrectionMemory`), the actor and the editor are given
    up to `lessons` relevant past corrections (shown on each `Draft` as `lessons`), scoped to
    the task's `metadata["kind"]` when it has one; after each run, every critique a revision
    improved on is stored as a new correction.
    """

    def __init__(
        self,
        model: ModelSpec | None = None,
        *,
        critics: Sequence[Critic] | None = None,
        editor: Editor | None = None,
        actor: Actor | None = None,
        critic_model: ModelSpec | None = None,
        editor_model: ModelSpec | None = None,
        max_rounds: int = 4,
        threshold: float | None = None,
        patience: int | None = 2,
        max_tokens: int | None = None,
        max_cost_usd: float | None = None,
        select: Selection = "best",
        checkpointer: Checkpointer | None = None,
        prompts: str | Path | PromptLibrary | None = None,
        memory: CorrectionMemory | None = None,
        lessons: int = 3,
    ) -> None:
        if lessons < 0:
            raise ConfigError("lessons is how many past corrections to show: 0 or more")
        try:
            self.rules = StopRules(
                max_rounds=max_rounds,
                threshold=threshold,
                patience=patience,
                max_tokens=max_tokens,
                max_cost_usd=max_cost_usd,
                select=select,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.actor = actor or LLMActor()
        self.critics = list(critics) if critics is not None else [LLMCritic()]
        if not self.critics:
            raise ConfigError("no critics: pass at least one critic, or leave critics unset")
        self.editor = editor or LLMEditor()
        self.agents = LoopAgents(
            actor=self.actor,
            critics=self.critics,
            editor=self.editor,
            # A task that brings its own draft needs no actor model, so that error waits.
            actor_model=self._role_model(model, self.actor, "actor", fallback=None, lazy=True),
            critic_model=self._role_model(critic_model, self.critics, "critic", fallback=model),
            editor_model=self._role_model(editor_model, self.editor, "editor", fallback=model),
            prompts=prompts if isinstance(prompts, PromptLibrary) else _prompts(prompts),
            memory=memory,
            lessons=lessons,
        )
        self._sqlite_path: Path | None = None
        saver: BaseCheckpointSaver[Any] | None = None
        if isinstance(checkpointer, (str, Path)):
            self._sqlite_path = Path(checkpointer)
        elif checkpointer is not None:
            saver = allow_state_types(checkpointer)
        self._builder = build_graph(self.agents, self.rules)
        self.graph: LoopGraph = self._builder.compile(checkpointer=saver, name="redraft")
        """The compiled LangGraph graph; embed it as a subgraph or drive it directly."""

    @staticmethod
    def _role_model(
        spec: ModelSpec | None,
        agents: object,
        role: str,
        *,
        fallback: ModelSpec | None,
        lazy: bool = False,
    ) -> ChatModel | None:
        """The default model of a role; an error if an agent needs one and none is set."""
        chosen = spec if spec is not None else fallback
        members = agents if isinstance(agents, list) else [agents]
        needs_default = any(getattr(a, "model", False) is None for a in members)
        if chosen is None and (lazy or not needs_default):
            chosen = os.environ.get(MODEL_ENV) or None
            if chosen is None:
                return None
        return resolve_model(chosen)  # None reads REDRAFT_MODEL or says how to choose one

    @property
    def memory(self) -> CorrectionMemory | None:
        """The memory the loop learns from and writes to, if one was given."""
        return self.agents.memory

    @property
    def checkpointed(self) -> bool:
        return self._sqlite_path is not None or self.graph.checkpointer is not None

    # -- running ---------------------------------------------------------------------------

    async def arun(
        self, task: str | Task, *, thread_id: str | None = None, progress: bool = False
    ) -> Result:
        """Refine one task. With a checkpointer and a known `thread_id`, resume that run."""
        if progress:
            return await self._arun_shown(task, thread_id)
        task = _coerce_task(task)
        async with AsyncExitStack() as stack:
            run = await self._prepare(stack, task, thread_id)
            if run.finished is not None:
                return run.finished
            with event_sink(_ignore):
                state = await run.invoke()
            result: Result = state["result"]
            return result

    def run(
        self, task: str | Task, *, thread_id: str | None = None, progress: bool = False
    ) -> Result:
        """Refine one task; `progress=True` shows each step live (terminal or notebook)."""
        work = (
            self._arun_shown(task, thread_id) if progress else self.arun(task, thread_id=thread_id)
        )
        return run_sync(self._closing(work))

    async def _arun_shown(self, task: str | Task, thread_id: str | None) -> Result:
        from redraft.progress import ProgressView, follow

        view = ProgressView(
            title=f"redraft · up to {self.rules.max_rounds} rounds", critics=len(self.critics)
        )
        return await follow(self.astream(task, thread_id=thread_id), view, Console())

    def models(self) -> list[ChatModel]:
        """Every distinct model this refiner may call."""
        agents: list[object] = [self.actor, *self.critics, self.editor]
        found = [getattr(agent, "model", None) for agent in agents]
        found += [self.agents.actor_model, self.agents.critic_model, self.agents.editor_model]
        unique = {id(m): m for m in found if isinstance(m, ChatModel)}
        return list(unique.values())

    async def aclose(self) -> None:
        """Release the models' connections on the running event loop."""
        for model in self.models():
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()

    async def _closing(self, work: Awaitable[T]) -> T:
        # The sync API owns its event loop, so it closes what the models opened on it.
        try:
            return await work
        finally:
            await self.aclose()

    async def astream(
        self, task: str | Task, *, thread_id: str | None = None
    ) -> AsyncIterator[Event]:
        """Yield an event as each step happens: draft, critique, round, edit, stop."""
        task = _coerce_task(task)
        async with AsyncExitStack() as stack:
            run = await self._prepare(stack, task, thread_id)
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
                await running  # raises what the run raised
            finally:
                if not running.done():
                    running.cancel()
                    with suppress(asyncio.CancelledError):
                        await running

    async def _prepare(self, stack: AsyncExitStack, task: Task, thread_id: str | None) -> _Run:
        """The graph and config of a run, and whether a checkpoint already holds it."""
        graph = self.graph
        if self._sqlite_path is not None:
            saver = await stack.enter_async_context(sqlite_checkpointer(self._sqlite_path))
            graph = self._builder.compile(checkpointer=saver, name="redraft")
        config: RunnableConfig = {"recursion_limit": recursion_limit(self.rules)}
        if graph.checkpointer is None:
            return _Run(graph, config, {"task": task})
        thread_id = thread_id or uuid.uuid4().hex
        config["configurable"] = {"thread_id": thread_id}
        snapshot = await graph.aget_state(config)
        if not snapshot.values:
            return _Run(graph, config, {"task": task})
        if snapshot.values.get("task") != task:
            raise ConfigError(
                f"thread '{thread_id}' holds a run of a different task; "
                "use a new thread_id for a new task"
            )
        if "result" in snapshot.values:  # finished before: hand back its result
            return _Run(graph, config, None, finished=snapshot.values["result"])
        return _Run(graph, config, None)  # resume from the last checkpoint

    def stream(self, task: str | Task, *, thread_id: str | None = None) -> Iterator[Event]:
        async def events() -> AsyncIterator[Event]:
            try:
                async for event in self.astream(task, thread_id=thread_id):
                    yield event
            finally:
                await self.aclose()

        return iterate_sync(events)

    async def abatch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = 16,
        model_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> list[Result | BaseException]:
        """Refine many tasks at once in this event loop, results in the order of `tasks`.

        At most `concurrency` loops run together, and at most `model_concurrency` calls are
        in flight to any one model (rate limits are per model, not per loop). `progress=True`
        shows a progress bar of finished loops.
        """
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        todo = list(tasks)
        slots = asyncio.Semaphore(concurrency)
        with _batch_progress(len(todo), enabled=progress) as advance:

            async def one(task: str | Task) -> Result:
                async with slots:
                    try:
                        return await self.arun(task)
                    finally:
                        advance()

            with model_limits(model_concurrency):
                runs = [asyncio.ensure_future(one(task)) for task in todo]
            results = await asyncio.gather(*runs, return_exceptions=return_exceptions)
        return list(results)

    def batch(
        self,
        tasks: Iterable[str | Task],
        *,
        concurrency: int = 16,
        model_concurrency: int | None = None,
        return_exceptions: bool = False,
        progress: bool = False,
    ) -> list[Result | BaseException]:
        return run_sync(
            self._closing(
                self.abatch(
                    tasks,
                    concurrency=concurrency,
                    model_concurrency=model_concurrency,
                    return_exceptions=return_exceptions,
                    progress=progress,
                )
            )
        )


@dataclass(frozen=True)
class _Run:
    graph: LoopGraph
    config: RunnableConfig
    start: LoopState | None  # None resumes from the checkpoint
    finished: Result | None = None

    async def invoke(self) -> dict[str, Any]:
        if self.graph.checkpointer is None:
            return await self.graph.ainvoke(self.start, self.config)
        # Each checkpoint must be on disk before the next step starts, or a killed run
        # would redo finished work when resumed.
        return await self.graph.ainvoke(self.start, self.config, durability="sync")


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


def _coerce_task(task: str | Task) -> Task:
    try:
        return Task.coerce(task)
    except ValueError as exc:
        raise ConfigError(_first_error(exc)) from exc


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first.get("ctx", {}).get("error", first["msg"]))
    return str(exc)


def _prompts(directory: str | Path | None) -> PromptLibrary:
    return DEFAULT_PROMPTS if directory is None else PromptLibrary(directory)


async def arefine(
    task: str | Task,
    *,
    model: ModelSpec | None = None,
    critics: Sequence[Critic] | None = None,
    editor: Editor | None = None,
    max_rounds: int = 4,
    threshold: float | None = None,
    thread_id: str | None = None,
    progress: bool = False,
    memory: CorrectionMemory | None = None,
    **options: Any,
) -> Result:
    """Refine one task; see `Refiner` for every option."""
    refiner = Refiner(
        model,
        critics=critics,
        editor=editor,
        max_rounds=max_rounds,
        threshold=threshold,
        memory=memory,
        **options,
    )
    return await refiner.arun(task, thread_id=thread_id, progress=progress)


def refine(
    task: str | Task,
    *,
    model: ModelSpec | None = None,
    critics: Sequence[Critic] | None = None,
    editor: Editor | None = None,
    max_rounds: int = 4,
    threshold: float | None = None,
    thread_id: str | None = None,
    progress: bool = False,
    memory: CorrectionMemory | None = None,
    **options: Any,
) -> Result:
    """Refine one task and return the best draft with every round; sync form of `arefine`.

    `progress=True` shows each step live; other options are those of `Refiner`.
    """
    refiner = Refiner(
        model,
        critics=critics,
        editor=editor,
        max_rounds=max_rounds,
        threshold=threshold,
        memory=memory,
        **options,
    )
    return refiner.run(task, thread_id=thread_id, progress=progress)
