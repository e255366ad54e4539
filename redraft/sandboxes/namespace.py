"""The namespace sandbox: bubblewrap, the default on Linux.

Each worker is an interpreter in new PID, network, IPC, UTS and cgroup namespaces (and a user
namespace unless root): no network but its own loopback, the system directories and the
interpreter bound read-only, in-memory working and scratch directories of bounded size, a
read-only /dev (without terminals when not root), no host process visible, no variable of the
host's environment. rlimits bound
every process, a cgroup (where the host allows one) bounds the sandbox as a whole, every run
starts under a system-call filter, and at the end of each run every process the run started
is killed, however it detached itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from redraft.sandboxes import seccomp
from redraft.sandboxes.base import Limits, SandboxUnavailable
from redraft.sandboxes.cgroups import Cgroup
from redraft.sandboxes.pool import LaunchSpec, PooledSandbox
from redraft.sandboxes.protocol import RUN_UID, worker_argv
from redraft.sandboxes.protocol import SANDBOX_SCRATCH_DIRS as SCRATCH_DIRS
from redraft.sandboxes.protocol import SANDBOX_WORK_DIR as WORK_DIR

# Run as this host uid when redraft runs as root but has no cgroup to give the sandbox: the
# kernel does not enforce the process limit for root, and root's files stay out of reach.
NOBODY = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What a Python program commonly reads from /etc; nothing secret.
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives", "/etc/mime.types")
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap), or use sandbox='docker'"
NAMESPACES = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts")
DEVICE_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEVICE_LINKS = {
    "/dev/fd": "/proc/self/fd",
    "/dev/stdin": "/proc/self/fd/0",
    "/dev/stdout": "/proc/self/fd/1",
    "/dev/stderr": "/proc/self/fd/2",
}


class NamespaceSandbox(PooledSandbox):
    """Runs code in bubblewrap namespaces, from a warm pool of sandboxed interpreters.

    `python` is the interpreter inside (default: the system's python3, so only the standard
    library is importable); `ro_binds` adds host paths, read-only, at the same place inside
    (e.g. a virtual environment with the packages the code may import).

    Run by root with a cgroup for the sandbox, the worker is root in the sandbox with only the
    capabilities to drop a run's, and each run has a uid of its own (nobody): the kernel then
    keeps the run away from the worker whatever the system-call filter allows. Otherwise
    (not root) the worker and the run share the caller's uid in a user namespace, and the
    worker's non-dumpability and the filter keep them apart.
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

    def _ready(self) -> None:
        if not self._checked:
            self.check()

    def _launch(self, cgroup: Cgroup | None) -> LaunchSpec:
        # Root with a cgroup: the worker stays root (capabilities to change uid only) and
        # runs get a uid of their own. The cgroup bounds the processes of that shared uid.
        separate_uid = self.user is not None and cgroup is not None
        return LaunchSpec(
            argv=self.command(separate_uid=separate_uid),
            work_dir=WORK_DIR,
            user=None if separate_uid else self.user,
        )

    def command(self, *, separate_uid: bool = False) -> list[str]:
        """The bwrap command line of one worker."""
        argv = [self.bwrap or "bwrap", *NAMESPACES, "--unshare-cgroup-try"]
        # The worker keeps what it needs to drop a run to its own uid (root only); until it
        # has turned TIME_WAIT off in its network namespace and emptied its bounding set, it
        # also has CAP_NET_ADMIN and CAP_SETPCAP there. A run has none of them.
        kept = ("CAP_SETUID", "CAP_SETGID") if separate_uid else ()
        argv += [] if separate_uid else ["--unshare-user"]
        argv += ["--cap-drop", "ALL"]
        for capability in (*kept, "CAP_SETPCAP", "CAP_NET_ADMIN"):
            argv += ["--cap-add", capability]
        size = str(self.limits.disk_mb << 20)
        argv += [
            # The worker is pid 1: no bwrap init beside it for a run to take over, and what
            # the run leaves behind is reparented to the worker, which reaps it.
            "--as-pid-1",
            "--new-session",
            "--hostname",
            "sandbox",
            "--proc",
            "/proc",
            *(("--dev", "/dev") if separate_uid else _device_nodes()),
            # Every writable place is an in-memory file system of bounded size.
            *("--size", size, "--perms", "1777", "--tmpfs", "/dev/shm"),
            *("--size", size, "--perms", "1777", "--tmpfs", "/tmp"),
            *("--size", size, "--perms", "1777", "--tmpfs", WORK_DIR),
            # /dev itself (its nodes) is not one of them.
            "--remount-ro",
            "/dev",
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
            self.python,
            WORK_DIR,
            own_pid_namespace=True,
            scratch=SCRATCH_DIRS,
            run_uid=RUN_UID if separate_uid else None,
        )

    def _interpreter_dirs(self) -> list[str]:
        """The interpreter's installation, when it is not already under a system directory."""
        real = Path(self.python).resolve()
        if any(real.is_relative_to(d) for d in SYSTEM_DIRS):
            return []
        return [str(real.parent.parent)]

    def check(self) -> None:
        """One quick bwrap start and the filter compiled, so a machine that cannot run the
        sandbox gets a clear error naming the fix."""
        seccomp.check()
        # Root runs bwrap itself (no user namespace needed); anyone else needs one.
        namespaces = NAMESPACES if self.user is not None else ("--unshare-all",)
        probe = [
            self.bwrap or "bwrap",
            *namespaces,
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


def _device_nodes() -> list[str]:
    """/dev without bwrap's `--dev`: as anyone but root, `--dev` nests a second user namespace
    in which the caller's uid owns the sandbox's namespaces, and with them the IPC settings
    and the network namespace's administration. The usual nodes, no terminals."""
    argv = ["--tmpfs", "/dev"]
    for node in DEVICE_NODES:
        argv += ["--dev-bind", node, node]
    for name, target in DEVICE_LINKS.items():
        argv += ["--symlink", target, name]
    return argv


def _system_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("python3")
    if found is None:
        raise SandboxUnavailable("no python3 to run in the sandbox: pass python=PATH")
    return found
