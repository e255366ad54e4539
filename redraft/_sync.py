"""The sync API's event loop: one loop in a thread of its own, owned by one `Refiner`.

What a run opens on a loop (connection pools, sandbox pools, later MCP sessions) is bound to
that loop, so every sync call of a Refiner runs on the same one instead of a new
`asyncio.run` each time. It works the same inside a notebook, whose thread already runs a
loop. Ctrl-C while a call waits cancels the call, waits for it to unwind, then raises.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import suppress
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class LoopThread:
    """An event loop running in a daemon thread, started on first use and again after
    `stop`; calls from any thread but its own."""

    def __init__(self, name: str = "redraft-loop") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and return its result (or raise what it raised)."""
        try:
            loop = self._started()
        except BaseException:
            coroutine.close()
            raise
        return _Call(loop, coroutine).result()

    def iterate(self, make_stream: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Iterate an async stream that runs on the loop. Closing the iterator early
        cancels the stream; so does Ctrl-C while it waits for the next item."""
        items: queue.Queue[Any] = queue.Queue(maxsize=64)

        async def pump() -> None:
            try:
                async for item in make_stream():
                    await asyncio.to_thread(items.put, item)
            except BaseException as exc:  # handed to the reader, a cancellation too
                items.put(exc)
            finally:
                items.put(_DONE)

        pumping = _Call(self._started(), pump())
        try:
            while True:
                try:
                    item = items.get(timeout=0.5)
                except queue.Empty:  # a pump cancelled before it started puts nothing
                    if pumping.finished.is_set() and items.empty():
                        break
                    continue
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            pumping.cancel()
            while not pumping.finished.is_set():  # drain, so that a blocked put can finish
                with suppress(queue.Empty):
                    items.get(timeout=0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop: what still runs on it is cancelled and awaited, then it closes.
        Called from a run on the loop itself, that happens once the run returns."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():
            loop.call_soon(loop.stop)
            return
        with suppress(RuntimeError):  # closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread is threading.current_thread():
                raise RuntimeError(
                    "a Refiner's sync method was called from inside one of its own runs "
                    "(a critic or model, say): await the async method (arun, aresume, "
                    "abatch) there instead"
                )
            if self._loop is not None and self._thread is not None and self._thread.is_alive():
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:  # as asyncio.run ends: nothing is left pending on a closed loop
                    loop.run_until_complete(_cancel_others())
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                    asyncio.set_event_loop(None)
                    loop.close()

            thread = threading.Thread(target=serve, name=self._name, daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            return loop


class _Call(Generic[T]):
    """A coroutine running on a loop in another thread, waited for from this one. Unlike
    `run_coroutine_threadsafe`'s future, it counts as finished only once the coroutine has
    unwound, also after a cancel."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]):
        self.finished = threading.Event()
        self._loop = loop
        self._task: asyncio.Task[T] | None = None
        loop.call_soon_threadsafe(self._start, coroutine)

    def _start(self, coroutine: Coroutine[Any, Any, T]) -> None:
        self._task = self._loop.create_task(coroutine)
        self._task.add_done_callback(lambda _: self.finished.set())

    def cancel(self) -> None:
        """Cancel the coroutine (it still has to unwind: see `finished`)."""
        if not self.finished.is_set():
            with suppress(RuntimeError):  # the loop is closed: nothing runs there any more
                self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self._task is not None:  # started: callbacks run in the order they were queued
            self._task.cancel()

    def result(self) -> T:
        """The coroutine's result; on Ctrl-C it is cancelled and unwinds before the
        KeyboardInterrupt is raised (a second Ctrl-C meanwhile does not cut that short)."""
        try:
            self.finished.wait()
        except KeyboardInterrupt as exc:
            self.cancel()
            while True:
                try:
                    self.finished.wait()
                    break
                except KeyboardInterrupt:
                    continue
            raise exc.with_traceback(None) from None
        assert self._task is not None
        return self._task.result()


async def _cancel_others() -> None:
    """Cancel every task on this loop but this one, and wait for them to finish."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others)
