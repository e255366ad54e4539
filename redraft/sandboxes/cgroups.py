"""Memory and process limits for a whole sandbox through cgroups, where the host allows it.

rlimits bound each process; a cgroup bounds the sandbox as a whole (a fork-and-allocate bomb,
files written to its in-memory working directory) and lets the kernel's OOM killer end a run
that exceeds its memory, which the host then reports as `oom_killed`. Creating cgroups needs
root (or a delegated hierarchy); where that is not possible the sandbox runs on rlimits alone.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "redraft-sandboxes"
REMOVE_WITHIN_S = 5.0


class Cgroup:
    """One sandbox's cgroup: v1 (a `memory` and a `pids` hierarchy) or v2 (one unified)."""

    def __init__(self, memory_dir: Path, pids_dir: Path, *, v2: bool) -> None:
        self.memory_dir = memory_dir
        self.pids_dir = pids_dir
        self.v2 = v2

    @classmethod
    def create(cls) -> Cgroup | None:
        """A new cgroup, or None where this process may not make one."""
        if os.geteuid() != 0:
            return None
        name = uuid.uuid4().hex[:12]
        try:
            if (ROOT / "memory" / "memory.limit_in_bytes").exists() and (ROOT / "pids").is_dir():
                memory_dir = ROOT / "memory" / GROUP / name
                pids_dir = ROOT / "pids" / GROUP / name
                memory_dir.mkdir(parents=True)
                pids_dir.mkdir(parents=True)
                return cls(memory_dir, pids_dir, v2=False)
            if (ROOT / "cgroup.controllers").exists():
                parent = ROOT / GROUP
                parent.mkdir(exist_ok=True)
                for scope in (ROOT, parent):
                    (scope / "cgroup.subtree_control").write_text("+memory +pids")
                directory = parent / name
                directory.mkdir()
                return cls(directory, directory, v2=True)
        except OSError:
            return None
        return None

    def limit(self, *, memory_bytes: int, processes: int) -> None:
        if self.v2:
            (self.memory_dir / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):  # no swap configured: nothing to limit
                (self.memory_dir / "memory.swap.max").write_text("0")
        else:
            # v1 keeps memory <= memory+swap at every step: raise memsw first, lower it last.
            memory = self.memory_dir / "memory.limit_in_bytes"
            memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
            steps = [memory, memsw]
            if memory_bytes > int(memory.read_text()):
                steps.reverse()
            for step in steps:
                if step is memsw and not memsw.exists():
                    continue  # swap accounting is off: memory alone is the limit
                step.write_text(str(memory_bytes))
            # v1 accounts a cgroup's TCP buffers only once they have a limit of their own (v2
            # always does). It is a soft one (loopback traffic is charged past it, under
            # pressure), but it cuts what a run can park in unread connections by two thirds.
            with contextlib.suppress(OSError):
                (self.memory_dir / "memory.kmem.tcp.limit_in_bytes").write_text(str(memory_bytes))
        (self.pids_dir / "pids.max").write_text(str(processes))

    def attach(self, pids: Iterable[int]) -> None:
        for pid in pids:
            for directory in {self.memory_dir, self.pids_dir}:
                with contextlib.suppress(ProcessLookupError):
                    (directory / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup so far."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            lines = (self.memory_dir / name).read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        """Delete the cgroup once its processes are gone (they are being killed: that may
        take a while for a process that was holding a lot of memory)."""
        for directory in {self.memory_dir, self.pids_dir}:
            deadline = time.monotonic() + REMOVE_WITHIN_S
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, read from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(child) for child in children)
    return found
