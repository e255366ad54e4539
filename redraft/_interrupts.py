"""KeyboardInterrupt and SystemExit inside a run: carried out as an ordinary exception.

asyncio re-raises those two straight out of the event loop from whichever task raised them,
abandoning every other coroutine of the run in mid-await. Their cleanup then runs at garbage
collection, outside their context and their loop, and prints dozens of secondary errors
("Token ... was created in a different Context", "no running event loop", "Task was destroyed
but it is pending"). Wrapped in `RunInterrupted` (an `Exception`), the run unwinds like after
any error, and the public API re-raises the original once it has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


class RunInterrupted(Exception):
    """A KeyboardInterrupt or SystemExit raised inside a run, on its way out of the run."""

    def __init__(self, original: KeyboardInterrupt | SystemExit) -> None:
        super().__init__(f"the run was stopped by {type(original).__name__}")
        self.original = original

    def reraise(self) -> NoReturn:
        """Raise the original, without the run's internals in its traceback."""
        raise self.original.with_traceback(None) from None


async def contained(awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, turning KeyboardInterrupt/SystemExit into RunInterrupted."""
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        raise RunInterrupted(exc) from None


def contain(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """`contained` for every call of an async function (a graph node)."""

    @wraps(fn)
    async def node(*args: P.args, **kwargs: P.kwargs) -> T:
        return await contained(fn(*args, **kwargs))

    return node
