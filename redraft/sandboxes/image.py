"""The Docker sandbox's image: built locally from Debian packages, or an existing image tagged.

`build_image` needs no container registry: debootstrap fetches a minimal Debian with Python
from the Debian mirror apt already uses, and the directory is imported as an image. Where a
registry is reachable, `use_image("python:3.12-slim")` (after `docker pull`) does as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redraft.errors import ConfigError
from redraft.sandboxes.base import SandboxError, SandboxUnavailable
from redraft.sandboxes.docker_daemon import DEFAULT_IMAGE, docker_client, image_missing_message

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3-minimal", "python3")
LABEL = "redraft.sandbox.image"
# Containers run as nobody in /sandbox; the main process only waits (and reaps orphans).
IMAGE_CHANGES = (
    "USER 65534:65534",
    "WORKDIR /sandbox",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8",
    f"LABEL {LABEL}=1",
    'CMD ["python3", "-c", "import time; time.sleep(1e9)"]',
)
# Nothing a run needs, and a third of the image.
PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt")
Progress = Callable[[str], None]


def _client() -> Any:
    return docker_client()


def build_image(
    name: str = DEFAULT_IMAGE,
    *,
    python_packages: Sequence[str] | None = None,
    mirror: str | None = None,
    progress: Progress | None = None,
    client: Any = None,
) -> str:
    """Build a minimal Debian image with Python 3 as `name`; return its id.

    `python_packages` are extra Debian packages (e.g. "python3-numpy"). Needs root,
    debootstrap and the Debian mirror, about a minute; no container registry.
    """
    say = progress or (lambda _: None)
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxUnavailable(
            "building the sandbox image needs debootstrap: apt-get install -y debootstrap "
            "(or pull python:3.12-slim and run `redraft sandbox build-image --from-image "
            "python:3.12-slim`)"
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable("building the sandbox image with debootstrap needs root: sudo")
    docker = client or _client()
    mirror = mirror or debian_mirror()
    packages = [*PACKAGES, *(python_packages or ())]
    with tempfile.TemporaryDirectory(prefix="redraft-image-") as scratch:
        root = Path(scratch) / "root"
        say(f"debootstrap {SUITE} from {mirror} (about a minute)")
        done = subprocess.run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(packages)}",
                SUITE,
                str(root),
                mirror,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            reason = _last_line(done.stdout + done.stderr)
            raise SandboxError(f"debootstrap failed ({reason}); see that the mirror {mirror} works")
        for relative in PRUNE:
            shutil.rmtree(root / relative, ignore_errors=True)
        # Docker copies this directory's mode onto the tmpfs mounted over it: nobody must write.
        (root / "sandbox").mkdir(exist_ok=True)
        (root / "sandbox").chmod(0o1777)
        archive = Path(scratch) / "root.tar"
        say("packing the root file system")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."],
            check=True,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)  # half the disk space, before the import
        repository, tag = split_name(name)
        say(f"importing as {name}")
        result = docker.api.import_image(
            src=str(archive), repository=repository, tag=tag, changes=list(IMAGE_CHANGES)
        )
    image_id = _imported_id(result)
    say(f"built {name} ({image_id[:19]})")
    return image_id


def use_image(source: str, name: str = DEFAULT_IMAGE, *, client: Any = None) -> str:
    """Tag an image that is already here (e.g. a pulled python:3.12-slim) as `name`.

    It is checked first: it must run `python3`, with the ctypes module the worker locks runs
    down with, with no network, as nobody, read-only.
    """
    docker = client or _client()
    errors = __import__("docker").errors
    try:
        image = docker.images.get(source)
    except errors.ImageNotFound:
        raise SandboxUnavailable(
            f"no image {source} here: docker pull {source} first (where a registry is "
            "reachable), or build one without a registry: redraft sandbox build-image"
        ) from None
    try:
        output = docker.containers.run(
            source,
            ["python3", "-I", "-S", "-c", "import sys; print(sys.version_info[0]); import ctypes"],
            network_mode="none",
            read_only=True,
            user="65534:65534",
            remove=True,
            stdout=True,
            stderr=True,
        )
    except errors.ContainerError as exc:
        if b"ctypes" in (exc.stderr or b""):
            raise ConfigError(
                f"image {source} has a python3 without its ctypes module, which the sandbox "
                "needs: install the full Python (e.g. Debian's python3, not python3-minimal)"
            ) from None
        raise ConfigError(f"image {source} cannot run python3 as nobody: {exc}") from None
    except errors.APIError as exc:
        raise SandboxError(f"image {source} could not be tried: {exc.explanation}") from None
    if output.decode(errors="replace").strip() != "3":
        raise ConfigError(f"image {source} has no Python 3 on PATH as python3")
    repository, tag = split_name(name)
    if not image.tag(repository, tag):
        raise SandboxError(f"{image_missing_message(name)} (tagging {source} failed)")
    return str(image.id)


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources), or the default."""
    sources = [apt_dir / "sources.list"]
    directory = apt_dir / "sources.list.d"
    if directory.is_dir():
        sources += sorted(directory.iterdir())
    for path in sources:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for found in re.findall(r"(?m)^\s*(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text):
            url = str(found).rstrip("/")
            # The main archive, not debian-security or a third-party repository.
            if url.startswith(("http://", "https://")) and url.endswith("/debian"):
                return url
    return DEFAULT_MIRROR


def split_name(name: str) -> tuple[str, str]:
    """`repo[:tag]` into its repository and tag (a registry's port is not a tag)."""
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        return name, "latest"
    return repository, tag


def _imported_id(result: Any) -> str:
    # The import answers with a stream of JSON lines; the last one carries the image id.
    text = result if isinstance(result, str) else str(result)
    found = re.findall(r"sha256:[0-9a-f]{64}", text)
    if not found:
        raise SandboxError(f"the image import did not report an image: {_last_line(text)}")
    return str(found[-1])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
