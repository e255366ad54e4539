"""The program that runs inside every sandbox: it executes requests from the host.

It is started once per sandboxed interpreter (`python3 -I -S -c <this file's source> ...`)
and then, for each request, forks a fresh child that runs the code, so a run costs a fork
rather than an interpreter start-up. Standard library only, since it runs on whatever Python
the sandbox has; the host never imports it.

Framing on stdin/stdout: an 8-byte big-endian length, then that many bytes of JSON. The worker
first writes a `{"ready": true}` frame, then answers each request with one result frame.
`--once` answers a single request and exits (for one `docker exec` per run).
"""

import base64
import contextlib
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types

HEADER = struct.Struct(">Q")
CHUNK = 65536
MAX_REQUEST = 1 << 30
MAX_FD = 1 << 16
# Code runs from this file, so tracebacks name it and show its lines.
MAIN = "main.py"


def read_exact(fd, size):
    parts = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def read_frame(fd):
    header = read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_REQUEST:
        raise ValueError("request too large")
    body = read_exact(fd, size)
    return None if body is None else json.loads(body)


def write_frame(fd, message):
    body = json.dumps(message).encode()
    data = HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


def wipe(directory):
    """Empty the working directory (files the last run left, read-only ones included)."""
    for root, dirs, files in os.walk(directory, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.chmod(path, 0o700)
                os.rmdir(path)


def make_writable(directory):
    # A run may chmod its files read-only; the next fresh run must still be able to wipe them.
    for root, dirs, _ in os.walk(directory):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


def place_files(directory, files):
    for name, encoded in files.items():
        path = os.path.normpath(os.path.join(directory, name))
        if not path.startswith(directory + os.sep):
            raise ValueError("file path outside the working directory: " + name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(encoded))


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


def child(request, directory, pipes, status_w):
    """In the forked child: become the run. Never returns."""
    code = 1
    try:
        os.setsid()
        stdin_r, stdout_w, stderr_w = pipes
        os.dup2(stdin_r, 0)
        os.dup2(stdout_w, 1)
        os.dup2(stderr_w, 2)
        # Nothing of the worker's reaches the run but its three streams and the status pipe.
        os.closerange(3, status_w)
        os.closerange(status_w + 1, MAX_FD)
        os.chdir(directory)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        environment = dict(request["env"])
        set_limits(request)
        if request.get("argv"):
            argv = request["argv"]
            try:
                os.execvpe(argv[0], argv, environment)
            except OSError as exc:
                os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
                os._exit(127)
        os.environ.clear()
        os.environ.update(environment)
        # The worker's own streams were /dev/null; the run's are the pipes on 0, 1 and 2.
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        code = run_main(directory, status_w)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code)


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
    """The traceback from the first frame in the user's files on: runpy's frames say nothing."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(directory):
        tb = tb.tb_next
    sys.stderr.flush()
    traceback.print_exception(type(exc), exc, tb)


def pid_fd(pid):
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # before Linux 5.3 or Python 3.9: poll instead
        return None


def kill_rest(pid, own_namespace):
    """Kill every process the run started, however it detached itself."""
    if own_namespace:
        # Alone in a PID namespace, every other process but its init belongs to the run:
        # kill(-1) reaches children that double-forked or left the session too.
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
    else:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def wipe_scratch(scratch):
    for place in scratch:
        with contextlib.suppress(OSError):
            wipe(place)


def execute(request, directory, own_namespace, scratch=()):
    if request.get("fresh", True):
        wipe(directory)
        wipe_scratch(scratch)
    place_files(directory, request.get("files", {}))
    if request.get("code") is not None:
        with open(os.path.join(directory, MAIN), "w", encoding="utf-8") as handle:
            handle.write(request["code"])
    limit = int(request.get("output_bytes", 1 << 20))
    timeout = float(request.get("timeout_s", 10.0))
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    status_r, status_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        for fd in (stdin_w, stdout_r, stderr_r, status_r):
            os.close(fd)
        child(request, directory, (stdin_r, stdout_w, stderr_w), status_w)
    for fd in (stdin_r, stdout_w, stderr_w, status_w):
        os.close(fd)
    pending_input = base64.b64decode(request.get("stdin") or "")
    if not pending_input:
        os.close(stdin_w)
        stdin_w = None
    else:
        os.set_blocking(stdin_w, False)
    captured = {stdout_r: bytearray(), stderr_r: bytearray()}
    truncated = {stdout_r: False, stderr_r: False}
    open_fds = [stdout_r, stderr_r, status_r]
    status = bytearray()
    # Readable when the child exits, so the wait below wakes at once rather than polling.
    exit_fd = pid_fd(pid)
    deadline = started + timeout
    exit_status = None
    timed_out = False
    exited_at = None
    while True:
        now = time.monotonic()
        if exit_status is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                exit_status, exited_at = wait_status, now
        if exit_status is not None and (not open_fds or now - exited_at > 0.05):
            break  # exited, and its output is read (or held open by stray children)
        if now >= deadline:
            timed_out = exit_status is None
            break
        writers = [stdin_w] if stdin_w is not None else []
        watched = list(open_fds)
        if exit_status is None and exit_fd is not None:
            watched.append(exit_fd)
        wait = min(deadline - now, 0.005 if exit_status is not None or exit_fd is None else 1.0)
        readable, writable, _ = select.select(watched, writers, [], max(wait, 0))
        for fd in readable:
            if fd == exit_fd:
                continue
            data = os.read(fd, CHUNK)
            if not data:
                open_fds.remove(fd)
                continue
            if fd == status_r:
                status += data
                continue
            room = limit - len(captured[fd])
            if len(data) > room:
                truncated[fd] = True
            captured[fd] += data[: max(room, 0)]
        if writable:
            try:
                sent = os.write(stdin_w, pending_input[:CHUNK])
                pending_input = pending_input[sent:]
            except (BrokenPipeError, BlockingIOError) as exc:
                if isinstance(exc, BrokenPipeError):
                    pending_input = b""
            if not pending_input:
                os.close(stdin_w)
                stdin_w = None
    kill_rest(pid, own_namespace)
    if exit_status is None:
        _, exit_status = os.waitpid(pid, 0)
    duration = (exited_at or time.monotonic()) - started
    for fd in open_fds:
        # Whatever is still buffered, without waiting for stray writers (they are dead now).
        os.set_blocking(fd, False)
        try:
            while len(captured.get(fd, b"")) < limit or fd == status_r:
                data = os.read(fd, CHUNK)
                if not data:
                    break
                if fd == status_r:
                    status += data
                else:
                    room = limit - len(captured[fd])
                    truncated[fd] = truncated[fd] or len(data) > room
                    captured[fd] += data[:room]
        except BlockingIOError:
            pass
    for fd in (stdout_r, stderr_r, status_r):
        os.close(fd)
    if exit_fd is not None:
        os.close(exit_fd)
    if stdin_w is not None:
        os.close(stdin_w)
    if os.WIFSIGNALED(exit_status):
        exit_code = -os.WTERMSIG(exit_status)
    else:
        exit_code = os.WEXITSTATUS(exit_status)
    make_writable(directory)
    if not request.get("keep", False):
        wipe(directory)  # free the space now: a tmpfs holds it in memory
        wipe_scratch(scratch)
    return {
        "stdout": base64.b64encode(bytes(captured[stdout_r])).decode(),
        "stderr": base64.b64encode(bytes(captured[stderr_r])).decode(),
        "stdout_truncated": truncated[stdout_r],
        "stderr_truncated": truncated[stderr_r],
        "exit_code": None if timed_out else exit_code,
        "timed_out": timed_out,
        "memory_error": bytes(status).startswith(b"oom"),
        "duration_s": duration,
    }


def main():
    args = sys.argv[1:]
    directory = os.path.realpath(args[args.index("--work") + 1])
    own_namespace = "--own-pid-namespace" in args
    once = "--once" in args
    scratch = [args[i + 1] for i, arg in enumerate(args) if arg == "--scratch"]
    os.makedirs(directory, exist_ok=True)
    # Stray children must not make the worker die of SIGPIPE or stop on SIGINT.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = os.dup(0), os.dup(1)
    # The run's output goes to its own pipes; the worker's 0/1 must not be inherited.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if not once:
        write_frame(stdout, {"ready": True, "pid": os.getpid()})
    while True:
        request = read_frame(stdin)
        if request is None:
            return
        try:
            reply = execute(request, directory, own_namespace, scratch)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        write_frame(stdout, reply)
        if once:
            return


if __name__ == "__main__":
    main()
