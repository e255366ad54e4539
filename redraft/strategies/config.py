"""A strategy from configuration keys: the CLI's flags and a dataset run's YAML share them.

strategy: beam        # refine | best-of-n | beam | mcts | reflexion
expand: 2             # beam, mcts
width: 3              # beam, mcts
max_depth: 4          # beam, mcts
n: 4                  # best-of-n
trials: 3             # reflexion
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from redraft.errors import ConfigError
from redraft.strategies.base import Strategy
from redraft.strategies.best_of_n import BestOfN
from redraft.strategies.refine import Refine
from redraft.strategies.reflexion import Reflexion
from redraft.strategies.tree_search import TreeSearch

STRATEGY_NAMES = ("refine", "best-of-n", "beam", "mcts", "reflexion")
_TREE = ("beam", "mcts")
# The strategies each key applies to.
STRATEGY_KEYS: dict[str, tuple[str, ...]] = {
    "n": ("best-of-n",),
    "expand": _TREE,
    "width": _TREE,
    "max_depth": _TREE,
    "trials": ("reflexion",),
}


def check_strategy_keys(config: Mapping[str, object], *, as_flags: bool = False) -> str:
    """The strategy named by `config` ("refine" when none is), after checking that every key
    given applies to it; `as_flags` names the keys as the CLI spells them (`--max-depth`)."""
    name = config.get("strategy") or "refine"
    if not isinstance(name, str) or name not in STRATEGY_NAMES:
        raise ConfigError(f"{name!r} is not a strategy: choose one of {', '.join(STRATEGY_NAMES)}")

    def spelt(key: str) -> str:
        return "--" + key.replace("_", "-") if as_flags else key

    for key, applies in STRATEGY_KEYS.items():
        if config.get(key) is not None and name not in applies:
            raise ConfigError(
                f"{spelt(key)} applies to {spelt('strategy')} {' or '.join(applies)}, not {name}"
            )
    return name


def strategy_from(config: Mapping[str, object]) -> Strategy:
    """The strategy `config` describes; a wrong value is a one-line ConfigError."""
    name = check_strategy_keys(config)

    def given(key: str, default: int) -> int:
        value = config.get(key)
        # Anything but a whole number is refused by the strategy itself, naming the key.
        return default if value is None else cast(int, value)

    if name == "best-of-n":
        return BestOfN(given("n", 4))
    if name in _TREE:
        return TreeSearch(
            expand=given("expand", 2),
            width=given("width", 3),
            max_depth=given("max_depth", 4),
            policy="beam" if name == "beam" else "mcts",
        )
    if name == "reflexion":
        return Reflexion(given("trials", 3))
    return Refine()


def describe_strategy(strategy: Strategy, rounds: int) -> str:
    """What bounds a run of `strategy`, for a progress title."""
    if isinstance(strategy, TreeSearch):
        return (
            f"{strategy.policy} · expand {strategy.expand}, width {strategy.width}, "
            f"depth {strategy.max_depth}"
        )
    if isinstance(strategy, BestOfN):
        return f"best of {strategy.n}, then up to {rounds} rounds"
    if isinstance(strategy, Reflexion):
        return f"reflexion · {strategy.trials} trials of up to {rounds} rounds"
    return f"up to {rounds} rounds"
