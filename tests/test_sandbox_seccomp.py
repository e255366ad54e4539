"""The system-call filter: compiled by libseccomp on the host, required by the isolating
sandboxes, and never silently left out.

What the filter denies, run by run, is checked by the attack catalogue in
test_sandbox_security.py; what it must still allow, by test_sandbox_conformance.py.
"""

from __future__ import annotations

import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from redraft.cli.codes import EXIT_USAGE
from redraft.cli.main import main
from redraft.sandboxes import NamespaceSandbox, SandboxError, SandboxUnavailable
from redraft.sandboxes import seccomp as seccomp_module
from redraft.sandboxes.cgroups import Cgroup
from redraft.sandboxes.pool import LaunchSpec, PooledSandbox
from redraft.sandboxes.protocol import worker_argv

BPF_LD_W_ABS = 0x20  # load a 32-bit word of seccomp_data
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7


def instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("=HBBI", program, at) for at in range(0, len(program), 8)]


def test_the_filter_checks_the_architecture_first() -> None:
    program = seccomp_module.syscall_filter(2)
    assert program and len(program) % 8 == 0
    code = instructions(program)
    # Load seccomp_data.arch, compare with this machine's: a foreign ABI never gets through.
    assert code[0] == (BPF_LD_W_ABS, 0, 0, 4)
    assert code[1][3] in (AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64)
    # The worker's pid is in it: each worker's runs get a filter of their own.
    assert seccomp_module.syscall_filter(3) != program


@pytest.fixture
def no_binding(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if redraft were installed without its sandbox extra."""
    seccomp_module.syscall_filter.cache_clear()
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # `import pyseccomp` fails
    yield
    seccomp_module.syscall_filter.cache_clear()


@pytest.mark.usefixtures("no_binding")
def test_without_the_binding_an_isolating_sandbox_names_the_extra() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    box = NamespaceSandbox(pool_size=1)
    try:
        with pytest.raises(SandboxUnavailable, match=r"pip install 'redraft\[sandbox\]'"):
            box.run("print('never runs unfiltered')")
    finally:
        box.close()


@pytest.mark.usefixtures("no_binding")
def test_without_the_binding_the_cli_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["sandbox", "check", "--backend", "bwrap"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert err.count("\n") == 1 and "redraft[sandbox]" in err, err


class UnfilteredSandbox(PooledSandbox):
    """A worker that requires the filter, given none: it must refuse, not run unfiltered."""

    backend = "unfiltered"
    _seccomp = False

    def _launch(self, cgroup: Cgroup | None) -> LaunchSpec:
        work_dir = tempfile.mkdtemp(prefix="redraft-unfiltered-")
        argv = worker_argv(sys.executable, work_dir, own_pid_namespace=False)
        return LaunchSpec(
            argv=argv,
            work_dir=work_dir,
            cwd=work_dir,
            cleanup=lambda: shutil.rmtree(work_dir, ignore_errors=True),
        )


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "refused-while-idle"])
def test_a_worker_that_requires_the_filter_refuses_to_run_without_one(warm: bool) -> None:
    box = UnfilteredSandbox(pool_size=1)
    try:
        if warm:
            box.warm(1)
            time.sleep(0.5)  # its refusal is waiting before any request is sent
        with pytest.raises(SandboxError, match="needs a system-call filter"):
            box.run("print('never runs unfiltered')")
    finally:
        box.close()
