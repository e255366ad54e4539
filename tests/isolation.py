"""Which sandboxes this machine has, for tests that need one.

In CI (CI is set) a missing backend fails the test: CI installs bubblewrap and Docker, so a
skip there would hide a broken set-up. Elsewhere the test is skipped and says why.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_bwrap() -> None:
    if shutil.which("bwrap") is None:
        message = "bubblewrap is not installed (apt-get install bubblewrap)"
        if IN_CI:
            pytest.fail(f"CI must have it: {message}")
        pytest.skip(message)
