"""Backends, fixtures and host-side probes shared by the sandbox conformance and security suites.

Every test that takes the `backend` fixture (directly or through `sandbox`, `limited_sandbox`
or `fresh_sandbox`) runs once per backend. A backend that cannot run on this machine is skipped
with its reason, except in CI (the `CI` variable set), where it fails: CI installs bubblewrap
and docker.io and starts dockerd itself, so a missing backend there is a broken build.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from redraft.sandboxes import (
    Limits,
    NamespaceSandbox,
    Sandbox,
    SandboxUnavailable,
    SubprocessSandbox,
)

# "bwrap-userns" is bwrap as anyone but root runs it: worker and run share one uid in a user
# namespace, and there is no cgroup. As root it is that configuration, as nobody.
BACKENDS = ("bwrap", "bwrap-userns", "docker", "subprocess")
# The subprocess backend is documented not to isolate: it shares the host's files, network
# and processes, and runs as the calling user. Only its resources are bounded.
ISOLATING = frozenset({"bwrap", "bwrap-userns", "docker"})


class UserNamespaceSandbox(NamespaceSandbox):
    """The bwrap sandbox without a cgroup: how a user who is not root gets it."""

    _use_cgroup = False


def sandbox_name(backend: str) -> str:
    """The `Sandbox.name` of a backend of this suite."""
    return backend.removesuffix("-userns")


def bounded_as_a_whole(backend: str) -> bool:
    """A cgroup bounds the sandbox's memory and processes in total, not only per process."""
    return backend == "docker" or (backend == "bwrap" and os.geteuid() == 0)


# One worker with tight limits: small enough that the resource tests finish quickly, and a
# single worker so that consecutive runs are known to reuse the same one.
LIMITED = Limits(
    timeout_s=5.0, memory_mb=128, processes=32, file_size_mb=1, open_files=32, output_bytes=1 << 20
)

SandboxFactory = Callable[..., Sandbox]


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(backend: str, reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"the {backend} sandbox must run in CI, but: {reason}", pytrace=False)
    pytest.skip(f"the {backend} sandbox is unavailable here (it fails in CI): {reason}")


def build_sandbox(backend: str, *, limits: Limits | None = None, pool_size: int = 2) -> Sandbox:
    """A started, working sandbox of `backend`, or a skip (a failure in CI) if it cannot run."""
    sandbox: Sandbox
    try:
        if backend == "bwrap":
            sandbox = NamespaceSandbox(limits=limits, pool_size=pool_size)
        elif backend == "bwrap-userns":
            sandbox = UserNamespaceSandbox(limits=limits, pool_size=pool_size)
        elif backend == "docker":
            from redraft.sandboxes import DockerSandbox

            sandbox = DockerSandbox(limits=limits, pool_size=pool_size)
        elif backend == "subprocess":
            sandbox = SubprocessSandbox(limits=limits, pool_size=pool_size)
        else:
            raise ValueError(f"unknown backend {backend!r}")
        check = getattr(sandbox, "check", None)
        if callable(check):
            check()
        probe = sandbox.run("print('ready')")
    except (ImportError, SandboxUnavailable) as exc:
        unavailable(backend, f"{type(exc).__name__}: {exc}")
    # Available but broken is never a skip.
    assert probe.ok and probe.stdout == "ready\n", f"the {backend} sandbox's first run: {probe}"
    return sandbox


# The fixtures' functions have their own names, so that a test module can import them (pytest
# finds them there) without its test parameters shadowing the imported names.


@pytest.fixture(name="backend", scope="module", params=BACKENDS)
def backend_fixture(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(name="sandbox", scope="module")
def sandbox_fixture(backend: str) -> Iterator[Sandbox]:
    """The backend with default limits and two workers, shared by a module's tests."""
    box = build_sandbox(backend, pool_size=2)
    yield box
    box.close()


@pytest.fixture(name="limited_sandbox", scope="module")
def limited_sandbox_fixture(backend: str) -> Iterator[Sandbox]:
    """The backend with `LIMITED` limits and one worker, shared by a module's tests."""
    box = build_sandbox(backend, limits=LIMITED, pool_size=1)
    yield box
    box.close()


@pytest.fixture(name="fresh_sandbox")
def fresh_sandbox_fixture(backend: str) -> Iterator[SandboxFactory]:
    """Makes new sandboxes of the backend (whose workers start after the test's set-up)."""
    made: list[Sandbox] = []

    def make(*, limits: Limits | None = None, pool_size: int = 1) -> Sandbox:
        box = build_sandbox(backend, limits=limits, pool_size=pool_size)
        made.append(box)
        return box

    yield make
    for box in made:
        box.close()


def marker() -> str:
    """A unique word to find a test's processes and files by."""
    return f"redraft-test-{uuid.uuid4().hex}"


def is_running(pid: int) -> bool:
    """The host process exists and is not a zombie (an unreaped zombie is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def host_pids_with(word: str) -> list[int]:
    """Live host processes whose command line contains `word`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if word.encode() in (entry / "cmdline").read_bytes() and is_running(int(entry.name)):
                found.append(int(entry.name))
    return found


def wait_until_gone(word: str, within_s: float = 3.0) -> list[int]:
    """Host processes with `word` that are still alive after `within_s` (SIGKILL is async)."""
    deadline = time.monotonic() + within_s
    while (alive := host_pids_with(word)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def kill_host_pids_with(word: str) -> None:
    """Clean up after a backend that lets processes escape: only ours, found by their marker."""
    for pid in host_pids_with(word):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


class LoopbackServer:
    """A TCP server on the host's 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.sendall(b"host secret\n")

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
