"""The host's side of the worker protocol (see `_worker.py`): requests, frames and replies.

The worker runs next to untrusted code, so nothing it sends is trusted: every frame's size is
bounded before it is read, every read has a deadline, and a reply must match its request and
the limits it was given. Anything else is a `WorkerProtocolError`, and the worker is retired.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import secrets
import select
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from redraft.errors import ConfigError
from redraft.sandboxes.base import ExecResult, Files, Limits, Program, SandboxError

HEADER = struct.Struct(">Q")
# A header with this bit holds a channel run's relayed bytes (see `_worker.py`, `channel.py`).
RELAY_FLAG = 1 << 63
OVERFLOW_FLAG = 1 << 62
WORKER_SOURCE = (Path(__file__).parent / "_worker.py").read_text(encoding="utf-8")
# Inside an isolating sandbox: the working directory, and what else is writable there
# (emptied with it between runs).
SANDBOX_WORK_DIR = "/sandbox"
SANDBOX_SCRATCH_DIRS = ("/tmp", "/dev/shm")
# The uid and gid a run has when the worker can give it one of its own (running as root).
RUN_UID = 65534
# Nothing of the host's environment enters a sandbox: a run sees these and what it is given.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}
# The largest greeting, error or reply header a worker may send; output comes after it, raw.
MAX_CONTROL_FRAME = 64 << 10


class WorkerProtocolError(SandboxError):
    """A worker sent something it must not: the run fails and the worker is retired."""


class WorkerGone(OSError):
    """The worker's end of the channel closed (it died, or was killed)."""


class WorkerRefused(SandboxError):
    """The worker answered a request with an error instead of running it."""

    def __init__(self, message: str, *, before_run: bool, fatal: bool, retire: str | None) -> None:
        super().__init__(message)
        self.before_run = before_run  # nothing of the request ran
        self.fatal = fatal  # no run can be contained here: the sandbox is unusable
        self.retire = retire  # why the worker must not be used again


def worker_argv(
    python: str,
    work_dir: str,
    *,
    own_pid_namespace: bool,
    scratch: tuple[str, ...] = (),
    run_uid: int | None = None,
    require_seccomp: bool = True,
    oom_counters: tuple[str, ...] = (),
) -> list[str]:
    """The command that starts a worker: isolated mode, no site-packages, source inline.

    `scratch` directories (a sandbox's /tmp, /dev/shm) are emptied with the working
    directory, so nothing a run leaves anywhere reaches the next run. `run_uid` is the uid
    runs drop to (the worker must be root). `oom_counters`: cgroup files the worker can read
    its sandbox's OOM-kill count from.
    """
    argv = [python, "-I", "-S", "-c", WORKER_SOURCE, "--work", work_dir]
    for directory in scratch:
        argv += ["--scratch", directory]
    if run_uid is not None:
        argv += ["--run-uid", str(run_uid), "--run-gid", str(run_uid)]
    for counter in oom_counters:
        argv += ["--oom-counter", counter]
    if own_pid_namespace:
        argv.append("--own-pid-namespace")
    if require_seccomp:
        argv.append("--require-seccomp")
    return argv


def build_request(
    program: Program,
    *,
    files: Files | None,
    stdin: str | bytes | None,
    env: Mapping[str, str] | None,
    limits: Limits,
    work_dir: str,
    keep: bool = False,
) -> dict[str, Any]:
    """A request for the worker, after checking what a user could get wrong.

    `keep`: a session's run, whose working directory stays for the next one.
    """
    request: dict[str, Any] = {
        "id": secrets.token_hex(8),
        "files": {_relative(name): _b64(content) for name, content in (files or {}).items()},
        "stdin": _b64(stdin) if stdin else "",
        "env": {**BASE_ENV, "HOME": work_dir, "TMPDIR": work_dir, **_environment(env)},
        "timeout_s": limits.timeout_s,
        "cpu_s": limits.effective_cpu_s,
        "memory_mb": limits.memory_mb,
        "processes": limits.processes,
        "file_size_mb": limits.file_size_mb,
        "open_files": limits.open_files,
        "output_bytes": limits.output_bytes,
        "keep": keep,
    }
    if isinstance(program, str):
        request["code"] = program
    else:
        argv = [str(arg) for arg in program]
        if not argv or not argv[0]:
            raise ConfigError("nothing to run: give Python source or a non-empty argv list")
        if any("\0" in arg for arg in argv):
            raise ConfigError("an argument holds a NUL character, which no program can be given")
        request["argv"] = argv
    return request


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    variables = dict(env or {})
    for name, value in variables.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ConfigError(f"sandbox environment {name!r}: names and values must be strings")
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ConfigError(
                f"sandbox environment {name!r}: a name must be non-empty without '=' or NUL, "
                "and a value without NUL"
            )
    return variables


def _relative(name: str) -> str:
    path = PurePosixPath(name)
    if not name or "\0" in name or path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"sandbox file {name!r}: give a relative path inside the working directory"
        )
    return str(path)


def _b64(content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    return base64.b64encode(data).decode("ascii")


def encode_frame(message: Mapping[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


# Modules every worker imports once at start, so that the runs that use them (the tests
# critic's solution server) do not compile and import them each time: name -> source.
PRELOADED: dict[str, str] = {}


def preload(name: str, source: str) -> None:
    """Have workers started from now on import `source` as module `name` before any run
    (trusted host code only: every run of theirs will find it in sys.modules)."""
    PRELOADED[name] = source


def configuration(seccomp_program: bytes | None) -> dict[str, Any]:
    """What a worker is told after it says it is ready."""
    program = base64.b64encode(seccomp_program).decode() if seccomp_program else None
    return {"seccomp": program, "preload": dict(PRELOADED)}


# Talking to a worker


class Transport(Protocol):
    """How frames go to and come from a worker: a pair of pipes, or Docker's exec stream."""

    def send(self, data: bytes, deadline: float) -> None:
        """All of `data` by `deadline` (TimeoutError), or OSError if the worker is gone."""
        ...

    def read_exact(self, size: int, deadline: float) -> bytes:
        """`size` bytes; WorkerGone at end of stream, TimeoutError past `deadline`."""
        ...

    def pending(self) -> bool:
        """Bytes that no request asked for are waiting, or the stream has ended."""
        ...


class PipeTransport:
    """A worker's stdin and stdout pipes, with deadlines both ways (never a blocking read or
    write of a length the worker chose)."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.write_fd, self.read_fd = write_fd, read_fd
        self._buffer = bytearray()
        os.set_blocking(write_fd, False)

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [self.write_fd], [], remaining)[1]:
                raise TimeoutError
            try:
                view = view[os.write(self.write_fd, view) :]
            except BlockingIOError:
                continue

    def read_exact(self, size: int, deadline: float) -> bytes:
        # Whatever is there is read at once (a frame's header, body and output often come
        # together), and kept for the next call.
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.read_fd], [], [], remaining)[0]:
                raise TimeoutError
            part = os.read(self.read_fd, max(1 << 16, min(size - len(self._buffer), 1 << 20)))
            if not part:
                raise WorkerGone("the worker's channel closed")
            self._buffer += part
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def pending(self) -> bool:
        return bool(self._buffer) or bool(select.select([self.read_fd], [], [], 0)[0])


def read_frame(
    channel: Transport,
    deadline: float,
    limit: int = MAX_CONTROL_FRAME,
    *,
    relay: Relay | None = None,
) -> dict[str, Any]:
    """One JSON frame of at most `limit` bytes; relay frames before it go to `relay`."""
    (size,) = HEADER.unpack(channel.read_exact(HEADER.size, deadline))
    while size & RELAY_FLAG:
        if relay is None:
            raise WorkerProtocolError("the worker relayed output for a run without a channel")
        relay.take_relay(size, channel, deadline)
        (size,) = HEADER.unpack(channel.read_exact(HEADER.size, deadline))
    if size > limit:
        raise WorkerProtocolError(f"the worker announced a frame of {size} bytes (at most {limit})")
    body = channel.read_exact(size, deadline)
    try:
        message = json.loads(body)
    except ValueError:
        raise WorkerProtocolError("the worker sent a frame that is not JSON") from None
    if not isinstance(message, dict):
        raise WorkerProtocolError("the worker sent a frame that is not a JSON object")
    return message


class _Reply(BaseModel):
    """A worker's reply header, checked field by field."""

    model_config = ConfigDict(strict=True, extra="forbid")

    id: str
    exit_code: int | None = Field(ge=-64, le=255)
    timed_out: bool
    oom_killed: bool
    oom_kills: int | None = Field(ge=0)  # the cgroup's count after the run, if the worker sees it
    duration_s: float = Field(ge=0)
    stdout_len: int = Field(ge=0)
    stderr_len: int = Field(ge=0)
    stdout_truncated: bool
    stderr_truncated: bool
    stopped: bool = False  # the host ended the run over its channel
    retire: str | None = Field(max_length=4096)


class _Error(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    id: str | None
    error: str = Field(max_length=MAX_CONTROL_FRAME)
    retire: str | None = Field(max_length=4096)
    before_run: bool
    fatal: bool


@dataclass(frozen=True)
class Reply:
    """A checked reply: the run's result, why the worker must go (if it must), and the
    sandbox cgroup's OOM-kill count after the run (where the worker can read it)."""

    result: ExecResult
    retire: str | None
    oom_kills: int | None


class Greeting(BaseModel):
    """A worker's first frame."""

    model_config = ConfigDict(strict=True, extra="forbid")

    ready: bool
    pid: int = Field(gt=0)
    oom_kills: int | None = Field(default=None, ge=0)


def read_greeting(channel: Transport, deadline: float, *, backend: str) -> Greeting:
    """The worker's first frame; SandboxError with its reason if it refused to start."""
    hello = read_frame(channel, deadline)
    with contextlib.suppress(ValidationError):
        greeting = Greeting.model_validate(hello)
        if greeting.ready:
            return greeting
    if isinstance(hello.get("error"), str):
        raise SandboxError(f"the {backend} sandbox refused to start: {hello['error'][:500]}")
    raise WorkerProtocolError("the worker's greeting is malformed")


class Relay(Protocol):
    """Where a channel run's relayed output goes (a `channel.Channel`)."""

    def take_relay(self, header: int, transport: Transport, deadline: float) -> None: ...


def read_reply(
    channel: Transport,
    request: Mapping[str, Any],
    deadline: float,
    *,
    backend: str,
    relay: Relay | None = None,
) -> Reply:
    """The reply to `request`: its header, then exactly the output it announces.

    An error reply raises `WorkerRefused`; anything that does not fit the request (another
    id, more output than its limit, a malformed field) raises `WorkerProtocolError`.
    """
    message = read_frame(channel, deadline, relay=relay)
    if "error" in message:
        try:
            error = _Error.model_validate(message)
        except ValidationError:
            raise WorkerProtocolError("the worker's error reply is malformed") from None
        if error.id not in (None, request["id"]):
            raise WorkerProtocolError("the worker answered another request")
        raise WorkerRefused(
            f"the {backend} sandbox could not run the request: {error.error[:2000]}",
            before_run=error.before_run,
            fatal=error.fatal,
            retire=error.retire,
        )
    try:
        reply = _Reply.model_validate(message)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise WorkerProtocolError(
            f"the worker's reply is malformed ({where}: {problem['msg']})"
        ) from None
    if reply.id != request["id"]:
        raise WorkerProtocolError("the worker's reply answers another request: out of step")
    limit = int(request["output_bytes"])
    if reply.stdout_len > limit or reply.stderr_len > limit:
        raise WorkerProtocolError(
            f"the worker announced more output than the limit of {limit} bytes"
        )
    if not math.isfinite(reply.duration_s):
        raise WorkerProtocolError("the worker's reply has no finite duration")
    if reply.timed_out and reply.exit_code is not None:
        raise WorkerProtocolError("the worker's reply has an exit code for a run that timed out")
    payload = channel.read_exact(reply.stdout_len + reply.stderr_len, deadline)
    result = ExecResult(
        stdout=payload[: reply.stdout_len].decode("utf-8", errors="replace"),
        stderr=payload[reply.stdout_len :].decode("utf-8", errors="replace"),
        exit_code=reply.exit_code,
        timed_out=reply.timed_out,
        oom_killed=reply.oom_killed,
        duration_s=reply.duration_s,
        stdout_truncated=reply.stdout_truncated,
        stderr_truncated=reply.stderr_truncated,
        backend=backend,
    )
    return Reply(result, reply.retire, reply.oom_kills)
