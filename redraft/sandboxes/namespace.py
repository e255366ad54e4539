"""The namespace sandbox: bubblewrap, the default on Linux.

Each worker is an interpreter in new user, PID, network, IPC, UTS and cgroup namespaces: no
network but its own loopback, the system directories and the interpreter bound read-only,
an empty in-memory working directory, no host process visible, no capability, no variable
of the host's environment. rlimits bound every process, a cgroup (where the host allows one)
bounds the sandbox as a whole, and at the end of each run every process the run started is
killed, however it detached itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from redraft.sandboxes.base import Limits, SandboxUnavailable
from redraft.sandboxes.pool import LaunchSpec, PooledSandbox
from redraft.sandboxes.protocol import SANDBOX_SCRATCH_DIRS as SCRATCH_DIRS
from redraft.sandboxes.protocol import SANDBOX_WORK_DIR as WORK_DIR
from redraft.sandboxes.protocol import worker_argv

# Run as this host uid when redraft runs as root: the kernel does not enforce the process
# limit for root, and root's files stay out of reach.
NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What a Python program commonly reads from /etc; nothing secret.
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/mime.types")
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap), or use sandbox='docker'"


class NamespaceSandbox(PooledSandbox):
    """Runs code in bubblewrap namespaces, from a warm pool of sandboxed interpreters.

    `python` is the interpreter inside (default: the system's python3, so only the standard
    library is importable); `ro_binds` adds host paths, read-only, at the same place inside
    (e.g. a virtual environment with the packages the code may import).
    """

    backend = "bwrap"
    _use_cgroup = True

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        pool_size: int | None = None,
        python: str | None = None,
        ro_binds: tuple[str, ...] = (),
        bwrap: str | None = None,
    ) -> None:
        super().__init__(limits=limits, pool_size=pool_size)
        self.bwrap = bwrap or shutil.which("bwrap")
        if self.bwrap is None:
            raise SandboxUnavailable(f"the bwrap sandbox needs the bwrap program: {INSTALL_HINT}")
        self.python = python or _system_python()
        self.ro_binds = tuple(str(Path(p).resolve()) for p in ro_binds)
        self.user = NOBODY if os.geteuid() == 0 else None
        self._checked = False

    def _launch(self) -> LaunchSpec:
        if not self._checked:
            self.check()
        return LaunchSpec(argv=self.command(), work_dir=WORK_DIR, user=self.user)

    def command(self) -> list[str]:
        """The bwrap command line of one worker."""
        argv = [
            self.bwrap or "bwrap",
            "--unshare-all",  # user, pid, net, ipc, uts, cgroup: loopback is the only interface
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            WORK_DIR,
            "--chdir",
            WORK_DIR,
        ]
        for directory in SYSTEM_DIRS:
            path = Path(directory)
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), directory]
            elif path.is_dir():
                argv += ["--ro-bind", directory, directory]
        for file in ETC_FILES:
            argv += ["--ro-bind-try", file, file]
        for extra in (*self._interpreter_dirs(), *self.ro_binds):
            argv += ["--ro-bind", extra, extra]
        # Last, once every mount point exists: nothing outside the scratch places is writable.
        argv += ["--remount-ro", "/"]
        return argv + worker_argv(
            self.python, WORK_DIR, own_pid_namespace=True, scratch=SCRATCH_DIRS
        )

    def _interpreter_dirs(self) -> list[str]:
        """The interpreter's installation, when it is not already under a system directory."""
        real = Path(self.python).resolve()
        if any(real.is_relative_to(d) for d in SYSTEM_DIRS):
            return []
        return [str(real.parent.parent)]

    def check(self) -> None:
        """One quick bwrap start, so a machine without namespaces gets a clear error."""
        probe = [
            self.bwrap or "bwrap",
            "--unshare-all",
            "--ro-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "true",
        ]
        try:
            done = subprocess.run(
                probe,
                capture_output=True,
                text=True,
                timeout=20,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user is not None else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bwrap could not run: {exc}; {INSTALL_HINT}") from exc
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise SandboxUnavailable(
                f"bwrap cannot create namespaces here ({reason}); enable unprivileged user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1) or use sandbox='docker'"
            )
        self._checked = True


def _system_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("python3")
    if found is None:
        raise SandboxUnavailable("no python3 to run in the sandbox: pass python=PATH")
    return found
