"""What every sandbox backend does the same way: the `Sandbox` API, checked against each backend."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from redraft.errors import ConfigError
from redraft.sandboxes import (
    Limits,
    Sandbox,
    SandboxError,
    SandboxSession,
    SandboxUnavailable,
    get_sandbox,
)
from tests.sandbox_backends import (  # noqa: F401  (the *_fixture are used by name)
    ISOLATING,
    SandboxFactory,
    backend_fixture,
    fresh_sandbox_fixture,
    in_ci,
    limited_sandbox_fixture,
    sandbox_fixture,
    sandbox_name,
)

MIB = 1 << 20


def test_satisfies_the_protocols(backend: str, sandbox: Sandbox) -> None:
    assert isinstance(sandbox, Sandbox)
    assert sandbox.name == sandbox_name(backend)
    with sandbox.session() as session:
        assert isinstance(session, SandboxSession)
    result = sandbox.run("print('hi')")
    assert result.backend == sandbox_name(backend)


# Output and exit codes


def test_stdout_stderr_and_exit_code(sandbox: Sandbox) -> None:
    code = "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nsys.exit(3)\n"
    result = sandbox.run(code)
    assert (result.stdout, result.stderr, result.exit_code) == ("to out\n", "to err\n", 3)
    assert not result.ok and not result.timed_out and not result.oom_killed
    assert not result.truncated
    assert result.duration_s >= 0


def test_success_is_ok(sandbox: Sandbox) -> None:
    result = sandbox.run("print('é ✓')")
    assert result.ok and result.exit_code == 0
    assert result.stdout == "é ✓\n" and result.stderr == ""


@pytest.mark.parametrize(
    ("program", "exit_code"),
    [
        ("raise SystemExit", 0),
        ("raise SystemExit('bye')", 1),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -9),
        (["sh", "-c", "exit 5"], 5),
        (["sh", "-c", "kill -TERM $$"], -15),
    ],
    ids=["exit-none", "exit-message", "python-sigkill", "argv-exit", "argv-sigterm"],
)
def test_exit_codes(sandbox: Sandbox, program: str | list[str], exit_code: int) -> None:
    result = sandbox.run(program)
    # Negative: killed by that signal.
    assert result.exit_code == exit_code, result
    assert not result.timed_out


def test_traceback_points_at_the_users_line(sandbox: Sandbox) -> None:
    code = "x = 1\n\ndef fail():\n    raise ValueError('boom-' + str(x))\n\nfail()\n"
    result = sandbox.run(code)
    assert result.exit_code == 1
    assert 'main.py", line 4, in fail' in result.stderr
    assert "raise ValueError('boom-' + str(x))" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: boom-1")
    # The sandbox's own machinery is not part of the user's traceback.
    assert "_worker" not in result.stderr and "<string>" not in result.stderr


def test_argv_run(sandbox: Sandbox) -> None:
    result = sandbox.run(["sh", "-c", "echo hi; echo oops >&2"])
    assert (result.stdout, result.stderr, result.exit_code) == ("hi\n", "oops\n", 0)


def test_nonexistent_program(sandbox: Sandbox) -> None:
    result = sandbox.run(["redraft-no-such-program", "arg"])
    assert result.exit_code == 127
    assert "redraft-no-such-program" in result.stderr


def test_empty_argv_is_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(ConfigError):
        sandbox.run([])


# Input


def test_stdin_text(sandbox: Sandbox) -> None:
    result = sandbox.run("import sys\nprint(sys.stdin.read().upper(), end='')", stdin="héllo\n")
    assert result.stdout == "HÉLLO\n"


def test_no_stdin_reads_end_of_file(sandbox: Sandbox) -> None:
    result = sandbox.run("import sys\nprint(repr(sys.stdin.read()))", timeout_s=5)
    assert result.ok and result.stdout == "''\n"


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_stdin_larger_than_a_pipe_buffer(sandbox: Sandbox, kind: str) -> None:
    data: str | bytes
    if kind == "bytes":
        data = bytes(range(256)) * (4 * 1024)  # 1 MiB, not valid UTF-8
        expected = data
    else:
        data = ("line of text ✓\n" * 80_000)[:MIB]
        expected = data.encode()
    code = """
import hashlib, sys
data = sys.stdin.buffer.read()
print(len(data), hashlib.sha256(data).hexdigest())
"""
    result = sandbox.run(code, stdin=data)
    assert result.ok, result
    assert result.stdout.split() == [str(len(expected)), hashlib.sha256(expected).hexdigest()]


def test_stdin_to_an_argv_run(sandbox: Sandbox) -> None:
    result = sandbox.run(["wc", "-c"], stdin=b"x" * MIB)
    assert result.ok and result.stdout.strip() == str(MIB)


def test_stdin_the_program_does_not_read(sandbox: Sandbox) -> None:
    # The run exits without reading a megabyte of input: no hang, no error.
    result = sandbox.run("print('ignored it')", stdin=b"x" * MIB, timeout_s=5)
    assert result.ok and result.stdout == "ignored it\n"


def test_files_are_placed(sandbox: Sandbox) -> None:
    blob = bytes(range(256))
    files: dict[str, str | bytes] = {
        "pkg/__init__.py": "",
        "pkg/mod.py": "VALUE = 42\n",
        "data/deep/blob.bin": blob,
        "notes.txt": "ünïcode\n",
    }
    code = """
import hashlib
from pkg.mod import VALUE
print(VALUE)
print(hashlib.sha256(open("data/deep/blob.bin", "rb").read()).hexdigest())
print(open("notes.txt", encoding="utf-8").read(), end="")
"""
    result = sandbox.run(code, files=files)
    assert result.ok, result
    assert result.stdout.splitlines() == ["42", hashlib.sha256(blob).hexdigest(), "ünïcode"]
    argv = sandbox.run(["cat", "notes.txt"], files=files)
    assert argv.ok and argv.stdout == "ünïcode\n"


@pytest.mark.parametrize(
    "name", ["../x", "/etc/x", "a/../../x", "a/../b", "", "sub/../../../etc/passwd"]
)
def test_file_paths_outside_the_working_directory_are_rejected(sandbox: Sandbox, name: str) -> None:
    with pytest.raises(ConfigError):
        sandbox.run("print('never runs')", files={name: "x"})


@pytest.mark.parametrize(
    ("env", "argv"),
    [
        ({"A=B": "x"}, None),
        ({"": "x"}, None),
        ({"NUL": "a\0b"}, None),
        ({"N\0UL": "x"}, None),
        (None, ["echo", "a\0b"]),
    ],
    ids=["equals-in-name", "empty-name", "nul-in-value", "nul-in-name", "nul-in-argv"],
)
def test_environment_and_arguments_no_program_could_get_are_refused(
    sandbox: Sandbox, env: dict[str, str] | None, argv: list[str] | None
) -> None:
    with pytest.raises(ConfigError):
        sandbox.run(argv or "print('never runs')", env=env)


def test_environment_is_passed(sandbox: Sandbox) -> None:
    env = {"REDRAFT_GREETING": "hello", "LANG": "C.UTF-8"}
    code = "import os\nprint(os.environ['REDRAFT_GREETING'])"
    assert sandbox.run(code, env=env).stdout == "hello\n"
    argv = sandbox.run(["sh", "-c", 'echo "$REDRAFT_GREETING"'], env=env)
    assert argv.stdout == "hello\n"
    # Not carried over to the next run.
    later = sandbox.run("import os\nprint(os.environ.get('REDRAFT_GREETING'))")
    assert later.stdout == "None\n"


# Working directories and sessions


def test_each_run_starts_in_a_fresh_empty_working_directory(limited_sandbox: Sandbox) -> None:
    # One worker: the second run is on the worker the first one had.
    first = limited_sandbox.run(
        "import os\nos.makedirs('sub')\nopen('sub/left.txt', 'w').write('x')\n"
        "os.chmod('sub', 0o500)\nprint(sorted(os.listdir('.')))",
        files={"given.txt": "y"},
    )
    assert first.ok and first.stdout == "['given.txt', 'main.py', 'sub']\n", first
    second = limited_sandbox.run("import os\nprint(sorted(os.listdir('.')))")
    assert second.ok and second.stdout == "['main.py']\n", second
    argv = limited_sandbox.run(["ls", "-A"])
    assert argv.ok and argv.stdout == "", argv


def test_working_directory_is_writable(sandbox: Sandbox) -> None:
    code = """
import tempfile
open("out.txt", "w").write("data")
with tempfile.NamedTemporaryFile() as handle:  # wherever TMPDIR points: it must work
    handle.write(b"temp")
print(open("out.txt").read())
"""
    result = sandbox.run(code)
    assert result.ok and result.stdout == "data\n", result


def test_session_keeps_files_across_runs(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        first = session.run("open('state.txt', 'w').write('one')", files={"given.txt": "g"})
        assert first.ok, first
        second = session.run(
            "import os\nprint(sorted(os.listdir('.')), open('state.txt').read())",
            files={"more.txt": "m"},
        )
        assert second.ok, second
        assert second.stdout == "['given.txt', 'main.py', 'more.txt', 'state.txt'] one\n"
        argv = session.run(["cat", "state.txt"])
        assert argv.stdout == "one"


def test_a_session_run_cannot_trap_the_next_one_with_what_it_leaves(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        # A FIFO where the next run's main.py and file go, a link where another does.
        trap = (
            "import os\nos.remove('main.py')\nos.mkfifo('main.py')\nos.mkfifo('data.txt')\n"
            "os.symlink('/tmp/elsewhere', 'link.txt')\nopen('state', 'w').write('kept')"
        )
        assert session.run(trap).ok
        code = "import os\nprint(open('data.txt').read(), open('link.txt').read(), "
        code += "os.path.islink('link.txt'), os.path.exists('/tmp/elsewhere'))"
        result = session.run(code, files={"data.txt": "D", "link.txt": "L"}, timeout_s=5)
        assert result.ok and result.stdout == "D L False False\n", result
        # A request the session's files make impossible fails alone: the files stay.
        with pytest.raises(SandboxError):
            session.run("print('never runs')", files={"state/inside": "x"})
        assert session.run("print(open('state').read())").stdout == "kept\n"


def test_sessions_are_isolated_from_each_other(sandbox: Sandbox) -> None:
    with sandbox.session() as first, sandbox.session() as second:
        assert first.run("open('mine.txt', 'w').write('first')").ok
        assert second.run("open('mine.txt', 'w').write('second')").ok
        read = "import os\nprint(open('mine.txt').read(), sorted(os.listdir('.')))"
        assert first.run(read).stdout == "first ['main.py', 'mine.txt']\n"
        assert second.run(read).stdout == "second ['main.py', 'mine.txt']\n"
    # And a plain run sees neither.
    assert sandbox.run("import os\nprint(os.path.exists('mine.txt'))").stdout == "False\n"


def test_closed_session_refuses_runs(sandbox: Sandbox) -> None:
    session = sandbox.session()
    assert session.run("print(1)").ok
    session.close()
    with pytest.raises(SandboxError, match="closed"):
        session.run("print(2)")


# Limits


def test_per_run_memory_limit_can_be_lowered_and_raised_again(
    fresh_sandbox: SandboxFactory,
) -> None:
    box = fresh_sandbox(limits=Limits(memory_mb=256), pool_size=1)
    allocate = "block = bytearray(100 << 20)\nblock[::4096] = b'x' * (100 << 8)\nprint('ok')"
    low = box.run(allocate, memory_mb=64)
    assert low.oom_killed and not low.ok, low
    # The same worker, with a larger limit than the one it ran under last.
    high = box.run(allocate, memory_mb=512)
    assert high.ok and high.stdout == "ok\n", high
    default = box.run(allocate)
    assert default.ok and default.stdout == "ok\n", default


def test_output_limit_is_per_stream(fresh_sandbox: SandboxFactory) -> None:
    box = fresh_sandbox(limits=Limits(output_bytes=1000))
    code = "import sys\nsys.stdout.write('o' * 5000)\nsys.stderr.write('e' * 10)"
    result = box.run(code)
    assert result.ok, result
    assert result.stdout == "o" * 1000 and result.stdout_truncated
    assert result.stderr == "e" * 10 and not result.stderr_truncated
    assert result.truncated


# Async


async def test_arun(sandbox: Sandbox) -> None:
    result = await sandbox.arun("import sys\nprint(sys.stdin.read())", stdin="async")
    assert result.ok and result.stdout == "async\n"


async def test_many_concurrent_aruns_do_not_mix(fresh_sandbox: SandboxFactory) -> None:
    box = fresh_sandbox(pool_size=2)
    code = """
import os, sys, time
ident = sys.stdin.read()
open("id.txt", "w").write(ident)
time.sleep(0.05)
print(ident, open("id.txt").read(), os.environ["RUN_ID"], sorted(os.listdir(".")))
"""

    async def one(i: int) -> None:
        files = {f"file-{i}.txt": str(i)}
        result = await box.arun(code, stdin=str(i), env={"RUN_ID": str(i)}, files=files)
        assert result.ok, result
        assert result.stdout == f"{i} {i} {i} ['file-{i}.txt', 'id.txt', 'main.py']\n"

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(20))), timeout=120)


async def test_async_session(sandbox: Sandbox) -> None:
    with sandbox.session() as session:
        assert (await session.arun("open('a.txt', 'w').write('kept')")).ok
        result = await session.arun("print(open('a.txt').read())")
    assert result.stdout == "kept\n"


# Choosing a backend


def test_get_sandbox_by_name(backend: str, sandbox: Sandbox) -> None:
    chosen = get_sandbox(sandbox_name(backend))
    try:
        assert chosen.name == sandbox_name(backend)
        assert chosen.run("print(6 * 7)").stdout == "42\n"
    finally:
        chosen.close()


def test_auto_chooses_an_isolating_backend() -> None:
    try:
        chosen = get_sandbox("auto")
    except SandboxUnavailable as exc:
        if in_ci():
            raise
        pytest.skip(f"no isolating sandbox here: {exc}")
    try:
        assert chosen.name in ISOLATING
        assert chosen.run("print('isolated')").stdout == "isolated\n"
    finally:
        chosen.close()


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        get_sandbox("nonsense")
    message = str(caught.value)
    assert "nonsense" in message
    for name in ("auto", "bwrap", "docker", "subprocess"):
        assert name in message


def test_limits_are_validated() -> None:
    for bad in ({"timeout_s": 0}, {"memory_mb": 8}, {"processes": 0}, {"output_bytes": 0}):
        with pytest.raises(ConfigError):
            Limits(**bad)  # type: ignore[arg-type]


# What ordinary code does must still work under the isolation


ORDINARY_SYSTEM_USE = """
import asyncio, json, multiprocessing, os, resource, signal, subprocess, sys, tempfile
import threading, time
done = {}
# Threads, a pool of processes (POSIX semaphores in /dev/shm), subprocesses.
threads = [threading.Thread(target=lambda: None) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
done["threads"] = len(threads)
with multiprocessing.get_context("fork").Pool(2) as pool:
    done["pool"] = sum(pool.map(abs, [-1, -2, -3]))
done["subprocess"] = subprocess.run(["sh", "-c", "echo $$"], capture_output=True).returncode
async def child():
    proc = await asyncio.create_subprocess_exec("true")
    return await proc.wait()
done["asyncio"] = asyncio.run(child())
# Signals to its own processes, its own group; limits and priority of its own.
sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
os.killpg(sleeper.pid, signal.SIGTERM)
done["killpg"] = sleeper.wait()
other = subprocess.Popen(["sleep", "30"])
os.kill(other.pid, signal.SIGKILL)
done["kill"] = other.wait()
os.kill(os.getpid(), 0)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
done["nice"] = os.nice(1)
os.sched_setaffinity(0, os.sched_getaffinity(0))
done["own fds"] = len(os.listdir("/proc/self/fd")) > 2
done["own status"] = "Name" in open("/proc/self/status").read()
with tempfile.TemporaryFile() as handle:
    handle.write(b"x")
done["fstat stdin"] = os.fstat(0).st_size >= 0
done["stdin"] = sys.stdin.read()
print(json.dumps(done, sort_keys=True))
"""


def test_ordinary_system_use_works_under_the_isolation(sandbox: Sandbox) -> None:
    result = sandbox.run(ORDINARY_SYSTEM_USE, stdin="given", timeout_s=30)
    assert result.ok, result
    assert json.loads(result.stdout) == {
        "asyncio": 0,
        "fstat stdin": True,
        "kill": -9,
        "killpg": -15,
        "nice": 1,
        "own fds": True,
        "own status": True,
        "pool": 6,
        "stdin": "given",
        "subprocess": 0,
        "threads": 8,
    }
