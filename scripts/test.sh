#!/usr/bin/env bash
# The whole test suite, as the README gives it: install, lint, format check, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch first, pinned: this version installs from the machine's own disk as a CPU build,
# where an unpinned one would pull several GB of CUDA packages.
python -m pip install --quiet --disable-pip-version-check torch==2.13.0
python -m pip install --quiet --disable-pip-version-check -e ".[dev,all]"
# What the sandbox tests run on: bubblewrap, a Docker daemon and the sandbox image (root only;
# elsewhere those tests say what is missing and skip, except in CI, where they fail).
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/ci-setup.sh
fi
ruff check redraft tests benchmarks examples
ruff format --check redraft tests benchmarks examples
mypy redraft
python -m pytest "$@"
