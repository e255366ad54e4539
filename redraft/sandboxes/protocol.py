"""The host's side of the worker protocol (see `_worker.py`): requests, frames and replies."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from redraft.errors import ConfigError
from redraft.sandboxes.base import ExecResult, Files, Limits, Program, SandboxError

HEADER = struct.Struct(">Q")
WORKER_SOURCE = (Path(__file__).parent / "_worker.py").read_text(encoding="utf-8")
# Nothing of the host's environment enters a sandbox: a run sees these and what it is given.
# Inside an isolating sandbox: the working directory, and what else is writable there
# (emptied with it between runs).
SANDBOX_WORK_DIR = "/sandbox"
SANDBOX_SCRATCH_DIRS = ("/tmp", "/dev/shm")
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
}


def worker_argv(
    python: str,
    work_dir: str,
    *,
    own_pid_namespace: bool,
    once: bool = False,
    scratch: tuple[str, ...] = (),
    source: str = WORKER_SOURCE,
) -> list[str]:
    """The command that starts a worker: isolated mode, no site-packages, source inline.

    `scratch` directories (a sandbox's /tmp, /dev/shm) are emptied with the working
    directory, so nothing a run leaves anywhere reaches the next run. `source` is the
    worker's, or a backend's wrapping of it.
    """
    argv = [python, "-I", "-S", "-c", source, "--work", work_dir]
    for directory in scratch:
        argv += ["--scratch", directory]
    if own_pid_namespace:
        argv.append("--own-pid-namespace")
    if once:
        argv.append("--once")
    return argv


def build_request(
    program: Program,
    *,
    files: Files | None,
    stdin: str | bytes | None,
    env: Mapping[str, str] | None,
    limits: Limits,
    work_dir: str,
    fresh: bool = True,
) -> dict[str, Any]:
    """A request for the worker, after checking what a user could get wrong."""
    request: dict[str, Any] = {
        "files": {_relative(name): _b64(content) for name, content in (files or {}).items()},
        "stdin": _b64(stdin) if stdin else "",
        "env": {**BASE_ENV, "HOME": work_dir, "TMPDIR": work_dir, **dict(env or {})},
        "timeout_s": limits.timeout_s,
        "cpu_s": limits.effective_cpu_s,
        "memory_mb": limits.memory_mb,
        "processes": limits.processes,
        "file_size_mb": limits.file_size_mb,
        "open_files": limits.open_files,
        "output_bytes": limits.output_bytes,
        "fresh": fresh,
    }
    if isinstance(program, str):
        request["code"] = program
    else:
        argv = [str(arg) for arg in program]
        if not argv or not argv[0]:
            raise ConfigError("nothing to run: give Python source or a non-empty argv list")
        request["argv"] = argv
    return request


def _relative(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts:
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


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """One frame from a blocking stream; None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    message: dict[str, Any] = json.loads(body)
    return message


def decode_reply(reply: Mapping[str, Any], *, backend: str, oom_killed: bool = False) -> ExecResult:
    """An `ExecResult` from the worker's reply; `oom_killed` adds what the host saw itself."""
    if "error" in reply:
        raise SandboxError(f"the {backend} sandbox could not run the request: {reply['error']}")
    return ExecResult(
        stdout=base64.b64decode(reply["stdout"]).decode("utf-8", errors="replace"),
        stderr=base64.b64decode(reply["stderr"]).decode("utf-8", errors="replace"),
        exit_code=reply["exit_code"],
        timed_out=bool(reply["timed_out"]),
        oom_killed=oom_killed or bool(reply.get("memory_error")),
        duration_s=float(reply["duration_s"]),
        stdout_truncated=bool(reply["stdout_truncated"]),
        stderr_truncated=bool(reply["stderr_truncated"]),
        backend=backend,
    )
