"""What every sandbox backend shares: the result of a run, its limits, and the protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from redraft.errors import ConfigError, RedraftError

if TYPE_CHECKING:
    from redraft.sandboxes.channel import Channel

Program = str | Sequence[str]
"""Python source to run as `main.py`, or an argv list to execute."""
Files = Mapping[str, str | bytes]
"""Files to place in the working directory before the run, by relative path."""


class SandboxError(RedraftError):
    """The sandbox itself failed (not the code in it)."""


class SandboxUnavailable(SandboxError):
    """A backend cannot run on this machine: missing program, dead daemon, no namespaces."""


class ExecResult(BaseModel):
    """What one run in a sandbox did."""

    model_config = ConfigDict(frozen=True)

    stdout: str
    stderr: str
    exit_code: int | None  # negative: killed by that signal; None: timed out
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    backend: str = ""

    @property
    def truncated(self) -> bool:
        """Either stream was cut at the output limit."""
        return self.stdout_truncated or self.stderr_truncated

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run. The defaults suit tests of a model's code."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    cpu_s: float | None = None  # None: the timeout, plus a second
    processes: int = 64
    file_size_mb: int = 64
    open_files: int = 256
    output_bytes: int = 1 << 20  # per stream

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ConfigError("timeout_s must be positive")
        if self.memory_mb < 16:
            raise ConfigError("memory_mb must be at least 16")
        if self.processes < 1 or self.open_files < 16 or self.output_bytes < 1:
            raise ConfigError("processes, open_files and output_bytes must be positive")

    def with_overrides(self, *, timeout_s: float | None, memory_mb: int | None) -> Limits:
        if timeout_s is None and memory_mb is None:
            return self
        return replace(
            self,
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            memory_mb=self.memory_mb if memory_mb is None else memory_mb,
        )

    @property
    def effective_cpu_s(self) -> float:
        return self.cpu_s if self.cpu_s is not None else self.timeout_s + 1.0

    @property
    def disk_mb(self) -> int:
        """The size of each in-memory directory a run may write to (working dir, /tmp, ...)."""
        return max(64, self.file_size_mb)


@runtime_checkable
class SandboxSession(Protocol):
    """Several runs sharing one working directory, in the order they are made."""

    def run(
        self,
        program: Program,
        *,
        files: Files | None = None,
        stdin: str | bytes | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
        channel: Channel | None = None,
    ) -> ExecResult: ...

    async def arun(
        self,
        program: Program,
        *,
        files: Files | None = None,
        stdin: str | bytes | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
        channel: Channel | None = None,
    ) -> ExecResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Sandbox(SandboxSession, Protocol):
    """Runs untrusted code; each `run` starts from a fresh, empty working directory.

    `run`, `arun` and `close` are those of a session; `session()` opens one.
    """

    @property
    def name(self) -> str: ...

    def session(self) -> SandboxSession: ...
