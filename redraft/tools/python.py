"""`PythonTool`: a role may run Python of its own, notebook-style, in a sandbox.

The model's code never runs in this process: every call is one run in a sandbox (see
`redraft.sandboxes`), under its time, memory and process limits, with none of the host's files
or environment. What the run prints comes back with the value of the last expression and the
cell's traceback, if it failed, each capped.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from redraft.checks import kind_of, number, shown, whole_number
from redraft.errors import ConfigError
from redraft.sandboxes.base import ExecResult, Limits, Sandbox, SandboxError
from redraft.sandboxes.channel import Channel, ChannelClosed
from redraft.sandboxes.choose import get_sandbox, sandbox_choice
from redraft.tools.base import (
    DEFAULT_MAX_OUTPUT_CHARS,
    Tool,
    ToolContext,
    ToolError,
    _in_own_thread,
)

# The program of every call (see `_python_cell.py`), and the file it reads the cells from.
HARNESS = (Path(__file__).parent / "_python_cell.py").read_text(encoding="utf-8")
JOB_FILE = "cells.json"
# How long past its run's time limit a call may take before the tool gives up on it: the
# sandbox may first have to start a worker (a container, for Docker).
START_GRACE_S = 20.0
# The conversations whose cells are remembered, the least recently used forgotten first: the
# tool is not told when a loop is over.
MAX_CONVERSATIONS = 1024
# The most the harness may send over the channel, and the most one of its frames may hold.
CHANNEL_BYTES = 4 << 20
MAX_FRAME = 2 << 20
ACK = b"\x06"
# The most memory a run may be given: 1 TiB (more overflows the limit the sandbox sets).
MAX_MEMORY_MB = 1 << 20

Status = Literal["ok", "error", "timeout", "memory", "exited"]


class PythonResult(BaseModel):
    """What one call did. `status` is "ok" (the cell ran to its end), "error" (it raised, or
    does not parse), "timeout", "memory" (out of memory) or "exited" (it ended the process:
    sys.exit, os._exit, a signal). `value` is the repr of a last expression that is not None;
    `error` the cell's traceback or what stopped it; `kept` whether what the cell defined is
    there for the conversation's next call; `truncated` whether the sandbox cut a stream;
    `note` anything else the model must know (its state was lost)."""

    model_config = ConfigDict(frozen=True)

    status: Status
    stdout: str = ""
    stderr: str = ""
    value: str | None = None
    error: str | None = None
    exit_code: int | None = None
    duration_s: float = 0.0
    kept: bool = False
    truncated: bool = False
    note: str | None = None


@dataclass
class _Cell:
    number: int
    code: str


@dataclass
class _Conversation:
    """The cells of one conversation that ran to their end, replayed before each new one."""

    seed: int
    cells: list[_Cell] = field(default_factory=list)
    calls: int = 0
    # The calls of one turn run concurrently; those of one conversation must take turns.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Report(BaseModel):
    """A frame of the harness's, as the host checks it (the sandbox's code could send any)."""

    model_config = ConfigDict(extra="ignore")

    ok: bool = False
    value: str | None = None
    error: str | None = None
    exit: bool = False
    replay_failed: int | None = None


@dataclass
class _Received:
    replayed: bool = False  # the earlier cells ran again, and the new one started
    report: _Report | None = None


class PythonTool(Tool):
    """Runs the model's Python in a sandbox, like a notebook's cells: `code` in, what it
    printed, the value of its last expression and its traceback out.

    `sandbox` is a name ("auto": bubblewrap, else Docker; "bwrap"; "docker"; "subprocess",
    which does not isolate and is for trusted code only), created on first use and stopped by
    `close()`/`aclose()`, or a `Sandbox` of yours, which stays yours to close. `timeout_s`
    and `memory_mb` bound each call; they default to those of `limits` (the other limits of a
    sandbox the tool creates: processes, file size, output), else of a `Sandbox` given, else
    `Limits()`. `max_output_chars` caps the text the model is shown of each call.

    State: the cells of one conversation (one tool loop, by `ToolContext.conversation`) that
    ran to their end are kept, and each call first runs them again, in order, with their
    output thrown away, then the new one: a replay, not a live interpreter. A live
    interpreter would have to outlive the run, whose limits (time above all) are per run and
    whose end, when a cell hangs and is killed, takes all state with it; it would also hold a
    worker for as long as a loop lasts, and nothing tells a tool that a loop is over. The
    replay's consequences:

    - each call's time limit covers the earlier cells again, so slow cells make every later
      call slower; a replay that cannot finish in time resets the conversation's state;
    - side effects happen again: files are written anew (each call starts in a fresh,
      empty working directory, so what earlier cells wrote is there again), output is not
      shown again;
    - `random` is seeded alike for every replay of a conversation, so its values repeat; the
      clock, `os.urandom`, `uuid` and the order of sets of strings may not, and an earlier
      cell that now fails (it read the time, say) drops itself and every cell after it from
      the state, which the model is told;
    - a cell that fails (an exception, a timeout, `sys.exit`) keeps nothing, not even what it
      defined before the line that failed;
    - the cells run in the harness's own interpreter, so a kept cell can reach it and make
      the later calls of its conversation report what it likes. The sandbox holds whatever
      the code does, but a conversation's results are only as trustworthy as every cell it
      keeps: to judge code that may be adversarial (a draft's), use `TestsCritic`, whose
      verdicts the code cannot write.

    Outside a tool loop (`ToolContext.conversation` empty) a call keeps no state. Calls of one
    conversation run one at a time, in the order they were made; at most
    `MAX_CONVERSATIONS` conversations are remembered, the least recently used forgotten.
    """

    def __init__(
        self,
        sandbox: Sandbox | str = "auto",
        *,
        name: str = "python",
        description: str | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        limits: Limits | None = None,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        number("timeout_s", timeout_s, above=0.0, optional="the limits' own", meaning="seconds")
        whole_number(
            "memory_mb", memory_mb, minimum=16, maximum=MAX_MEMORY_MB, optional="the limits' own"
        )
        if limits is not None and not isinstance(limits, Limits):
            raise ConfigError(
                f"limits must be a redraft.sandboxes.Limits, not {kind_of(limits)} {shown(limits)}"
            )
        chosen = sandbox_choice(sandbox)
        if limits is not None and not isinstance(chosen, str):
            raise ConfigError(
                "limits= sets up a sandbox the tool creates; a Sandbox passed in keeps its own "
                "(create it with limits=...), or give timeout_s= and memory_mb="
            )
        own = getattr(chosen, "limits", None)
        base = limits or (own if isinstance(own, Limits) else None) or Limits()
        self.limits = base.with_overrides(timeout_s=timeout_s, memory_mb=memory_mb)
        self._sandbox: Sandbox | str = chosen
        self._sandbox_name = chosen if isinstance(chosen, str) else None
        self._lock = threading.Lock()
        self._conversations: dict[str, _Conversation] = {}
        super().__init__(
            self._call,
            name=name,
            description=description if description is not None else self._describe(),
            timeout_s=self.limits.timeout_s + START_GRACE_S,
            max_output_chars=max_output_chars,
        )

    async def _call(self, code: str, ctx: ToolContext) -> PythonResult:
        """Run Python in the sandbox.

        Args:
            code: Python source, run like a notebook cell: what it prints is shown, and the
                value of its last line if that is an expression.
        """
        conversation = self._conversation(ctx.conversation)
        # The lock first: calls of one turn then run in the order they were made, even
        # while the first of them waits for the sandbox to start.
        async with conversation.lock:
            return await self._run(await self._ready(), conversation, code)

    def render(self, value: Any) -> tuple[str, bool]:
        """A call's result as the model reads it: how it ended, then each of stdout, stderr,
        the value and the error, cut so that together they fit `max_output_chars` (a long
        stdout does not push the traceback out)."""
        if not isinstance(value, PythonResult):
            return super().render(value)
        return _rendered(value, self.max_output_chars, self.limits)

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, created on first use (so building the tool starts nothing)."""
        with self._lock:
            if isinstance(self._sandbox, str):
                self._sandbox = get_sandbox(self._sandbox, limits=self.limits)
            return self._sandbox

    def close(self) -> None:
        """Stop the sandbox this tool started (a named one; a `Sandbox` passed in is its
        owner's to close). The tool stays usable: its next call starts a new one."""
        with self._lock:
            if self._sandbox_name is None or isinstance(self._sandbox, str):
                return
            sandbox, self._sandbox = self._sandbox, self._sandbox_name
        sandbox.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"PythonTool({self.name!r}, sandbox={self._sandbox_name or self._sandbox!r})"

    # -- internals -------------------------------------------------------------------------

    def _describe(self) -> str:
        return (
            "Run Python code in a sandbox (no network, none of the host's files) and see what "
            "it printed, the value of its last line if that is an expression (as in a notebook "
            "cell), and the traceback if it failed. Variables, functions and imports of your "
            "earlier calls that succeeded are kept: their code runs again, silently, before "
            "the new code. Each call may take "
            f"{self.limits.timeout_s:g} s and {self.limits.memory_mb} MB."
        )

    async def _ready(self) -> Sandbox:
        if not isinstance(self._sandbox, str):
            return self._sandbox
        try:
            # Starting one may probe the machine (a bwrap check, a Docker ping): not on the loop.
            return await asyncio.to_thread(lambda: self.sandbox)
        except SandboxError as exc:
            raise ToolError(f"{self.name} has no sandbox to run code in: {exc}") from None

    def _conversation(self, key: str) -> _Conversation:
        if not key:
            return _Conversation(seed=secrets.randbits(64))
        with self._lock:
            found = self._conversations.pop(key, None) or _Conversation(seed=secrets.randbits(64))
            self._conversations[key] = found  # the most recently used last
            while len(self._conversations) > MAX_CONVERSATIONS:
                del self._conversations[next(iter(self._conversations))]
        return found

    async def _run(self, sandbox: Sandbox, conversation: _Conversation, code: str) -> PythonResult:
        conversation.calls += 1
        cell = _Cell(conversation.calls, code)
        earlier = list(conversation.cells)
        job = {
            "earlier": [asdict(c) for c in earlier],
            "cell": asdict(cell),
            "seed": conversation.seed,
            "max_chars": self.max_output_chars,
        }
        channel = Channel(CHANNEL_BYTES)
        deadline = time.monotonic() + self.limits.timeout_s + START_GRACE_S
        receiving = asyncio.ensure_future(
            _in_own_thread(_receive, {"channel": channel, "deadline": deadline})
        )
        try:
            try:
                result = await sandbox.arun(
                    HARNESS,
                    files={JOB_FILE: json.dumps(job)},
                    timeout_s=self.limits.timeout_s,
                    memory_mb=self.limits.memory_mb,
                    channel=channel,
                )
            except asyncio.CancelledError:
                channel.stop()  # abandoned: the worker ends the run now, not at its limit
                raise
            except BaseException:
                channel.finished(None)  # no run: the receiver stops waiting for one
                raise
            received = await receiving
        except SandboxError as exc:
            raise ToolError(f"the sandbox could not run the code: {exc}") from None
        finally:
            if not receiving.done():
                receiving.cancel()  # its thread ends with the channel; nobody waits for it
        return self._outcome(conversation, cell, earlier, result, received)

    def _outcome(
        self,
        conversation: _Conversation,
        cell: _Cell,
        earlier: list[_Cell],
        result: ExecResult,
        received: _Received,
    ) -> PythonResult:
        """The call's result, and the conversation's state after it."""
        ran = {
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exit_code": result.exit_code,
            "duration_s": result.duration_s,
            "truncated": result.truncated,
        }
        report = received.report
        if report is not None and report.replay_failed is not None:
            failed = report.replay_failed
            conversation.cells = [c for c in earlier if c.number < failed]
            return PythonResult(
                status="error",
                error=report.error,
                note=(
                    f"cell {failed}, an earlier call's code run again to restore the state, "
                    "failed this time (the error above is its own); this call's code did not "
                    f"run, and what cell {failed} and the cells after it defined is gone: "
                    "define again what you need"
                ),
                **ran,
            )
        if report is not None and received.replayed:
            if report.ok:
                conversation.cells = [*earlier, cell]
                return PythonResult(status="ok", value=report.value, kept=True, **ran)
            return PythonResult(
                status="exited" if report.exit else "error", error=report.error, **ran
            )
        status: Status
        if result.timed_out:
            status, why = "timeout", f"it did not finish within {self.limits.timeout_s:g} s"
        elif result.oom_killed:
            status, why = "memory", f"it ran out of memory (limit {self.limits.memory_mb} MB)"
        else:
            status, why = "exited", _ended(result)
        note = None
        if earlier and not received.replayed:
            conversation.cells = []
            note = (
                "the earlier calls' code, run again to restore the state, did not finish: the "
                "state is reset, so define again what you need (keep slow work out of cells "
                "whose results later calls use)"
            )
        return PythonResult(status=status, error=why, note=note, **ran)


def _receive(channel: Channel, deadline: float) -> _Received:
    """The harness's frames, read while the run goes on; the last one is acknowledged."""
    received = _Received()
    try:
        while received.report is None:
            size = int.from_bytes(channel.receive_exactly(8, deadline), "big")
            if size > MAX_FRAME:
                break
            message = json.loads(channel.receive_exactly(size, deadline))
            if isinstance(message, dict) and message.get("replayed") is True:
                received.replayed = True
                channel.send(ACK)  # the new cell starts once the host knows
            else:
                received.report = _Report.model_validate(message)
        channel.send(ACK)
    except (ChannelClosed, TimeoutError, ValueError, ValidationError):
        pass  # no report, or no more: the run's result says how it ended
    return received


def _ended(result: ExecResult) -> str:
    code = result.exit_code
    if code is not None and code < 0:
        return f"the process was killed by signal {-code} before the cell finished"
    return f"the process ended (exit code {code}) before the cell finished"


# -- what the model reads ------------------------------------------------------------------

_CUT = "\n[... {} more characters cut]"
_CUT_ROOM = len(_CUT.format(10**9))


def _rendered(result: PythonResult, limit: int, limits: Limits) -> tuple[str, bool]:
    header = _headline(result, limits)
    sections = [
        (label, text)
        for label, text in (
            ("stdout", result.stdout),
            ("stderr", result.stderr),
            ("value", result.value),
            ("error", result.error),
            ("note", result.note),
        )
        if text
    ]
    labels = sum(len(f"\n{label}:\n") for label, _ in sections)
    room = max(limit - len(header) - labels - _CUT_ROOM * len(sections), 0)
    shares = _shares([len(text) for _, text in sections], room)
    cut = result.truncated
    parts = [header]
    for (label, text), share in zip(sections, shares, strict=True):
        if len(text) > share:
            cut = True
            # A traceback's end says the most; output is read from its start.
            keep_end = label in ("stderr", "error")
            text = _shortened(text, share, keep_end=keep_end)
        parts.append(f"\n{label}:\n{text}")
    return "".join(parts)[:limit], cut


def _headline(result: PythonResult, limits: Limits) -> str:
    took = f"{result.duration_s:.2f} s"
    if result.status == "ok":
        line = f"status: ok ({took}); what it defined is kept for the next call"
    elif result.status == "error":
        line = f"status: error ({took}); nothing it defined is kept"
    elif result.status == "timeout":
        line = f"status: timed out after {limits.timeout_s:g} s; nothing it defined is kept"
    elif result.status == "memory":
        line = f"status: out of memory ({limits.memory_mb} MB); nothing it defined is kept"
    else:
        line = f"status: exited (exit code {result.exit_code}); nothing it defined is kept"
    if result.truncated:
        line += "\n(the sandbox kept only the start of the output)"
    return line


def _shares(sizes: list[int], room: int) -> list[int]:
    """Characters for each section: all of a short one, an equal part of the rest for the
    long ones."""
    shares = [0] * len(sizes)
    left = room
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    for position, index in enumerate(order):
        shares[index] = min(sizes[index], left // (len(order) - position))
        left -= shares[index]
    return shares


def _shortened(text: str, share: int, *, keep_end: bool) -> str:
    marker = _CUT.format(len(text) - share)
    if not keep_end:
        return text[:share] + marker
    head = share // 3
    return text[:head] + marker + "\n" + text[len(text) - (share - head) :]


__all__ = ["PythonResult", "PythonTool"]
