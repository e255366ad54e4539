"""`get_sandbox`: a backend by name, or the safest one this machine has."""

from __future__ import annotations

from typing import Literal

from redraft.checks import kind_of, one_of, shown
from redraft.errors import ConfigError
from redraft.sandboxes.base import Limits, Sandbox, SandboxUnavailable

SandboxName = Literal["auto", "bwrap", "docker", "subprocess"]
NAMES = ("auto", "bwrap", "docker", "subprocess")


def get_sandbox(name: str = "auto", *, limits: Limits | None = None) -> Sandbox:
    """The named backend; "auto" tries bubblewrap, then Docker, never no isolation."""
    if name == "bwrap":
        from redraft.sandboxes.namespace import NamespaceSandbox

        return NamespaceSandbox(limits=limits)
    if name == "docker":
        from redraft.sandboxes.docker import DockerSandbox

        return DockerSandbox(limits=limits)
    if name == "subprocess":
        from redraft.sandboxes.process import SubprocessSandbox

        return SubprocessSandbox(limits=limits)
    if name != "auto":
        raise ConfigError(f"unknown sandbox {name!r}: choose one of {', '.join(NAMES)}")
    reasons = []
    for candidate in ("bwrap", "docker"):
        try:
            sandbox = get_sandbox(candidate, limits=limits)
            check = getattr(sandbox, "check", None)
            if callable(check):
                check()
            return sandbox
        except SandboxUnavailable as exc:
            reasons.append(str(exc))
        except ImportError:
            reasons.append("the docker SDK is missing: pip install 'redraft[docker]'")
    raise SandboxUnavailable(
        "no isolating sandbox on this machine ("
        + "; ".join(dict.fromkeys(reasons))  # one shared reason (libseccomp) said once
        + "); install one, or choose sandbox='subprocess' to run code without isolation"
    )


def sandbox_choice(sandbox: object) -> Sandbox | str:
    """A sandbox argument checked when its owner is made: a `Sandbox`, or the name of one
    (created on first use)."""
    if isinstance(sandbox, str):
        return one_of("sandbox", sandbox, NAMES)
    if isinstance(sandbox, Sandbox) and not isinstance(sandbox, type):
        return sandbox
    raise ConfigError(
        f"sandbox must be one of {', '.join(repr(n) for n in NAMES)} or a Sandbox "
        f"instance, not {kind_of(sandbox)} {shown(sandbox)}"
    )
