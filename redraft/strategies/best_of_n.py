"""BestOfN: n first drafts at once, all judged; then the best is refined by the normal loop
(verifier-guided best-of-N, then refine), or returned as it is with `refine=False`."""

from __future__ import annotations

from redraft.checks import whole_number
from redraft.engine.budgets import Budgets
from redraft.engine.selection import best_index
from redraft.errors import ConfigError
from redraft.strategies.search import ChainSearch, Plan, Step, first_drafts
from redraft.types import Candidate, StopReason

# Stop reasons that end a chain early; otherwise a plain best-of-N has simply made its drafts.
_CHAIN_ONLY = (StopReason.MAX_ROUNDS, StopReason.NO_IMPROVEMENT)


class BestOfN(ChainSearch):
    """`n` first drafts generated concurrently (each told to differ, at different
    temperatures), all judged; with `refine`, the best is then revised as `Refine` would,
    within the Refiner's `max_rounds` (its first draft counting as one)."""

    name = "best-of-n"

    def __init__(self, n: int = 4, *, refine: bool = True) -> None:
        whole_number("n", n, minimum=1, example=4)
        if not isinstance(refine, bool):
            raise ConfigError(f"refine must be True or False, not {refine!r}")
        self.n = n
        self.refine = refine

    def decide(self, step: Step, budgets: Budgets) -> Plan:
        tree = step.tree
        if step.next_number == 0:
            return Plan(jobs=first_drafts(self.n, 0), note=f"{self.n} first drafts")
        chain_ids = step.state.get("chain") or []
        if not chain_ids:  # the first drafts are judged: the best starts the chain
            line = [tree.best()]
            note = f"{line[0].id} is the best of {len(tree.candidates)} first drafts"
        else:
            line = [tree.by_id[i] for i in chain_ids]
            if not step.made:  # the revision was a repeat, or the editor failed
                failure = step.failures[0]
                stop = StopReason.ERROR if failure["stop"] == "error" else StopReason.REPEATED
                return Plan(
                    stop=stop,
                    final_id=_final(line, budgets).id,
                    error=failure["error"],
                    note="the editor made no new revision",
                )
            line = [*line, *step.made]
            note = ""
        update = {"chain": [c.id for c in line]}
        reason = self.chain_stop(step, line, budgets)
        final = _final(line, budgets)
        if not self.refine:
            # Every draft asked for was made: the candidate budget did not cut the run short.
            made_all = reason is StopReason.BUDGET and len(tree.candidates) >= self.n
            ended = reason if reason is not None and reason not in _CHAIN_ONLY else None
            stop = StopReason.EXHAUSTED if ended is None or made_all else ended
            return Plan(stop=stop, final_id=final.id, note=note, update=update)
        if reason is not None:
            return Plan(stop=reason, final_id=final.id, note=note, update=update)
        jobs = self.revise_best(step, line, budgets)
        return Plan(jobs=jobs, note=note or f"revising {final.id}", update=update)

    def most_fan_outs(self, budgets: Budgets) -> int:
        return 1 + budgets.max_rounds

    def __repr__(self) -> str:
        return f"BestOfN(n={self.n}, refine={self.refine})"


def _final(line: list[Candidate], budgets: Budgets) -> Candidate:
    return line[best_index(line, budgets.select)]
