"""Running the async core from sync code, including inside a notebook's running event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, or the same in a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:  # outside the `except`, or every error would say "no running event loop"
        try:
            return asyncio.run(coroutine)
        except KeyboardInterrupt as exc:
            # On Ctrl-C asyncio.run cancels the run and raises a fresh KeyboardInterrupt while
            # handling that CancelledError, which would print the run's stack twice over.
            raise exc.with_traceback(None) from None
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(coroutine))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target, name="redraft-sync", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


_DONE = object()


def iterate_sync(make_stream: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate an async stream from sync code; it runs in a worker thread with its own loop.

    Closing the iterator early cancels the stream.
    """
    items: queue.Queue[Any] = queue.Queue(maxsize=64)
    stop = threading.Event()
    state: dict[str, Any] = {}

    async def pump() -> None:
        state["task"] = asyncio.current_task()
        state["loop"] = asyncio.get_running_loop()
        try:
            async for item in make_stream():
                if stop.is_set():
                    break
                await asyncio.to_thread(items.put, item)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            items.put(exc)
        finally:
            items.put(_DONE)

    worker = threading.Thread(target=asyncio.run, args=(pump(),), name="redraft-stream")
    worker.daemon = True
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        loop, task = state.get("loop"), state.get("task")
        if worker.is_alive() and loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        while worker.is_alive():  # drain so a blocked put can finish
            with suppress(queue.Empty):
                items.get(timeout=0.05)
        worker.join()
