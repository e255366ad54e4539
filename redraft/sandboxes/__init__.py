"""Sandboxes that run untrusted code: bubblewrap namespaces, Docker, or a plain subprocess.

Every backend satisfies `Sandbox`: `run(code_or_argv, files=, stdin=, timeout_s=,
memory_mb=, env=)` returns an `ExecResult`, `arun` is its async form, and `session()` keeps
one working directory across runs. `get_sandbox("auto")` picks bubblewrap, then Docker, and
never falls back to the unisolated subprocess backend.
"""

from redraft.sandboxes.base import (
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxSession,
    SandboxUnavailable,
)
from redraft.sandboxes.choose import SandboxName, get_sandbox
from redraft.sandboxes.namespace import NamespaceSandbox
from redraft.sandboxes.process import SubprocessSandbox

__all__ = [
    "DockerSandbox",
    "ExecResult",
    "Limits",
    "NamespaceSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxName",
    "SandboxSession",
    "SandboxUnavailable",
    "SubprocessSandbox",
    "get_sandbox",
]


def __getattr__(name: str) -> object:
    # The docker SDK is an optional extra: imported only when DockerSandbox is asked for.
    if name == "DockerSandbox":
        from redraft.sandboxes.docker import DockerSandbox

        return DockerSandbox
    raise AttributeError(f"module 'redraft.sandboxes' has no attribute {name!r}")
