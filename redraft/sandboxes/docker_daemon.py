"""The Docker daemon as the docker sandbox and the image builder reach it: the SDK, a client
checked to answer, and the messages that say what to do when either is missing."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from redraft.sandboxes.base import SandboxUnavailable

DEFAULT_IMAGE = "redraft-sandbox:latest"
SDK_HINT = "the docker sandbox needs the docker SDK: pip install 'redraft[docker]'"
DAEMON_HINT = "start it (systemctl start docker, or dockerd &) or choose sandbox='bwrap'"
API_TIMEOUT_S = 30


def docker_sdk() -> ModuleType:
    """The docker SDK, or SandboxUnavailable naming the extra to install."""
    try:
        return importlib.import_module("docker")
    except ImportError:
        raise SandboxUnavailable(SDK_HINT) from None


def docker_client(base_url: str | None = None) -> Any:
    """A client for the daemon of DOCKER_HOST (or `base_url`), checked to answer."""
    docker = docker_sdk()
    try:
        if base_url is None:
            client = docker.from_env(timeout=API_TIMEOUT_S)
        else:
            client = docker.DockerClient(base_url=base_url, timeout=API_TIMEOUT_S)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(daemon_message(exc)) from None
    return client


def daemon_message(exc: BaseException) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the Docker daemon is not running or not reachable ({reason}); {DAEMON_HINT}"


def image_missing_message(image: str) -> str:
    return (
        f"no Docker image {image}: run `redraft sandbox build-image` (no registry needed), or "
        "where a registry is reachable `docker pull python:3.12-slim` and "
        "`redraft sandbox build-image --from-image python:3.12-slim`"
    )
