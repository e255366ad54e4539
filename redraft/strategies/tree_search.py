"""TreeSearch: revisions as a tree, searched by beam or by Monte Carlo tree search.

The critics are the value: each candidate's score (and, for the editor, what they said).
Each expanded candidate gets `expand` revisions made concurrently, each told to differ and
shown the revisions of it that already exist. Every budget of the Refiner (tokens, cost,
candidates, wall time) holds across all branches.
"""

from __future__ import annotations

import math
from typing import Literal, cast

from redraft.checks import number, one_of, whole_number
from redraft.engine.budgets import Budgets
from redraft.engine.selection import top
from redraft.strategies.search import (
    Job,
    Plan,
    Search,
    Step,
    Tree,
    all_critics_failed,
    first_drafts,
    no_candidate_reason,
    revisions,
    target_met,
)
from redraft.types import Candidate, StopReason

Policy = Literal["beam", "mcts"]


class TreeSearch(Search):
    """Search a tree of revisions up to `max_depth` revisions deep.

    - `policy="beam"`: `width` first drafts at once; at each depth, each of the `width` best
      candidates of that depth gets `expand` revisions, and the `width` best of those go on.
      The Refiner's `patience` counts depths without a better candidate.
    - `policy="mcts"`: one first draft; each iteration walks down from it by UCT (mean score
      of a subtree plus `exploration` x sqrt(ln N(parent) / N(child))) to a candidate not yet
      expanded (or whose revisions all lead nowhere), expands it and backs its children's
      scores up the path. At most `iterations` expansions: by default `width` x `max_depth`,
      the number beam makes.

    Both stop as soon as a candidate passes (or meets the threshold).
    """

    def __init__(
        self,
        expand: int = 2,
        width: int = 3,
        max_depth: int = 4,
        policy: Policy = "beam",
        exploration: float = 1.4,
        iterations: int | None = None,
    ) -> None:
        whole_number("expand", expand, minimum=1, example=2)
        whole_number("width", width, minimum=1, example=3)
        whole_number("max_depth", max_depth, minimum=1, example=4)
        self.policy = cast(Policy, one_of("policy", policy, ("beam", "mcts")))
        number("exploration", exploration, minimum=0.0, meaning="the UCT exploration constant")
        whole_number("iterations", iterations, minimum=1, optional="width x max_depth")
        self.expand = expand
        self.width = width
        self.max_depth = max_depth
        self.exploration = float(exploration)
        self.iterations = iterations if iterations is not None else width * max_depth

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.policy

    def decide(self, step: Step, budgets: Budgets) -> Plan:
        if self.policy == "beam":
            return self._beam(step, budgets)
        return self._mcts(step, budgets)

    def most_fan_outs(self, budgets: Budgets) -> int:
        return 1 + (self.max_depth if self.policy == "beam" else self.iterations)

    def __repr__(self) -> str:
        return (
            f"TreeSearch(expand={self.expand}, width={self.width}, max_depth={self.max_depth}, "
            f"policy={self.policy!r}, exploration={self.exploration})"
        )

    # -- beam ------------------------------------------------------------------------------

    def _beam(self, step: Step, budgets: Budgets) -> Plan:
        tree = step.tree
        if step.next_number == 0:
            return Plan(jobs=first_drafts(self.width, 0), note=f"{self.width} drafts")
        made = step.made
        if not made:  # every revision of this depth was a repeat or failed
            reason, error = no_candidate_reason(step.failures)
            return Plan(stop=reason, error=error, note="no revision was made")
        stopped = _stopped(step, made, budgets)
        if stopped is not None:
            return stopped
        depth = made[0].depth
        if depth >= self.max_depth:
            return Plan(stop=StopReason.MAX_ROUNDS, note=f"depth {depth} reached")
        best = tree.best()
        if budgets.patience is not None and depth - best.depth >= budgets.patience:
            note = f"no better candidate than {best.id} for {depth - best.depth} depths"
            return Plan(stop=StopReason.NO_IMPROVEMENT, note=note)
        kept = top(made, self.width)
        jobs: list[Job] = []
        for parent in kept:
            existing = tree.children.get(parent.id, [])
            start = step.next_number + len(jobs)
            line = tree.path(parent.id)
            jobs += revisions(parent, line, self.expand, start, existing)
        return Plan(jobs=jobs, note=f"depth {depth}: keeping {', '.join(c.id for c in kept)}")

    # -- MCTS ------------------------------------------------------------------------------

    def _mcts(self, step: Step, budgets: Budgets) -> Plan:
        tree = step.tree
        if step.next_number == 0:
            return Plan(jobs=first_drafts(1, 0), note="the root draft")
        dead = list(step.state.get("dead") or [])
        if not step.made:
            reason, error = no_candidate_reason(step.failures)
            if reason is StopReason.ERROR:
                return Plan(stop=reason, error=error, note="a model call failed")
            # Every revision repeated an earlier draft: this candidate leads nowhere.
            dead += [p for f in step.failures if (p := f["parent_id"]) and p not in dead]
        stopped = _stopped(step, step.made, budgets)
        if stopped is not None:
            return stopped
        update = {"dead": dead}
        expansions = step.fan_outs - 1
        if expansions >= self.iterations:
            note = f"{expansions} expansions made"
            return Plan(stop=StopReason.EXHAUSTED, note=note, update=update)
        node = self._select(tree, set(dead))
        if node is None:
            note = f"the tree is searched to depth {self.max_depth}"
            return Plan(stop=StopReason.EXHAUSTED, note=note, update=update)
        existing = tree.children.get(node.id, [])
        line = tree.path(node.id)
        jobs = revisions(node, line, self.expand, step.next_number, existing)
        return Plan(jobs=jobs, note=f"expanding {node.id} (UCT)", update=update)

    def _select(self, tree: Tree, dead: set[str]) -> Candidate | None:
        """The candidate to expand next: down from the root by UCT, to one that is not
        expanded yet or whose every revision leads nowhere; None when none is left."""
        visits: dict[str, int] = {}
        value: dict[str, float] = {}
        is_open: dict[str, bool] = {}
        for candidate in reversed(tree.candidates):  # children are made after their parents
            kids = tree.children.get(candidate.id, [])
            visits[candidate.id] = 1 + sum(visits[k.id] for k in kids)
            value[candidate.id] = candidate.score + sum(value[k.id] for k in kids)
            expandable = candidate.depth < self.max_depth and candidate.id not in dead
            is_open[candidate.id] = expandable or any(is_open[k.id] for k in kids)

        def uct(child: Candidate, parent_visits: int) -> float:
            n = visits[child.id]
            explore = math.sqrt(math.log(max(parent_visits, 1)) / n)
            return value[child.id] / n + self.exploration * explore

        roots = tree.children.get(None, [])
        choices = [r for r in roots if is_open[r.id]]
        total = sum(visits[r.id] for r in roots)
        while choices:
            node = max(choices, key=lambda c: uct(c, total))  # the first of equals
            choices = [k for k in tree.children.get(node.id, []) if is_open[k.id]]
            if not choices:  # not expanded yet, or every revision of it leads nowhere
                return node
            total = visits[node.id]
        return None


def _stopped(step: Step, made: list[Candidate], budgets: Budgets) -> Plan | None:
    """The stop a search shares: a candidate of the last fan-out met the target, every
    critic failed on every one of them, or a budget is spent."""
    met = target_met(made, budgets)
    if met is not None:
        reason, winner = met
        return Plan(stop=reason, final_id=winner, note=f"{winner} {reason.value}")
    if all_critics_failed(made):
        return Plan(stop=StopReason.CRITICS_FAILED, note="every critic failed")
    if budgets.spent(step.spent, len(step.tree.candidates), step.elapsed_s):
        return Plan(stop=StopReason.BUDGET, note="a budget is spent")
    return None
