"""A byte channel between the host and one run, relayed by the run's worker.

A run given a `Channel` reads what the host sends on its fd 3 and writes to the host on its fd
4. The worker relays both ways in frames of its own (see `_worker.py`), so nothing the run
writes can pass for a worker's frame: to the host, the run's bytes are data and nothing else.
Another thread talks over the channel while `run(..., channel=)` waits for the run's end.
"""

from __future__ import annotations

import contextlib
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

    Bytes sent before the run starts are held and go right after its request. `receive`
    raises `ChannelClosed` once the run closed its end (or wrote more than `max_bytes`, which
    sets `overflow`), and after the run ended.
    """

    def __init__(self, max_bytes: int = DEFAULT_CHANNEL_BYTES) -> None:
        self.max_bytes = max_bytes
        self.overflow = False
        self._lock = threading.Lock()  # the transport's writer, and the state
        self._ready = threading.Condition(threading.Lock())  # data for the receiver
        self._incoming = bytearray()
        self._transport: Transport | None = None
        self._deadline = 0.0
        self._held: list[bytes] = []
        self._received = 0
        self._state = "waiting"  # open, ended (the run's output closed), done (the run ended)

    # The receiving and sending thread

    def send(self, data: bytes) -> None:
        """Write `data` to the run's fd 3; ChannelClosed once the run has ended."""
        self._write(
            [
                HEADER.pack(RELAY_FLAG | len(part)) + part
                for part in (
                    data[start : start + RELAY_CHUNK] for start in range(0, len(data), RELAY_CHUNK)
                )
            ]
        )

    def close_input(self) -> None:
        """The run reads end-of-file on fd 3 once it has read what was sent."""
        self._write([encode_frame({"close": True})])

    def stop(self) -> None:
        """End the run now: the worker kills it. Nothing if it has ended already."""
        with contextlib.suppress(ChannelClosed):
            self._write([encode_frame({"stop": True})])

    def receive_exactly(self, size: int, deadline: float) -> bytes:
        """`size` bytes from the run, by `deadline` (TimeoutError) or ChannelClosed."""
        with self._ready:
            while len(self._incoming) < size:
                if self._state in ("ended", "done"):
                    raise ChannelClosed("the run's channel is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._ready.wait(remaining)
            data = bytes(self._incoming[:size])
            del self._incoming[:size]
            return data

    def receive_available(self, deadline: float) -> bytes:
        """What the run has written and nobody has received yet (at least a byte)."""
        with self._ready:
            while not self._incoming:
                if self._state in ("ended", "done"):
                    raise ChannelClosed("the run's channel is closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._ready.wait(remaining)
            data = bytes(self._incoming)
            self._incoming.clear()
            return data

    @property
    def closed(self) -> bool:
        """The run's end is closed and everything it wrote has been received."""
        with self._ready:
            return self._state in ("ended", "done") and not self._incoming

    def _write(self, frames: list[bytes]) -> None:
        with self._lock:
            if self._state == "done":
                raise ChannelClosed("the run has ended")
            if self._transport is None:
                self._held.extend(frames)
                return
            try:
                self._transport.send(b"".join(frames), self._deadline)
            except (OSError, TimeoutError) as exc:
                raise ChannelClosed(f"the run's worker took no more input ({exc!r})") from None

    # The pool's side: the thread that sent the request and reads the reply

    def request_fields(self) -> dict[str, Any]:
        return {"channel": True, "channel_bytes": self.max_bytes}

    def allowance(self) -> int:
        """The most the worker may send for this channel, frames and end included."""
        return self.max_bytes + 2 * (RELAY_FRAME_COST + HEADER.size) + RELAY_CHUNK

    def opened(self, transport: Transport, deadline: float) -> None:
        """The request has gone: what was held goes after it."""
        with self._lock:
            self._transport, self._deadline = transport, deadline
            if self._state == "waiting":
                self._state = "open"
            held, self._held = self._held, []
            if held and self._state != "done":
                # If this fails, the reply (or its absence) tells the run's fate.
                with contextlib.suppress(OSError, TimeoutError):
                    transport.send(b"".join(held), deadline)

    def take_relay(self, header: int, transport: Transport, deadline: float) -> None:
        """A relay frame the worker sent (its header), and the bytes it announces."""
        size = header & ~(RELAY_FLAG | OVERFLOW_FLAG)
        if size > RELAY_CHUNK or (header & OVERFLOW_FLAG and size):
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
        that the host sends nothing more for this run."""
        with self._lock:
            self._state = "done"
            if transport is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    transport.send(encode_frame({"end": True}), time.monotonic() + 5.0)
        with self._ready:
            self._ready.notify_all()
