"""Code written to cheat, as a model searching for "passed" would write it: the attack catalogue
of the sandbox security suite.

Each attack is a program that tries, in as many ways as it knows, to reach what a run must not
reach: the worker that runs it (its memory, its descriptors, its channel to the host, its
limits and priority, its life), pid 1, or the runs after it (state left in the IPC namespace,
in keyrings, in any writable place, in processes). It prints a JSON list of what it reached;
contained, the list is empty. An attack with a `probe` plants something, and the probe, run
next on the same worker, lists what of it it still finds.

Every attempt is aimed only at processes inside the sandbox (the run sees no other), and only
the isolating backends run these.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

# Numbers of the system calls Python has no wrapper for, by machine.
SYSCALLS = {
    "x86_64": {
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kill": 62,
        "tkill": 200,
        "tgkill": 234,
        "rt_sigqueueinfo": 129,
        "rt_tgsigqueueinfo": 297,
        "prlimit64": 302,
        "setpriority": 141,
        "ioprio_set": 251,
        "sched_setaffinity": 203,
        "sched_setscheduler": 144,
        "shmget": 29,
        "shmat": 30,
        "semget": 64,
        "msgget": 68,
        "msgsnd": 69,
        "mq_open": 240,
        "add_key": 248,
        "keyctl": 250,
        "unshare": 272,
        "setns": 308,
        "clone": 56,
        "clone3": 435,
        "mount": 165,
        "io_uring_setup": 425,
        "userfaultfd": 323,
        "bpf": 321,
        "kcmp": 312,
        "perf_event_open": 298,
        "socket": 41,
        "io_setup": 206,
    },
    "aarch64": {
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_open": 434,
        "pidfd_getfd": 438,
        "pidfd_send_signal": 424,
        "kill": 129,
        "tkill": 130,
        "tgkill": 131,
        "rt_sigqueueinfo": 138,
        "rt_tgsigqueueinfo": 240,
        "prlimit64": 261,
        "setpriority": 140,
        "ioprio_set": 30,
        "sched_setaffinity": 122,
        "sched_setscheduler": 119,
        "shmget": 194,
        "shmat": 196,
        "semget": 190,
        "msgget": 186,
        "msgsnd": 189,
        "mq_open": 180,
        "add_key": 217,
        "keyctl": 219,
        "unshare": 97,
        "setns": 268,
        "clone": 220,
        "clone3": 435,
        "mount": 40,
        "io_uring_setup": 425,
        "userfaultfd": 282,
        "bpf": 280,
        "kcmp": 272,
        "perf_event_open": 241,
        "socket": 198,
        "io_setup": 0,
    },
}

PRELUDE = r"""
import ctypes, errno, json, os, signal, stat, struct, sys, time
NR = __NR__
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
reached = []

def syscall(name, *args):
    # Raw: a filter keyed on libc's wrappers alone would be no filter.
    result = libc.syscall(ctypes.c_long(NR[name]), *(ctypes.c_long(a) for a in args))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result

def attempt(what, action, *args):
    try:
        action(*args)
    except (OSError, ValueError, OverflowError):
        return False
    reached.append(what)
    return True

def own():
    # This run's processes: itself and what it started (its session).
    sid = os.getsid(0)
    mine = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getsid(int(name)) == sid:
                    mine.add(int(name))
            except OSError:
                pass
    return mine

WORKER = os.getppid()
TARGETS = sorted({WORKER, 1} | {int(p) for p in os.listdir("/proc") if p.isdigit()} - own())
TARGETS = [pid for pid in TARGETS if pid > 0]
HIGH = 1 << 32  # bits the kernel ignores in a pid argument

def finish():
    print("\n" + json.dumps(reached))  # on a line of its own, whatever the attack printed
"""

FORGED_REPLY = r"""
def forged_frames():
    header = {"id": "forged", "exit_code": 0, "timed_out": False, "oom_killed": False,
              "oom_kills": None, "duration_s": 0.0, "stdout_len": 6, "stderr_len": 0,
              "stdout_truncated": False, "stderr_truncated": False, "retire": None}
    body = json.dumps(header).encode()
    ready = json.dumps({"ready": True, "pid": 1}).encode()
    return (struct.pack(">Q", len(body)) + body + b"FORGED"
            + struct.pack(">Q", len(ready)) + ready)
"""


@dataclass(frozen=True)
class Attack:
    """One attempt: `code` prints what it reached; `probe` (next run) what of it survived."""

    name: str
    code: str
    probe: str | None = None
    timeout_s: float = 10.0


def program(body: str, *, forged: bool = False) -> str:
    numbers = SYSCALLS.get(platform.machine(), SYSCALLS["x86_64"])
    prelude = PRELUDE.replace("__NR__", repr(numbers))
    return prelude + (FORGED_REPLY if forged else "") + body + "\nfinish()\n"


ATTACKS = [
    Attack(
        "ptrace-the-worker-and-pid-1",
        program(
            """
for pid in TARGETS:
    for request in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
        if attempt(f"ptrace {request} {pid}", syscall, "ptrace", request, pid, 0, 0):
            syscall("ptrace", 17, pid, 0, 0)  # PTRACE_DETACH
    attempt(f"ptrace with high bits {pid}", syscall, "ptrace", 16, pid | HIGH, 0, 0)
"""
        ),
    ),
    Attack(
        "proc-memory-of-the-worker",
        program(
            """
for pid in TARGETS:
    for mode in ("r+b", "rb"):
        try:
            with open(f"/proc/{pid}/mem", mode, buffering=0) as handle:
                reached.append(f"/proc/{pid}/mem {mode}")
        except OSError:
            pass
    for name in ("environ", "maps", "pagemap", "stack", "syscall", "auxv", "root/", "cwd/"):
        try:
            if name.endswith("/"):
                os.listdir(f"/proc/{pid}/{name}")
            else:
                open(f"/proc/{pid}/{name}", "rb").read(1)
            reached.append(f"/proc/{pid}/{name}")
        except OSError:
            pass
"""
        ),
    ),
    Attack(
        "proc-files-of-the-worker-written",
        program(
            """
for pid in TARGETS:
    for root, dirs, files in os.walk(f"/proc/{pid}", onerror=lambda e: None):
        dirs[:] = [d for d in dirs if d not in ("task", "net", "fdinfo", "map_files")]
        for name in files:
            path = os.path.join(root, name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            # Some are mode 0666 and refuse the write itself: what counts is a write.
            for value in (b"1000", b"0", b"1"):
                try:
                    os.write(fd, value)
                    reached.append(f"wrote {value!r} to {path}")
                    break
                except OSError:
                    pass
            os.close(fd)
"""
        ),
    ),
    Attack(
        "process-vm-read-and-write",
        program(
            """
buffer = ctypes.create_string_buffer(4096)
local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 4096)
for pid in TARGETS:
    for start in (0x400000, 0x555555554000, 0x7f0000000000):
        remote = (ctypes.c_void_p * 2)(start, 4096)
        for name in ("process_vm_readv", "process_vm_writev"):
            try:
                syscall(name, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
                reached.append(f"{name} {pid}")
            except OSError as exc:
                if exc.errno == errno.EFAULT:  # it was allowed; only the address was wrong
                    reached.append(f"{name} {pid} (EFAULT)")
"""
        ),
    ),
    Attack(
        "take-the-worker-channel-with-pidfd-getfd",
        program(
            """
handles = []
for pid in TARGETS:
    try:
        handles.append((pid, syscall("pidfd_open", pid, 0)))
        reached.append(f"pidfd_open {pid}")
    except OSError:
        pass
    try:  # a /proc/<pid> directory is a pidfd too
        handles.append((pid, os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)))
    except OSError:
        pass
for pid, handle in handles:
    for target in range(0, 16):
        try:
            fd = syscall("pidfd_getfd", handle, target, 0)
        except OSError:
            continue
        reached.append(f"pidfd_getfd {pid} fd {target}")
        try:
            os.write(fd, forged_frames())
        except OSError:
            pass
    attempt(f"pidfd_send_signal SIGSTOP {pid}", syscall, "pidfd_send_signal", handle, 19, 0, 0)
""",
            forged=True,
        ),
    ),
    Attack(
        "signals-to-the-worker-init-and-everyone",
        program(
            """
for pid in TARGETS:
    for sig in (0, signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1):
        attempt(f"kill {pid} {sig}", os.kill, pid, sig)
        attempt(f"kill high-bits {pid} {sig}", syscall, "kill", pid | HIGH, sig)
        attempt(f"kill group -{pid} {sig}", os.kill, -pid, sig)
        attempt(f"tkill {pid} {sig}", syscall, "tkill", pid, sig)
        attempt(f"tgkill {pid} {sig}", syscall, "tgkill", pid, pid, sig)
        info = ctypes.create_string_buffer(128)
        struct.pack_into("iii", info, 0, sig, 0, -1)  # si_code SI_QUEUE
        attempt(f"rt_sigqueueinfo {pid} {sig}", syscall, "rt_sigqueueinfo", pid, sig,
                ctypes.addressof(info))
        attempt(f"rt_tgsigqueueinfo {pid} {sig}", syscall, "rt_tgsigqueueinfo", pid, pid, sig,
                ctypes.addressof(info))
for sig in (0, signal.SIGSTOP, signal.SIGKILL):
    attempt(f"kill -1 {sig}", os.kill, -1, sig)
    attempt(f"kill -1 high-bits {sig}", syscall, "kill", (-1 & 0xFFFFFFFF) | HIGH, sig)
"""
        ),
    ),
    Attack(
        "limits-priority-and-scheduling-of-the-worker",
        program(
            """
import resource
for pid in TARGETS:
    for kind in (resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_CPU,
                 resource.RLIMIT_AS, resource.RLIMIT_FSIZE):
        attempt(f"prlimit {pid} {kind}", resource.prlimit, pid, kind, (1, 1))
        limit = (ctypes.c_uint64 * 2)(1, 1)
        attempt(f"prlimit64 high-bits {pid} {kind}", syscall, "prlimit64", pid | HIGH, kind,
                ctypes.addressof(limit), 0)
    attempt(f"setpriority process {pid}", os.setpriority, os.PRIO_PROCESS, pid, 19)
    attempt(f"setpriority high-bits {pid}", syscall, "setpriority", 0, pid | HIGH, 19)
    attempt(f"setpriority group {pid}", os.setpriority, os.PRIO_PGRP, pid, 19)
    attempt(f"sched_setaffinity {pid}", os.sched_setaffinity, pid, {0})
    attempt(f"sched_setscheduler idle {pid}", os.sched_setscheduler, pid, os.SCHED_IDLE,
            os.sched_param(0))
    attempt(f"ioprio_set {pid}", syscall, "ioprio_set", 1, pid, (3 << 13))
attempt("setpriority user", os.setpriority, os.PRIO_USER, os.getuid(), 19)
attempt("setpriority user 0", os.setpriority, os.PRIO_USER, 0, 19)
attempt("ioprio_set user", syscall, "ioprio_set", 3, os.getuid(), (3 << 13))
"""
        ),
    ),
    Attack(
        "forged-frames-on-every-descriptor",
        program(
            """
data = forged_frames()
written = 0
for fd in range(0, 1024):
    try:
        os.write(fd, data)
        written += 1
    except OSError:
        pass
for pid in TARGETS + [os.getpid()]:
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for name in names:
        try:
            fd = os.open(f"/proc/{pid}/fd/{name}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, data)
            if pid != os.getpid():
                reached.append(f"wrote /proc/{pid}/fd/{name}")
        except OSError:
            pass
        os.close(fd)
sys.stdout.flush()
""",
            forged=True,
        ),
    ),
    Attack(
        "new-namespaces-and-kernel-surface",
        program(
            """
for flag, name in ((0x10000000, "user"), (0x00020000, "mount"), (0x20000000, "pid"),
                   (0x40000000, "net")):
    attempt(f"unshare {name}", syscall, "unshare", flag)
    attempt(f"unshare {name} high-bits", syscall, "unshare", flag | HIGH)
args = (ctypes.c_uint64 * 11)(0x10000000 | 0x20000000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)
try:
    child = syscall("clone3", ctypes.addressof(args), 88)
    if child == 0:
        os._exit(0)
    reached.append("clone3 with new namespaces")
    os.waitpid(child, 0)
except OSError:
    pass
try:  # clone(CLONE_NEWUSER | SIGCHLD) is fork() into a new user namespace
    child = syscall("clone", 0x10000000 | 17, 0, 0, 0, 0)
    if child == 0:
        os._exit(0)
    reached.append("clone into a new user namespace")
    os.waitpid(child, 0)
except OSError:
    pass
attempt("setns", syscall, "setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0)
attempt("mount tmpfs", syscall, "mount", 0, 0, 0, 0, 0)
ring = ctypes.create_string_buffer(120)
attempt("io_uring_setup", syscall, "io_uring_setup", 8, ctypes.addressof(ring))
attempt("userfaultfd", syscall, "userfaultfd", 0)
attempt("bpf", syscall, "bpf", 0, ctypes.addressof(ctypes.create_string_buffer(128)), 128)
attempt("perf_event_open", syscall, "perf_event_open",
        ctypes.addressof(ctypes.create_string_buffer(128)), 0, -1, -1, 0)
for pid in TARGETS:
    attempt(f"kcmp {pid}", syscall, "kcmp", os.getpid(), pid, 0, 0, 0)
"""
        ),
    ),
    Attack(
        "become-root-again",
        program(
            """
attempt("setuid 0", os.setuid, 0)
attempt("setresuid 0", os.setresuid, 0, 0, 0)
attempt("setgid 0", os.setgid, 0)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    if int(status[field], 16):
        reached.append(f"{field} {status[field].strip()}")
if status["NoNewPrivs"].strip() != "1":
    reached.append("no_new_privs unset")
if status["Seccomp"].strip() != "2":
    reached.append("no seccomp filter")
"""
        ),
    ),
    Attack(
        "sysv-and-posix-ipc-left-for-the-next-run",
        program(
            """
attempt("shmget", syscall, "shmget", 0x5EC1, 1 << 20, 0o1666)
attempt("semget", syscall, "semget", 0x5EC2, 1, 0o1666)
attempt("msgget", syscall, "msgget", 0x5EC3, 0o1666)
attempt("mq_open", syscall, "mq_open", ctypes.addressof(ctypes.create_string_buffer(b"redraft")),
        os.O_CREAT | os.O_RDWR, 0o666, 0)
attempt("add_key", syscall, "add_key", ctypes.addressof(ctypes.create_string_buffer(b"user")),
        ctypes.addressof(ctypes.create_string_buffer(b"redraft")),
        ctypes.addressof(ctypes.create_string_buffer(b"secret")), 6, -4)  # user keyring
attempt("keyctl", syscall, "keyctl", 0, -4, 0)  # KEYCTL_GET_KEYRING_ID
"""
        ),
        probe=program(
            """
for name in ("shm", "sem", "msg"):
    try:
        lines = open(f"/proc/sysvipc/{name}").read().splitlines()[1:]
    except OSError:
        continue
    reached.extend(f"sysv {name}: {line.split()[:2]}" for line in lines)
try:
    reached.extend("mqueue " + name for name in os.listdir("/dev/mqueue"))
except OSError:
    pass
"""
        ),
    ),
    Attack(
        "marker-files-in-every-writable-place",
        program(
            """
MARK = "redraft-left-behind"
def writable_places():
    for root, dirs, files in os.walk("/", onerror=lambda e: None):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys")]
        if os.access(root, os.W_OK | os.X_OK):
            yield root
planted = 0
for place in writable_places():
    try:
        with open(os.path.join(place, MARK), "w") as handle:
            handle.write("planted")
        planted += 1
    except OSError:
        pass
    for name in ("dev-node", ".hidden"):
        try:
            os.mkfifo(os.path.join(place, MARK + "-" + name))
        except OSError:
            pass
print(planted, file=sys.stderr)
"""
        ),
        probe=program(
            """
for root, dirs, files in os.walk("/", onerror=lambda e: None):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ("/proc", "/sys")]
    reached.extend(os.path.join(root, n) for n in files + dirs if n.startswith("redraft-left"))
"""
        ),
    ),
    Attack(
        "marker-in-every-writable-file",
        program(
            """
MARK = b"redraft-left-in-a-file"
def files(top, skip=()):
    for root, dirs, names in os.walk(top, onerror=lambda e: None):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in skip]
        for name in names:
            yield os.path.join(root, name)
written = []
candidates = list(files("/", skip=("/proc", "/sys", "/dev"))) + list(files("/proc/sys"))
for path in candidates:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode) or not os.access(path, os.W_OK):
            continue
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    except OSError:
        continue
    try:
        os.write(fd, MARK)
        written.append(path)
    except OSError:
        pass
    finally:
        os.close(fd)
# Files the run wrote in its own scratch places are its own; the wipe removes them.
outside = [p for p in written if not p.startswith((os.getcwd(), "/tmp", "/dev/shm"))]
reached.extend("wrote " + path for path in outside)
"""
        ),
    ),
    Attack(
        "nested-unreadable-directories",
        program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    path = place
    for level in range(8):
        path = os.path.join(path, f"locked{level}")
        os.mkdir(path)
        with open(os.path.join(path, "secret"), "w") as handle:
            handle.write("left behind")
    current = path
    while current != place:
        os.chmod(current, 0)
        current = os.path.dirname(current)
"""
        ),
        probe=program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    reached.extend(f"{place}/{name}" for name in os.listdir(place) if name != "main.py")
"""
        ),
    ),
    Attack(
        "deeper-than-path-max",
        program(
            """
os.chdir("/tmp")
for level in range(1500):  # some 6 KB of path, past PATH_MAX (4 KB)
    os.mkdir("d" * 3)
    os.chdir("d" * 3)
open("bottom", "w").write("left behind")
os.chmod(".", 0o500)
"""
        ),
        probe=program(
            """
reached.extend("/tmp/" + name for name in os.listdir("/tmp"))
"""
        ),
    ),
    Attack(
        "links-out-of-the-scratch-places",
        program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    for name, target in (("root", "/"), ("usr", "/usr"), ("loop", "loop"), ("self", place)):
        try:
            os.symlink(target, os.path.join(place, name))
        except OSError:
            pass
    try:
        os.link("/usr/bin/python3", os.path.join(place, "python-link"))
        reached.append("hard link to a system file")
    except OSError:
        pass
"""
        ),
        probe=program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    reached.extend(f"{place}/{name}" for name in os.listdir(place) if name != "main.py")
if not os.path.exists("/usr/bin/python3"):
    reached.append("the wipe followed a link out")
"""
        ),
    ),
    Attack(
        "working-directories-made-unwritable",
        program(
            """
for place, mode in ((os.getcwd(), 0o500), ("/tmp", 0), ("/dev/shm", 0o100)):
    open(os.path.join(place, "left"), "w").close()
    try:
        os.chmod(place, mode)
    except OSError:
        pass
"""
        ),
        probe=program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    try:
        with open(os.path.join(place, "probe"), "w") as handle:
            handle.write("x")
        os.unlink(os.path.join(place, "probe"))
    except OSError as exc:
        reached.append(f"{place} unwritable: {exc.strerror}")
    reached.extend(f"{place}/{name}" for name in os.listdir(place) if name != "main.py")
"""
        ),
    ),
    Attack(
        "memory-parked-in-tmpfs",
        program(
            """
block = b"x" * (1 << 20)
for place in ("/dev/shm", "/tmp", os.getcwd()):
    for index in range(80):
        try:
            with open(os.path.join(place, f"parked-{index}"), "wb") as handle:
                handle.write(block)
        except OSError:
            break
"""
        ),
        probe=program(
            """
for place in ("/dev/shm", "/tmp", os.getcwd()):
    reached.extend(f"{place}/{n}" for n in os.listdir(place) if n.startswith("parked"))
block = bytearray(100 << 20)  # the next run has its memory to itself
block[::4096] = b"y" * (len(block) // 4096)
"""
        ),
    ),
    Attack(
        "many-files-for-the-wipe",
        program(
            """
for place in (os.getcwd(), "/tmp"):
    for index in range(20000):
        open(os.path.join(place, f"f{index}"), "w").close()
"""
        ),
        probe=program(
            """
for place in (os.getcwd(), "/tmp"):
    names = [n for n in os.listdir(place) if n != "main.py"]
    if names:
        reached.append(f"{place}: {len(names)} entries left")
"""
        ),
        timeout_s=30.0,
    ),
    Attack(
        "daemons-that-hide",
        program(
            """
import socket
for variant in ("stopped", "new-session", "abstract-socket"):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            if variant == "abstract-socket":
                server = socket.socket(socket.AF_UNIX)
                server.bind("\\0redraft-daemon")
                server.listen()
            if variant == "stopped":
                os.kill(os.getpid(), signal.SIGSTOP)
            while True:
                with open("/tmp/heartbeat-" + variant, "a") as handle:
                    handle.write(".")
                time.sleep(0.05)
        os._exit(0)
time.sleep(0.3)
"""
        ),
        probe=program(
            """
import socket
time.sleep(0.3)
reached.extend(f"process {pid}" for pid in TARGETS if pid not in (1, WORKER))
reached.extend("/tmp/" + name for name in os.listdir("/tmp"))
try:
    socket.socket(socket.AF_UNIX).connect("\\0redraft-daemon")
    reached.append("the daemon's socket answers")
except OSError:
    pass
"""
        ),
    ),
    Attack(
        "access-lists-attributes-and-times-on-the-places",
        program(
            """
def acl(user, group, other):
    entry = lambda tag, perm: struct.pack("<HHI", tag, perm, 0xFFFFFFFF)
    return struct.pack("<I", 2) + entry(1, user) + entry(4, group) + entry(0x20, other)
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    # An empty default access list would make every file the next run creates unreadable.
    for name, value in (("system.posix_acl_default", acl(0, 0, 0)), ("user.left", b"covert")):
        try:
            os.setxattr(place, name, value)
        except OSError:
            pass
    try:
        os.utime(place, (1234567890, 987654321))
    except OSError:
        pass
"""
        ),
        probe=program(
            """
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    try:
        names = os.listxattr(place)
    except OSError:
        names = []
    reached.extend(f"{place} keeps {name}" for name in names)
    if int(os.stat(place).st_mtime) in (987654321,):
        reached.append(f"{place} keeps the time the run set")
    with open(os.path.join(place, "mine"), "w") as handle:
        handle.write("readable")
    with open(os.path.join(place, "mine")) as handle:
        handle.read()
    os.unlink(os.path.join(place, "mine"))
"""
        ),
    ),
    Attack(
        "children-given-to-the-worker",
        program(
            """
made = 0
for _ in range(64):  # clone(CLONE_PARENT | SIGCHLD): a sibling, the worker's child to reap
    try:
        child = syscall("clone", 0x8000 | 17, 0, 0, 0, 0)
    except OSError:
        break
    if child == 0:
        os._exit(0)
    made += 1
if made:
    reached.append(f"{made} children handed to the worker")
"""
        ),
        probe=program(
            """
import subprocess
reached.extend(f"zombie {pid}" for pid in TARGETS if pid not in (1, WORKER))
subprocess.run(["true"], check=True)  # the next run can still start processes
"""
        ),
    ),
    Attack(
        "sockets-a-network-namespace-does-not-confine",
        program(
            """
import socket
for family, name in ((40, "vsock"), (38, "alg"), (17, "packet"), (44, "xdp"), (30, "tipc"),
                     (21, "rds"), (31, "bluetooth"), (15, "key"), (3, "ax25")):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_RAW):
        if attempt(f"socket {name} {kind}", syscall, "socket", family, kind, 0):
            break
"""
        ),
    ),
    Attack(
        "host-wide-tables-and-the-host-s-device-events",
        program(
            """
import socket
for protocol, name in ((15, "uevents"), (16, "generic"), (4, "sock_diag"), (9, "audit")):
    attempt(f"netlink {name}", syscall, "socket", 16, socket.SOCK_DGRAM, protocol)
    attempt(f"netlink {name} high-bits", syscall, "socket", 16, socket.SOCK_DGRAM, protocol | HIGH)
label = socket.inet_pton(socket.AF_INET6, "::1") + struct.pack("!I", 0x42000)
label += struct.pack("=BBHHHI", 0, 255, 1, 150, 150, 0)  # IPV6_FL_A_GET, IPV6_FL_F_CREATE
try:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as flow:
        flow.setsockopt(41, 32, label)  # IPV6_FLOWLABEL_MGR: lives on after the socket
        reached.append("an IPv6 flow label")
except OSError:
    pass
context = ctypes.c_ulong(0)
attempt("io_setup", syscall, "io_setup", 128, ctypes.addressof(context))
"""
        ),
    ),
    Attack(
        "descriptors-parked-in-flight",
        program(
            """
import socket, pty
def park(*fds):
    # Sent over a socket pair to itself and never received: no process holds them.
    first, second = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    socket.send_fds(first, [b"x"], list(fds) + [first.fileno(), second.fileno()])
    socket.send_fds(second, [b"x"], [first.fileno(), second.fileno()])
    first.detach()
    second.detach()
for place in (os.getcwd(), "/tmp", "/dev/shm"):  # unlinked files that fill the places
    fd = os.open(os.path.join(place, "filler"), os.O_RDWR | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"y" * (1 << 20))
    except OSError:
        pass
    os.unlink(os.path.join(place, "filler"))
    park(fd)
memory = os.memfd_create("parked")
os.write(memory, b"z" * (32 << 20))
park(memory)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 8765))
listener.listen()
hidden = socket.socket(socket.AF_UNIX)
hidden.bind("\\0redraft-parked")
hidden.listen()
park(listener.detach(), hidden.detach())
try:
    master, slave = pty.openpty()
    os.write(master, b"left for the next run")
    park(master, slave)
except OSError:
    pass
"""
        ),
        probe=program(
            """
import socket
for place in (os.getcwd(), "/tmp", "/dev/shm"):
    info = os.statvfs(place)
    held = (info.f_blocks - info.f_bfree) * info.f_frsize
    if held > 64 << 10:  # more than this probe's own main.py
        reached.append(f"{place}: {held} bytes held")
server = socket.socket()
try:
    server.bind(("127.0.0.1", 8765))
except OSError as exc:
    reached.append(f"port 8765 still taken: {exc.strerror}")
try:
    socket.socket(socket.AF_UNIX).connect("\\0redraft-parked")
    reached.append("the parked abstract socket answers")
except OSError:
    pass
with open("/proc/net/unix") as handle:
    left = handle.read().splitlines()[1:]
reached.extend("unix socket " + line.split()[-1] for line in left)
if os.path.isdir("/dev/pts"):
    reached.extend("/dev/pts/" + n for n in os.listdir("/dev/pts") if n.isdigit())
"""
        ),
    ),
    Attack(
        "settings-of-the-sandbox-namespaces",
        program(
            """
settings = {"kernel/msgmax": "1234567", "kernel/sem": "1 2 3 4", "kernel/shmmax": "7777777",
            "kernel/shm_rmid_forced": "1", "fs/mqueue/msg_max": "42", "kernel/pid_max": "31337",
            "net/ipv4/tcp_max_tw_buckets": "99", "net/ipv4/ip_local_port_range": "40000 40001",
            "net/core/somaxconn": "7", "kernel/hostname": "changed"}
for name, value in settings.items():
    try:
        with open("/proc/sys/" + name, "w") as handle:
            handle.write(value)
        reached.append("set " + name)
    except OSError:
        pass
"""
        ),
    ),
    Attack(
        "time-wait-left-on-a-port",
        program(
            """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 8766))
server.listen()
for _ in range(20):
    client = socket.create_connection(("127.0.0.1", 8766))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its port is the one left in TIME_WAIT
    client.close()
server.close()
"""
        ),
        probe=program(
            """
import socket
honest = socket.socket()  # no SO_REUSEADDR, as plain code binds
try:
    honest.bind(("127.0.0.1", 8766))
except OSError as exc:
    reached.append(f"port 8766 kept from the next run: {exc.strerror}")
"""
        ),
    ),
    Attack(
        "status-pipe-and-stray-descriptor-flood",
        program(
            """
data = b"oom" + b"z" * 65533
deadline = time.monotonic() + 2
for fd in range(3, 64):
    try:
        os.set_blocking(fd, False)
    except OSError:
        continue
    while time.monotonic() < deadline:
        try:
            os.write(fd, data)
        except OSError:
            break
"""
        ),
    ),
]

# An honest run: what must come back exactly as the code produced it, and soon.
HONEST = """
import hashlib, os, sys, threading
data = sys.stdin.read()
given = open("given.txt").read()
results = []
threads = [threading.Thread(target=lambda i=i: results.append(i * i)) for i in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
listing = sorted(os.listdir("."))
print(hashlib.sha256((data + given).encode()).hexdigest(), sum(results), listing)
print("on stderr", file=sys.stderr)
sys.exit(7)
"""
