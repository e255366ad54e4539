"""The system-call filter every run of an isolating sandbox starts under.

The worker (`_worker.py`) installs it in each run's process just before the code starts, and
never in itself: the worker must still be able to signal, wait for and clean up after the run.
The filter is compiled here, on the host, with libseccomp (through `pyseccomp`, the sandbox
extra), because the worker runs on the sandbox's own bare Python; it gets the compiled BPF
program as bytes and only hands it to the kernel.

What it denies (EPERM), and why:

- reaching another process: ptrace, reading or writing its memory, taking its file descriptors
  (`pidfd_getfd`), pidfds at all (a `/proc/<pid>` directory is one too);
- signals, resource limits, priorities and scheduling aimed at the worker, at pid 1, or at
  every process (-1); the run may still signal and adjust its own processes;
- state that would outlive the run: SysV shared memory, semaphores and message queues, POSIX
  message queues, kernel keyrings;
- new namespaces and mounts, and kernel interfaces with a record of exploits (bpf,
  userfaultfd, io_uring, perf events, modules, kexec);
- a child made a sibling of the run (`CLONE_PARENT`): it would be the worker's to reap;
- sockets of any family but local, IPv4, IPv6 and netlink (EAFNOSUPPORT): vsock, for one,
  is not confined by a network namespace; netlink for routes only (no host uevents, no
  generic netlink); IPv6 flow labels and AIO contexts, which are host-wide and outlive a run.

`clone3` answers ENOSYS, as container runtimes do: its flags are in memory where a filter
cannot read them, and the C library then falls back to `clone`, whose namespace flags are
denied. A system call of a foreign architecture (32-bit calls on a 64-bit kernel, x32) kills
the process.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import platform
import tempfile
from types import ModuleType
from typing import Any

from redraft.sandboxes.base import SandboxUnavailable

INSTALL_HINT = "pip install 'redraft[sandbox]'"
LIBRARY_HINT = "install libseccomp (apt-get install libseccomp2, or dnf install libseccomp)"

DENIED = (
    # Another process's memory, file descriptors or handle.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    "process_madvise",
    "kcmp",
    # State that outlives the run: the IPC namespace and the user's keyrings are the
    # sandbox's, not the run's.
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
    "add_key",
    "request_key",
    "keyctl",
    # New namespaces and mounts.
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # Kernel interfaces a test never needs, with a record of exploits.
    "bpf",
    "userfaultfd",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "iopl",
    "ioperm",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "open_by_handle_at",
)
# Calls whose first argument names the target process (a pid, or -pgid for kill).
AIMED_AT_A_PROCESS = (
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "prlimit64",
    "sched_setaffinity",
    "sched_setscheduler",
    "sched_setparam",
    "sched_setattr",
    "migrate_pages",
    "move_pages",
)
# Calls whose second argument is a thread of the first's thread group.
AIMED_AT_A_THREAD = ("tgkill", "rt_tgsigqueueinfo")
# setpriority(which, who, ...) and ioprio_set(which, who, ...): a process group or a whole uid
# would include the worker when it shares the run's uid.
BY_GROUP_OR_USER = {"setpriority": (1, 2), "ioprio_set": (2, 3)}  # PRIO_PGRP/USER, IOPRIO_WHO_*
CLONE_DENIED_FLAGS = (
    # A child of the run's parent (the worker) would be the worker's to reap, not the run's.
    0x00008000,  # CLONE_PARENT
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
# The socket families a run may open: local, IPv4, IPv6 (its own loopback only) and netlink
# (how a program learns its interfaces). Every other family up to the kernel's AF_MAX is
# refused; beyond that the kernel refuses by itself.
SOCKET_FAMILIES = frozenset({1, 2, 10, 16})  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
FAMILIES_UP_TO = 63
AF_NETLINK = 16
NETLINK_ROUTE = 0
SOL_IPV6 = 41
IPV6_FLOWLABEL_MGR = 32
# Where clone's flags are its first argument (s390 has them second).
CLONE_FLAGS_FIRST = ("x86_64", "aarch64", "arm64")
LOW_32_BITS = 0xFFFFFFFF


def _binding() -> ModuleType:
    try:
        return importlib.import_module("pyseccomp")
    except ImportError:
        raise SandboxUnavailable(
            f"isolating sandboxes filter system calls with libseccomp: {INSTALL_HINT}"
        ) from None
    except (OSError, RuntimeError) as exc:  # the binding loads libseccomp at import
        raise SandboxUnavailable(
            f"libseccomp could not be loaded ({exc}): {LIBRARY_HINT}"
        ) from None


def check() -> None:
    """Raise SandboxUnavailable, naming the fix, unless a filter can be compiled here."""
    syscall_filter(2)


@functools.lru_cache(maxsize=256)
def syscall_filter(worker_pid: int) -> bytes:
    """The BPF program for the runs of the worker with this pid (as the run sees it)."""
    seccomp = _binding()
    deny = seccomp.ERRNO(errno.EPERM)
    program = seccomp.SyscallFilter(seccomp.ALLOW)
    program.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)

    def add(name: str, action: int, *args: Any) -> None:
        if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
            raise SandboxUnavailable(
                f"libseccomp does not know the system call {name}: it is too old; "
                f"{LIBRARY_HINT} (2.5 or newer)"
            )
        program.add_rule(action, name, *args)

    def low32(index: int, value: int) -> Any:
        # pid_t and int arguments: the kernel reads only the low 32 bits, so the filter must
        # compare only those (a pid with bits set above them still names the same process).
        return seccomp.Arg(index, seccomp.MASKED_EQ, LOW_32_BITS, value & LOW_32_BITS)

    for name in DENIED:
        add(name, deny)
    protected = {worker_pid, 1}
    for name in AIMED_AT_A_PROCESS:
        targets = protected | {-1}
        if name in ("kill", "rt_sigqueueinfo"):
            targets |= {-pid for pid in protected}  # their process groups
        for pid in sorted(targets):
            add(name, deny, low32(0, pid))
    for name in AIMED_AT_A_THREAD:
        for pid in sorted(protected):
            add(name, deny, low32(1, pid))
    for name, which in BY_GROUP_OR_USER.items():
        for kind in which:
            add(name, deny, low32(0, kind))
        for pid in sorted(protected):
            add(name, deny, low32(1, pid))
    if platform.machine() in CLONE_FLAGS_FIRST:
        for flag in CLONE_DENIED_FLAGS:
            add("clone", deny, seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # Sockets of the families a network namespace isolates (and local ones) only: vsock,
    # for one, reaches the host or its hypervisor whatever the namespace.
    for family in range(FAMILIES_UP_TO + 1):
        if family not in SOCKET_FAMILIES:
            for name in ("socket", "socketpair"):
                add(name, seccomp.ERRNO(errno.EAFNOSUPPORT), low32(0, family))
    # Netlink for routes and interfaces only: its other protocols carry the host's device
    # events (uevents) or state that outlives the run (TCP metrics over generic netlink).
    add(
        "socket",
        seccomp.ERRNO(errno.EPROTONOSUPPORT),
        low32(0, AF_NETLINK),
        seccomp.Arg(2, seccomp.NE, NETLINK_ROUTE),
    )
    # IPv6 flow labels live on, host-wide, for minutes after their socket is gone.
    add("setsockopt", deny, low32(1, SOL_IPV6), low32(2, IPV6_FLOWLABEL_MGR))
    # Asynchronous I/O contexts come from one host-wide pool (fs.aio-max-nr).
    add("io_setup", seccomp.ERRNO(errno.ENOSYS))
    add("clone3", seccomp.ERRNO(errno.ENOSYS))
    # A binary tree, fewer checks per call; before libseccomp 2.5 a linear program instead,
    # with the same decisions.
    with contextlib.suppress(OSError):
        program.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    with tempfile.TemporaryFile() as exported:
        program.export_bpf(exported)
        exported.seek(0)
        return exported.read()
