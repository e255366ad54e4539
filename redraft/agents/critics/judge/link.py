"""The solution's process as a sandbox run with a channel (see `sandboxes/channel.py`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from redraft.sandboxes.base import ExecResult, Sandbox
from redraft.sandboxes.channel import Channel
from redraft.sandboxes.pool import PooledSandbox
from redraft.sandboxes.protocol import preload

HERE = Path(__file__).parent
SERVER_FILES = {
    "_redraft_wire.py": (HERE / "_wire.py").read_text(encoding="utf-8"),
    "_redraft_server.py": (HERE / "_server.py").read_text(encoding="utf-8"),
}
MAIN = "import _redraft_server\n_redraft_server.main()\n"
# Workers import the server at start: a run finds it imported instead of compiling it. The
# files still go with each run, for a sandbox whose workers predate this (or that has none).
preload("_redraft_wire", SERVER_FILES["_redraft_wire.py"])
preload("_redraft_server", SERVER_FILES["_redraft_server.py"])
CHANNEL_BYTES = 64 << 20
# The threads that wait for the solution's runs to end (a run holds one while it lasts).
_RUNS = ThreadPoolExecutor(max_workers=256, thread_name_prefix="redraft-solution")


class SandboxLink:
    """One run of the solution server at a time, in `sandbox`, restarted on request."""

    def __init__(
        self,
        sandbox: Sandbox,
        files: Mapping[str, str],
        *,
        timeout_s: float,
        memory_mb: int,
    ) -> None:
        self.sandbox = sandbox
        # A pool's workers have the server preloaded (they start after this module registers
        # it); any other sandbox gets it as files.
        preloaded = isinstance(sandbox, PooledSandbox)
        self.files = dict(files) if preloaded else {**files, **SERVER_FILES}
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.errors: list[BaseException] = []
        self._start()

    def _start(self) -> None:
        self.channel = Channel(CHANNEL_BYTES)
        self.result: ExecResult | None = None
        self.done = threading.Event()
        _RUNS.submit(self._run, self.channel, self.done)

    def _run(self, channel: Channel, done: threading.Event) -> None:
        try:
            result = self.sandbox.run(
                MAIN,
                files=self.files,
                timeout_s=self.timeout_s,
                memory_mb=self.memory_mb,
                channel=channel,
            )
        except BaseException as exc:  # reported by why_closed, and by the critic
            self.errors.append(exc)
            channel.finished(None)
            done.set()
            return
        self.result = result
        done.set()

    def send(self, data: bytes) -> None:
        self.channel.send(data)

    def receive_exactly(self, size: int, deadline: float) -> bytes:
        return self.channel.receive_exactly(size, deadline)

    def restart(self) -> None:
        self.close()
        self.done.wait(self.timeout_s + 30)
        self._start()

    def close(self, grace_s: float = 0.0) -> None:
        """End the run (now, or once it has had `grace_s` to end by itself); its worker
        cleans up after it while the judge goes on."""
        self.channel.stop(grace_s)

    def why_closed(self) -> str:
        # The run is ending (its channel closed): wait for its result, which says how. On a
        # loaded machine that can take seconds; the run's own deadline bounds it.
        self.done.wait(self.timeout_s + 30)
        if self.errors and self.result is None:
            return str(self.errors[-1])
        result = self.result
        if self.channel.overflow:
            return f"it wrote more than {CHANNEL_BYTES >> 20} MB to the judge"
        if result is None:
            return "it is gone"
        return describe_end(result, self.memory_mb)


def describe_end(result: ExecResult, memory_mb: int) -> str:
    """How a run ended, in words."""
    if result.timed_out:
        return "it ran out of time"
    if result.oom_killed:
        return f"it ran out of memory (limit {memory_mb} MB)"
    code = result.exit_code
    what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    tail = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else []
    return what + (f": {tail[0][:300]}" if tail else "")
