"""The host never trusts a worker: fake workers that lie about frame sizes, answer other
requests, stall or flood, and Docker's exec stream read under the same bounds.

Each misbehaving worker must cost its run at most a `SandboxError` (or a timed-out result, for
one that stalls), within the run's deadline and without the host holding what was announced;
the worker is retired, and the next run, on a fresh worker, is correct.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from redraft.sandboxes import pool as pool_module
from redraft.sandboxes.base import Limits, SandboxError
from redraft.sandboxes.cgroups import Cgroup
from redraft.sandboxes.docker import STDERR_CAP, STREAM_HEADER, ExecStream
from redraft.sandboxes.pool import LaunchSpec, PooledSandbox
from redraft.sandboxes.protocol import WorkerGone, WorkerProtocolError, worker_argv
from tests.sandbox_backends import rss_kib

# A worker that greets, takes its configuration and one request as the real one does, then
# answers with `misbehave(request)`.
FAKE = r"""
import json, os, struct, sys, time
def frame(message):
    body = json.dumps(message).encode()
    return struct.pack(">Q", len(body)) + body
def read_exact(size):
    data = b""
    while len(data) < size:
        part = os.read(0, size - len(data))
        if not part:
            sys.exit(0)
        data += part
    return data
def read_frame():
    (size,) = struct.unpack(">Q", read_exact(8))
    return json.loads(read_exact(size))
def send(data):
    os.write(1, data)
def reply(request, **changes):
    header = {"id": request["id"], "exit_code": 0, "timed_out": False, "oom_killed": False,
              "oom_kills": None, "duration_s": 0.01, "stdout_len": 2, "stderr_len": 0,
              "stdout_truncated": False, "stderr_truncated": False, "retire": None}
    header.update(changes)
    return frame(header)
GREETING = frame({"ready": True, "pid": os.getpid()})
"""
SERVE = r"""
send(GREETING)
read_frame()
request = read_frame()
misbehave(request)
time.sleep(60)
"""
GIB = 1 << 30
LIMITS = Limits(timeout_s=2.0)


class FakeWorkerSandbox(PooledSandbox):
    """A pool whose first workers run the given fake scripts; the ones after, the real worker."""

    backend = "fake"
    _seccomp = False

    def __init__(self, *scripts: str, limits: Limits = LIMITS) -> None:
        super().__init__(limits=limits, pool_size=1)
        self.scripts = list(scripts)
        self.started = 0

    def _launch(self, cgroup: Cgroup | None) -> LaunchSpec:
        self.started += 1
        work_dir = tempfile.mkdtemp(prefix="redraft-fake-")
        if self.scripts:
            argv = [sys.executable, "-I", "-S", "-c", FAKE + self.scripts.pop(0)]
        else:
            argv = worker_argv(
                sys.executable, work_dir, own_pid_namespace=False, require_seccomp=False
            )
        return LaunchSpec(
            argv=argv,
            work_dir=work_dir,
            cwd=work_dir,
            cleanup=lambda: shutil.rmtree(work_dir, ignore_errors=True),
        )


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stalled worker is given up on this long after its run's timeout.
    monkeypatch.setattr(pool_module, "HOST_GRACE_S", 0.5)


def misbehaving(body: str) -> str:
    """A fake worker that answers its one request with `body`."""
    indented = "\n".join("    " + line for line in body.splitlines())
    return f"def misbehave(request):\n{indented}\n{SERVE}"


def assert_next_run_is_correct(box: FakeWorkerSandbox) -> None:
    result = box.run("print(6 * 7)")
    assert result.ok and result.stdout == "42\n", result


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("send(struct.pack('>Q', 1 << 30))", "frame of 1073741824 bytes"),
        ("send(struct.pack('>Q', 1 << 62))", "frame of"),
        ("send(struct.pack('>Q', 5) + b'hello')", "not JSON"),
        ("send(frame([1, 2, 3]))", "not a JSON object"),
        ("send(reply(request, id='another') + b'ok')", "another request"),
        ("send(reply(request, stdout_len=1 << 40))", "more output than the limit"),
        ("send(reply(request, exit_code='0') + b'ok')", "malformed \\(exit_code"),
        ("send(reply(request, exit_code=True) + b'ok')", "malformed \\(exit_code"),
        ("send(reply(request, duration_s=-1.0) + b'ok')", "malformed \\(duration_s"),
        ("send(reply(request, extra=1) + b'ok')", "malformed \\(extra"),
        ("send(reply(request, timed_out=True) + b'ok')", "timed out"),
        ("send(reply(request) + b'ok' + reply(request) + b'ok')", "out of step"),
        (
            "send(frame({'id': 'another', 'error': 'x', 'retire': None, 'before_run': False,"
            " 'fatal': False}))",
            "another request",
        ),
    ],
    ids=[
        "1-GiB-header",
        "2**62-header",
        "not-json",
        "not-an-object",
        "wrong-id",
        "output-past-the-limit",
        "exit-code-string",
        "exit-code-bool",
        "negative-duration",
        "unknown-field",
        "exit-code-with-timeout",
        "two-replies",
        "error-for-another-request",
    ],
)
def test_a_malformed_reply_fails_the_run_and_retires_the_worker(body: str, message: str) -> None:
    box = FakeWorkerSandbox(misbehaving(body))
    try:
        started = time.monotonic()
        with pytest.raises(SandboxError, match=message):
            box.run("print('never runs')")
        # Refused at once: the host did not wait for what was announced.
        assert time.monotonic() - started < LIMITS.timeout_s
        assert_next_run_is_correct(box)
        assert box.started == 2  # the liar was retired, a fresh worker took the next run
    finally:
        box.close()


def test_announced_and_sent_gigabytes_are_never_read() -> None:
    body = """
send(struct.pack(">Q", 3 << 29))
chunk = b"x" * (1 << 20)
for _ in range(1536):
    send(chunk)
"""
    box = FakeWorkerSandbox(misbehaving(body))
    try:
        before = rss_kib()
        with pytest.raises(SandboxError, match="frame of"):
            box.run("print('never runs')")
        assert (rss_kib() - before) / 1024 < 50, "the host read what the worker sent"
        assert_next_run_is_correct(box)
    finally:
        box.close()


@pytest.mark.parametrize(
    "body",
    [
        "send(struct.pack('>Q', 1000) + b'{')",  # a frame that never ends
        "send(reply(request, stdout_len=100))",  # output that never comes
        "pass",  # no reply at all
    ],
    ids=["body-stalls", "output-stalls", "silent"],
)
def test_a_stalled_reply_times_out_by_the_deadline(body: str) -> None:
    box = FakeWorkerSandbox(misbehaving(body))
    try:
        started = time.monotonic()
        result = box.run("print('never runs')")
        elapsed = time.monotonic() - started
        assert result.timed_out and result.exit_code is None, result
        assert elapsed < LIMITS.timeout_s + 0.5 + 5, f"took {elapsed:.1f} s"
        assert_next_run_is_correct(box)
    finally:
        box.close()


def test_a_worker_that_dies_mid_reply_loses_only_that_run() -> None:
    box = FakeWorkerSandbox(
        misbehaving("send(reply(request, stdout_len=10) + b'par')\nos._exit(1)")
    )
    try:
        result = box.run("print('never runs')")
        assert result.exit_code == -9 and "died" in result.stderr, result
        assert_next_run_is_correct(box)
    finally:
        box.close()


@pytest.mark.parametrize(
    "greeting",
    ["send(struct.pack('>Q', 1 << 40))", "send(frame({'ready': True, 'pid': 'one'}))", "pass"],
    ids=["huge", "malformed", "none"],
)
def test_a_worker_that_does_not_greet_properly_is_not_used(
    greeting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "START_TIMEOUT_S", 1.0)
    box = FakeWorkerSandbox(greeting + "\ntime.sleep(60)")
    try:
        started = time.monotonic()
        with pytest.raises(SandboxError):
            box.run("print('never runs')")
        assert time.monotonic() - started < 5
        assert_next_run_is_correct(box)
    finally:
        box.close()


def test_a_worker_retired_before_the_run_hands_it_to_a_fresh_one() -> None:
    # What the real worker says when it cannot vouch for its state at the start of a run.
    body = (
        "send(frame({'id': request['id'], 'error': 'wipe failed', 'retire': 'wipe failed',"
        " 'before_run': True, 'fatal': False}))"
    )
    box = FakeWorkerSandbox(misbehaving(body))
    try:
        result = box.run("print(6 * 7)")  # retried on a fresh worker, not failed
        assert result.ok and result.stdout == "42\n", result
        assert box.started == 2
    finally:
        box.close()


# Docker's exec stream


def chunk(stream: int, data: bytes) -> bytes:
    return STREAM_HEADER.pack(stream, len(data)) + data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    host, worker = socket.socketpair()
    yield host, worker
    host.close()
    worker.close()


def send_slowly(sock: socket.socket, data: bytes, step: int) -> None:
    for start in range(0, len(data), step):
        sock.sendall(data[start : start + step])


def test_exec_stream_reassembles_frames_split_anywhere(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, worker = pair
    message = json.dumps({"ready": True, "pid": 7}).encode()
    data = chunk(1, struct.pack(">Q", len(message))) + chunk(2, b"note\n") + chunk(1, message)
    threading.Thread(target=send_slowly, args=(worker, data + chunk(1, b"tail"), 3)).start()
    stream = ExecStream(host, budget=1 << 16)
    deadline = time.monotonic() + 5
    (size,) = struct.unpack(">Q", stream.read_exact(8, deadline))
    assert json.loads(stream.read_exact(size, deadline)) == {"ready": True, "pid": 7}
    assert stream.read_exact(4, deadline) == b"tail"
    assert bytes(stream.stderr) == b"note\n"


def test_exec_stream_refuses_stdout_past_its_cap_as_it_arrives(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, worker = pair
    stop = threading.Event()

    def flood() -> None:
        block = chunk(1, b"x" * (1 << 16))
        while not stop.is_set():
            try:
                worker.sendall(block)
            except OSError:
                return

    threading.Thread(target=flood, daemon=True).start()
    stream = ExecStream(host, budget=1 << 20)
    try:
        with pytest.raises(WorkerProtocolError, match="more to its channel than asked for"):
            stream.read_exact(1 << 30, time.monotonic() + 10)
        assert len(stream.stdout) <= 1 << 20
    finally:
        stop.set()
        host.close()


def test_exec_stream_keeps_only_the_start_of_stderr(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    host, worker = pair
    data = chunk(2, b"e" * (STDERR_CAP * 4)) + chunk(1, b"ok")
    threading.Thread(target=send_slowly, args=(worker, data, 1 << 16)).start()
    stream = ExecStream(host, budget=1 << 16)
    assert stream.read_exact(2, time.monotonic() + 5) == b"ok"
    assert len(stream.stderr) == STDERR_CAP


def test_exec_stream_refuses_an_unknown_stream(pair: tuple[socket.socket, socket.socket]) -> None:
    host, worker = pair
    worker.sendall(chunk(3, b"??"))
    with pytest.raises(WorkerProtocolError, match="stream 3"):
        ExecStream(host, budget=1 << 16).read_exact(1, time.monotonic() + 5)


def test_exec_stream_has_a_deadline_and_an_end(pair: tuple[socket.socket, socket.socket]) -> None:
    host, worker = pair
    stream = ExecStream(host, budget=1 << 16)
    worker.sendall(chunk(1, b"ab"))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        stream.read_exact(3, time.monotonic() + 0.3)
    assert time.monotonic() - started < 2
    worker.close()
    with pytest.raises(WorkerGone):
        stream.read_exact(3, time.monotonic() + 5)


def test_fake_worker_prelude_is_in_step_with_the_real_protocol() -> None:
    # The fakes above speak the real worker's framing: an honest fake answers correctly.
    honest = misbehaving("send(reply(request) + b'ok')")
    box = FakeWorkerSandbox(honest)
    try:
        result = box.run("print('ignored by the fake')")
        assert result.ok and result.stdout == "ok", result
    finally:
        box.close()
