"""A byte channel between the host and one run.

A run given a `Channel` reads what the host sends on its fd 3 and writes to the host on its fd
4. Where the worker was started with a pair of pipes of the host's (the bwrap and subprocess
backends), these are the run's fd 3 and 4 directly ("direct"): the worker lends them to each
channel run, the host empties them after it, and nothing of one run's is left for the next.
Elsewhere (Docker, whose exec stream is the only way in) the worker relays in frames of its own
("relay", see `_worker.py`). Either way nothing the run writes can pass for a worker's frame:
to the host, the run's bytes are data and nothing else. Another thread talks over the channel
while `run(..., channel=)` waits for the run's end.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import Any

from redraft.sandboxes.protocol import (
    HEADER,
    OVERFLOW_FLAG,
    RELAY_FLAG,
    Transport,
    WorkerProtocolError,
    encode_frame,
)

RELAY_CHUNK = 1 << 16
# What each relayed frame costs against the run's allowance, beyond its bytes: a run writing a
# byte at a time cannot make the host read twenty times what it allowed.
RELAY_FRAME_COST = 64
DEFAULT_CHANNEL_BYTES = 64 << 20


class ChannelClosed(EOFError):
    """The run's end of the channel is closed: it closed it, wrote too much, or ended."""


class Channel:
    """The host's end of a run's channel. Thread-safe: one thread sends, one receives.

    Bytes sent before the run starts are held and go right after its request. `receive_*`
    raise `ChannelClosed` once the run closed its end (or wrote more than `max_bytes`, which
    sets `overflow`), and after the run ended.
    """

    def __init__(self, max_bytes: int = DEFAULT_CHANNEL_BYTES) -> None:
        self.max_bytes = max_bytes
        self.overflow = False
        self._lock = threading.Lock()  # the sender's: writes, and the state
        self._read_lock = threading.Lock()  # the receiver's (direct): reads of the pipe
        self._ready = threading.Condition(threading.Lock())  # relayed data for the receiver
        self._incoming = bytearray()
        self._transport: Transport | None = None
        self._deadline = 0.0
        self._direct: tuple[int, int] | None = None  # (to the run, from the run)
        self._wake: tuple[int, int] | None = None  # wakes a direct sender or receiver at the end
        self._held: list[tuple[str, bytes]] = []
        self._received = 0
        self._state = "waiting"  # open, ended (the run's output closed), done (the run ended)

    # The receiving and sending thread

    def send(self, data: bytes) -> None:
        """Write `data` to the run's fd 3; ChannelClosed once the run has ended."""
        with self._lock:
            if self._state == "done":
                raise ChannelClosed("the run has ended")
            if self._transport is None:
                self._held.append(("data", bytes(data)))
                return
            self._send_data(data)

    def stop(self, grace_s: float = 0.0) -> None:
        """End the run: the worker kills it now, or in `grace_s` (at most 5 s) if it has not
        ended by itself by then. Nothing if it has ended already."""
        frame = encode_frame({"stop": True, "grace_s": grace_s})
        with self._lock:
            if self._state == "done":
                return
            if self._transport is None:
                self._held.append(("control", frame))
                return
            with contextlib.suppress(OSError, TimeoutError):
                self._transport.send(frame, self._deadline)

    def receive_exactly(self, size: int, deadline: float) -> bytes:
        """`size` bytes from the run, by `deadline` (TimeoutError) or ChannelClosed."""
        while True:
            if self._direct is not None:
                with self._read_lock:
                    while len(self._incoming) < size:
                        self._read_direct(deadline)
                    return self._take(size)
            with self._ready:
                if len(self._incoming) >= size:
                    return self._take(size)
            self._wait_relayed(deadline, size)

    def receive_available(self, deadline: float) -> bytes:
        """What the run has written and nobody has received yet (at least a byte)."""
        while True:
            if self._direct is not None:
                with self._read_lock:
                    if not self._incoming:
                        self._read_direct(deadline)
                    return self._take(len(self._incoming))
            with self._ready:
                if self._incoming:
                    return self._take(len(self._incoming))
            self._wait_relayed(deadline, 1)

    def _take(self, size: int) -> bytes:
        data = bytes(self._incoming[:size])
        del self._incoming[:size]
        return data

    def _wait_relayed(self, deadline: float, size: int) -> None:
        """Until the worker has relayed `size` bytes of the run's (or the run starts on
        direct pipes): ChannelClosed, or TimeoutError. A part of what is wanted, left by a
        run that then stops writing, waits like nothing."""
        with self._ready:
            if len(self._incoming) >= size or self._direct is not None:
                return
            if self._state in ("ended", "done"):
                raise ChannelClosed("the run's channel is closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._ready.wait(remaining)

    def _read_direct(self, deadline: float) -> None:
        """One read of the run's pipe, with the receiver's lock held."""
        wake = self._wake
        if self._state == "done" or wake is None or self._direct is None:
            raise ChannelClosed("the run has ended")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        source = self._direct[1]
        readable = select.select([source, wake[0]], [], [], remaining)[0]
        if wake[0] in readable or self._state == "done":
            raise ChannelClosed("the run has ended")
        if not readable:
            raise TimeoutError
        with contextlib.suppress(BlockingIOError):
            self._incoming += os.read(source, RELAY_CHUNK)

    def _send_data(self, data: bytes) -> None:
        """With the sender's lock held."""
        assert self._transport is not None
        if self._direct is None:
            frames = [
                HEADER.pack(RELAY_FLAG | len(part)) + part
                for part in (
                    data[start : start + RELAY_CHUNK] for start in range(0, len(data), RELAY_CHUNK)
                )
            ]
            try:
                self._transport.send(b"".join(frames), self._deadline)
            except (OSError, TimeoutError) as exc:
                raise ChannelClosed(f"the run's worker took no more input ({exc!r})") from None
            return
        assert self._wake is not None
        target, wake = self._direct[0], self._wake[0]
        view = memoryview(data)
        while view:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelClosed("the run took no more input before its time was up")
            readable, writable, _ = select.select([wake], [target], [], remaining)
            if readable or self._state == "done":
                raise ChannelClosed("the run has ended")
            if writable:
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(target, view) :]

    # The pool's side: the thread that sent the request and reads the reply

    def request_fields(self, *, direct: bool) -> dict[str, Any]:
        return {"channel": "direct" if direct else "relay", "channel_bytes": self.max_bytes}

    def allowance(self) -> int:
        """The most the worker may relay for this channel, frames and end included."""
        return self.max_bytes + 2 * (RELAY_FRAME_COST + HEADER.size) + RELAY_CHUNK

    def opened(
        self, transport: Transport, deadline: float, direct: tuple[int, int] | None = None
    ) -> None:
        """The request has gone (to a worker whose pipes are `direct`, if it lends them):
        what was held goes after it."""
        with self._lock:
            self._transport, self._deadline, self._direct = transport, deadline, direct
            if direct is not None:
                self._wake = os.pipe()
            if self._state == "waiting":
                self._state = "open"
            held, self._held = self._held, []
            with self._ready:
                self._ready.notify_all()  # a receiver waiting for the run to start
            # If this fails, the reply (or its absence) tells the run's fate.
            with contextlib.suppress(OSError, TimeoutError, ChannelClosed):
                for kind, data in held:
                    if kind == "data":
                        self._send_data(data)
                    else:
                        transport.send(data, deadline)

    def take_relay(self, header: int, transport: Transport, deadline: float) -> None:
        """A relay frame the worker sent (its header), and the bytes it announces."""
        size = header & ~(RELAY_FLAG | OVERFLOW_FLAG)
        if self._direct is not None or size > RELAY_CHUNK or (header & OVERFLOW_FLAG and size):
            raise WorkerProtocolError("the worker's relay frame is malformed")
        self._received += size + RELAY_FRAME_COST + HEADER.size
        if self._received > self.allowance():
            raise WorkerProtocolError("the worker relayed more than the channel allows")
        data = transport.read_exact(size, deadline) if size else b""
        with self._ready:
            if size == 0:
                self.overflow = self.overflow or bool(header & OVERFLOW_FLAG)
                if self._state in ("waiting", "open"):
                    self._state = "ended"
            else:
                self._incoming += data
            self._ready.notify_all()

    def finished(self, transport: Transport | None) -> None:
        """The run has ended: with its worker still in step (`transport`), tell the worker
        that the host sends nothing more for this run. Once this returns, no thread of the
        channel's reads or writes the worker's pipes again."""
        self._state = "done"
        if self._wake is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
        with self._lock, self._read_lock:
            if transport is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    transport.send(encode_frame({"end": True}), time.monotonic() + 5.0)
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None
        with self._ready:
            self._ready.notify_all()


def empty_pipe(fd: int) -> None:
    """Read away whatever a pipe holds (its writers gone), without waiting."""
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, RELAY_CHUNK):
            pass
