"""Work a critic does once per task (a checklist, its own answer), shared by every draft.

Several drafts of one task are often judged at once (best-of-N, a tree's fan-out): the
first to ask does the work, the others wait for it rather than repeat it. A failed attempt
is not kept: the next draft to ask tries again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redraft.types import Task, Usage

T = TypeVar("T")


def task_key(task: Task) -> tuple[str, str]:
    """What makes two tasks the same for per-task work: the instruction and context."""
    return task.instruction, task.context or ""


class PerTask(Generic[T]):
    """A value made once per task, kept for the `limit` tasks used last."""

    def __init__(self, limit: int = 1024) -> None:
        self._done: OrderedDict[tuple[str, str], T] = OrderedDict()
        # In flight, per event loop: a future resolves with True once the value is kept.
        self._pending: dict[tuple[tuple[str, str], int], asyncio.Future[bool]] = {}
        self._limit = limit

    def known(self, task: Task) -> T | None:
        return self._done.get(task_key(task))

    def keep(self, task: Task, value: T) -> None:
        key = task_key(task)
        self._done[key] = value
        self._done.move_to_end(key)
        while len(self._done) > self._limit:
            self._done.popitem(last=False)

    async def get(
        self, task: Task, make: Callable[[], Awaitable[tuple[T, Usage]]]
    ) -> tuple[T, Usage]:
        """The task's value and what making it cost this call (nothing if it was kept)."""
        key = task_key(task)
        loop = asyncio.get_running_loop()
        while True:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key], Usage()
            pending = self._pending.get((key, id(loop)))
            if pending is None:
                break
            await asyncio.shield(pending)  # then kept, or failed: look again
        future: asyncio.Future[bool] = loop.create_future()
        self._pending[(key, id(loop))] = future
        kept = False
        try:
            value, usage = await make()
            self.keep(task, value)
            kept = True
            return value, usage
        finally:
            del self._pending[(key, id(loop))]
            future.set_result(kept)
