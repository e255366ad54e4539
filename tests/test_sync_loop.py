"""The sync API runs on one event loop the Refiner owns: what a run opens on it (connection
pools, sandbox pools) lasts from one call to the next until the Refiner is closed."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator

import pytest

from redraft import (
    DraftEvent,
    FunctionCritic,
    LiteLLMModel,
    LLMEditor,
    Refiner,
    ScriptedModel,
)
from redraft.models.base import Completion, ModelRequest
from redraft.testing.openai_server import OpenAIServer


class LoopRecorder(ScriptedModel):
    """A scripted model that notes the event loop of each call."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies)
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def complete(self, request: ModelRequest) -> Completion:
        self.loops.append(asyncio.get_running_loop())
        return await super().complete(request)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "redraft-loop" and t.is_alive()]


def test_sync_calls_share_one_loop_until_closed() -> None:
    model = LoopRecorder(["a", "b", "c", "d", "e"])
    refiner = Refiner(model, critics=[FunctionCritic(lambda text: True)])
    refiner.run("one")
    refiner.batch(["two", "three"])
    list(refiner.stream("four"))
    assert len(model.loops) == 4 and len(set(map(id, model.loops))) == 1
    first = model.loops[0]
    assert first.is_running()  # kept for the next call, not torn down
    refiner.close()
    assert first.is_closed()
    refiner.run("five")  # still usable: a later call starts a new loop
    assert model.loops[-1] is not first
    refiner.close()


def test_connections_to_a_server_last_across_sync_calls() -> None:
    with OpenAIServer(lambda request: "an answer") as server:
        model = LiteLLMModel("openai/test-model", api_base=server.base_url)
        with Refiner(model, critics=[FunctionCritic(lambda text: True)]) as refiner:
            for task in ("one", "two", "three"):
                refiner.run(task)
        clients = {request.client for request in server.requests}
    assert len(server.requests) == 3
    assert len(clients) == 1, clients  # one kept-alive connection, not one per call


def test_refine_and_a_collected_refiner_leave_no_loop_behind() -> None:
    from redraft import refine

    before = set(loop_threads())  # other tests' refiners may still be collected meanwhile
    refine("task", model=ScriptedModel(["a"]), critics=[FunctionCritic(lambda t: True)])
    assert not set(loop_threads()) - before
    refiner = Refiner(ScriptedModel(["a"]), critics=[FunctionCritic(lambda t: True)])
    refiner.run("task")
    (own,) = set(loop_threads()) - before
    del refiner
    gc.collect()
    own.join(10)
    assert not own.is_alive()


def test_a_refiner_collected_on_its_own_loop_still_closes_it() -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    background: list[asyncio.Task[None]] = []

    async def pending_forever() -> None:
        await asyncio.Event().wait()

    def check(text: str) -> bool:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        background.append(loop.create_task(pending_forever()))  # as a library's worker does
        return True

    refiner = Refiner(ScriptedModel(["a"]), critics=[FunctionCritic(check, in_thread=False)])
    refiner.run("task")
    (own,) = [t for t in loop_threads() if t is refiner._loop._thread]
    # The last reference goes inside a run on its own loop: the finalizer runs there.
    holder = [refiner]
    del refiner
    own_loop = loops[0]
    asyncio.run_coroutine_threadsafe(_drop(holder), own_loop).result(10)
    own.join(10)
    assert not own.is_alive() and own_loop.is_closed()
    assert background[0].cancelled()  # cancelled and awaited before the loop closed


async def _drop(holder: list[Refiner]) -> None:
    holder.clear()
    gc.collect()


def test_a_sync_call_from_inside_a_run_is_a_clear_error() -> None:
    made: list[Refiner] = []

    def critic(text: str) -> bool:
        made[0].run("nested")  # on the refiner's own loop thread: it would wait for itself
        return True

    refiner = Refiner(ScriptedModel(["x"]), critics=[FunctionCritic(critic, in_thread=False)])
    made.append(refiner)
    with refiner:
        critique = refiner.run("task").rounds[0].critiques[0]
    assert critique.error is not None and "await the async method" in critique.error


def test_closing_a_stream_early_cancels_its_run() -> None:
    started = threading.Event()

    def slow_check(text: str) -> bool:
        started.set()
        time.sleep(0.2)
        return False

    editor = ScriptedModel([f"v{i}" for i in range(1, 50)])
    with Refiner(
        ScriptedModel(["v0"]),
        critics=[FunctionCritic(slow_check)],
        editor=LLMEditor(editor),
        max_rounds=50,
        patience=None,
    ) as refiner:
        events: Iterator[object] = refiner.stream("task")
        assert isinstance(next(iter(events)), DraftEvent)
        events.close()  # type: ignore[attr-defined]
        calls = len(editor.calls)
        time.sleep(0.6)
        assert len(editor.calls) == calls  # nothing goes on after the stream is closed
        assert calls <= 1


@pytest.mark.parametrize("method", ["run", "batch"])
def test_a_sync_call_inside_a_running_event_loop_works(method: str) -> None:
    async def notebook_cell() -> object:
        refiner = Refiner(ScriptedModel(["a"]), critics=[FunctionCritic(lambda t: True)])
        try:
            if method == "run":
                return refiner.run("task").passed
            return [r.passed for r in refiner.batch(["task"])]
        finally:
            refiner.close()

    assert asyncio.run(notebook_cell()) in (True, [True])
