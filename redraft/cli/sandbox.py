"""`redraft sandbox`: build the Docker sandbox's image, and see which sandboxes work here."""

from __future__ import annotations

from typing import Annotated

import typer

from redraft.cli.output import emit, note, terminal
from redraft.errors import ConfigError
from redraft.sandboxes.base import SandboxError, SandboxUnavailable
from redraft.sandboxes.choose import NAMES, get_sandbox
from redraft.sandboxes.image import DEFAULT_IMAGE

BACKENDS = ("bwrap", "docker", "subprocess")
ISOLATING = ("bwrap", "docker")
# 42, and whether the run's uid is another than its worker's (its parent's).
PROBE = """
import os
def uid(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return line.split()[1]
print(6 * 7, uid("self") != uid(os.getppid()))
"""

sandbox_app = typer.Typer(
    name="sandbox",
    help="The sandboxes that run code: build the Docker image, check what works here.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@sandbox_app.command("build-image")
def build_image_command(
    name: Annotated[str, typer.Option("--name", help="The image to create.")] = DEFAULT_IMAGE,
    from_image: Annotated[
        str | None,
        typer.Option(
            "--from-image",
            help="Use this local image (e.g. a pulled python:3.12-slim) instead of building.",
        ),
    ] = None,
) -> None:
    """Build the Docker sandbox's image from Debian packages (no registry), or tag one."""
    from redraft.sandboxes.image import build_image, use_image

    console = terminal()
    if from_image:
        image_id = use_image(from_image, name)
        note(console, f"tagged {from_image} as {name}")
    else:
        image_id = build_image(name, progress=lambda text: note(console, text))
    emit(f"{name} {image_id}")


@sandbox_app.command("check")
def check_command(
    backend: Annotated[
        str, typer.Option("--backend", help=f"One of {', '.join(NAMES)}: which to try.")
    ] = "auto",
) -> None:
    """Try each sandbox (or the one named): one line each, saying why one does not work."""
    if backend not in NAMES:
        raise ConfigError(f"unknown sandbox {backend!r}: choose one of {', '.join(NAMES)}")
    names = BACKENDS if backend == "auto" else (backend,)
    working = []
    reasons = []
    for name in names:
        problem, own_uid = probe(name)
        if problem is None:
            working.append(name)
            if name == "subprocess":
                extra = " (no isolation: trusted code only)"
            elif own_uid:
                extra = " (each run has a uid of its own)"
            else:
                extra = " (runs share their worker's uid; as root each run gets its own)"
            emit(f"{name}: ok{extra}")
        else:
            reasons.append(f"{name}: {problem}")
            emit(f"{name}: unavailable: {problem}")
    if backend != "auto" and not working:
        raise SandboxUnavailable(reasons[0])
    if backend == "auto" and not any(name in working for name in ISOLATING):
        why = "; ".join(dict.fromkeys(reason.partition(": ")[2] for reason in reasons[:2]))
        raise SandboxUnavailable(f"no isolating sandbox works here ({why})")


def probe(name: str) -> tuple[str | None, bool]:
    """(None if the backend runs a trivial program here, else why not, in one line; whether
    the run had a uid of its own)."""
    try:
        sandbox = get_sandbox(name)
    except ImportError:
        return "the docker SDK is missing: pip install 'redraft[docker]'", False
    except SandboxError as exc:
        return str(exc), False
    try:
        check = getattr(sandbox, "check", None)
        if callable(check):
            check()
        result = sandbox.run(PROBE, timeout_s=30)
    except SandboxError as exc:
        return str(exc), False
    finally:
        sandbox.close()
    answer, _, own_uid = result.stdout.strip().partition(" ")
    if answer != "42":
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.exit_code}"])[-1]
        return f"a trivial program failed ({detail})", False
    return None, own_uid == "True"
