"""State channels whose checkpoints hold each value once.

LangGraph's default channels put every value of the state into every checkpoint, so a run
with large drafts copied its whole history at each step (a 5 MiB draft: +20 MiB a round).
These are `DeltaChannel`s: a write is stored once, in the checkpoint's writes, and a
channel's value is rebuilt from them when a run resumes. Reducers must give the same value
however the writes are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from langgraph._internal._typing import MISSING
from langgraph.channels.delta import DeltaChannel
from typing_extensions import Self

T = TypeVar("T")

# A full copy of the value only at LangGraph's own bound on replay length (5000 steps by
# default): a periodic snapshot would copy the whole history into one checkpoint.
_NO_SNAPSHOTS = 10**9


def _merged(current: dict[str, T], writes: Sequence[dict[str, T]]) -> dict[str, T]:
    merged = dict(current)
    for write in writes:
        merged.update(write)
    return merged


def _appended(current: list[T], writes: Sequence[list[T]]) -> list[T]:
    return [*current, *(item for write in writes for item in write)]


def _latest(current: object, writes: Sequence[object]) -> object:
    return writes[-1]


class _Latest(DeltaChannel[Any]):
    """The last value written, like LangGraph's `LastValue`, but stored once; it has no
    value until one is written (a `DeltaChannel` otherwise starts from `typ()`)."""

    def from_checkpoint(self, checkpoint: Any) -> Self:
        if checkpoint is MISSING or checkpoint is None:
            empty = self.__class__(
                self.reducer, self.typ, snapshot_frequency=self.snapshot_frequency
            )
            empty.key = self.key
            return empty
        return super().from_checkpoint(checkpoint)

    def update(self, values: Sequence[Any]) -> bool:
        if not values:
            return False
        self.value = values[-1]
        return True


def merged() -> DeltaChannel[Any]:
    """A dict channel: each write adds or replaces keys."""
    return DeltaChannel(_merged, dict, snapshot_frequency=_NO_SNAPSHOTS)


def appended() -> DeltaChannel[Any]:
    """A list channel: each write is a list appended to it."""
    return DeltaChannel(_appended, list, snapshot_frequency=_NO_SNAPSHOTS)


def latest() -> DeltaChannel[Any]:
    """A channel holding the last value written (the task, the result)."""
    return _Latest(_latest, object, snapshot_frequency=_NO_SNAPSHOTS)
