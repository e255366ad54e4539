"""The Docker sandbox: a warm pool of locked-down containers, one `docker exec` per run.

Each container has no network (loopback only), a read-only root, in-memory /sandbox and /tmp,
runs as nobody with every capability dropped and no-new-privileges, and is bounded by memory,
CPU and process limits. Its main process is a tiny Python init that only reaps orphans: each
run execs `_worker.py --once --own-pid-namespace`, which kills every process of the run when
it ends (the init, as pid 1, is out of reach of that kill). Out-of-memory kills are read from
the container's memory cgroup before and after each run.

The docker SDK is an optional extra (`pip install 'redraft[docker]'`), imported on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
import socket
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from redraft.sandboxes.base import (
    ExecResult,
    Files,
    Limits,
    Program,
    SandboxError,
    SandboxUnavailable,
)
from redraft.sandboxes.image import DEFAULT_IMAGE
from redraft.sandboxes.protocol import (
    BASE_ENV,
    HEADER,
    WORKER_SOURCE,
    build_request,
    decode_reply,
    encode_frame,
)

WORK_DIR = "/sandbox"
# Writable besides the working directory; the worker empties them with it between runs.
SCRATCH_DIRS = ("/tmp", "/dev/shm")
USER = "65534:65534"
LABEL = "redraft.sandbox"
SDK_HINT = "the docker sandbox needs the docker SDK: pip install 'redraft[docker]'"
DAEMON_HINT = "start it (systemctl start docker, or dockerd &) or choose sandbox='bwrap'"
# The worker enforces each run's timeout; the host replaces the container only if it has not
# answered this long after that.
HOST_GRACE_S = 5.0
# Room in the container's cgroup for pid 1, the worker and the tmpfs beside the run itself.
MEMORY_HEADROOM_MB = 64
# The container's init and the worker, beside the run's own `processes`.
EXTRA_PIDS = 2
API_TIMEOUT_S = 30
# pid 1 of every container: reaps the orphans a run leaves (the worker kills them, someone
# must wait for them) and exits on SIGTERM. Blocking SIGCHLD and waiting for it loses none.
INIT_SOURCE = """\
import os, signal
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    signal.sigtimedwait([signal.SIGCHLD], 60)
"""
# Around the worker: the cgroup's OOM-kill count before and after the run, on the exec's
# stderr (the worker keeps its own stderr; a run never sees it). cgroup v1, then v2.
OOM_PROBE = """\
def _redraft_oom_kills():
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
    return -1
"""
OOM_MARK = "redraft-oom-kills:"
WRAPPED_WORKER = (
    OOM_PROBE
    + f"import sys as _s; _s.stderr.write('{OOM_MARK}%d\\n' % _redraft_oom_kills()); "
    + "_s.stderr.flush()\n"
    + WORKER_SOURCE
    + f"\n_s.stderr.write('{OOM_MARK}%d\\n' % _redraft_oom_kills())\n"
)
COUNT_OOM = OOM_PROBE + "print(_redraft_oom_kills())\n"
_OOM_LINE = re.compile(rf"^{OOM_MARK}(-?\d+)$", re.M)
STREAM_HEADER = struct.Struct(">BxxxL")


def docker_sdk() -> ModuleType:
    """The docker SDK, or SandboxUnavailable naming the extra to install."""
    try:
        return importlib.import_module("docker")
    except ImportError:
        raise SandboxUnavailable(SDK_HINT) from None


def docker_client(base_url: str | None = None) -> Any:
    """A client for the daemon of DOCKER_HOST (or `base_url`), checked to answer."""
    docker = docker_sdk()
    try:
        if base_url is None:
            client = docker.from_env(timeout=API_TIMEOUT_S)
        else:
            client = docker.DockerClient(base_url=base_url, timeout=API_TIMEOUT_S)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(_daemon_message(exc)) from None
    return client


def _daemon_message(exc: BaseException) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the Docker daemon is not running or not reachable ({reason}); {DAEMON_HINT}"


def image_missing_message(image: str) -> str:
    return (
        f"no Docker image {image}: run `redraft sandbox build-image` (no registry needed), or "
        "where a registry is reachable `docker pull python:3.12-slim` and "
        "`redraft sandbox build-image --from-image python:3.12-slim`"
    )


class ContainerGone(OSError):
    """A container could not even start a run: it is no longer there."""


class Container:
    """One warm sandbox container and the runs it executes, one at a time."""

    def __init__(self, sandbox: DockerSandbox) -> None:
        self.sandbox = sandbox
        self.healthy = True
        self.memory_mb = sandbox.limits.memory_mb
        self.oom_kills = -1
        client = sandbox.client
        errors = docker_sdk().errors
        limits = sandbox.limits
        try:
            created = client.api.create_container(
                sandbox.image,
                command=[sandbox.python, "-I", "-S", "-c", INIT_SOURCE],
                user=USER,
                working_dir=WORK_DIR,
                environment=dict(BASE_ENV),
                labels={LABEL: "1", f"{LABEL}.owner": sandbox.owner},
                network_disabled=True,
                host_config=client.api.create_host_config(
                    network_mode="none",
                    read_only=True,
                    tmpfs={
                        WORK_DIR: f"rw,exec,nosuid,nodev,size={_tmpfs_mb(limits)}m,mode=1777",
                        "/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777",
                    },
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    mem_limit=_memory_bytes(limits.memory_mb),
                    memswap_limit=_memory_bytes(limits.memory_mb),
                    nano_cpus=int(sandbox.cpus * 1e9),
                    pids_limit=limits.processes + EXTRA_PIDS,
                    init=False,  # pid 1 is INIT_SOURCE: docker-init's child would be killable
                    ipc_mode="private",
                    auto_remove=True,
                ),
                hostname="sandbox",
            )
            self.id: str = created["Id"]
        except errors.ImageNotFound:
            raise SandboxUnavailable(image_missing_message(sandbox.image)) from None
        except errors.APIError as exc:
            raise SandboxError(f"the docker sandbox could not create a container: {exc}") from None
        except errors.DockerException as exc:
            raise SandboxUnavailable(_daemon_message(exc)) from None
        self.worker_argv = worker_argv(sandbox.python)
        sandbox._track(self.id)
        try:
            client.api.start(self.id)
        except errors.DockerException as exc:
            self.kill()
            raise SandboxError(f"the docker sandbox could not start a container: {exc}") from None

    def execute(self, request: dict[str, Any], limits: Limits) -> ExecResult:
        # Every container's runs are uid 65534, and RLIMIT_NPROC counts a uid's processes
        # host-wide: one run's fork bomb would stop another container's forks. The
        # container's pids limit bounds the run's processes instead, on its own.
        request = {**request, "processes": None}
        if self.memory_mb != limits.memory_mb:
            self._set_memory(limits.memory_mb)
        deadline = time.monotonic() + limits.timeout_s + HOST_GRACE_S
        try:
            stdout, stderr, exec_id = self._exec(self.worker_argv, encode_frame(request), deadline)
        except ContainerGone:
            self.kill()
            raise
        except TimeoutError:
            # The worker hung past its own deadline: the container goes, with what it holds.
            self.kill()
            return self._lost(limits, timed_out=True, oom=False)
        except OSError as exc:
            self.kill()
            raise SandboxError(f"the docker sandbox lost its container: {exc}") from None
        counts = [int(n) for n in _OOM_LINE.findall(stderr.decode(errors="replace"))]
        before = counts[0] if counts else self.oom_kills
        reply = _frame(stdout)
        if reply is None:
            # The worker itself died (the OOM killer may pick it): count from outside.
            after = self._count_oom_kills()
            self.kill()
            oom = after > before >= 0 or (self._exit_code(exec_id) == 137 and after < 0)
            return self._lost(limits, timed_out=False, oom=oom)
        after = counts[-1] if len(counts) > 1 else before
        self.oom_kills = after
        return decode_reply(reply, backend="docker", oom_killed=after > before >= 0)

    def _exec(self, argv: list[str], data: bytes, deadline: float) -> tuple[bytes, bytes, str]:
        """Run `argv` in the container with `data` on its stdin; its stdout and stderr."""
        api = self.sandbox.client.api
        errors = docker_sdk().errors
        try:
            exec_id: str = api.exec_create(
                self.id,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                user=USER,
                environment=dict(BASE_ENV),
                workdir=WORK_DIR,
            )["Id"]
            raw = api.exec_start(exec_id, socket=True)
        except errors.DockerException as exc:
            # Nothing ran: the container is gone (its init was killed, or someone removed it).
            raise ContainerGone(str(exc)) from None
        sock: socket.socket = getattr(raw, "_sock", raw)
        try:
            if data:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.sendall(data)
            streams = _demultiplex(sock, deadline)
        finally:
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(OSError):
                sock.close()
        return streams[1], streams[2], exec_id

    def _count_oom_kills(self) -> int:
        try:
            out, _, _ = self._exec(
                [self.sandbox.python, "-I", "-S", "-c", COUNT_OOM], b"", time.monotonic() + 10
            )
            return int(out.decode().strip() or -1)
        except (OSError, ValueError):
            return -1

    def _exit_code(self, exec_id: str) -> int | None:
        with contextlib.suppress(Exception):
            code = self.sandbox.client.api.exec_inspect(exec_id).get("ExitCode")
            return int(code) if code is not None else None
        return None

    def _set_memory(self, memory_mb: int) -> None:
        try:
            self.sandbox.client.api.update_container(
                self.id,
                mem_limit=_memory_bytes(memory_mb),
                memswap_limit=_memory_bytes(memory_mb),
            )
        except docker_sdk().errors.DockerException as exc:
            raise SandboxError(
                f"the docker sandbox could not set the memory limit: {exc}"
            ) from None
        self.memory_mb = memory_mb

    def _lost(self, limits: Limits, *, timed_out: bool, oom: bool) -> ExecResult:
        return ExecResult(
            stdout="",
            stderr="" if timed_out or oom else "the docker sandbox's worker died",
            exit_code=None if timed_out else -9,
            timed_out=timed_out,
            oom_killed=oom,
            duration_s=limits.timeout_s if timed_out else 0.0,
            backend="docker",
        )

    def kill(self) -> None:
        self.healthy = False
        self.sandbox._remove(self.id)


def worker_argv(python: str) -> list[str]:
    """One run's exec: the worker, wrapped in the OOM count, answering one request."""
    options = ["--work", WORK_DIR, "--own-pid-namespace", "--once"]
    for directory in SCRATCH_DIRS:
        options += ["--scratch", directory]
    return [python, "-I", "-S", "-c", WRAPPED_WORKER, *options]


def _tmpfs_mb(limits: Limits) -> int:
    return max(64, limits.file_size_mb)


def _memory_bytes(memory_mb: int) -> int:
    return (memory_mb + MEMORY_HEADROOM_MB) << 20


def _demultiplex(sock: socket.socket, deadline: float) -> dict[int, bytes]:
    """Docker's multiplexed exec stream until its end: stream number (1, 2) to its bytes."""
    buffer = bytearray()
    streams: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            raise TimeoutError from None
        if not chunk:
            return {key: bytes(value) for key, value in streams.items()}
        buffer += chunk
        while len(buffer) >= STREAM_HEADER.size:
            kind, size = STREAM_HEADER.unpack_from(buffer)
            end = STREAM_HEADER.size + size
            if len(buffer) < end:
                break
            streams.setdefault(kind, bytearray()).extend(buffer[STREAM_HEADER.size : end])
            del buffer[:end]


def _frame(data: bytes) -> dict[str, Any] | None:
    """The worker's one reply frame, if it is all there."""
    if len(data) < HEADER.size:
        return None
    (size,) = HEADER.unpack_from(data)
    body = data[HEADER.size : HEADER.size + size]
    if len(body) < size:
        return None
    try:
        reply: dict[str, Any] = json.loads(body)
    except ValueError:
        return None
    return reply


class ContainerPool:
    """Idle containers kept warm (last used first); at most `size` runs at once."""

    def __init__(self, sandbox: DockerSandbox, size: int) -> None:
        self._sandbox = sandbox
        self.size = size
        self._idle: list[Container] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def acquire(self) -> Container:
        self._slots.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise SandboxError("the sandbox is closed")
                if self._idle:
                    return self._idle.pop()
            return Container(self._sandbox)
        except BaseException:
            self._slots.release()
            raise

    def release(self, container: Container, *, keep: bool = True) -> None:
        try:
            with self._lock:
                if keep and container.healthy and not self._closed:
                    self._idle.append(container)
                    return
            container.kill()
        finally:
            self._slots.release()

    def warm(self, count: int) -> None:
        with self._lock:
            missing = max(0, min(count, self.size) - len(self._idle))
        started = [Container(self._sandbox) for _ in range(missing)]
        with self._lock:
            self._idle.extend(started)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for container in idle:
            container.kill()


def _remove_containers(client: Any, ids: set[str]) -> None:
    # Also called at interpreter exit (weakref.finalize), so it must not need the sandbox.
    for container_id in list(ids):
        with contextlib.suppress(Exception):
            client.api.remove_container(container_id, force=True)
        ids.discard(container_id)


class DockerSandbox:
    """Runs code in Docker containers from a warm pool, one `docker exec` per run.

    `image` must have `python3` (see `redraft sandbox build-image`); `client` is a
    `docker.DockerClient` (default: from DOCKER_HOST); `cpus` bounds each container.
    """

    backend = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        limits: Limits | None = None,
        pool_size: int | None = None,
        python: str = "python3",
        cpus: float = 1.0,
        client: Any = None,
    ) -> None:
        self.image = image
        self.limits = limits or Limits()
        self.pool_size = pool_size or 4
        self.python = python
        self.cpus = cpus
        self.owner = uuid.uuid4().hex
        self._client = client
        self._checked = False
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ContainerPool | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def name(self) -> str:
        return self.backend

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = docker_client()
            return self._client

    def check(self) -> None:
        """Raise SandboxUnavailable, naming the fix, unless containers can run here."""
        docker = docker_sdk()
        client = self.client
        try:
            client.ping()
            client.api.inspect_image(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(image_missing_message(self.image)) from None
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(_daemon_message(exc)) from None
        except OSError as exc:
            raise SandboxUnavailable(_daemon_message(exc)) from None
        self._checked = True

    def _track(self, container_id: str) -> None:
        with self._lock:
            self._ids.add(container_id)
            if self._finalizer is None:
                self._finalizer = weakref.finalize(
                    self, _remove_containers, self._client, self._ids
                )

    def _remove(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            self.client.api.remove_container(container_id, force=True)
        with self._lock:
            self._ids.discard(container_id)

    @property
    def pool(self) -> ContainerPool:
        if not self._checked:
            self.check()
        with self._lock:
            if self._pool is None:
                self._pool = ContainerPool(self, self.pool_size)
            return self._pool

    def warm(self, count: int | None = None) -> None:
        """Start containers now, so the first runs do not pay for start-up."""
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
    ) -> ExecResult:
        """Run `program` (Python source, or an argv list) in a fresh working directory."""
        limits = self.limits.with_overrides(timeout_s=timeout_s, memory_mb=memory_mb)
        request = build_request(
            program, files=files, stdin=stdin, env=env, limits=limits, work_dir=WORK_DIR
        )
        pool = self.pool
        for attempt in (1, 2):
            container = pool.acquire()
            try:
                return container.execute(request, limits)
            except ContainerGone as exc:
                # A warm container that died idle costs a fresh one, not the run.
                if attempt == 2:
                    raise SandboxError(f"the docker sandbox lost its container: {exc}") from None
            finally:
                pool.release(container)
        raise AssertionError("unreachable")

    async def arun(
        self,
        program: Program,
        *,
        files: Files | None = None,
        stdin: str | bytes | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        def call() -> ExecResult:
            return self.run(
                program, files=files, stdin=stdin, timeout_s=timeout_s, memory_mb=memory_mb, env=env
            )

        return await asyncio.get_running_loop().run_in_executor(self._threads(), call)

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.pool_size, thread_name_prefix="redraft-docker"
                )
            return self._executor

    def session(self) -> DockerSession:
        """A working directory kept across runs, in a container of its own until closed."""
        return DockerSession(self)

    def close(self) -> None:
        """Remove every container. The sandbox starts new ones if it is used again."""
        with self._lock:
            pool, self._pool = self._pool, None
            executor, self._executor = self._executor, None
            client = self._client
        if pool is not None:
            pool.close()
        if executor is not None:
            executor.shutdown(wait=False)
        if client is not None:
            # Containers of sessions still open, or of runs in flight.
            _remove_containers(client, self._ids)

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DockerSession:
    """Runs that share one working directory: files written by one are there for the next."""

    def __init__(self, sandbox: DockerSandbox) -> None:
        self.sandbox = sandbox
        self._pool = sandbox.pool
        self._container: Container | None = None
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
    ) -> ExecResult:
        limits = self.sandbox.limits.with_overrides(timeout_s=timeout_s, memory_mb=memory_mb)
        with self._lock:
            if self._closed:
                raise SandboxError("the sandbox session is closed")
            fresh = self._container is None
            request = build_request(
                program,
                files=files,
                stdin=stdin,
                env=env,
                limits=limits,
                work_dir=WORK_DIR,
                fresh=fresh,
            )
            request["keep"] = True
            if self._container is None:
                self._container = self._pool.acquire()
            elif not self._container.healthy:
                raise SandboxError(
                    "the sandbox session's container died (timeout or out of memory); "
                    "its files are gone: start a new session"
                )
            try:
                return self._container.execute(request, limits)
            except ContainerGone as exc:
                raise SandboxError(
                    f"the sandbox session's container is gone ({exc}): start a new session"
                ) from None

    async def arun(
        self,
        program: Program,
        *,
        files: Files | None = None,
        stdin: str | bytes | None = None,
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        def call() -> ExecResult:
            return self.run(
                program, files=files, stdin=stdin, timeout_s=timeout_s, memory_mb=memory_mb, env=env
            )

        return await asyncio.get_running_loop().run_in_executor(self.sandbox._threads(), call)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            container, self._container = self._container, None
        if container is not None:
            self._pool.release(container, keep=False)

    def __enter__(self) -> DockerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> DockerSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
