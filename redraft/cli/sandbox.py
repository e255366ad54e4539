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
        problem = probe(name)
        if problem is None:
            working.append(name)
            extra = " (no isolation: trusted code only)" if name == "subprocess" else ""
            emit(f"{name}: ok{extra}")
        else:
            reasons.append(f"{name}: {problem}")
            emit(f"{name}: unavailable: {problem}")
    if backend != "auto" and not working:
        raise SandboxUnavailable(reasons[0])
    if backend == "auto" and not any(name in working for name in ISOLATING):
        raise SandboxUnavailable(
            "no isolating sandbox works here: install bubblewrap, or Docker and run "
            "`redraft sandbox build-image`"
        )


def probe(name: str) -> str | None:
    """None if the backend runs a trivial program here, else why not, in one line."""
    try:
        sandbox = get_sandbox(name)
    except ImportError:
        return "the docker SDK is missing: pip install 'redraft[docker]'"
    except SandboxError as exc:
        return str(exc)
    try:
        check = getattr(sandbox, "check", None)
        if callable(check):
            check()
        result = sandbox.run("print(6 * 7)", timeout_s=30)
    except SandboxError as exc:
        return str(exc)
    finally:
        sandbox.close()
    if result.stdout.strip() != "42":
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.exit_code}"])[-1]
        return f"a trivial program failed ({detail})"
    return None
