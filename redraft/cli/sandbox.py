"""`redraft sandbox`: build the Docker sandbox's image, and see which sandboxes work here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from redraft.cli.output import emit, note, terminal
from redraft.errors import ConfigError
from redraft.sandboxes.base import SandboxError, SandboxUnavailable
from redraft.sandboxes.choose import NAMES, get_sandbox
from redraft.sandboxes.docker_daemon import DEFAULT_IMAGE

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

# Docker's reference grammar (distribution/reference): [host[:port]/]path[:tag][@digest],
# each path component lowercase alphanumerics joined by '.', '_', '__' or dashes.
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*"
_NEW_IMAGE = re.compile(rf"{_NAME}(?::{_TAG})?")
_LOCAL_IMAGE = re.compile(rf"{_NAME}(?::{_TAG})?(?:@{_DIGEST})?|(?:sha256:)?[0-9a-f]{{12,64}}")
_NAME_LIMIT = 255  # characters of the name, without its tag


def check_image_name(value: str, flag: str, *, local: bool = False) -> str:
    """`value` if it is a valid Docker image reference (with `local`, also a digest or an
    image id), else a ConfigError saying what a name may hold; checked before Docker or
    debootstrap are touched, so a bad name fails at once rather than after the build."""
    name = value.strip()
    pattern = _LOCAL_IMAGE if local else _NEW_IMAGE
    if not name:
        raise ConfigError(f"{flag} is empty: give an image name such as {DEFAULT_IMAGE}")
    if pattern.fullmatch(name) and len(_repository(name)) <= _NAME_LIMIT:
        return name
    if len(_repository(name)) > _NAME_LIMIT:
        why = f" (longer than {_NAME_LIMIT} characters)"
    else:
        why = " (Docker image names are lowercase)" if name.lower() != name else ""
    raise ConfigError(
        f"{flag} {value!r} is not a valid Docker image name{why}: use lowercase "
        "letters, digits and '.', '_' or '-' between them, optionally a /path and a :tag, "
        f"e.g. {DEFAULT_IMAGE}"
    )


def _repository(reference: str) -> str:
    """The name part of a reference: without its @digest and :tag (a host's :port stays)."""
    head, slash, last = reference.partition("@")[0].rpartition("/")
    return head + slash + last.partition(":")[0]


@contextmanager
def docker_errors() -> Iterator[None]:
    """Docker's own refusals (its API errors) as one line: they are not redraft's bugs."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith("docker"):
            raise
        reason = getattr(exc, "explanation", None) or exc
        raise SandboxError(f"docker refused: {' '.join(str(reason).split())}") from None


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
    name = check_image_name(name, "--name")
    if from_image is not None:
        from_image = check_image_name(from_image, "--from-image", local=True)
    from redraft.sandboxes.image import build_image, use_image

    console = terminal()
    with docker_errors():
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
