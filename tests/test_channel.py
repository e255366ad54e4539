"""The host's end of a run's channel, relayed (as over Docker's exec stream): what the
receiver gets when the run writes part of what the judge waits for, then stops or ends."""

from __future__ import annotations

import threading
import time

import pytest

from redraft.sandboxes.channel import Channel, ChannelClosed
from redraft.sandboxes.protocol import RELAY_FLAG


class FakeTransport:
    """The worker's side as the channel sees it: relayed bytes to read, frames sent."""

    def __init__(self) -> None:
        self.pending_bytes = bytearray()
        self.sent: list[bytes] = []

    def send(self, data: bytes, deadline: float) -> None:
        self.sent.append(bytes(data))

    def read_exact(self, size: int, deadline: float) -> bytes:
        data = bytes(self.pending_bytes[:size])
        del self.pending_bytes[:size]
        return data


def opened_channel() -> tuple[Channel, FakeTransport]:
    channel = Channel(1 << 20)
    transport = FakeTransport()
    channel.opened(transport, time.monotonic() + 60)  # type: ignore[arg-type]
    return channel, transport


def relay(channel: Channel, transport: FakeTransport, data: bytes) -> None:
    transport.pending_bytes += data
    channel.take_relay(RELAY_FLAG | len(data), transport, time.monotonic() + 5)  # type: ignore[arg-type]


def receive_in_thread(channel: Channel, size: int, within_s: float) -> dict[str, object]:
    outcome: dict[str, object] = {}

    def receive() -> None:
        try:
            outcome["data"] = channel.receive_exactly(size, time.monotonic() + within_s)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_bytes_relayed_in_parts_arrive_whole() -> None:
    channel, transport = opened_channel()
    outcome = receive_in_thread(channel, 6, 10.0)
    relay(channel, transport, b"abc")
    time.sleep(0.05)
    relay(channel, transport, b"defg")
    thread = outcome["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(10)
    assert outcome.get("data") == b"abcdef"
    assert channel.receive_exactly(1, time.monotonic() + 1) == b"g"


def test_a_part_then_silence_times_out_by_the_deadline() -> None:
    """A run that writes 3 of the 8 bytes the judge waits for, then nothing: the receiver
    waits (it does not spin) and gives up at its deadline."""
    channel, transport = opened_channel()
    relay(channel, transport, b"abc")
    outcome = receive_in_thread(channel, 8, 0.5)
    thread = outcome["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(10)
    assert not thread.is_alive(), "the receiver never gave up"
    assert isinstance(outcome.get("error"), TimeoutError)


def test_a_part_then_the_runs_end_closes_the_channel() -> None:
    channel, transport = opened_channel()
    relay(channel, transport, b"abc")
    outcome = receive_in_thread(channel, 8, 30.0)
    time.sleep(0.05)
    channel.take_relay(RELAY_FLAG, transport, time.monotonic() + 5)  # type: ignore[arg-type]
    thread = outcome["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(10)
    assert isinstance(outcome.get("error"), ChannelClosed)


def test_after_the_run_ended_receiving_fails_at_once() -> None:
    channel, transport = opened_channel()
    relay(channel, transport, b"ab")
    channel.finished(None)
    with pytest.raises(ChannelClosed):
        channel.receive_exactly(4, time.monotonic() + 30)
