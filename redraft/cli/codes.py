"""Exit codes of the `redraft` command."""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_NOT_PASSED = 1
EXIT_USAGE = 2
EXIT_MODEL_FAILED = 3
EXIT_WAITING = 4  # paused for a person's critique: resume it with their answer
EXIT_BUG = 70  # EX_SOFTWARE: distinct from 1, which scripts read as "did not pass"
EXIT_INTERRUPTED = 130
