"""The pytest judge runs in a process of its own; this carries its link to the solution.

Between the judge's process (`PipeLink`) and the critic's (`Bridge`, in front of a
`SandboxLink`), frames are a kind byte, a 4-byte length and the payload: D (data, either
way), R (the judge asks for a fresh solution process), S (the fresh one is there: everything
before S belonged to the old one), C (the solution's end closed; the payload says how).
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the judge's process imports this module without the sandboxes
    from redraft.agents.critics.judge.link import SandboxLink

HEADER = struct.Struct(">cI")
CHUNK = 1 << 16


def _write(fd: int, kind: bytes, payload: bytes = b"") -> None:
    data = memoryview(HEADER.pack(kind, len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


class PipeLink:
    """The judge process's end: a `remote.Link` over two pipes to the critic's process."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self._raw = bytearray()
        self._data = bytearray()
        self._closed: str | None = None

    def send(self, data: bytes) -> None:
        if self._closed is not None:
            raise EOFError(self._closed)
        try:
            _write(self.write_fd, b"D", data)
        except OSError as exc:
            raise EOFError(str(exc)) from None

    def receive_exactly(self, size: int, deadline: float) -> bytes:
        while len(self._data) < size:
            if self._closed is not None:
                raise EOFError(self._closed)
            kind, payload = self._frame(deadline)
            if kind == b"D":
                self._data += payload
            elif kind == b"C":
                self._closed = payload.decode(errors="replace")
        data = bytes(self._data[:size])
        del self._data[:size]
        return data

    def restart(self) -> None:
        _write(self.write_fd, b"R")
        while True:  # what the old process still sent is dropped
            kind, _ = self._frame(time.monotonic() + 120)
            if kind == b"S":
                break
        self._data.clear()
        self._closed = None

    def why_closed(self) -> str:
        return self._closed or "it is gone"

    def _frame(self, deadline: float) -> tuple[bytes, bytes]:
        while True:
            if len(self._raw) >= HEADER.size:
                kind, size = HEADER.unpack(self._raw[: HEADER.size])
                if len(self._raw) >= HEADER.size + size:
                    payload = bytes(self._raw[HEADER.size : HEADER.size + size])
                    del self._raw[: HEADER.size + size]
                    return kind, payload
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.read_fd], [], [], remaining)[0]:
                raise TimeoutError
            part = os.read(self.read_fd, CHUNK)
            if not part:
                raise EOFError("the critic is gone")
            self._raw += part


class Bridge:
    """The critic's end: relays between the judge process's pipes and the solution's run,
    and restarts the run when the judge asks."""

    def __init__(self, link: SandboxLink, read_fd: int, write_fd: int) -> None:
        self.link = link
        self.read_fd, self.write_fd = read_fd, write_fd
        self._lock = threading.Lock()  # writes to the judge
        self._restarted = threading.Condition()
        self._done = False
        self._threads = [
            threading.Thread(target=self._from_judge, name="redraft-judge-in", daemon=True),
            threading.Thread(target=self._to_judge, name="redraft-judge-out", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _send(self, kind: bytes, payload: bytes = b"") -> None:
        with self._lock:
            _write(self.write_fd, kind, payload)

    def _from_judge(self) -> None:
        raw = bytearray()
        try:
            while True:
                part = os.read(self.read_fd, CHUNK)
                if not part:
                    return
                raw += part
                while len(raw) >= HEADER.size:
                    kind, size = HEADER.unpack(raw[: HEADER.size])
                    if len(raw) < HEADER.size + size:
                        break
                    payload = bytes(raw[HEADER.size : HEADER.size + size])
                    del raw[: HEADER.size + size]
                    if kind == b"D":
                        # If the run is gone, the other thread tells the judge.
                        with contextlib.suppress(EOFError):  # ChannelClosed
                            self.link.send(payload)
                    elif kind == b"R":
                        with self._restarted:
                            self.link.restart()
                            self._restarted.notify_all()
                        self._send(b"S")
        except OSError:
            return
        finally:
            self.stop()

    def _to_judge(self) -> None:
        try:
            while not self._done:
                channel = self.link.channel
                try:
                    data = channel.receive_available(time.monotonic() + 0.5)
                except TimeoutError:
                    continue
                except EOFError:  # ChannelClosed
                    # Under the restart lock: a channel closed by a restart says nothing (the
                    # judge asked for it); a run that ended by itself is told, before any S.
                    with self._restarted:
                        if self.link.channel is channel and not self._done:
                            self._send(b"C", self.link.why_closed().encode())
                            while self.link.channel is channel and not self._done:
                                self._restarted.wait(0.5)
                    continue
                self._send(b"D", data)
        except OSError:
            return

    def stop(self) -> None:
        self._done = True
        with self._restarted:
            self._restarted.notify_all()

    def join(self, timeout_s: float) -> None:
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)
