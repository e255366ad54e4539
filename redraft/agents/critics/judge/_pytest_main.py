"""Starts the pytest judge (`pytest_run.py`) without importing the redraft package.

The package imports its model clients, which take seconds; the judge needs four of its modules.
So the packages above them are made here as bare, empty modules, and only those four load.
Standard library only.
"""

import sys
import types
from pathlib import Path


def main() -> None:
    judge = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != judge]
    package = judge.parents[2]  # .../redraft
    for name, path in (
        ("redraft", package),
        ("redraft.agents", package / "agents"),
        ("redraft.agents.critics", package / "agents" / "critics"),
        ("redraft.agents.critics.judge", judge),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    from redraft.agents.critics.judge.pytest_run import main as run

    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
