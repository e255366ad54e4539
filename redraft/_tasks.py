"""Running coroutines together so that none outlives the step that started it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def all_of(steps: Sequence[Awaitable[T]]) -> list[T]:
    """Every step's result, run concurrently; when one fails (or this is cancelled), the
    others are cancelled and awaited before the failure goes on."""
    if len(steps) == 1:  # nothing to run beside it: no task to make (a round's only critic)
        return [await steps[0]]
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for pending in tasks:
            pending.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
