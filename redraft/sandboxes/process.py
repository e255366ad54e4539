"""The subprocess sandbox: rlimits and timeouts only. It does NOT isolate anything.

Code run here sees the host's files and network and runs as the calling user; only its
resources are bounded (CPU time, address space, processes, file size, open files, output) and
its environment cleared; memory is limited per process, not in total. Processes that leave
their session (a double fork and `setsid`) escape the timeout kill, and as root the process
limit does not hold (the kernel exempts root from it). Use it for trusted code, or where
neither bubblewrap nor Docker is available, and choose it by name: `sandbox="auto"` never
falls back to it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile

from redraft.sandboxes.base import Limits
from redraft.sandboxes.cgroups import Cgroup
from redraft.sandboxes.pool import LaunchSpec, PooledSandbox
from redraft.sandboxes.protocol import worker_argv


class SubprocessSandbox(PooledSandbox):
    """Runs code in a child process with limits, in a temporary directory. No isolation."""

    backend = "subprocess"
    _seccomp = False  # trusted code: nothing is taken away from it

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        pool_size: int | None = None,
        python: str | None = None,
    ) -> None:
        super().__init__(limits=limits, pool_size=pool_size)
        self.python = python or sys.executable

    def _launch(self, cgroup: Cgroup | None) -> LaunchSpec:
        work_dir = tempfile.mkdtemp(prefix="redraft-sandbox-")
        return LaunchSpec(
            argv=worker_argv(self.python, work_dir, own_pid_namespace=False, require_seccomp=False),
            work_dir=work_dir,
            cwd=work_dir,
            cleanup=lambda: shutil.rmtree(work_dir, ignore_errors=True),
        )
