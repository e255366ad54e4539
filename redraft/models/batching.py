"""Dynamic batching: concurrent requests gathered for a few milliseconds, run as one batch.

Callers `await scheduler.submit(request, key)` from any number of coroutines. Requests with the
same key (settings that can share one generation) wait up to `batch_wait_ms` for company, or
until `max_batch_size` of them are queued, and then go to `run_batch` together. `run_batch`
runs in one worker thread per scheduler, so the device works on one batch at a time while the
event loop stays free to gather the next one.

Nothing here is bound to an event loop at construction: each loop that submits gets its own
queue (sync callers run every call in a fresh loop), and all of them share the one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

RequestT = TypeVar("RequestT")
ResultT = TypeVar("ResultT")

# One batch's outcome: a result, or the exception for that request alone, per request in order.
BatchRunner = Callable[[list[RequestT]], Sequence["ResultT | BaseException"]]


@dataclass
class BatchStats:
    """What the scheduler has run so far (for benchmarks, tests and curious users)."""

    batches: int = 0
    requests: int = 0
    largest: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def record(self, size: int) -> None:
        self.batches += 1
        self.requests += size
        self.largest = max(self.largest, size)
        self.sizes.append(size)


@dataclass
class _Pending(Generic[RequestT, ResultT]):
    request: RequestT
    future: asyncio.Future[ResultT]
    queued_at: float


@dataclass
class _LoopQueue(Generic[RequestT, ResultT]):
    """The requests waiting in one event loop, by key, and the task that dispatches them."""

    groups: dict[Hashable, deque[_Pending[RequestT, ResultT]]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class BatchScheduler(Generic[RequestT, ResultT]):
    """Runs `run_batch` over batches of concurrently submitted requests, in a worker thread."""

    def __init__(
        self,
        run_batch: BatchRunner[RequestT, ResultT],
        *,
        max_batch_size: int = 32,
        batch_wait_ms: float = 5.0,
        thread_name: str = "redraft-batch",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must not be negative")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self.stats = BatchStats()
        self._thread_name = thread_name
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._queues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopQueue[RequestT, ResultT]
        ] = weakref.WeakKeyDictionary()

    def executor(self) -> ThreadPoolExecutor:
        """The single worker thread; anything else that must not overlap a batch runs here."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
            return self._executor

    async def submit(self, request: RequestT, key: Hashable = None) -> ResultT:
        """Queue `request` with others of the same `key`; its own result comes back.

        Cancelling the caller drops its request (or, once running, its result); the rest of
        the batch is unaffected.
        """
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        future: asyncio.Future[ResultT] = loop.create_future()
        group = queue.groups.setdefault(key, deque())
        group.append(_Pending(request, future, time.monotonic()))
        if len(group) >= self.max_batch_size:
            queue.wake.set()
        if queue.task is None or queue.task.done():
            queue.task = loop.create_task(self._dispatch(queue), name=self._thread_name)
        return await future

    async def _dispatch(self, queue: _LoopQueue[RequestT, ResultT]) -> None:
        loop = asyncio.get_running_loop()
        running: list[_Pending[RequestT, ResultT]] = []
        try:
            while True:
                _drop_cancelled(queue)
                if not queue.groups:
                    return
                key, delay = self._next_group(queue)
                if delay > 0:
                    queue.wake.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(queue.wake.wait(), delay)
                    continue
                running = self._take(queue, key)
                outcomes = await loop.run_in_executor(self.executor(), self._run, running)
                for pending, outcome in zip(running, outcomes, strict=True):
                    if pending.future.done():  # its caller was cancelled meanwhile
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
                running = []
        except BaseException as exc:
            # The loop is shutting down under us (or a bug): nobody may be left waiting.
            for pending in running + [p for group in queue.groups.values() for p in group]:
                if pending.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                    pending.future.cancel()
                else:
                    pending.future.set_exception(exc)
            queue.groups.clear()
            raise
        finally:
            queue.task = None

    def _next_group(self, queue: _LoopQueue[RequestT, ResultT]) -> tuple[Hashable, float]:
        """The key to run next (a full group, else the oldest), and how long to wait first."""
        oldest_key: Hashable = None
        oldest = float("inf")
        for key, group in queue.groups.items():
            if len(group) >= self.max_batch_size:
                return key, 0.0
            if group[0].queued_at < oldest:
                oldest_key, oldest = key, group[0].queued_at
        return oldest_key, max(0.0, oldest + self.batch_wait_s - time.monotonic())

    def _take(
        self, queue: _LoopQueue[RequestT, ResultT], key: Hashable
    ) -> list[_Pending[RequestT, ResultT]]:
        group = queue.groups[key]
        batch = [group.popleft() for _ in range(min(self.max_batch_size, len(group)))]
        if not group:
            del queue.groups[key]
        return batch

    def _run(self, batch: list[_Pending[RequestT, ResultT]]) -> list[ResultT | BaseException]:
        """In the worker thread: one batch, with a failure of the whole batch given to each."""
        self.stats.record(len(batch))
        try:
            outcomes = list(self.run_batch([pending.request for pending in batch]))
        except Exception as exc:
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            error = RuntimeError(f"batch of {len(batch)} gave {len(outcomes)} results")
            return [error] * len(batch)
        return outcomes

    def close(self) -> None:
        """Stop the worker thread once its current batch is done."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None


def _drop_cancelled(queue: _LoopQueue[RequestT, ResultT]) -> None:
    for key in list(queue.groups):
        live = deque(p for p in queue.groups[key] if not p.future.done())
        if live:
            queue.groups[key] = live
        else:
            del queue.groups[key]
