#!/usr/bin/env bash
# The whole test suite, as the README gives it: install, lint, format check, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
ruff check redraft tests benchmarks examples
ruff format --check redraft tests benchmarks examples
mypy redraft
python -m pytest "$@"
