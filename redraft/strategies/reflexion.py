"""Reflexion: trials of the refine loop; after a failed trial a reflection says what went
wrong and what to do differently, and the next trial starts afresh with every reflection in
its prompt. Reflections that led to a pass are stored in the correction memory, if any."""

from __future__ import annotations

from redraft.checks import whole_number
from redraft.engine.budgets import Budgets
from redraft.engine.selection import best_of
from redraft.strategies.search import ChainSearch, Job, Plan, Step, first_drafts
from redraft.types import Candidate, StopReason

# A trial ends on these and the next one starts; any other stop ends the run.
_TRIAL_FAILED = (StopReason.MAX_ROUNDS, StopReason.NO_IMPROVEMENT, StopReason.REPEATED)


class Reflexion(ChainSearch):
    """Up to `trials` refine loops, each bounded by the Refiner's `max_rounds` and
    `patience`; the run-wide budgets hold across all of them. The best candidate of every
    trial is returned."""

    name = "reflexion"

    def __init__(self, trials: int = 3) -> None:
        whole_number("trials", trials, minimum=1, example=3)
        self.trials = trials

    def decide(self, step: Step, budgets: Budgets) -> Plan:
        tree = step.tree
        if step.next_number == 0:
            jobs = first_drafts(1, 0)
            return Plan(jobs=jobs, note="trial 1", update={"chain": [], "trial": 1})
        trial = step.state.get("trial", 1)
        chain = [tree.by_id[i] for i in step.state.get("chain") or []]
        reason: StopReason | None
        if step.made:
            chain = [*chain, *step.made]
            reason = self.chain_stop(step, chain, budgets)
        else:  # the revision or reflection made no candidate
            failure = step.failures[0]
            if failure["stop"] == "error" or not chain:
                return Plan(
                    stop=StopReason.ERROR,
                    final_id=self._final(tree.candidates, chain, budgets).id,
                    error=failure["error"],
                    note="a model call failed",
                )
            reason = StopReason.REPEATED
        update = {"chain": [c.id for c in chain]}
        if reason is None:
            jobs = self.revise_best(step, chain, budgets)
            note = f"trial {trial}: revising {jobs[0].get('parent_id')}"
            return Plan(jobs=jobs, note=note, update=update)
        final = self._final(tree.candidates, chain, budgets)
        if reason not in _TRIAL_FAILED:
            return Plan(stop=reason, final_id=final.id, update=update)
        if trial >= self.trials:
            stop = reason if self.trials == 1 else StopReason.EXHAUSTED
            return Plan(stop=stop, final_id=final.id, note=f"{trial} trials failed", update=update)
        reflect = Job(
            op="reflect",
            number=step.next_number,
            variant=None,
            parent_id=chain[-1].id,
            line_ids=[c.id for c in chain],
            reflections=list(chain[0].draft.reflections),
        )
        note = f"trial {trial} failed ({reason.value}): reflecting, then trial {trial + 1}"
        return Plan(jobs=[reflect], note=note, update={"chain": [], "trial": trial + 1})

    @staticmethod
    def _final(candidates: list[Candidate], chain: list[Candidate], budgets: Budgets) -> Candidate:
        if budgets.select == "last" and chain:
            return chain[-1]
        return best_of(candidates)

    def most_fan_outs(self, budgets: Budgets) -> int:
        return self.trials * (budgets.max_rounds + 1)

    def __repr__(self) -> str:
        return f"Reflexion(trials={self.trials})"
