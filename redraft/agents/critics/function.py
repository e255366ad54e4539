"""Any Python callable as a critic."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Union

from redraft.agents.base import AgentContext
from redraft.checks import flag, kind_of, number, shown
from redraft.errors import ConfigError
from redraft.types import Critique, Draft, Issue, Task

Verdict = Union[Critique, bool, float, int, tuple[Union[float, bool], str]]  # noqa: UP007
CheckFunction = Callable[..., Union[Verdict, Awaitable[Verdict]]]  # noqa: UP007


class FunctionCritic:
    """Wraps `fn(text)` or `fn(text, task)`, sync or async.

    It may return a `Critique`, a bool (pass/fail), a score in 0..1, or `(score, feedback)`.
    A score passes when it reaches `pass_score`. Sync functions run in a worker thread so a
    slow check does not stall the other critics; exceptions become a failed `Critique`.
    """

    def __init__(
        self,
        fn: CheckFunction,
        *,
        name: str | None = None,
        pass_score: float = 1.0,
        weight: float = 1.0,
        in_thread: bool = True,
    ) -> None:
        if not callable(fn):
            raise ConfigError(
                "FunctionCritic needs a function fn(text) or fn(text, task) returning a bool, "
                f"a score in 0..1 or (score, feedback), not {kind_of(fn)} {shown(fn)}"
            )
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"name must be a non-empty string; got {shown(name)}")
        number("pass_score", pass_score, minimum=0.0, maximum=1.0, meaning="the score that passes")
        number("weight", weight, minimum=0.0, meaning="this critic's share of the score")
        if _positional_arity(fn) == 0:
            raise ConfigError(
                f"FunctionCritic's function {getattr(fn, '__name__', fn)!s} takes no "
                "arguments: it is called as fn(text) or fn(text, task)"
            )
        required = _required_arity(fn)
        if required > 2:
            raise ConfigError(
                f"FunctionCritic's function {getattr(fn, '__name__', fn)!s} needs {required} "
                "arguments: it is called as fn(text) or fn(text, task); give the others defaults"
            )
        flag("in_thread", in_thread)
        self.fn = fn
        self._name = name or getattr(fn, "__name__", "function").strip("<>") or "function"
        self.pass_score = pass_score
        self.weight = weight
        self.in_thread = in_thread
        self._wants_task = _positional_arity(fn) >= 2

    @property
    def name(self) -> str:
        return self._name

    async def critique(self, draft: Draft, task: Task, ctx: AgentContext) -> Critique:
        started = time.perf_counter()
        try:
            verdict = await self._call(draft.text, task)
            critique = self._to_critique(verdict)
        except Exception as exc:  # a user's check failing must not end the run
            critique = Critique.failed(self.name, f"{type(exc).__name__}: {exc}")
        return critique.model_copy(
            update={"duration_s": time.perf_counter() - started, "weight": self.weight}
        )

    async def _call(self, text: str, task: Task) -> Any:
        args: tuple[Any, ...] = (text, task) if self._wants_task else (text,)
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(*args)
        if self.in_thread:
            result = await asyncio.to_thread(self.fn, *args)
        else:
            result = self.fn(*args)
        return await result if inspect.isawaitable(result) else result

    def _to_critique(self, verdict: Any) -> Critique:
        if isinstance(verdict, Critique):
            return verdict if verdict.critic else verdict.model_copy(update={"critic": self.name})
        feedback = ""
        if isinstance(verdict, tuple) and len(verdict) == 2 and isinstance(verdict[1], str):
            verdict, feedback = verdict
        if isinstance(verdict, bool):
            score, passed = float(verdict), verdict
        elif isinstance(verdict, (int, float)):
            score = float(verdict)
            if not 0.0 <= score <= 1.0:
                raise ValueError(f"score {score} is outside 0..1")
            passed = score >= self.pass_score
        else:
            raise TypeError(
                f"returned {type(verdict).__name__}; return a Critique, bool, score in 0..1 "
                "or (score, feedback)"
            )
        return Critique(
            critic=self.name,
            score=score,
            raw_score=score,
            passed=passed,
            summary=feedback,
            feedback=feedback,
            issues=[Issue(problem=feedback)] if feedback and not passed else [],
        )


def _required_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments a call must pass (those without a default)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional and p.default is inspect.Parameter.empty for p in parameters)


def _positional_arity(fn: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return 2
    return sum(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for p in parameters
    )
