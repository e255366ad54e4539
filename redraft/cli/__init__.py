"""The `redraft` command: refine a task with a real model, or watch the offline demo.

Output contract: the final text (or `--json`) goes to stdout, everything for people to stderr.
Exit codes: 0 passed, 1 stopped without passing, 2 usage or configuration error, 3 a model or
network failure ended the run, 130 interrupted, 70 a bug in redraft (with its traceback).
Every expected error is one line on stderr that starts with `error: `.
"""

from redraft.cli.main import main

__all__ = ["main"]
