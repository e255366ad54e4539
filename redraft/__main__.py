"""`python -m redraft`: the same as the `redraft` command."""

from __future__ import annotations

import sys

from redraft.cli import main

if __name__ == "__main__":
    sys.exit(main())
