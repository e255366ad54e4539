"""Caps on concurrent calls per model, for many loops sharing one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from redraft.models.base import ChatModel, Completion, ModelRequest


class ModelLimits:
    """At most `per_model` calls in flight to each model instance."""

    def __init__(self, per_model: int) -> None:
        if per_model < 1:
            raise ValueError("per-model concurrency must be at least 1")
        self.per_model = per_model
        self._semaphores: dict[int, asyncio.Semaphore] = {}

    def semaphore(self, model: ChatModel) -> asyncio.Semaphore:
        key = id(model)
        if key not in self._semaphores:
            self._semaphores[key] = asyncio.Semaphore(self.per_model)
        return self._semaphores[key]


_active_limits: ContextVar[ModelLimits | None] = ContextVar("redraft_model_limits", default=None)


@contextmanager
def model_limits(per_model: int | None) -> Iterator[None]:
    """Within this block (and the tasks it starts), cap concurrent calls per model."""
    token = _active_limits.set(ModelLimits(per_model) if per_model else None)
    try:
        yield
    finally:
        _active_limits.reset(token)


async def call_model(model: ChatModel, request: ModelRequest) -> Completion:
    """Call `model` with `request`, waiting for a slot when a per-model limit is active."""
    limits = _active_limits.get()
    if limits is None:
        return await model.complete(request)
    async with limits.semaphore(model):
        return await model.complete(request)
