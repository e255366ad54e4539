"""The program that runs inside every sandbox: it executes requests from the host.

It is started once per sandboxed interpreter (`python3 -I -S -c <this file's source> ...`).
Standard library only, since it runs on whatever Python the sandbox has; the host never
imports it. The code it runs is an adversary, so the worker is built to stay out of its reach:

- The worker is not dumpable: a run cannot ptrace it or open its /proc memory or descriptors.
- Each run is a process forked from the worker *before* its request arrives (a spare): the
  spare reads the request itself, so the worker's memory, which every later run inherits, never
  holds a request (files, stdin, code) or an output; output is captured in a mapping that is
  unmapped after the reply is sent.
- While it waits for its request, the spare drops to the run's uid (`--run-uid`, when the
  worker is root) and installs the host's system-call filter (see `seccomp.py`); before the
  code starts it closes everything of the worker's but its own pipes and sets rlimits.
- After the run, the worker kills every process left (it is alone in its PID namespace with
  `--own-pid-namespace`) and checks that none survived, has the kernel collect what the run
  left in flight in Unix sockets, puts back the namespace settings a run could change,
  restores the working and scratch directories (mode, access lists, attributes, times),
  empties them whatever the run left, and checks that they are empty with all their space.
  What it cannot restore, it reports: the host then retires this worker.

Framing on stdin/stdout: an 8-byte big-endian length, then that many bytes of JSON. The worker
first writes `{"ready": true, "pid": ..., "oom_kills": ...}`, then reads its configuration
(`{"seccomp": base64 of the BPF program, or null, "preload": {module name: source}}`: modules
it imports once, for the runs that use them). Each request is one frame; each reply is
one frame, followed by the raw stdout and stderr bytes it announces (`stdout_len`,
`stderr_len`). `--oom-counter` names cgroup files with the kernel's OOM-kill count, for a
worker that can read its sandbox's cgroup (a container's).

A request with `"channel"` gives the run a byte channel to the host: it reads what the host
sends on fd 3 and writes to the host on fd 4. With `"channel": "direct"` these are two pipes
the host made for this worker (`--channel-fds`): the worker lends them to each channel run
and, after it, empties the host's side of them. Otherwise (`"relay"`) the worker relays: what
the run writes goes to the host as relay frames, a header with bit 63 set and the length n
below it, then the n bytes (n = 0: the run closed its end; bit 62 too: it wrote more than
`channel_bytes`, its allowance); the host's relay frames, alike, are written to the run.
Either way `{"stop": true}` from the host ends the run, and after the reply the worker drops
whatever the host still sent until the host's `{"end": true}`, so that none of it can be taken
for the next request.
"""

import base64
import contextlib
import fcntl
import gc
import json
import mmap
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback
import types

HEADER = struct.Struct(">Q")
CHUNK = 65536
MAX_REQUEST = 1 << 30
MAX_CONFIG = 1 << 20
MAX_SETUP = 1 << 16
MAX_FD = 1 << 16
STATUS_BYTES = 16
# Reasons the host is given (a path a run made can be long); the host refuses longer ones.
MAX_REASON = 1000
# Host input a run has not read yet, held by the worker before it stops reading the host.
MAX_PENDING = 1 << 20
F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 16
# What each relayed frame costs against a run's channel allowance, beyond its bytes.
RELAY_FRAME_COST = 64
# A frame header with this bit holds relayed bytes (raw, no JSON): its length is below it.
RELAY_FLAG = 1 << 63
OVERFLOW_FLAG = 1 << 62
# Code runs from this file, so tracebacks name it and show its lines.
MAIN = "main.py"
# How long the worker may spend emptying directories after a run before it gives up and
# asks to be retired (a run can leave millions of entries).
WIPE_BUDGET_S = 2.0
KILL_BUDGET_S = 2.0
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
CAPABILITY_VERSION_3 = 0x20080522
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
M_ARENA_MAX = -8


class Refused(Exception):
    """The worker cannot run requests in a state it can vouch for."""


def load_libc():
    try:
        import ctypes
    except ImportError:
        raise Refused("the sandbox's Python has no ctypes module") from None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    libc.prctl.restype = ctypes.c_int
    # Looked up here, once: a first lookup in each forked run would cost it page faults.
    for name in ("capset", "mallopt"):
        getattr(libc, name)
    return ctypes, libc


def prctl(libc, ctypes, option, value):
    if libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


class SeccompProgram:
    """The host's compiled filter, ready to hand to the kernel from a forked child."""

    def __init__(self, ctypes, libc, program):
        class SockFprog(ctypes.Structure):
            _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

        if not program or len(program) % 8:
            raise Refused("the system-call filter from the host is malformed")
        self.ctypes, self.libc = ctypes, libc
        self.buffer = ctypes.create_string_buffer(program, len(program))
        self.fprog = SockFprog(len(program) // 8, ctypes.addressof(self.buffer))

    def install(self):
        prctl(self.libc, self.ctypes, PR_SET_NO_NEW_PRIVS, 1)
        ctypes = self.ctypes
        result = self.libc.prctl(
            PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.fprog), 0, 0
        )
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, "seccomp: " + os.strerror(error))


# Framing


def read_exact(fd, size):
    parts = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def read_frame(fd, limit):
    header = read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise ValueError("frame too large")
    body = read_exact(fd, size)
    if body is None:
        raise ValueError("the frame ended early")
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a frame must hold an object")
    return message


def read_host_frame(fd):
    """A frame from the host during a channel run: ("relay", bytes), ("control", dict), or
    None if the host is gone. ValueError if it is malformed."""
    header = read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size & RELAY_FLAG:
        size &= ~(RELAY_FLAG | OVERFLOW_FLAG)
        if size > CHUNK:
            raise ValueError("relay frame too large")
        data = read_exact(fd, size) if size else b""
        return None if data is None else ("relay", data)
    if size > MAX_SETUP:
        raise ValueError("frame too large")
    body = read_exact(fd, size)
    if body is None:
        return None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a frame must hold an object")
    return ("control", message)


def relay_header(size, overflow=False):
    return HEADER.pack(RELAY_FLAG | (OVERFLOW_FLAG if overflow else 0) | size)


def frame(message):
    body = json.dumps(message).encode()
    return HEADER.pack(len(body)) + body


def write_all(fd, *parts):
    views = [memoryview(part) for part in parts if len(part)]
    try:
        while views:
            sent = os.writev(fd, views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views[0].release()
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]
    finally:
        for view in views:
            view.release()


# Directories a run may write to


class Identity:
    """The uid a run has, and a way for the worker to act as it (for kill(-1) and the wipe)."""

    # What the worker (root) keeps: to drop a run's uid and empty its bounding set, and,
    # where it was given it, to make the run the OOM killer's first choice for good.
    KEPT = (6, 7, 8)  # CAP_SETGID, CAP_SETUID, CAP_SETPCAP
    SYS_RESOURCE = 24

    def __init__(self, uid, gid):
        self.uid, self.gid = uid, gid
        self.no_capabilities = None
        self.kept = ()

    def narrow(self, libc, ctypes):
        """In the worker of an isolating sandbox, once: only the capabilities it keeps (none
        where runs share its uid), and a bounding set of only those, so that each run has
        just those to drop."""
        # Made here, not in each run: creating ctypes types is slow in a fresh fork.
        header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
        self.no_capabilities = (header, (ctypes.c_uint32 * 6)())
        kept = self.KEPT if self.uid is not None else ()
        if kept and self.SYS_RESOURCE in permitted_capabilities():
            kept = (*kept, self.SYS_RESOURCE)
        self.kept = kept
        with open("/proc/sys/kernel/cap_last_cap") as handle:
            last = int(handle.read())
        for capability in range(last + 1):
            if capability not in kept:
                prctl(libc, ctypes, PR_CAPBSET_DROP, capability)
        bits = sum(1 << capability for capability in kept)
        # effective, permitted, inheritable (the low 32 bits; these are all below 32)
        wanted = (ctypes.c_uint32 * 6)(bits, bits, 0, 0, 0, 0)
        if libc.capset(header, wanted) != 0:
            raise OSError(ctypes.get_errno(), "capset")

    @contextlib.contextmanager
    def acting(self):
        if self.uid is None:
            yield
            return
        os.setegid(self.gid)
        os.seteuid(self.uid)
        try:
            yield
        finally:
            os.seteuid(0)
            os.setegid(0)

    def become(self, libc, ctypes):
        """In a run's process: this uid for good, with no capability left, not even one it
        could gain by exec (the bounding set is emptied too)."""
        if self.uid is None:
            return
        for capability in self.kept:
            prctl(libc, ctypes, PR_CAPBSET_DROP, capability)
        os.setgroups([])
        os.setresgid(self.gid, self.gid, self.gid)
        os.setresuid(self.uid, self.uid, self.uid)
        if os.getresuid() != (self.uid,) * 3 or os.getresgid() != (self.gid,) * 3:
            raise OSError("could not drop to the run's uid")
        # The uid change emptied the permitted, effective and ambient sets; the inheritable
        # set is all that is left.
        if libc.capset(*self.no_capabilities) != 0:
            raise OSError(ctypes.get_errno(), "capset")


def permitted_capabilities():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("CapPrm:"):
                bits = int(line.split()[1], 16)
                return {capability for capability in range(64) if bits >> capability & 1}
    return set()


def oom_score_adj(value):
    with contextlib.suppress(OSError):
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)


def forget_time_wait():
    """In the sandbox's own network namespace: no TIME_WAIT, so that a connection a run
    closed does not keep its port from the next run, and no TCP metrics kept from one
    connection for the next (where the worker may set them)."""
    for name, value in (("tcp_max_tw_buckets", b"0"), ("tcp_no_metrics_save", b"1")):
        with contextlib.suppress(OSError):
            fd = os.open("/proc/sys/net/ipv4/" + name, os.O_WRONLY)
            try:
                os.write(fd, value)
            finally:
                os.close(fd)


class OomCounter:
    """The kernel's count of OOM kills in the sandbox's memory cgroup, where it can be read
    from inside (a container's); the first of `paths` that exists."""

    def __init__(self, paths):
        self.path = next((path for path in paths if os.path.exists(path)), None)

    def read(self):
        if self.path is None:
            return None
        try:
            with open(self.path) as handle:
                for line in handle:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None


class KernelSettings:
    """The sysctls of the sandbox's own namespaces that a run could change, and their values
    when the worker started.

    In a user namespace of the caller's uid, the worker and the run own the IPC namespace's
    settings (kernel.msgmax, kernel.sem, fs.mqueue.*, ...): what one run set, the next would
    find. Where the run has a uid of its own it can set none, and none are looked at.
    """

    TOPS = ("/proc/sys",)

    def __init__(self, identity, own_namespace):
        self.values = {}
        if identity.uid is not None or not own_namespace:
            return
        for top in self.TOPS:
            for root, _, names in os.walk(top):
                for name in names:
                    path = os.path.join(root, name)
                    if not os.access(path, os.W_OK):
                        continue
                    # The mode bits are not the whole check (ns_last_pid wants a capability):
                    # what takes its own value back is what a run could change.
                    try:
                        with open(path, "rb") as handle:
                            value = handle.read()
                        with open(path, "wb") as handle:
                            handle.write(value)
                    except OSError:
                        continue
                    self.values[path] = value

    def restore(self):
        """None, or which setting could not be put back."""
        for path, value in self.values.items():
            try:
                with open(path, "rb") as handle:
                    if handle.read() == value:
                        continue
                with open(path, "wb") as handle:
                    handle.write(value)
                with open(path, "rb") as handle:
                    if handle.read() == value:
                        continue
            except OSError:
                pass
            return f"cannot restore {path}"
        return None


def empty_directory(path, deadline):
    """Remove everything under `path` without following links, whatever its modes or depth.

    Only names are kept on the way down (one open directory at a time), so neither the depth
    nor PATH_MAX bound what can be removed. Returns None, or why it could not finish.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        return f"cannot open {path}: {exc.strerror}"
    trail = []  # the names from `path` down to where `fd` is
    try:
        while True:
            child = None
            for index, name in enumerate(os.listdir(fd)):
                if index % 1024 == 0 and time.monotonic() > deadline:
                    return f"{path} still held entries after {WIPE_BUDGET_S:g} s"
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    if info.st_mode & 0o700 != 0o700:
                        os.chmod(name, 0o700, dir_fd=fd)  # it is a directory, not a link
                    child = name
                    break
                os.unlink(name, dir_fd=fd)
            if child is not None:
                inner = os.open(child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
                trail.append(child)
                continue
            if not trail:
                return None
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(trail.pop(), dir_fd=fd)
    except OSError as exc:
        where = os.path.join(path, *trail)
        return f"cannot empty {where}: {exc.strerror}"
    finally:
        os.close(fd)


class Places:
    """The working directory and the scratch directories, and the state they must return to."""

    def __init__(self, work, scratch, identity):
        self.work = work
        self.all = [work] + [place for place in scratch if place != work]
        self.identity = identity
        os.makedirs(work, exist_ok=True)
        self.modes = {}
        # Blocks and inodes free when empty (on tmpfs, all of them), for places that are a
        # filesystem of their own: on a shared one, as the subprocess sandbox's directory is,
        # other processes change them.
        self.free = {}
        self.times = {}
        self.attributes = {}
        for place in self.all:
            with contextlib.suppress(OSError):
                info = os.lstat(place)
                self.modes[place] = stat.S_IMODE(info.st_mode)
                if os.path.ismount(place):
                    self.free[place] = free_space(place)
                self.times[place] = (info.st_atime_ns, info.st_mtime_ns)
                self.attributes[place] = attributes(place)

    def restore(self, keep):
        """Their modes back, and their contents gone (unless a session `keep`s them); None,
        or what is wrong."""
        deadline = time.monotonic() + WIPE_BUDGET_S
        for place, mode in self.modes.items():
            try:
                info = os.lstat(place)
                if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
                    os.chmod(place, mode)  # first: a run may have locked the worker out
                info = os.lstat(place)
            except OSError as exc:
                return f"cannot restore {place}: {exc.strerror}"
            if not stat.S_ISDIR(info.st_mode) or stat.S_IMODE(info.st_mode) != mode:
                return f"{place} is not the directory it was (mode {oct(info.st_mode)})"
            # Where the run owns the place (its uid is the worker's), what else it can set on
            # it: access lists, which would lock the next run out, and attributes and times,
            # which it could read back.
            try:
                if attributes(place) != self.attributes[place]:
                    set_attributes(place, self.attributes[place])
                if attributes(place) != self.attributes[place]:
                    return f"the extended attributes of {place} cannot be restored"
            except OSError as exc:
                return f"cannot restore the attributes of {place}: {exc.strerror}"
            if keep:
                continue
            with self.identity.acting():
                reason = empty_directory(place, deadline)
            if reason:
                return reason
            if os.listdir(place):
                return f"{place} is not empty after the wipe"
            # What no name points to any more but something still holds (an unlinked file
            # kept open, or in flight) would fill the place for the next run.
            if place in self.free and free_space(place) < self.free[place]:
                return f"{place} still has space held after the wipe"
            os.utime(place, ns=self.times[place])
        return None


def attributes(place):
    """A directory's extended attributes (access lists among them), by name."""
    try:
        names = os.listxattr(place, follow_symlinks=False)
    except OSError:
        return {}
    return {name: os.getxattr(place, name, follow_symlinks=False) for name in names}


def set_attributes(place, wanted):
    for name in os.listxattr(place, follow_symlinks=False):
        if name not in wanted:
            os.removexattr(place, name, follow_symlinks=False)
    for name, value in wanted.items():
        os.setxattr(place, name, value, follow_symlinks=False)


def free_space(place):
    info = os.statvfs(place)
    return (info.f_bfree, info.f_ffree)


# The run's process


def set_limits(request):
    def cap(kind, value):
        if value is not None:
            value = int(value)
            _, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CORE, 0)
    cpu = request.get("cpu_s")
    cap(resource.RLIMIT_CPU, None if cpu is None else max(1, int(cpu + 0.999)))
    memory = request.get("memory_mb")
    cap(resource.RLIMIT_AS, None if memory is None else memory * 1024 * 1024)
    cap(resource.RLIMIT_NPROC, request.get("processes"))
    file_size = request.get("file_size_mb")
    cap(resource.RLIMIT_FSIZE, None if file_size is None else file_size * 1024 * 1024)
    cap(resource.RLIMIT_NOFILE, request.get("open_files"))


def place_files(directory, files):
    for name, encoded in files.items():
        path = os.path.normpath(os.path.join(directory, name))
        if not path.startswith(directory + os.sep):
            raise ValueError("file path outside the working directory: " + name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_file(path, base64.b64decode(encoded))


def write_file(path, data):
    """A new file at `path`, in place of whatever a session's earlier run left there (a FIFO
    to block on, a link to write through): written aside, then renamed over it."""
    aside = f"{path}.redraft-{os.urandom(8).hex()}"  # a name no earlier run could foresee
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(aside, path)


def stdin_file(data):
    """The run's stdin: an anonymous in-memory file holding `data`, read from its start."""
    if not data:
        return os.open(os.devnull, os.O_RDONLY)
    fd = os.memfd_create("stdin")
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class Pipes:
    """The run's stdout, stderr, status and channel pipes, and the setup pipe of its spare."""

    def __init__(self):
        self.setup_r, self.setup_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.status_r, self.status_w = os.pipe()
        # Pipes, not a socket: nothing can be sent over them but bytes (no descriptors).
        self.to_run_r, self.to_run_w = os.pipe()
        self.from_run_r, self.from_run_w = os.pipe()

    def child_ends(self):
        return (
            self.setup_w,
            self.stdout_w,
            self.stderr_w,
            self.status_w,
            self.to_run_r,
            self.from_run_w,
        )

    def parent_ends(self):
        return (
            self.setup_r,
            self.stdout_r,
            self.stderr_r,
            self.status_r,
            self.to_run_w,
            self.from_run_r,
        )


def spare(worker, pipes):
    """In a forked child: contain itself, wait for the next request, then become its run.
    Never returns.

    What does not depend on the request (the run's uid, the filter) is done while the spare
    waits for it, so a run does not wait for that.
    """
    code = 1
    setup_w = pipes.setup_w
    try:
        for fd in (*pipes.parent_ends(), worker.channel_out):
            os.close(fd)
        try:
            os.setsid()
            # If memory runs out, the run goes first, not the worker: set while the spare
            # still has the capability, so that the run cannot lower it again.
            oom_score_adj(1000)
            worker.identity.become(worker.libc, worker.ctypes)
            contain(worker)
        except Exception as exc:
            message = f"cannot contain the run: {exc}"
            report(setup_w, {"error": message, "fatal": True, "retire": message})
            os._exit(1)
        try:
            request = read_frame(worker.channel_in, MAX_REQUEST)
        except (OSError, ValueError) as exc:
            report(setup_w, {"error": f"unreadable request: {exc}", "retire": "out of step"})
            os._exit(1)
        if request is None:
            report(setup_w, {"eof": True})
            os._exit(0)
        run_id = request.get("id")
        try:
            channel = channel_mode(request.get("channel"), worker)
            stdin_fd = prepare(request, worker.places.work)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            report(setup_w, {"id": run_id, "error": error, "keep": bool(request.get("keep"))})
            os._exit(1)
        setup = {
            "id": run_id,
            "timeout_s": request.get("timeout_s", 10.0),
            "output_bytes": request.get("output_bytes", 1 << 20),
            "keep": bool(request.get("keep")),
            "channel": channel,
            "channel_bytes": int(request.get("channel_bytes") or 0),
        }
        report(setup_w, setup)
        code = become_run(request, worker, stdin_fd, pipes)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(code)


def fcntl_dup(fd, lowest):
    return fcntl.fcntl(fd, fcntl.F_DUPFD, lowest)


def channel_mode(asked, worker):
    if not asked:
        return None
    if asked == "direct":
        if worker.direct is None:
            raise Refused("a direct channel was asked of a worker that has none")
        return "direct"
    return "relay"


def report(fd, message):
    with contextlib.suppress(OSError):
        write_all(fd, frame(message))


def prepare(request, directory):
    place_files(directory, request.get("files", {}))
    if request.get("code") is not None:
        write_file(os.path.join(directory, MAIN), request["code"].encode("utf-8"))
    return stdin_file(base64.b64decode(request.get("stdin") or ""))


def contain(worker):
    """The run's own process from here on: dumpable to itself only, and filtered."""
    ctypes, libc = worker.ctypes, worker.libc
    # Forked from a non-dumpable worker; as itself it may read its own /proc entries again.
    prctl(libc, ctypes, PR_SET_DUMPABLE, 1)
    if worker.seccomp is not None:
        worker.seccomp.install()
    elif worker.require_seccomp:
        raise Refused("no system-call filter was configured")


def become_run(request, worker, stdin_fd, pipes):
    wanted = [stdin_fd, pipes.stdout_w, pipes.stderr_w]
    if request.get("channel") == "direct":
        wanted += list(worker.direct)
    elif request.get("channel"):
        wanted += [pipes.to_run_r, pipes.from_run_w]
    wanted.append(pipes.status_w)
    # Each first out of the way of the numbers it is moved to, then into place.
    high = [fcntl_dup(fd, 64) for fd in wanted]
    for number, fd in enumerate(high):
        os.dup2(fd, number)
    status_w = len(high) - 1
    # Nothing of the worker's reaches the run but its streams, its channel and its status.
    os.closerange(status_w + 1, MAX_FD)
    os.chdir(worker.places.work)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    environment = dict(request["env"])
    set_limits(request)
    if request.get("memory_mb") is not None:
        # Under an address-space limit every thread's malloc arena counts: keep them few.
        with contextlib.suppress(Exception):
            worker.libc.mallopt(M_ARENA_MAX, 1)
        environment.setdefault("MALLOC_ARENA_MAX", "1")
    if request.get("argv"):
        argv = request["argv"]
        try:
            os.execvpe(argv[0], argv, environment)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
    os.environ.clear()
    os.environ.update(environment)
    # The worker's own streams were /dev/null; the run's are on 0, 1 and 2.
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    try:
        return run_main(worker.places.work, status_w)
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()


def run_main(directory, status_w):
    """Run main.py as __main__, as `python main.py` would; return the exit code."""
    path = os.path.join(directory, MAIN)
    sys.argv = [MAIN]
    sys.path[:0] = [directory]
    # What `python main.py` does, without runpy's imports (they would cost each run ~10 ms).
    main_module = types.ModuleType("__main__")
    main_module.__file__ = path
    sys.modules["__main__"] = main_module
    try:
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec")
        exec(code, main_module.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        print(exc.code, file=sys.stderr)
        return 1
    except MemoryError as exc:
        os.write(status_w, b"oom")
        print_user_traceback(exc, directory)
        return 1
    except BaseException as exc:
        print_user_traceback(exc, directory)
        return 1
    return 0


def print_user_traceback(exc, directory):
    """The traceback from the first frame in the user's files on: the worker's say nothing."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(directory):
        tb = tb.tb_next
    sys.stderr.flush()
    traceback.print_exception(type(exc), exc, tb)


# The worker's side of a run


class Capture:
    """The run's output, in a private mapping of its own: never copied onto the worker's heap
    (which the next run inherits), and unmapped once the reply is sent."""

    def __init__(self, limit):
        self.limit = limit
        # stdout, stderr, the status bytes, and room to drain what is past the limit.
        self.memory = mmap.mmap(-1, 2 * limit + STATUS_BYTES + CHUNK, flags=mmap.MAP_PRIVATE)
        self.view = memoryview(self.memory)
        self.regions = {
            "stdout": (0, limit),
            "stderr": (limit, limit),
            "status": (2 * limit, STATUS_BYTES),
        }
        self.sizes = dict.fromkeys(self.regions, 0)
        self.truncated = dict.fromkeys(self.regions, False)
        self.discard = self.view[2 * limit + STATUS_BYTES :]

    def read(self, fd, stream):
        """One read from `fd` into the stream's region; False at end of file."""
        start, room = self.regions[stream]
        used = self.sizes[stream]
        target = self.view[start + used : start + room] if used < room else self.discard
        try:
            count = os.readv(fd, [target])
        finally:
            if target is not self.discard:
                target.release()
        if count and used >= room:
            self.truncated[stream] = True
        else:
            self.sizes[stream] += count
        return count > 0

    def drain(self, fd, stream):
        """What is still buffered, without waiting for writers (they are dead by now)."""
        os.set_blocking(fd, False)
        with contextlib.suppress(BlockingIOError, OSError):
            while self.read(fd, stream):
                pass

    def status(self):
        start, _ = self.regions["status"]
        return bytes(self.view[start : start + 3])

    def payload(self):
        return [
            self.view[0 : self.sizes["stdout"]],
            self.view[self.limit : self.limit + self.sizes["stderr"]],
        ]

    def close(self):
        self.discard.release()
        self.view.release()
        self.memory.close()


class Relay:
    """A channel run's two pipes while it runs: what it writes goes to the host in relay
    frames, what the host sends is written to it without ever blocking the worker. For a
    direct channel (the run talks to the host's pipes itself) only the host's control frames
    are read."""

    def __init__(self, worker, pipes, limit, direct=False):
        self.channel_in, self.channel_out = worker.channel_in, worker.channel_out
        self.direct = direct
        if direct:
            self.from_run = self.to_run = None
        else:
            self.from_run, self.to_run = pipes.from_run_r, pipes.to_run_w
            os.set_blocking(self.to_run, False)
        self.room = limit
        self.pending = bytearray()
        self.stopped = False
        self.stop_at = None
        self.ended = direct  # the run's end is closed and the host told so

    def take_output(self):
        """Relay one read of the run's output; False once its end is closed (or it wrote
        more than it may: the host is told, and the run writes into a closed pipe)."""
        try:
            data = os.read(self.from_run, CHUNK)
        except OSError:
            data = b""
        if data and len(data) + RELAY_FRAME_COST <= self.room:
            self.room -= len(data) + RELAY_FRAME_COST
            write_all(self.channel_out, relay_header(len(data)), data)
            return True
        self.end_output(overflow=bool(data))
        return False

    def end_output(self, overflow=False):
        if not self.ended:
            self.ended = True
            write_all(self.channel_out, relay_header(0, overflow))
        if self.from_run is not None:
            os.close(self.from_run)
            self.from_run = None

    def take_input(self):
        """One frame from the host; False if the host is gone."""
        try:
            received = read_host_frame(self.channel_in)
        except (OSError, ValueError):
            return False
        if received is None:
            return False
        kind, data = received
        if kind == "relay":
            if self.direct:
                return False  # out of step: the host writes a direct channel's pipe itself
            if self.to_run is not None:
                self.pending += data
            message = {}
        else:
            message = data
        if message.get("stop"):
            # Now, or once the run has had `grace_s` to end by itself.
            grace = float(message.get("grace_s") or 0.0)
            stop_at = time.monotonic() + min(max(grace, 0.0), 5.0)
            self.stop_at = stop_at if self.stop_at is None else min(self.stop_at, stop_at)
        self.flush()
        return True

    def wants_input(self):
        return len(self.pending) < MAX_PENDING

    def flush(self):
        while self.pending and self.to_run is not None:
            try:
                written = os.write(self.to_run, self.pending)
            except BlockingIOError:
                return
            except OSError:  # the run closed its end: what it did not read is dropped
                self.pending.clear()
                self.close_input()
                return
            del self.pending[:written]

    def close_input(self):
        if self.to_run is not None:
            os.close(self.to_run)
            self.to_run = None

    def close(self):
        self.close_input()
        if self.from_run is not None:
            os.close(self.from_run)
            self.from_run = None

    def await_end(self):
        """After the reply: drop the host's late relay frames until it says it has the
        reply. False if the host is gone or out of step."""
        while True:
            try:
                received = read_host_frame(self.channel_in)
            except (OSError, ValueError):
                return False
            if received is None:
                return False
            kind, message = received
            if kind == "relay":
                continue
            if message.get("end"):
                return True
            if "stop" not in message:
                return False


class Worker:
    def __init__(self, args):
        def values(flag):
            return [args[i + 1] for i, arg in enumerate(args) if arg == flag]

        self.own_namespace = "--own-pid-namespace" in args
        self.require_seccomp = "--require-seccomp" in args
        run_uid, run_gid = values("--run-uid"), values("--run-gid")
        self.identity = Identity(
            int(run_uid[0]) if run_uid else None, int(run_gid[0]) if run_gid else None
        )
        work = os.path.realpath(values("--work")[0])
        scratch = [os.path.realpath(place) for place in values("--scratch")]
        self.places = Places(work, scratch, self.identity)
        self.settings = KernelSettings(self.identity, self.own_namespace)
        self.oom = OomCounter(values("--oom-counter"))
        self.ctypes, self.libc = load_libc()
        self.seccomp = None
        self.pid = os.getpid()
        self.channel_in, self.channel_out = 0, 1
        self.child = self.child_status = None
        self.greeted = False
        self.relay = None
        fds = values("--channel-fds")
        self.direct = tuple(int(fd) for fd in fds[0].split(",")) if fds else None

    def start(self):
        """Lock the worker down, greet the host and take its configuration."""
        # Stray children must not make the worker die of SIGPIPE or stop on SIGINT.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            prctl(self.libc, self.ctypes, PR_SET_DUMPABLE, 0)
            if self.own_namespace:
                forget_time_wait()
                if self.identity.uid is not None:
                    oom_score_adj(-1000)  # the OOM killer never takes the worker (if allowed)
                self.identity.narrow(self.libc, self.ctypes)
        except OSError as exc:
            raise Refused(f"cannot lock the worker down: {exc.strerror}") from None
        with contextlib.suppress(OSError):
            os.setsid()  # a process group of its own, apart from the runs'
        self.channel_in, self.channel_out = os.dup(0), os.dup(1)
        # The run's output goes to its own pipes; the worker's 0/1 must not be inherited.
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.close(null)
        hello = {"ready": True, "pid": self.pid, "oom_kills": self.oom.read()}
        write_all(self.channel_out, frame(hello))
        self.greeted = True
        config = read_frame(self.channel_in, MAX_CONFIG)
        if config is None:
            return False
        program = config.get("seccomp")
        if program:
            self.seccomp = SeccompProgram(self.ctypes, self.libc, base64.b64decode(program))
        elif self.require_seccomp:
            raise Refused("this sandbox needs a system-call filter and the host sent none")
        preload(config.get("preload") or {})
        return True

    def serve(self):
        # What the worker has allocated so far is never collected in a run's process: a
        # collection there would touch (and copy) every page of it.
        gc.freeze()
        while True:
            pipes = Pipes()
            self.child, self.child_status = self.fork(), None
            if self.child == 0:
                spare(self, pipes)
            for fd in pipes.child_ends():
                os.close(fd)
            reply, capture = self.supervise(pipes)
            if reply is None:
                return  # the host is gone
            payload = capture.payload() if capture is not None else []
            try:
                write_all(self.channel_out, frame(reply), *payload)
            finally:
                for view in payload:
                    view.release()
                if capture is not None:
                    capture.close()
            relay, self.relay = self.relay, None
            if relay is not None and not relay.await_end():
                return  # the host is gone, or no longer in step with this worker
            if relay is not None and relay.direct:
                self.empty_direct_channel()
            if reply.get("retire"):
                return

    def empty_direct_channel(self):
        """What the host sent that the run did not read must not reach the next run; nor
        what the run changed of the pipes it shared with the worker (their status flags,
        owner, size)."""
        to_run = self.direct[0]
        os.set_blocking(to_run, False)
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(to_run, CHUNK):
                pass
        for fd in self.direct:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, 0)  # blocking, no O_DIRECT, no O_ASYNC
                fcntl.fcntl(fd, fcntl.F_SETOWN, 0)
                fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)

    def fork(self):
        # Right after a run, its processes may still be counted (unreaped) against the
        # sandbox's process limit: try again for a moment.
        deadline = time.monotonic() + KILL_BUDGET_S
        while True:
            try:
                return os.fork()
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                self.reap()
                time.sleep(0.005)

    def reap(self):
        """Collect every exited child, keeping the spare's status: as the namespace's init,
        the worker is also the parent of every orphan the run left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.child_status = status

    def supervise(self, pipes):
        """One request, from the spare's set-up to the reply; (None, None) when the host left."""
        setup = self.wait_for_setup(pipes.setup_r)
        os.close(pipes.setup_r)
        if setup.get("eof"):
            self.finish(pipes, None)
            return None, None
        if "error" in setup:
            self.finish(pipes, None)
            # A session's request that could not be placed leaves the session's files be.
            retire = setup.get("retire") or self.clean_up(keep=bool(setup.get("keep")))
            reply = {
                "id": setup.get("id"),
                "error": setup["error"][:MAX_REASON],
                "retire": retire and retire[:MAX_REASON],
                "before_run": True,
                "fatal": bool(setup.get("fatal")),
            }
            return reply, None
        capture = Capture(int(setup["output_bytes"]))
        if setup["channel"]:
            direct = setup["channel"] == "direct"
            self.relay = Relay(self, pipes, setup["channel_bytes"] or MAX_REQUEST, direct)
        oom_before = self.oom.read()
        started = time.monotonic()
        exited_at, timed_out = self.watch(pipes, capture, started + float(setup["timeout_s"]))
        exit_status = self.finish(pipes, capture)
        if os.WIFSIGNALED(exit_status):
            exit_code = -os.WTERMSIG(exit_status)
        else:
            exit_code = os.WEXITSTATUS(exit_status)
        retire = self.clean_up(keep=bool(setup["keep"]))
        oom_after = self.oom.read()
        oom_killed = oom_after is not None and oom_before is not None and oom_after > oom_before
        reply = {
            "id": setup["id"],
            "exit_code": None if timed_out else exit_code,
            "timed_out": timed_out,
            # The kernel's OOM killer in the sandbox's cgroup, or a MemoryError that ended the
            # run (the marker alone, which the run could write itself, is not enough).
            "oom_killed": oom_killed or (exit_code != 0 and capture.status().startswith(b"oom")),
            "oom_kills": oom_after,
            "duration_s": (exited_at or time.monotonic()) - started,
            "stdout_len": capture.sizes["stdout"],
            "stderr_len": capture.sizes["stderr"],
            "stdout_truncated": capture.truncated["stdout"],
            "stderr_truncated": capture.truncated["stderr"],
            "stopped": self.relay is not None and self.relay.stopped,
            "retire": retire and retire[:MAX_REASON],
        }
        return reply, capture

    def wait_for_setup(self, setup_r):
        """The spare's report once it has its request; an error if it died without one."""
        exit_fd = pid_fd(self.child)
        watched = [setup_r] if exit_fd is None else [setup_r, exit_fd]
        try:
            while True:
                readable, _, _ = select.select(watched, [], [], 1.0 if exit_fd else 0.02)
                if setup_r in readable:
                    try:
                        message = read_frame(setup_r, MAX_SETUP)
                    except (OSError, ValueError) as exc:
                        message = {"error": f"the run's set-up failed: {exc}", "retire": "set-up"}
                    if message is not None:
                        return message
                    break  # the spare closed it without a word
                self.reap()
                exited = exit_fd in readable or self.child_status is not None
                # It may have written its report just before exiting.
                if exited and not select.select([setup_r], [], [], 0)[0]:
                    break
        finally:
            if exit_fd is not None:
                os.close(exit_fd)
        return {"error": "the run's process died before it started", "retire": "out of step"}

    def watch(self, pipes, capture, deadline):
        """Collect the run's output (and relay its channel) until it exits, its time is up or
        the host stops it: (exited_at, timed_out)."""
        streams = {pipes.stdout_r: "stdout", pipes.stderr_r: "stderr", pipes.status_r: "status"}
        relay = self.relay
        open_fds = set(streams)
        exit_fd = pid_fd(self.child)
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        if exit_fd is not None:
            poller.register(exit_fd, select.POLLIN)
        host_in = relay is not None
        writing_to = None  # the run's input, while the worker has some for it
        if relay is not None:
            if relay.from_run is not None:
                open_fds.add(relay.from_run)
                poller.register(relay.from_run, select.POLLIN)
            poller.register(self.channel_in, select.POLLIN)
        else:
            # No events asked for: only an error (the host closed its end) is reported for it.
            poller.register(self.channel_out, 0)
        exited_at = None
        try:
            while True:
                now = time.monotonic()
                if exited_at is None:
                    self.reap()
                    if self.child_status is not None:
                        exited_at = now
                        if exit_fd is not None:
                            poller.unregister(exit_fd)
                if exited_at is not None and (not open_fds or now - exited_at > 0.05):
                    return exited_at, False  # exited, its output read (or held by strays)
                wake_at = deadline
                if relay is not None and relay.stop_at is not None:
                    if now >= relay.stop_at:
                        relay.stopped = True
                        return exited_at, False
                    wake_at = min(deadline, relay.stop_at)
                if now >= deadline:
                    return exited_at, exited_at is None
                if relay is not None:
                    if writing_to is not None:
                        poller.unregister(writing_to)
                        writing_to = None
                    if relay.pending and relay.to_run is not None:
                        writing_to = relay.to_run
                        poller.register(writing_to, select.POLLOUT)
                    if host_in != relay.wants_input():
                        host_in = not host_in
                        if host_in:
                            poller.register(self.channel_in, select.POLLIN)
                        else:
                            poller.unregister(self.channel_in)
                if exited_at is not None or exit_fd is None:
                    wait = 0.005
                else:
                    wait = 0.02 if self.pid == 1 else 1.0  # init reaps orphans as it goes
                for fd, _ in poller.poll(max(0.0, min(wake_at - now, wait)) * 1000):
                    if fd == self.channel_out or (fd == self.channel_in and not relay.take_input()):
                        self.kill_rest()
                        os._exit(0)  # the host is gone: nobody waits for this run
                    if relay is not None and fd == relay.from_run:
                        if not relay.take_output():
                            open_fds.discard(fd)
                            poller.unregister(fd)
                    elif fd == writing_to:
                        relay.flush()
                    elif fd in open_fds and not capture.read(fd, streams[fd]):
                        open_fds.discard(fd)
                        poller.unregister(fd)
        finally:
            if exit_fd is not None:
                os.close(exit_fd)

    def finish(self, pipes, capture):
        """Kill what is left of the run, collect what it wrote, close its pipes; the spare's
        wait status."""
        self.kill_rest()
        streams = {pipes.stdout_r: "stdout", pipes.stderr_r: "stderr", pipes.status_r: "status"}
        for fd, stream in streams.items():
            if capture is not None:
                capture.drain(fd, stream)
            os.close(fd)
        if self.relay is not None:
            if not self.relay.ended:
                self.relay.end_output()
            self.relay.close()
        else:
            os.close(pipes.to_run_w)
            os.close(pipes.from_run_r)
        deadline = time.monotonic() + KILL_BUDGET_S
        while self.child_status is None and time.monotonic() < deadline:
            self.reap()
            if self.child_status is None:
                time.sleep(0.0005)
        return self.child_status if self.child_status is not None else signal.SIGKILL

    def kill_rest(self):
        """Kill every process the run started, however it detached itself."""
        with self.identity.acting():
            if self.own_namespace:
                # Alone in a PID namespace, every process but its init and the worker belongs
                # to the run: kill(-1) reaches children that double-forked or left the session.
                with contextlib.suppress(OSError):
                    os.kill(-1, signal.SIGKILL)
            else:
                with contextlib.suppress(OSError):
                    os.killpg(self.child, signal.SIGKILL)

    def survivors(self):
        """Processes of the run still there (knowable only alone in a PID namespace). A
        zombie counts until it is reaped: one that died after the last reap would otherwise
        stay in /proc, for the next run to see."""
        if not self.own_namespace:
            return []
        return [
            int(name)
            for name in os.listdir("/proc")
            if name.isdigit() and int(name) not in (1, self.pid)
        ]

    def collect_in_flight(self):
        """Descriptors a run sent into its own Unix sockets and never received outlive every
        process of it (memory, files, sockets, terminals, all held by the kernel) until the
        kernel collects such sockets. Have it collect them now, and wait until it has.
        None, or why to retire."""
        if not self.own_namespace or not unix_sockets_left():
            return None
        # A canary cycle of our own: its pipe's write end goes when the collector has run.
        done_r, done_w = os.pipe()
        first, second = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            socket.send_fds(first, [b"."], [done_w, first.fileno(), second.fileno()])
        finally:
            os.close(done_w)
            first.close()
            second.close()
        deadline = time.monotonic() + KILL_BUDGET_S
        try:
            while True:
                # Releasing a Unix socket while cycles are in flight sets the collector off.
                for end in socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM):
                    end.close()
                wait = min(0.05, deadline - time.monotonic())
                collected = wait > 0 and select.select([done_r], [], [], wait)[0]
                if collected or time.monotonic() >= deadline:
                    break
        finally:
            os.close(done_r)
        if not collected:
            return "the kernel did not collect what the run left in flight"
        while unix_sockets_left():  # what the collector freed goes a moment later
            if time.monotonic() >= deadline:
                return "Unix sockets of the run are still alive"
            time.sleep(0.001)
        return None

    def clean_up(self, keep):
        """After a run: no process of it alive, its places empty. None, or why to retire."""
        deadline = time.monotonic() + KILL_BUDGET_S
        while True:
            self.reap()
            alive = self.survivors()
            if not alive:
                break
            if time.monotonic() > deadline:
                return f"processes {alive[:5]} of the run survived SIGKILL"
            self.kill_rest()
            time.sleep(0.001)
        reason = self.collect_in_flight() or self.settings.restore()
        if reason:
            return reason
        try:
            return self.places.restore(keep)
        except OSError as exc:
            return f"cannot restore the working directories: {exc.strerror}"


def preload(sources):
    """Import the host's modules for runs now, once, rather than in every run."""
    for name, source in sources.items():
        module = types.ModuleType(name)
        module.__file__ = f"<{name}>"
        sys.modules[name] = module
        try:
            exec(compile(source, module.__file__, "exec"), module.__dict__)
        except Exception as exc:
            del sys.modules[name]
            raise Refused(f"cannot preload {name}: {type(exc).__name__}: {exc}") from None


def unix_sockets_left():
    """Any Unix socket in the sandbox's network namespace (the worker holds none)."""
    try:
        with open("/proc/net/unix", "rb") as handle:
            return len(handle.read().splitlines()) > 1
    except OSError:
        return True


def pid_fd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3 or Python 3.9: poll instead
        return None


def main():
    worker = None
    try:
        worker = Worker(sys.argv[1:])
        if worker.start():
            worker.serve()
    except Refused as exc:
        # Nothing runs unless the worker can vouch for how; the host reports why, in place
        # of the greeting or of the first reply.
        message = {"error": str(exc)}
        if worker is not None and worker.greeted:
            message.update(id=None, retire=str(exc), before_run=True, fatal=True)
        with contextlib.suppress(OSError):
            write_all(worker.channel_out if worker else 1, frame(message))
        sys.exit(3)


if __name__ == "__main__":
    main()
