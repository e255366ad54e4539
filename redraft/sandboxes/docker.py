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
from types import ModuleType
from typing import Any

from redraft.sandboxes.base import (
    ExecResult,
    Limits,
    SandboxError,
    SandboxUnavailable,
)
from redraft.sandboxes.image import DEFAULT_IMAGE
from redraft.sandboxes.pool import HOST_GRACE_S, PooledSandbox, WorkerLost
from redraft.sandboxes.protocol import (
    BASE_ENV,
    HEADER,
    WORKER_SOURCE,
    decode_reply,
    encode_frame,
    worker_argv,
)
from redraft.sandboxes.protocol import SANDBOX_SCRATCH_DIRS as SCRATCH_DIRS
from redraft.sandboxes.protocol import SANDBOX_WORK_DIR as WORK_DIR

USER = "65534:65534"
LABEL = "redraft.sandbox"
SDK_HINT = "the docker sandbox needs the docker SDK: pip install 'redraft[docker]'"
DAEMON_HINT = "start it (systemctl start docker, or dockerd &) or choose sandbox='bwrap'"
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


class ContainerGone(WorkerLost):
    """A container could not even start a run: it is no longer there."""


class Container:
    """One warm sandbox container and the runs it executes, one at a time (a pool `Worker`)."""

    work_dir = WORK_DIR

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
        self.worker_argv = worker_argv(
            sandbox.python,
            WORK_DIR,
            own_pid_namespace=True,
            once=True,
            scratch=SCRATCH_DIRS,
            source=WRAPPED_WORKER,  # the worker, wrapped in the OOM count: one request each
        )
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


def _remove_containers(client: Any, ids: set[str]) -> None:
    # Also called at interpreter exit (weakref.finalize), so it must not need the sandbox.
    for container_id in list(ids):
        with contextlib.suppress(Exception):
            client.api.remove_container(container_id, force=True)
        ids.discard(container_id)


class DockerSandbox(PooledSandbox):
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
        super().__init__(limits=limits, pool_size=pool_size or 4)
        self.image = image
        self.python = python
        self.cpus = cpus
        self.owner = uuid.uuid4().hex
        self._client = client
        self._checked = False
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[Any, Any] | None = None

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

    def _ready(self) -> None:
        if not self._checked:
            self.check()

    def _start_worker(self) -> Container:
        return Container(self)

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

    def close(self) -> None:
        """Remove every container. The sandbox starts new ones if it is used again."""
        super().close()
        with self._lock:
            client = self._client
        if client is not None:
            # Containers of sessions still open, or of runs in flight.
            _remove_containers(client, self._ids)
