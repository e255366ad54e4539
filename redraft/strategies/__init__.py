"""Strategies: how a run spends its budget over drafts. Each builds a LangGraph graph from
the engine's operations, so every strategy streams, checkpoints, resumes and embeds as a
subgraph alike. `Refine` (one chain of revisions) is the default."""

from redraft.strategies.base import Strategy, StrategyGraph
from redraft.strategies.refine import Refine

__all__ = ["Refine", "Strategy", "StrategyGraph"]
