"""The subprocess sandbox's worker lives in a directory of the host's file system: what other
processes do there is not a run's doing, and must not retire it."""

from __future__ import annotations

import os
import tempfile

from redraft.sandboxes.process import SubprocessSandbox

WORKER_PID = "import os\nprint(os.getppid())\n"


def test_space_others_take_on_the_shared_file_system_does_not_retire_the_worker() -> None:
    with SubprocessSandbox(pool_size=1) as sandbox:
        first = sandbox.run(WORKER_PID)
        assert first.ok, first.stderr
        # Another process takes space on the file system the worker's directory is on.
        with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as filler:
            filler.write(os.urandom(4 << 20))
            filler.flush()
            os.fsync(filler.fileno())
            second = sandbox.run(WORKER_PID)
            third = sandbox.run(WORKER_PID)
        assert second.ok and third.ok, (second.stderr, third.stderr)
        assert first.stdout == second.stdout == third.stdout, "the worker was replaced"
