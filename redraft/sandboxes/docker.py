"""The Docker sandbox: a warm pool of locked-down containers, one long-lived worker in each.

Each container has no network (loopback only), a read-only root, in-memory /sandbox, /tmp and
/dev/shm of bounded size, no-new-privileges, and memory, CPU and process limits. Its init
(pid 1) and its worker are root with only the capabilities to drop a run to nobody; every run
is nobody with no capability at all, under the worker's system-call filter. The worker is one
`docker exec` that lives as long as the container and forks a process per run (see
`_worker.py`); it kills every process of a run when it ends (the init, as pid 1, is out of
reach of that kill) and reads the container's OOM-kill count around each run.

The docker SDK is an optional extra (`pip install 'redraft[docker]'`), imported on first use.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from redraft.sandboxes import seccomp
from redraft.sandboxes.base import (
    ExecResult,
    Limits,
    SandboxError,
    SandboxUnavailable,
)
from redraft.sandboxes.channel import Channel
from redraft.sandboxes.docker_daemon import (
    DEFAULT_IMAGE,
    daemon_message,
    docker_client,
    docker_sdk,
    image_missing_message,
)
from redraft.sandboxes.pool import (
    HOST_GRACE_S,
    START_TIMEOUT_S,
    Lost,
    PooledSandbox,
    WorkerLost,
    exchange,
    lost_run,
)
from redraft.sandboxes.protocol import (
    BASE_ENV,
    HEADER,
    MAX_CONTROL_FRAME,
    RUN_UID,
    WorkerGone,
    WorkerProtocolError,
    configuration,
    encode_frame,
    read_greeting,
    worker_argv,
)
from redraft.sandboxes.protocol import SANDBOX_SCRATCH_DIRS as SCRATCH_DIRS
from redraft.sandboxes.protocol import SANDBOX_WORK_DIR as WORK_DIR
from redraft.sandboxes.seccomp import syscall_filter

# The container's init and each run's worker are root, with only the capabilities to drop a
# run to its own uid (and its bounding set to nothing) and to keep themselves from the OOM
# killer; runs are nobody, with none.
ROOT = "0:0"
CAPABILITIES = ["SETUID", "SETGID", "SETPCAP"]
CAP_SYS_RESOURCE = 24
LABEL = "redraft.sandbox"
# Room in the container's cgroup for pid 1 and the worker beside the run itself.
MEMORY_HEADROOM_MB = 32
# The container's init and the worker, beside the run's own `processes`.
EXTRA_PIDS = 2
# pid 1 of every container: reaps the orphans a run leaves (the worker kills them, someone
# must wait for them) and exits on SIGTERM. Non-dumpable and root, so no run reaches it, and
# never the OOM killer's choice; blocking SIGCHLD and waiting for it loses none.
INIT_SOURCE = """\
import ctypes, os, signal
if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:
    raise SystemExit("cannot make the init non-dumpable")
try:
    with open("/proc/self/oom_score_adj", "w") as handle:
        handle.write("-1000")
except OSError:
    pass  # without CAP_SYS_RESOURCE
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
# A connection a run closed must not linger in TIME_WAIT and keep its port from the next run.
NETWORK_SETTINGS = {"net.ipv4.tcp_max_tw_buckets": "0", "net.ipv4.tcp_no_metrics_save": "1"}
# Where a container's processes read its memory cgroup's OOM-kill count: v1, then v2.
OOM_COUNTERS = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")
COUNT_OOM = f"""
for path in {OOM_COUNTERS!r}:
    try:
        print(next(int(l.split()[1]) for l in open(path) if l.startswith("oom_kill ")))
        break
    except (OSError, StopIteration, ValueError):
        pass
"""
STREAM_HEADER = struct.Struct(">BxxxL")
# What the exec's stderr may hold: a traceback if the worker crashed.
STDERR_CAP = 64 << 10


class ContainerGone(WorkerLost):
    """A container could not even start a run: it is no longer there."""


class ExecStream:
    """Docker's multiplexed exec stream, demultiplexed as it is read, with bounds on both.

    stdout carries the worker's frames: at most `budget` bytes may arrive before the host asks
    for more (`allow`), so a worker that floods it is a `WorkerProtocolError`, not memory the
    host holds. stderr keeps its first `STDERR_CAP` bytes. A stream number other than 1 or 2
    is a `WorkerProtocolError` too.
    """

    def __init__(self, sock: socket.socket, budget: int) -> None:
        self.sock = sock
        self.budget = budget
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.first = bytearray()  # stdout's first bytes, to say why a start failed
        self.ended = False
        self._header = bytearray()
        self._stream = 0
        self._left = 0  # bytes of the current chunk still to come
        self._writer: socket.socket | None = None

    def allow(self, budget: int) -> None:
        """What the next reply may hold, beyond what is already here."""
        self.budget = budget

    def send(self, data: bytes, deadline: float) -> None:
        # A socket object of its own for writing: a channel's input is sent from another
        # thread while this one reads, and a socket's timeout is per object.
        if self._writer is None:
            self._writer = self.sock.dup()
        self._writer.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            self._writer.sendall(data)
        except TimeoutError:
            raise TimeoutError from None

    def close(self) -> None:
        for sock in (self._writer, self.sock):
            if sock is not None:
                _close(sock)

    def read_exact(self, size: int, deadline: float) -> bytes:
        while len(self.stdout) < size:
            if self.ended:
                raise WorkerGone("the exec stream ended")
            self._receive(deadline)
        data = bytes(self.stdout[:size])
        del self.stdout[:size]
        return data

    def read_to_end(self, deadline: float) -> None:
        while not self.ended:
            self._receive(deadline)

    def pending(self) -> bool:
        if not (self.stdout or self.ended) and select.select([self.sock], [], [], 0)[0]:
            with contextlib.suppress(TimeoutError):
                self._receive(time.monotonic() + 0.01)
        return bool(self.stdout) or self.ended

    def _receive(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            raise TimeoutError from None
        if not chunk:
            self.ended = True
            return
        view = memoryview(chunk)
        while view:
            if self._left == 0:
                need = STREAM_HEADER.size - len(self._header)
                self._header += view[:need]
                view = view[need:]
                if len(self._header) < STREAM_HEADER.size:
                    return
                self._stream, self._left = STREAM_HEADER.unpack(self._header)
                self._header.clear()
                if self._stream not in (1, 2):
                    raise WorkerProtocolError(f"the exec stream has a stream {self._stream}")
                continue
            part, view = view[: self._left], view[self._left :]
            self._left -= len(part)
            if self._stream == 1:
                if len(self.first) < 512:
                    self.first += part[: 512 - len(self.first)]
                self.budget -= len(part)
                if self.budget < 0:
                    raise WorkerProtocolError("the worker wrote more to its channel than asked for")
                self.stdout += part
            elif len(self.stderr) < STDERR_CAP:
                self.stderr += part[: STDERR_CAP - len(self.stderr)]


class Container:
    """One warm sandbox container and the worker in it, a run at a time (a pool `Worker`).

    The worker is one `docker exec` that lives as long as the container: a run costs a
    request and a reply over its stream, not an exec of its own.
    """

    work_dir = WORK_DIR

    def __init__(self, sandbox: DockerSandbox) -> None:
        self.sandbox = sandbox
        self.healthy = True
        self.retired: str | None = None
        self.memory_mb = sandbox.limits.memory_mb
        client = sandbox.client
        errors = docker_sdk().errors
        limits = sandbox.limits
        disk = f"size={limits.disk_mb}m,mode=1777"
        try:
            created = client.api.create_container(
                sandbox.image,
                command=[sandbox.python, "-I", "-S", "-c", INIT_SOURCE],
                user=ROOT,
                working_dir=WORK_DIR,
                environment=dict(BASE_ENV),
                labels={LABEL: "1", f"{LABEL}.owner": sandbox.owner},
                network_disabled=True,
                host_config=client.api.create_host_config(
                    network_mode="none",
                    read_only=True,
                    tmpfs={
                        WORK_DIR: f"rw,exec,nosuid,nodev,{disk}",
                        "/tmp": f"rw,noexec,nosuid,nodev,{disk}",
                        # Over Docker's mqueue mount: creating a file there makes a POSIX
                        # message queue, which would outlive the run.
                        "/dev/mqueue": "ro,noexec,nosuid,nodev,size=4k,mode=0555",
                    },
                    shm_size=f"{limits.disk_mb}m",
                    cap_drop=["ALL"],
                    cap_add=capabilities(),
                    security_opt=["no-new-privileges"],
                    mem_limit=_memory_bytes(limits.memory_mb),
                    memswap_limit=_memory_bytes(limits.memory_mb),
                    nano_cpus=int(sandbox.cpus * 1e9),
                    pids_limit=limits.processes + EXTRA_PIDS,
                    init=False,  # pid 1 is INIT_SOURCE: docker-init's child would be killable
                    ipc_mode="private",
                    sysctls=NETWORK_SETTINGS,
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
            raise SandboxUnavailable(daemon_message(exc)) from None
        sandbox._track(self.id)
        try:
            client.api.start(self.id)
            self.stream, self.exec_id = self._start_worker()
        except errors.DockerException as exc:
            self.kill()
            raise SandboxError(f"the docker sandbox could not start a container: {exc}") from None
        except BaseException:
            self.kill()
            raise

    def _start_worker(self) -> tuple[ExecStream, str]:
        argv = worker_argv(
            self.sandbox.python,
            WORK_DIR,
            own_pid_namespace=True,
            scratch=SCRATCH_DIRS,
            run_uid=RUN_UID,
            oom_counters=OOM_COUNTERS,
        )
        try:
            sock, exec_id = self._start_exec(argv)
        except ContainerGone as exc:  # its init stopped at once
            raise SandboxError(
                f"the docker sandbox's worker did not start ({exc}); the image "
                f"{self.sandbox.image} needs python3 with its ctypes module"
            ) from None
        # Its greeting is all it may send before it is asked for anything.
        stream = ExecStream(sock, HEADER.size + MAX_CONTROL_FRAME)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            greeting = read_greeting(stream, deadline, backend="docker")
            stream.send(encode_frame(configuration(syscall_filter(greeting.pid))), deadline)
        except (OSError, TimeoutError, WorkerProtocolError) as exc:
            _close(sock)
            raise SandboxError(
                f"the docker sandbox's worker did not start ({_start_failure(stream, exc)}); "
                f"the image {self.sandbox.image} needs python3 with its ctypes module"
            ) from None
        except BaseException:
            _close(sock)
            raise
        self.oom_kills = greeting.oom_kills
        return stream, exec_id

    def execute(
        self, request: dict[str, Any], limits: Limits, channel: Channel | None = None
    ) -> ExecResult:
        # The container's memory and pids limits bound the run as a whole: no address-space
        # rlimit to starve its threads, and no RLIMIT_NPROC, which counts a uid's processes
        # host-wide (every container's runs are nobody: one run's fork bomb would stop
        # another container's forks).
        request = {**request, "memory_mb": None, "processes": None}
        if self.memory_mb != limits.memory_mb:
            self._set_memory(limits.memory_mb)
        deadline = time.monotonic() + limits.timeout_s + HOST_GRACE_S
        relayed = channel.allowance() if channel is not None else 0
        self.stream.allow(MAX_CONTROL_FRAME + 2 * int(request["output_bytes"]) + relayed)
        try:
            outcome = exchange(self, self.stream, request, deadline, "docker", channel)
        except WorkerLost as exc:
            raise ContainerGone(str(exc)) from None
        if isinstance(outcome, Lost):
            oom = False
            if not outcome.hung:
                # The worker itself died (the OOM killer may pick it): count from outside.
                after = self._count_oom_kills()
                before = self.oom_kills
                oom = (after > before) if after >= 0 and before is not None else False
                oom = oom or (after < 0 and self._exit_code() == 137)
            self.kill()
            return lost_run("docker", limits, timed_out=outcome.hung, oom=oom)
        self.oom_kills = outcome.oom_kills
        return outcome.result

    def _start_exec(self, argv: list[str]) -> tuple[socket.socket, str]:
        api = self.sandbox.client.api
        errors = docker_sdk().errors
        try:
            exec_id: str = api.exec_create(
                self.id,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                user=ROOT,
                environment=dict(BASE_ENV),
                workdir=WORK_DIR,
            )["Id"]
            raw = api.exec_start(exec_id, socket=True)
        except errors.DockerException as exc:
            # Nothing ran: the container is gone (its init was killed, or someone removed it).
            raise ContainerGone(str(exc)) from None
        sock: socket.socket = getattr(raw, "_sock", raw)
        return sock, exec_id

    def _count_oom_kills(self) -> int:
        try:
            sock, _ = self._start_exec([self.sandbox.python, "-I", "-S", "-c", COUNT_OOM])
        except ContainerGone:
            return -1
        stream = ExecStream(sock, 4096)
        try:
            stream.read_to_end(time.monotonic() + 10)
            return int(bytes(stream.stdout).decode().strip() or -1)
        except (OSError, ValueError, WorkerProtocolError):
            return -1
        finally:
            _close(sock)

    def _exit_code(self) -> int | None:
        with contextlib.suppress(Exception):
            code = self.sandbox.client.api.exec_inspect(self.exec_id).get("ExitCode")
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

    def retire(self, reason: str) -> None:
        """Never to be given another run (the pool removes it when it comes back)."""
        self.healthy = False
        self.retired = reason

    def kill(self) -> None:
        self.healthy = False
        if hasattr(self, "stream"):
            self.stream.close()
        self.sandbox._remove(self.id)


def _start_failure(stream: ExecStream, exc: BaseException) -> str:
    """What the stream said when the worker did not start (Docker writes its own errors
    into it as plain text), else the exception."""
    text = bytes(stream.stderr or stream.first).decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip().isprintable()]
    return lines[-1][:300] if lines else str(exc) or type(exc).__name__


def capabilities() -> list[str]:
    """What the container's init and worker get: CAP_SYS_RESOURCE too where this machine has
    it (the daemon refuses a container a capability it lacks), so that they can keep out of
    the OOM killer's way."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return list(CAPABILITIES)
    bounding = next((line for line in status.splitlines() if line.startswith("CapBnd:")), "")
    if bounding and int(bounding.split()[1], 16) >> CAP_SYS_RESOURCE & 1:
        return [*CAPABILITIES, "SYS_RESOURCE"]
    return list(CAPABILITIES)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _memory_bytes(memory_mb: int) -> int:
    return (memory_mb + MEMORY_HEADROOM_MB) << 20


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
        seccomp.check()
        docker = docker_sdk()
        client = self.client
        try:
            client.ping()
            client.api.inspect_image(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(image_missing_message(self.image)) from None
        except docker.errors.DockerException as exc:
            raise SandboxUnavailable(daemon_message(exc)) from None
        except OSError as exc:
            raise SandboxUnavailable(daemon_message(exc)) from None
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
