"""Strategies: how a run spends its budget over drafts. Each builds a LangGraph graph from
the engine's operations, so every strategy streams, checkpoints, resumes and embeds as a
subgraph alike.

- `Refine` (the default): one chain of revisions of the best draft so far.
- `BestOfN`: n first drafts at once, the best then refined (or not).
- `TreeSearch`: a tree of revisions, searched by beam or by MCTS.
- `Reflexion`: refine trials, each after a written reflection on the failed ones.
"""

from redraft.strategies.base import Strategy, StrategyGraph
from redraft.strategies.best_of_n import BestOfN
from redraft.strategies.config import STRATEGY_NAMES, strategy_from
from redraft.strategies.refine import Refine
from redraft.strategies.reflexion import Reflexion
from redraft.strategies.tree_search import TreeSearch

__all__ = [
    "STRATEGY_NAMES",
    "BestOfN",
    "Refine",
    "Reflexion",
    "Strategy",
    "StrategyGraph",
    "TreeSearch",
    "strategy_from",
]
