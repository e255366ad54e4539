"""Search/replace edit blocks: parsing them from a model's reply and applying them."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(
    r"<{5,9} ?SEARCH[^\n]*\n(?P<search>.*?)\n?={5,9}[^\n]*\n(?P<replace>.*?)\n?>{5,9} ?REPLACE",
    re.DOTALL,
)


@dataclass(frozen=True)
class Patch:
    search: str
    replace: str


class PatchError(ValueError):
    """A reply held no blocks, or a block's SEARCH text is not in the draft exactly once."""


def parse_patches(reply: str) -> list[Patch]:
    patches = [Patch(m.group("search"), m.group("replace")) for m in _BLOCK.finditer(reply)]
    if not patches:
        raise PatchError("the reply held no SEARCH/REPLACE blocks")
    return patches


def apply_patches(text: str, patches: list[Patch]) -> str:
    """Apply each patch in order; every SEARCH must match exactly one place."""
    for number, patch in enumerate(patches, start=1):
        text = _apply_one(text, patch, number)
    return text


def _apply_one(text: str, patch: Patch, number: int) -> str:
    if not patch.search.strip():
        raise PatchError(f"block {number} has an empty SEARCH")
    count = text.count(patch.search)
    if count == 1:
        return text.replace(patch.search, patch.replace, 1)
    if count > 1:
        raise PatchError(f"block {number}'s SEARCH matches {count} places; it must be unique")
    # Models often get indentation or trailing spaces slightly wrong: retry line by line,
    # ignoring surrounding whitespace, before giving up.
    return _apply_loose(text, patch, number)


def _apply_loose(text: str, patch: Patch, number: int) -> str:
    lines = text.split("\n")
    wanted = [line.strip() for line in patch.search.strip("\n").split("\n")]
    width = len(wanted)
    starts = [
        i
        for i in range(len(lines) - width + 1)
        if [line.strip() for line in lines[i : i + width]] == wanted
    ]
    if len(starts) != 1:
        found = "is not in the draft" if not starts else f"matches {len(starts)} places"
        raise PatchError(f"block {number}'s SEARCH {found}")
    start = starts[0]
    replacement = patch.replace.strip("\n").split("\n") if patch.replace.strip() else []
    return "\n".join(lines[:start] + replacement + lines[start + width :])
