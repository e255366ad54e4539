"""The Docker sandbox: its confinement, its limits, its pool and its error messages.

Tests that need a running daemon and the image `redraft-sandbox:latest` (built by
`redraft sandbox build-image`) are skipped where either is missing, except in CI (CI set),
where a missing daemon or image fails them.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from typer.testing import CliRunner

from redraft.cli.sandbox import sandbox_app
from redraft.errors import ConfigError
from redraft.sandboxes.base import Limits, SandboxError, SandboxUnavailable
from redraft.sandboxes.docker import Container, ContainerGone, DockerSandbox
from redraft.sandboxes.image import debian_mirror, split_name, use_image

IMAGE = "redraft-sandbox:latest"
LIMITS = Limits(timeout_s=5, memory_mb=128)
# Lists the container's processes but the lister and its worker: "pid state command" per line.
PROCESSES = """
import os
for pid in sorted(int(p) for p in os.listdir('/proc') if p.isdigit()):
    if pid in (os.getpid(), os.getppid()):
        continue
    try:
        stat = open(f'/proc/{pid}/stat').read()
        command = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[0].decode()
    except OSError:
        continue
    print(pid, stat.rsplit(')', 1)[1].split()[0], command)
"""


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must have Docker and the image {IMAGE}: {reason}")
    pytest.skip(reason)


def need_sdk() -> Any:
    try:
        import docker
    except ImportError:
        unavailable("the docker SDK is not installed: pip install 'redraft[docker]'")
    return docker


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DockerSandbox]:
    need_sdk()
    box = DockerSandbox(limits=LIMITS, pool_size=2)
    try:
        box.check()
    except SandboxUnavailable as exc:
        unavailable(str(exc))
    try:
        yield box
    finally:
        box.close()


@pytest.fixture
def single(sandbox: DockerSandbox) -> Iterator[DockerSandbox]:
    """A sandbox with one container, so consecutive runs share it."""
    box = DockerSandbox(limits=LIMITS, pool_size=1, client=sandbox.client)
    try:
        yield box
    finally:
        box.close()


def test_runs_code_and_reports_its_streams_and_exit_code(sandbox: DockerSandbox) -> None:
    result = sandbox.run(
        "import sys\nprint(input().upper())\nprint('warn', file=sys.stderr)\nsys.exit(3)",
        stdin="hello",
    )
    assert (result.stdout, result.stderr, result.exit_code) == ("HELLO\n", "warn\n", 3)
    assert result.backend == "docker" and sandbox.name == "docker"
    argv = sandbox.run(
        ["sh", "-c", "cat data.txt; echo $GREETING"],
        files={"data.txt": "x\n"},
        env={"GREETING": "hi"},
    )
    assert argv.stdout == "x\nhi\n" and argv.ok


def test_runs_as_nobody(sandbox: DockerSandbox) -> None:
    assert sandbox.run(["id", "-u"]).stdout.strip() == "65534"
    assert sandbox.run(["id", "-g"]).stdout.strip() == "65534"


def test_root_is_read_only_and_the_working_dir_writable(sandbox: DockerSandbox) -> None:
    result = sandbox.run(
        """
import os
for path in ('/etc/owned', '/owned', '/usr/owned', '/sandbox/mine'):
    try:
        open(path, 'w').write('x')
        print(path, 'written')
    except OSError as exc:
        print(path, 'refused', exc.strerror)
print(os.getcwd())
"""
    )
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "/etc/owned refused Read-only file system",
        "/owned refused Read-only file system",
        "/usr/owned refused Read-only file system",
    ]
    assert lines[3:] == ["/sandbox/mine written", "/sandbox"]


def test_no_capabilities_and_no_new_privileges(sandbox: DockerSandbox) -> None:
    status = sandbox.run(["cat", "/proc/self/status"]).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap
    assert fields["NoNewPrivs"].strip() == "1"


def test_no_network_but_loopback(sandbox: DockerSandbox) -> None:
    assert sandbox.run(["ls", "/sys/class/net"]).stdout.split() == ["lo"]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = sandbox.run(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)"
        )
    assert result.exit_code == 1
    assert "ConnectionRefusedError" in result.stderr


def test_host_environment_does_not_enter(sandbox: DockerSandbox, monkeypatch: Any) -> None:
    monkeypatch.setenv("REDRAFT_TEST_SECRET", "hunter2")
    result = sandbox.run("import os; print(sorted(os.environ))", env={"EXTRA": "1"})
    assert "REDRAFT_TEST_SECRET" not in result.stdout and "EXTRA" in result.stdout


def test_memory_bomb_is_reported_as_oom(single: DockerSandbox) -> None:
    result = single.run("x = bytearray(1 << 30)")
    assert result.oom_killed and not result.ok
    # Each process stays under the per-process limit; together they pass the container's.
    many = single.run(
        """
import os, time
for _ in range(6):
    if os.fork() == 0:
        block = bytearray(100 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(30)
        os._exit(0)
time.sleep(3)
"""
    )
    assert many.oom_killed
    after = single.run("print('fine')")
    assert after.stdout == "fine\n" and not after.oom_killed


def test_larger_memory_limit_for_one_run(single: DockerSandbox) -> None:
    script = """
import os
for path in ('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max'):
    if os.path.exists(path):
        print(int(open(path).read()) >> 20)
"""
    big = single.run("x = bytearray(300 << 20); print(len(x) >> 20)", memory_mb=512)
    assert big.stdout == "300\n" and not big.oom_killed
    assert int(single.run(script, memory_mb=256).stdout) > 256
    assert int(single.run(script).stdout) < 256


def test_timeout_kills_detached_children_and_the_container_is_reused(
    single: DockerSandbox,
) -> None:
    # The start time of the container's init tells one container from another.
    init_started = "print(open('/proc/1/stat').read().rsplit(')', 1)[1].split()[19])"
    before = single.run(init_started).stdout
    result = single.run(
        """
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)
    os._exit(0)
while True:
    pass
""",
        timeout_s=2,
    )
    assert result.timed_out and result.exit_code is None
    after = single.run(PROCESSES + init_started)
    lines = after.stdout.splitlines()
    assert lines[-1] == before.strip()
    # Only the container's init is left: no sleeper, no zombie.
    processes = [line.split(" ", 2) for line in lines[:-1]]
    assert [pid for pid, _, _ in processes] == ["1"]
    assert processes[0][1] != "Z"


def test_fork_bomb_is_contained(single: DockerSandbox) -> None:
    result = single.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        timeout_s=3,
    )
    assert result.timed_out
    assert single.run("print('alive')").stdout == "alive\n"


def test_output_flood_is_truncated(sandbox: DockerSandbox) -> None:
    result = sandbox.run("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))")
    assert result.stdout_truncated and len(result.stdout) == LIMITS.output_bytes


def test_host_processes_are_invisible(sandbox: DockerSandbox) -> None:
    commands = [line.split(" ", 2)[2] for line in sandbox.run(PROCESSES).stdout.splitlines()]
    assert commands == ["python3"]  # its own init only


def test_session_keeps_files_and_runs_do_not(single: DockerSandbox) -> None:
    with single.session() as session:
        assert session.run("open('notes.txt', 'w').write('kept')").ok
        assert session.run("print(open('notes.txt').read())").stdout == "kept\n"
    for path in ("notes.txt", "/tmp/notes.txt", "/dev/shm/notes.txt"):
        assert single.run(f"open('{path}', 'w').write('x')").ok
        assert "FileNotFoundError" in single.run(f"open('{path}')").stderr


async def test_arun_runs_concurrently_off_the_event_loop(sandbox: DockerSandbox) -> None:
    results = await asyncio.gather(*(sandbox.arun(f"print({n} * 2)") for n in range(3)))
    assert [r.stdout for r in results] == ["0\n", "2\n", "4\n"]
    async with sandbox.session() as session:
        await session.arun("open('a', 'w').write('1')")
        assert (await session.arun(["cat", "a"])).stdout == "1"


def test_close_removes_containers(sandbox: DockerSandbox) -> None:
    box = DockerSandbox(limits=LIMITS, pool_size=2, client=sandbox.client)
    box.warm()
    session = box.session()
    session.run("print(1)")
    label = f"redraft.sandbox.owner={box.owner}"
    assert len(sandbox.client.containers.list(filters={"label": label})) == 2
    box.close()
    box.close()
    assert sandbox.client.containers.list(all=True, filters={"label": label}) == []


def test_a_container_gone_while_idle_is_replaced(sandbox: DockerSandbox) -> None:
    with DockerSandbox(limits=LIMITS, pool_size=2, client=sandbox.client) as box:
        session = box.session()
        session.run("print(1)")
        box.warm(1)
        label = f"redraft.sandbox.owner={box.owner}"
        for container in box.client.containers.list(filters={"label": label}):
            container.remove(force=True)
        assert box.run("print('replaced')").stdout == "replaced\n"
        with pytest.raises(SandboxError, match="start a new session"):
            session.run("print(2)")
        session.close()


def test_an_existing_image_can_be_used(sandbox: DockerSandbox) -> None:
    name = "redraft-sandbox-copy:test"
    try:
        use_image(IMAGE, name, client=sandbox.client)
        box = DockerSandbox(image=name, client=sandbox.client, pool_size=1)
        with box:
            assert box.run("print('copy')").stdout == "copy\n"
        with pytest.raises(SandboxUnavailable, match="docker pull redraft-no-such-image:0"):
            use_image("redraft-no-such-image:0", name, client=sandbox.client)
    finally:
        sandbox.client.images.remove(name)


def test_an_image_whose_python_lacks_ctypes_is_refused_with_the_fix(
    sandbox: DockerSandbox,
) -> None:
    # The worker locks runs down through ctypes (prctl, seccomp): without it, no sandbox.
    crippled = "redraft-sandbox-no-ctypes:test"
    dockerfile = f"FROM {IMAGE}\nUSER 0\nRUN rm -r /usr/lib/python3*/ctypes\nUSER 65534\n"
    sandbox.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=crippled, rm=True)
    try:
        with pytest.raises(ConfigError, match="without its ctypes module"):
            use_image(crippled, "redraft-sandbox-copy:test", client=sandbox.client)
        # And used as it is: one clear error, not a run without its lock-down.
        with (
            DockerSandbox(image=crippled, client=sandbox.client, pool_size=1) as box,
            pytest.raises(SandboxError, match="needs python3 with its ctypes module"),
        ):
            box.run("print('never runs')")
    finally:
        sandbox.client.images.remove(crippled, force=True)


def test_a_container_that_stops_before_its_worker_starts_is_one_clear_error(
    sandbox: DockerSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the image above does when its init dies before the worker's exec is even made.
    def gone(self: Container, argv: list[str]) -> NoReturn:
        raise ContainerGone("Container x is not running: Removal In Progress")

    monkeypatch.setattr(Container, "_start_exec", gone)
    with (
        DockerSandbox(client=sandbox.client, pool_size=1) as box,
        pytest.raises(SandboxError, match=r"not running.*needs python3 with its ctypes module"),
    ):
        box.run("print('never runs')")


def test_containers_are_removed_at_exit(sandbox: DockerSandbox) -> None:
    script = textwrap.dedent(
        """
        from redraft.sandboxes.docker import Container, ContainerGone, DockerSandbox
        box = DockerSandbox(pool_size=1)
        assert box.run("print(1)").ok
        print(box.owner)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    label = f"redraft.sandbox.owner={done.stdout.strip()}"
    assert sandbox.client.containers.list(all=True, filters={"label": label}) == []


def test_dead_daemon_is_a_clear_error(monkeypatch: Any) -> None:
    docker = need_sdk()
    client = docker.DockerClient(base_url="unix:///tmp/redraft-no-daemon.sock", version="1.41")
    with pytest.raises(SandboxUnavailable, match=r"Docker daemon is not running.*sandbox='bwrap'"):
        DockerSandbox(client=client).check()
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/redraft-no-daemon.sock")
    with pytest.raises(SandboxUnavailable, match="daemon is not running"):
        DockerSandbox().run("print(1)")


def test_missing_sdk_names_the_extra(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(SandboxUnavailable, match=r"pip install 'redraft\[docker\]'"):
        DockerSandbox().check()


def test_missing_image_is_a_clear_error(sandbox: DockerSandbox) -> None:
    box = DockerSandbox(image="redraft-no-such-image:0", client=sandbox.client)
    with pytest.raises(SandboxUnavailable, match=r"redraft sandbox build-image.*python:3\.12-slim"):
        box.check()
    with pytest.raises(SandboxUnavailable, match="redraft sandbox build-image"):
        box.run("print(1)")


def test_cli_check_reports_docker(sandbox: DockerSandbox) -> None:
    result = CliRunner().invoke(sandbox_app, ["check", "--backend", "docker"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "docker: ok (each run has a uid of its own)"


def test_cli_check_says_why_docker_does_not_work(monkeypatch: Any) -> None:
    need_sdk()
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/redraft-no-daemon.sock")
    result = CliRunner().invoke(sandbox_app, ["check", "--backend", "docker"])
    assert isinstance(result.exception, SandboxUnavailable)
    assert result.output.startswith("docker: unavailable: the Docker daemon is not running")


def test_debian_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    assert debian_mirror(tmp_path) == "http://deb.debian.org/debian"  # no sources: the default
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("")
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm\n\n"
        "Types: deb\nURIs: https://other.example/debian\nSuites: bookworm\n"
    )
    assert debian_mirror(tmp_path) == "https://other.example/debian"


def test_image_names_split_into_repository_and_tag() -> None:
    assert split_name("redraft-sandbox:latest") == ("redraft-sandbox", "latest")
    assert split_name("localhost:5000/py") == ("localhost:5000/py", "latest")
    assert split_name("python:3.12-slim") == ("python", "3.12-slim")
