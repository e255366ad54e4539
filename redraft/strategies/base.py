"""What a strategy is: a builder of a run's graph from the engine's operations."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from langgraph.graph import StateGraph

from redraft.engine.budgets import Budgets
from redraft.engine.operations import Operations

# A strategy's graph: it starts from {"task": Task} and ends with {"result": Result}.
StrategyGraph = StateGraph[Any, None, Any, Any]


@runtime_checkable
class Strategy(Protocol):
    """Builds the graph of a run from `operations`, spending within `budgets`."""

    @property
    def name(self) -> str: ...

    def build(self, operations: Operations, budgets: Budgets) -> StrategyGraph:
        """The uncompiled graph: its input is {"task": Task}, its output {"result": Result}."""
        ...

    def recursion_limit(self, budgets: Budgets) -> int:
        """The most graph steps a run may take within `budgets`."""
        ...
