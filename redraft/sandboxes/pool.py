"""A warm pool of worker processes, and the sandbox base class built on it.

A worker is a pre-started sandboxed interpreter running `_worker.py`; each run it is given
costs a fork inside it. Workers are spoken to over pipes, with a deadline on every read and
write, from threads, so one pool serves the sync API and any number of event loops alike;
`arun` waits for a free worker in the sandbox's own thread pool, never in the event loop or
the shared default executor. A worker belongs to its pool, not to the thread that started
it, and is never trusted: what it sends is checked (see `protocol.py`), and one that lies,
or says it cannot vouch for its state, is retired.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, Protocol, TypeVar

from redraft.sandboxes.base import (
    ExecResult,
    Files,
    Limits,
    Program,
    SandboxError,
    SandboxUnavailable,
)
from redraft.sandboxes.cgroups import Cgroup, descendants
from redraft.sandboxes.channel import Channel, empty_pipe
from redraft.sandboxes.protocol import (
    BASE_ENV,
    PipeTransport,
    Reply,
    Transport,
    WorkerGone,
    WorkerProtocolError,
    WorkerRefused,
    build_request,
    configuration,
    encode_frame,
    read_greeting,
    read_reply,
)
from redraft.sandboxes.seccomp import syscall_filter

START_TIMEOUT_S = 20.0
# The worker enforces each run's timeout itself; the host kills the whole worker only if it
# has not answered this long after that.
HOST_GRACE_S = 5.0
# Room in a run's cgroup for the pages its process, a fork of the worker, copies from it.
CGROUP_HEADROOM_MB = 16
# How many times a run may find its worker gone (a container that died idle, a worker
# retired before the run started) and try anew.
LOST_WORKER_TRIES = 2

SeccompSource = Callable[[int], "bytes | None"]
"""The system-call filter for a worker's runs, given the worker's pid (None: no filter)."""


class Worker(Protocol):
    """One warm place to run code: a sandboxed interpreter, or a container."""

    healthy: bool

    @property
    def work_dir(self) -> str: ...

    def execute(
        self, request: dict[str, Any], limits: Limits, channel: Channel | None = None
    ) -> ExecResult: ...

    def retire(self, reason: str) -> None:
        """Never to be given another run (the pool kills it when it comes back)."""
        ...

    def kill(self) -> None: ...


class WorkerLost(OSError):
    """A worker was gone before the run could start: the run may go to a fresh one."""


@dataclass
class LaunchSpec:
    """How to start one worker process on the host."""

    argv: list[str]
    work_dir: str  # the working directory as the worker sees it
    user: int | None = None  # drop to this uid/gid on the host (when running as root)
    cwd: str | None = None
    cleanup: Callable[[], None] = field(default=lambda: None)


def refused_run(exc: WorkerRefused) -> Exception:
    """What a run the worker refused raises: lost (to retry elsewhere), unavailable, or an error."""
    if exc.fatal:
        return SandboxUnavailable(str(exc))
    if exc.before_run and exc.retire:
        return WorkerLost(str(exc))
    return exc


@dataclass(frozen=True)
class Lost:
    """The worker died (`hung` False) or stopped answering under the run."""

    hung: bool


def exchange(
    worker: Worker,
    transport: Transport,
    request: dict[str, Any],
    deadline: float,
    backend: str,
    channel: Channel | None = None,
    direct: tuple[int, int] | None = None,
) -> Reply | Lost:
    """One request and its checked reply. A worker that lies is killed (WorkerProtocolError);
    one that refuses, or asks to go, is retired; one that took no request is lost
    (WorkerLost: the run may go elsewhere); one that dies or hangs under the run is `Lost`,
    still to be killed by the caller, who may first want to look at it. A `channel` is
    relayed while the run goes on (or talks over the worker's `direct` pipes), and closed
    when it ends."""
    if channel is not None:
        request = {**request, **channel.request_fields(direct=direct is not None)}
    if transport.pending():
        # It died while idle, or refused before it was asked (it can run nothing), or it
        # says something unasked for.
        idle_check(worker, transport, request, backend)
    try:
        transport.send(encode_frame(request), deadline)
    except (OSError, TimeoutError) as exc:
        worker.kill()
        raise WorkerLost(f"the {backend} worker took no request ({exc!r})") from None
    in_step = False
    if channel is not None:
        channel.opened(transport, deadline, direct)
    try:
        reply = read_reply(transport, request, deadline, backend=backend, relay=channel)
        in_step = True
        if channel is not None:
            channel.finished(transport)  # before looking further: the worker waits for it
        if transport.pending():
            in_step = False
            raise WorkerProtocolError("the worker sent more than its reply: out of step")
    except WorkerRefused as exc:
        in_step = True
        if exc.retire:
            worker.retire(exc.retire)
        raise refused_run(exc) from None
    except WorkerProtocolError:
        worker.kill()
        raise
    except (WorkerGone, TimeoutError, OSError) as exc:
        return Lost(hung=isinstance(exc, TimeoutError))
    finally:
        if channel is not None and not in_step:
            channel.finished(None)
    if reply.retire:
        worker.retire(reply.retire)
    return reply


def idle_check(worker: Worker, transport: Transport, request: dict[str, Any], backend: str) -> None:
    """What an idle worker that is not silent has to say: a refusal is the run's answer;
    anything else (its end of the channel closed, or noise) loses the worker, not the run."""
    try:
        read_reply(transport, request, time.monotonic() + 1.0, backend=backend)
    except WorkerRefused as exc:
        worker.retire(exc.retire or "it refused to run")
        raise refused_run(exc) from None
    except (OSError, TimeoutError, SandboxError):
        pass
    worker.kill()
    raise WorkerLost(f"the {backend} worker's channel was not idle before the run")


class WorkerProcess:
    """One running worker, spoken to over pipes that it is never trusted to keep in step."""

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        backend: str,
        cgroup: Cgroup | None = None,
        seccomp: SeccompSource = lambda _pid: None,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.healthy = True
        self.retired: str | None = None  # why it may not be reused, once it may not
        self.cgroup = cgroup
        self._cgroup_limits: tuple[int, int] | None = None
        self._worker_pid = 0
        # A file, not a pipe: nobody reads bwrap's stderr unless the start fails.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        ids: dict[str, Any] = {}
        if spec.user is not None:
            ids = {"user": spec.user, "group": spec.user, "extra_groups": []}
        # The pipes of its runs' channels: the worker lends its ends to each channel run.
        to_run_r, self._to_run = os.pipe()
        self._from_run, from_run_w = os.pipe()
        os.set_blocking(self._to_run, False)
        os.set_blocking(self._from_run, False)
        argv = [*spec.argv, "--channel-fds", f"{to_run_r},{from_run_w}"]
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(to_run_r, from_run_w),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                bufsize=0,
                cwd=spec.cwd,
                env=dict(BASE_ENV),
                start_new_session=True,
                **ids,
            )
        except OSError as exc:
            self._release()
            raise SandboxError(f"the {backend} sandbox could not start: {exc}") from exc
        finally:
            os.close(to_run_r)
            os.close(from_run_w)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._transport = PipeTransport(self.proc.stdin.fileno(), self.proc.stdout.fileno())
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            self.pid = read_greeting(self._transport, deadline, backend=backend).pid
            self._worker_pid = descendants(self.proc.pid)[-1]  # bwrap's child, if bwrap
            self._transport.send(encode_frame(configuration(seccomp(self.pid))), deadline)
        except (TimeoutError, OSError) as exc:
            reason = self._startup_error(exc)
            self.kill()
            raise SandboxError(f"the {backend} sandbox did not start: {reason}") from None
        except BaseException:
            self.kill()
            raise

    @property
    def work_dir(self) -> str:
        return self.spec.work_dir

    def _startup_error(self, exc: BaseException) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
        if isinstance(exc, TimeoutError):
            return f"no answer within {START_TIMEOUT_S:g} s"
        return f"exit code {self.proc.returncode}" if self.proc.returncode is not None else str(exc)

    def _set_cgroup_limits(self, limits: Limits) -> None:
        if self.cgroup is None or self._cgroup_limits == (limits.memory_mb, limits.processes):
            return
        try:
            self.cgroup.limit(
                memory_bytes=(limits.memory_mb + CGROUP_HEADROOM_MB) << 20,
                processes=limits.processes,
            )
        except OSError as exc:
            self.retire("its cgroup limits are unknown")
            raise SandboxError(f"could not set the sandbox's cgroup limits: {exc}") from exc
        self._cgroup_limits = (limits.memory_mb, limits.processes)

    def execute(
        self, request: dict[str, Any], limits: Limits, channel: Channel | None = None
    ) -> ExecResult:
        self._set_cgroup_limits(limits)
        if self.cgroup is not None:
            # The cgroup bounds memory and processes for the sandbox as a whole: no
            # address-space rlimit to starve threads, no per-uid count shared with others.
            request = {**request, "memory_mb": None, "processes": None}
        if self.proc.poll() is not None:
            self.kill()
            raise WorkerLost(f"the {self.backend} worker had exited")
        oom_before = self.cgroup.oom_kills() if self.cgroup else 0
        deadline = time.monotonic() + limits.timeout_s + HOST_GRACE_S
        if self.cgroup is not None:
            self._confine_spare()
        direct = (self._to_run, self._from_run)
        try:
            outcome = exchange(
                self, self._transport, request, deadline, self.backend, channel, direct
            )
        finally:
            if channel is not None:
                empty_pipe(self._from_run)  # the run is over: nothing of it for the next
        # The worker cannot see its cgroup: the host reads what the OOM killer did.
        oom = self.cgroup is not None and self.cgroup.oom_kills() > oom_before
        if isinstance(outcome, Lost):
            self.kill()
            return lost_run(self.backend, limits, timed_out=outcome.hung and not oom, oom=oom)
        if oom:
            return outcome.result.model_copy(update={"oom_killed": True})
        return outcome.result

    def _confine_spare(self) -> None:
        """Put the process that will take the next request (the worker's only child, forked
        after the last reply) in the cgroup, before it has the request.

        Only runs go in: the worker stays out, so that however a run fills its memory or
        process limit, the OOM killer chooses among the run's processes and the worker can
        still fork the next one.
        """
        children = Path(f"/proc/{self._worker_pid}/task/{self._worker_pid}/children")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                # A process of the last run the worker has not reaped yet is its child too.
                spare = [int(pid) for pid in children.read_text().split() if _alive(int(pid))]
            except (OSError, ValueError):
                spare = []
            if spare or time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.0005)
        if len(spare) != 1:
            self.kill()
            raise WorkerLost(f"the {self.backend} worker has no process ready for a run")
        assert self.cgroup is not None
        self.cgroup.attach(spare)

    def retire(self, reason: str) -> None:
        """Never to be given another run (the pool kills it when it comes back)."""
        self.healthy = False
        self.retired = reason

    def kill(self) -> None:
        self.healthy = False
        # Its processes below it too: bwrap's worker is the init of a namespace of its own,
        # in a session of its own, and would otherwise only go once it saw its channel close.
        for pid in reversed(descendants(self.proc.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self._release()

    def _release(self) -> None:
        self._stderr.close()
        for fd in (self._to_run, self._from_run):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_run = self._from_run = -1
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        self.spec.cleanup()


def _alive(pid: int) -> bool:
    """Whether `pid` is a process not yet dead (a zombie, or gone, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def lost_run(backend: str, limits: Limits, *, timed_out: bool, oom: bool) -> ExecResult:
    """The result of a run whose worker died or hung under it."""
    return ExecResult(
        stdout="",
        stderr="" if timed_out or oom else f"the {backend} sandbox died",
        exit_code=None if timed_out else -signal.SIGKILL,
        timed_out=timed_out,
        oom_killed=oom,
        duration_s=limits.timeout_s if timed_out else 0.0,
        backend=backend,
    )


W = TypeVar("W", bound=Worker)


class WorkerPool(Generic[W]):
    """Idle workers kept warm (last used first); at most `size` runs at once."""

    def __init__(self, start: Callable[[], W], size: int) -> None:
        if size < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self._start = start
        self.size = size
        self._idle: list[W] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def acquire(self) -> W:
        self._slots.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise SandboxError("the sandbox is closed")
                if self._idle:
                    return self._idle.pop()
            return self._start()
        except BaseException:
            self._slots.release()
            raise

    def release(self, worker: W) -> None:
        try:
            with self._lock:
                if worker.healthy and not self._closed:
                    self._idle.append(worker)
                    return
            worker.kill()
        finally:
            self._slots.release()

    def discard(self, worker: W) -> None:
        """Give back a slot whose worker is not to be reused (a finished session's)."""
        worker.kill()
        self._slots.release()

    def warm(self, count: int) -> None:
        """Start workers until `count` are idle (or the pool is full)."""
        started = []
        with self._lock:
            missing = max(0, min(count, self.size) - len(self._idle))
        for _ in range(missing):
            started.append(self._start())
        with self._lock:
            self._idle.extend(started)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


class _AsyncRuns:
    """`arun`, the async form of `run`, on the sandbox's own threads (never the event loop's)."""

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
    ) -> ExecResult:
        raise NotImplementedError

    def _threads(self) -> ThreadPoolExecutor:
        raise NotImplementedError

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
    ) -> ExecResult:
        def call() -> ExecResult:
            return self.run(
                program,
                files=files,
                stdin=stdin,
                timeout_s=timeout_s,
                memory_mb=memory_mb,
                env=env,
                channel=channel,
            )

        return await asyncio.get_running_loop().run_in_executor(self._threads(), call)


class PooledSandbox(_AsyncRuns):
    """Base of the sandboxes whose runs go to a pool of warm workers.

    Subclasses give `_launch()` (a worker process) or override `_start_worker()` (any
    `Worker`); everything else (limits, requests, sync and async API, sessions) is here.
    """

    backend = "sandbox"
    _use_cgroup = False
    # Isolating backends run nothing without the system-call filter (`seccomp.py`).
    _seccomp = True

    def __init__(self, *, limits: Limits | None = None, pool_size: int | None = None) -> None:
        self.limits = limits or Limits()
        # Twice the cores: a judged run's worker waits while the judge, on the host, works.
        self.pool_size = pool_size or 2 * max(2, os.cpu_count() or 2)
        self._pool: WorkerPool[Worker] | None = None
        self._pool_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def name(self) -> str:
        return self.backend

    def _launch(self, cgroup: Cgroup | None) -> LaunchSpec:
        """The command of one worker; `cgroup` is the one it will run in, if any."""
        raise NotImplementedError

    def _start_worker(self) -> Worker:
        cgroup = Cgroup.create() if self._use_cgroup else None
        try:
            spec = self._launch(cgroup)
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise
        seccomp = syscall_filter if self._seccomp else (lambda _pid: None)
        return WorkerProcess(spec, backend=self.backend, cgroup=cgroup, seccomp=seccomp)

    def _ready(self) -> None:
        """Called before the pool is made: a place for a backend's availability check."""

    @property
    def pool(self) -> WorkerPool[Worker]:
        self._ready()
        with self._pool_lock:
            if self._pool is None:
                self._pool = WorkerPool(self._start_worker, self.pool_size)
            return self._pool

    def warm(self, count: int | None = None) -> None:
        """Start workers now, so the first runs do not pay for start-up."""
        self.pool.warm(self.pool_size if count is None else count)

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
    ) -> ExecResult:
        """Run `program` (Python source, or an argv list) in a fresh working directory;
        with a `channel`, another thread talks to it while it runs (see `channel.py`)."""
        limits = self.limits.with_overrides(timeout_s=timeout_s, memory_mb=memory_mb)
        pool = self.pool
        for attempt in range(1, LOST_WORKER_TRIES + 1):
            worker = pool.acquire()
            try:
                request = build_request(
                    program,
                    files=files,
                    stdin=stdin,
                    env=env,
                    limits=limits,
                    work_dir=worker.work_dir,
                )
                return worker.execute(request, limits, channel)
            except WorkerLost as exc:
                if attempt == LOST_WORKER_TRIES:
                    raise SandboxError(
                        f"the {self.backend} sandbox lost its worker: {exc}"
                    ) from None
            finally:
                pool.release(worker)
        raise AssertionError("unreachable")

    def _threads(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.pool_size, thread_name_prefix=f"redraft-{self.backend}"
                )
            return self._executor

    def session(self) -> PooledSession:
        """A working directory kept across runs, on a worker of its own until closed."""
        return PooledSession(self)

    def close(self) -> None:
        """Stop every worker. The sandbox starts new ones if it is used again."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
            executor, self._executor = self._executor, None
        if pool is not None:
            pool.close()
        if executor is not None:
            executor.shutdown(wait=False)

    def __enter__(self) -> PooledSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class PooledSession(_AsyncRuns):
    """Runs that share one working directory: files written by one are there for the next."""

    def __init__(self, sandbox: PooledSandbox) -> None:
        self.sandbox = sandbox
        self._pool = sandbox.pool
        self._worker: Worker | None = None
        self._lock = threading.Lock()
        self._closed = False

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
    ) -> ExecResult:
        limits = self.sandbox.limits.with_overrides(timeout_s=timeout_s, memory_mb=memory_mb)
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox session is closed")
            if self._worker is None:
                self._worker = self._pool.acquire()
            elif not self._worker.healthy:
                raise SandboxError(
                    "the sandbox session's worker died (timeout or out of memory); "
                    "its files are gone: start a new session"
                )
            request = build_request(
                program,
                files=files,
                stdin=stdin,
                env=env,
                limits=limits,
                work_dir=self._worker.work_dir,
                keep=True,
            )
            try:
                return self._worker.execute(request, limits, channel)
            except WorkerLost as exc:
                raise SandboxError(
                    f"the sandbox session's worker is gone ({exc}): start a new session"
                ) from None

    def _threads(self) -> ThreadPoolExecutor:
        return self.sandbox._threads()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            self._pool.discard(worker)

    def __enter__(self) -> PooledSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> PooledSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
