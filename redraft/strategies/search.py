"""What the search strategies (BestOfN, TreeSearch, Reflexion) share: their state, the job
node that makes and judges one candidate, the view of the tree, and the finish.

A search's graph is a loop of two steps: `plan` looks at the tree and decides the next jobs
(or to stop); the jobs run concurrently as `make` tasks fanned out with `Send`, each making
one candidate (a first draft, a revision, a fresh attempt after a reflection) and judging
it. A checkpoint keeps every finished job, so a killed search resumes without redoing them.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_READ
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from redraft._interrupts import RunInterrupted
from redraft.engine.budgets import Budgets
from redraft.engine.operations import Operations, Revised, total_usage, usage_report
from redraft.engine.selection import (
    best_index,
    best_of,
    critics_all_failed,
    meets,
    selected_because,
)
from redraft.errors import ConfigError, ModelError, describe
from redraft.events import emit
from redraft.strategies.channels import appended, latest, merged
from redraft.strategies.judged import JudgedCandidates
from redraft.types import (
    Candidate,
    CandidateEvent,
    Judgment,
    Origin,
    Result,
    SelectEvent,
    StopEvent,
    StopReason,
    Task,
    Usage,
    Variant,
    chain_from,
)

Op = Literal["draft", "revise", "reflect"]


class Job(TypedDict, total=False):
    """One candidate to make and judge: what `make` is sent. It names candidates by id, and
    `make` reads them from the state, so a checkpoint holds no second copy of a draft."""

    op: Op
    number: int  # the candidate's number: its id is c{number}
    variant: Variant | None
    parent_id: str | None  # the candidate revised (or reflected on)
    line_ids: list[str]  # the main line up to the parent (for reflect: the failed attempt)
    sibling_ids: list[str]  # revisions of the parent that already exist
    batch: int  # the first number of the parent's revisions in this fan-out
    reflections: list[str]  # for reflect: what earlier attempts taught


class Failure(TypedDict):
    """A job that made no candidate, and why."""

    number: int
    parent_id: str | None
    stop: str  # "repeated" or "error"
    error: str | None


class SearchState(TypedDict, total=False):
    """A search's state. Only `task` is needed to start a run.

    Drafts and judgments are written once each (see `channels`); the rest is small.
    """

    task: Annotated[Task, latest()]
    drafts: Annotated[dict[str, Candidate], merged()]  # every candidate made, unjudged, by id
    judgments: Annotated[list[Judgment], appended()]  # in the order judged
    # With a person among the critics: candidates the others have judged, awaiting review.
    reviews: Annotated[list[Judgment], appended()]
    failures: Annotated[list[Failure], appended()]
    discarded: Annotated[Usage, operator.add]  # spent on jobs that made no candidate
    elapsed_s: Annotated[float, operator.add]  # wall time: each fan-out's longest job
    made: int  # candidate numbers handed out so far
    level_start: int  # the first number of the last fan-out
    chain: list[str]  # the chain being refined (BestOfN's refinement, a Reflexion trial)
    trial: int  # Reflexion: the current trial, from 1
    dead: list[str]  # MCTS: candidates whose revisions all repeated earlier drafts
    fan_outs: int  # fan-outs made so far
    stop_reason: StopReason | None
    final_id: str
    error: str | None
    result: Annotated[Result, latest()]


def number_of(candidate_id: str) -> int:
    return int(candidate_id[1:])


@dataclass
class Tree:
    """The judged candidates of a search, in the order made, with their links."""

    candidates: list[Candidate]
    by_id: dict[str, Candidate] = field(init=False)
    children: dict[str | None, list[Candidate]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {c.id: c for c in self.candidates}
        self.children = {}
        for candidate in self.candidates:
            self.children.setdefault(candidate.parent_id, []).append(candidate)

    def path(self, candidate_id: str) -> list[Candidate]:
        """The candidates from a first draft down to this one."""
        path: list[Candidate] = []
        current: str | None = candidate_id
        while current is not None:
            candidate = self.by_id[current]
            path.append(candidate)
            current = candidate.parent_id
        return path[::-1]

    def since(self, number: int) -> list[Candidate]:
        """The candidates numbered `number` or later: those of the last fan-out."""
        return [c for c in self.candidates if number_of(c.id) >= number]

    def best(self) -> Candidate:
        """The best candidate by rank, the earliest of equals."""
        return best_of(self.candidates)


class _TreeView:
    """The `Tree` of a state. Every job of a fan-out reads the same state, whose channels
    make new objects on each write: the last tree is kept while they are the same."""

    def __init__(self) -> None:
        self._join = JudgedCandidates()
        self._last: tuple[object, object, Tree] | None = None

    def __call__(self, state: SearchState) -> Tree:
        drafts, judgments = state.get("drafts", {}), state.get("judgments", [])
        last = self._last
        if last is not None and last[0] is drafts and last[1] is judgments:
            return last[2]
        judged = self._join(drafts, judgments)
        tree = Tree(sorted(judged, key=lambda c: number_of(c.id)))
        self._last = (drafts, judgments, tree)
        return tree


@dataclass(frozen=True)
class Plan:
    """What a strategy decided: the next jobs, or why it stops (and which candidate wins)."""

    jobs: list[Job] = field(default_factory=list)
    stop: StopReason | None = None
    final_id: str | None = None
    note: str = ""
    error: str | None = None
    update: dict[str, Any] = field(default_factory=dict)  # strategy state (chain, trial)


@dataclass(frozen=True)
class Step:
    """What `plan` is given: the tree, what the last fan-out made, what the run has spent."""

    state: SearchState
    tree: Tree
    made: list[Candidate]  # judged candidates of the last fan-out, in the order made
    failures: list[Failure]  # its jobs that made none
    spent: Usage
    elapsed_s: float
    next_number: int
    fan_outs: int  # fan-outs made so far, the first drafts' included

    @property
    def task(self) -> Task:
        return self.state["task"]


class Search(ABC):
    """A search strategy: `decide` plans each fan-out; the rest is shared."""

    name: str

    @abstractmethod
    def decide(self, step: Step, budgets: Budgets) -> Plan:
        """The next jobs, or the stop."""

    @abstractmethod
    def most_fan_outs(self, budgets: Budgets) -> int:
        """The most fan-outs a run may take."""

    def build(self, operations: Operations, budgets: Budgets) -> StateGraph[Any, None, Any, Any]:
        nodes = _Nodes(self, operations, budgets)
        graph: StateGraph[SearchState, None, SearchState, SearchState] = StateGraph(SearchState)
        destinations = ("make", "finish", *(("review",) if operations.pauses else ()))
        graph.add_node("plan", nodes.plan, destinations=destinations)
        # Sent a `Job`, not the state: typed by its own input schema.
        graph.add_node("make", cast(Any, nodes.make), input_schema=Job)
        graph.add_node("finish", nodes.finish)
        graph.add_edge(START, "plan")
        graph.add_edge("make", "plan")
        if operations.pauses:  # a person reviews each fan-out's candidates, one a step
            graph.add_node("review", nodes.review)
            graph.add_edge("review", "plan")
        graph.add_edge("finish", END)
        return graph

    def main_line(self, tree: Tree, final_id: str) -> list[Candidate]:
        """What `Result.rounds` shows: the path from a first draft down to the final one."""
        return tree.path(final_id)

    def recursion_limit(self, budgets: Budgets) -> int:
        """Plan and make for each fan-out, the finish, and some slack. (A run that pauses
        for a person takes more steps, but LangGraph counts them from each resume.)"""
        return 2 * self.most_fan_outs(budgets) + 6


class ChainSearch(Search):
    """A search whose candidates form chains revised as `Refine` revises its one (BestOfN's
    refinement, Reflexion's trials): each chain is judged by the Refiner's budgets, and the
    best candidate of it so far is revised next."""

    def main_line(self, tree: Tree, final_id: str) -> list[Candidate]:
        """The chain the final candidate is on, as `Refine` shows its rounds."""
        return attempt_of(tree, final_id)

    @staticmethod
    def chain_stop(step: Step, chain: list[Candidate], budgets: Budgets) -> StopReason | None:
        """The budget or target that ends `chain` (its latest candidate just judged)."""
        return budgets.check(
            chain, step.spent, candidates=len(step.tree.candidates), elapsed_s=step.elapsed_s
        )

    @staticmethod
    def revise_best(step: Step, chain: list[Candidate], budgets: Budgets) -> list[Job]:
        """The next revision of `chain`: of its best candidate, or its last with
        select='last'."""
        target = chain[best_index(chain, budgets.select)]
        return revisions(target, chain, 1, step.next_number)


class _Nodes:
    def __init__(self, search: Search, operations: Operations, budgets: Budgets) -> None:
        self.search = search
        self.ops = operations
        self.budgets = budgets
        self.view = _TreeView()
        # Revisions made so far in each fan-out of each running task, by (parent, batch):
        # a revision made at the same time as its siblings is checked against them too.
        self._fresh: dict[int, tuple[Task, dict[tuple[str, int], list[Candidate]]]] = {}

    def _made_alongside(self, task: Task, parent_id: str, batch: int) -> list[Candidate]:
        entry = self._fresh.get(id(task))
        if entry is None or entry[0] is not task:
            if len(self._fresh) >= 10_000:  # runs killed part-way never cleared theirs
                self._fresh.clear()
            entry = self._fresh[id(task)] = (task, {})
        return entry[1].setdefault((parent_id, batch), [])

    async def plan(self, state: SearchState) -> Command[Literal["make", "review", "finish"]]:
        self._fresh.pop(id(state["task"]), None)  # every job of the last fan-out is done
        if unreviewed(state):
            return Command(goto="review")
        tree = self.view(state)
        start = state.get("level_start", 0)
        made = tree.since(start)
        failures = [f for f in state.get("failures", []) if f["number"] >= start]
        # Jobs of a fan-out run at once: it takes as long as its longest job.
        elapsed = max((c.draft.duration_s + c.duration_s for c in made), default=0.0)
        total_elapsed = state.get("elapsed_s", 0.0) + elapsed
        if not tree.candidates and failures:
            errors = [f["error"] for f in failures if f["error"]]
            raise ModelError(f"every first draft failed: {errors[0] if errors else 'no draft'}")
        step = Step(
            state=state,
            tree=tree,
            made=made,
            failures=failures,
            spent=total_usage(tree.candidates, state.get("discarded", Usage())),
            elapsed_s=total_elapsed,
            next_number=state.get("made", 0),
            fan_outs=state.get("fan_outs", 0),
        )
        plan = self.search.decide(step, self.budgets)
        jobs = plan.jobs
        limit = self.budgets.max_candidates
        if jobs and limit is not None:  # every job of earlier fan-outs has finished
            jobs = jobs[: max(limit - len(tree.candidates), 0)]
        update: dict[str, Any] = {**plan.update, "elapsed_s": elapsed}
        if jobs:
            best_id = tree.best().id if tree.candidates else ""
            first_parent = jobs[0].get("parent_id")
            depth = 0 if first_parent is None else tree.by_id[first_parent].depth + 1
            expand = list(dict.fromkeys(p for j in jobs if (p := j.get("parent_id")) is not None))
            emit(SelectEvent(round=depth, best_id=best_id, expand=expand, note=plan.note))
            update |= {
                "made": step.next_number + len(jobs),
                "level_start": step.next_number,
                "fan_outs": step.fan_outs + 1,
            }
            return Command(update=update, goto=[Send("make", job) for job in jobs])
        stop = plan.stop or StopReason.BUDGET  # jobs cut to nothing by the candidate budget
        final = plan.final_id or self._final(tree)
        shown = SelectEvent(
            round=tree.by_id[final].depth, best_id=final, stop_reason=stop, note=plan.note
        )
        emit(shown)
        update |= {"stop_reason": stop, "final_id": final}
        if plan.error is not None:
            update["error"] = plan.error
        return Command(update=update, goto="finish")

    def _final(self, tree: Tree) -> str:
        """The candidate a stop returns, when the strategy did not name one: the best of
        the whole tree, or with select='last' the last one made."""
        if self.budgets.select == "last":
            return tree.candidates[-1].id
        return tree.best().id

    async def make(self, job: Job, config: RunnableConfig) -> dict[str, Any]:
        state = _read_state(config)
        task, number = state["task"], job["number"]
        tree = self.view(state)
        parent_id = job.get("parent_id")
        parent = None if parent_id is None else tree.by_id[parent_id]
        line = [tree.by_id[i] for i in job.get("line_ids", [])]
        try:
            if job["op"] == "draft":
                candidate = await self.ops.draft(task, number, job.get("variant"))
                judged_line: Sequence[Candidate] = ()
            else:
                if job["op"] == "revise":
                    assert parent is not None
                    alongside = self._made_alongside(task, parent.id, job.get("batch", number))
                    existing = [tree.by_id[i] for i in job.get("sibling_ids", [])]
                    revised = await self.ops.revise(
                        task,
                        parent,
                        line,
                        number,
                        variant=job.get("variant"),
                        siblings=_Joined(existing, alongside),
                    )
                    judged_line = line
                    if revised.candidate is not None:
                        alongside.append(revised.candidate)
                else:
                    revised = await self.ops.reflect(task, line, job.get("reflections", []), number)
                    judged_line = [] if parent is None else tree.path(parent.id)
                if revised.candidate is None:
                    return _failed(job, revised)
                candidate = revised.candidate
        except (RunInterrupted, ConfigError):  # a misconfigured run fails as a whole
            raise
        except Exception as exc:  # one failed job leaves the others' candidates
            return _failed(job, Revised(None, Usage(), stop="error", error=describe(exc)))
        judged = await self.ops.judge(task, candidate, judged_line)
        if self.ops.pauses:
            return {"drafts": {candidate.id: candidate}, "reviews": [judged.judgment()]}
        emit(CandidateEvent(round=judged.depth, candidate=judged))
        return {"drafts": {candidate.id: candidate}, "judgments": [judged.judgment()]}

    async def review(self, state: SearchState) -> dict[str, Any]:
        """A person's review of the first candidate of the last fan-out that awaits one.
        One a step: each answer is checkpointed before the next candidate is shown."""
        waiting = unreviewed(state)[0]
        candidate = state["drafts"][waiting.candidate_id].judged_as(waiting)
        parent_id = candidate.parent_id
        line = [] if parent_id is None else self.view(state).path(parent_id)
        judged = await self.ops.review(state["task"], candidate, line)
        emit(CandidateEvent(round=judged.depth, candidate=judged))
        return {"judgments": [judged.judgment()]}

    async def finish(self, state: SearchState, config: RunnableConfig) -> dict[str, Any]:
        tree = self.view(state)
        final_id = state["final_id"]
        chain = self.search.main_line(tree, final_id)
        discarded = state.get("discarded", Usage())
        result = Result(
            task=state["task"],
            final=tree.by_id[final_id].draft,
            final_id=final_id,
            best_round=next(i for i, c in enumerate(chain) if c.id == final_id),
            stop_reason=state.get("stop_reason") or StopReason.EXHAUSTED,
            candidates=tree.candidates,
            chain=[c.id for c in chain],
            usage=usage_report(tree.candidates, discarded),
            wall_time_s=state.get("elapsed_s", 0.0),
            error=state.get("error"),
            thread_id=config.get("configurable", {}).get("thread_id"),
            strategy=self.search.name,
            selected_because=selected_because(tree.candidates, final_id, self.budgets.select),
        )
        result = await self.ops.learn(result)
        emit(StopEvent(result=result))
        return {"result": result}


class _Joined(Sequence[Candidate]):
    """Two lists read as one, each as it is when read: the siblings that existed before a
    fan-out, and those its other jobs have made since."""

    def __init__(self, first: list[Candidate], second: list[Candidate]) -> None:
        self._first, self._second = first, second

    def __len__(self) -> int:
        return len(self._first) + len(self._second)

    def __getitem__(self, index: Any) -> Any:
        return [*self._first, *self._second][index]

    def __iter__(self) -> Iterator[Candidate]:
        yield from self._first
        yield from self._second


def unreviewed(state: Mapping[str, Any]) -> list[Judgment]:
    """Candidates judged by every critic but a person, in the order made."""
    reviews = state.get("reviews", [])
    if not reviews:
        return []
    judged = {j.candidate_id for j in state.get("judgments", [])}
    waiting = [r for r in reviews if r.candidate_id not in judged]
    return sorted(waiting, key=lambda r: number_of(r.candidate_id))


def _read_state(config: RunnableConfig) -> SearchState:
    """The state at the start of this step, read the way LangGraph's own `ToolNode` reads it
    for a `Send` that carries no state: by the read function Pregel gives each task."""
    read = config.get("configurable", {}).get(CONFIG_KEY_READ)
    if read is None:
        raise RuntimeError("the search's make node runs only inside its graph")
    return cast(SearchState, read(["task", "drafts", "judgments"], False))


def _failed(job: Job, revised: Revised) -> dict[str, Any]:
    failure = Failure(
        number=job["number"],
        parent_id=job.get("parent_id"),
        stop=revised.stop or "error",
        error=revised.error,
    )
    return {"failures": [failure], "discarded": revised.spent}


def attempt_of(tree: Tree, candidate_id: str) -> list[Candidate]:
    """The chain `candidate_id` belongs to, in the order made: its first draft (or fresh
    attempt after a reflection) and every revision made from that on."""
    start = tree.by_id[candidate_id]
    while start.origin is Origin.REVISE and start.parent_id is not None:
        start = tree.by_id[start.parent_id]
    return chain_from(start, tree.candidates)


def target_met(candidates: Sequence[Candidate], budgets: Budgets) -> tuple[StopReason, str] | None:
    """PASSED or THRESHOLD, and the candidate that met it, when one of `candidates` did."""
    for candidate in candidates:
        if candidate.passed and candidate.judged:
            return StopReason.PASSED, candidate.id
    if budgets.threshold is not None:
        met = [c for c in candidates if meets(c, budgets.threshold)]
        if met:
            return StopReason.THRESHOLD, best_of(met).id
    return None


def all_critics_failed(candidates: Sequence[Candidate]) -> bool:
    """Every critic failed on every one of `candidates`."""
    return bool(candidates) and all(critics_all_failed(c) for c in candidates)


def no_candidate_reason(failures: Sequence[Failure]) -> tuple[StopReason, str | None]:
    """Why a fan-out whose every job failed stops the run."""
    errors = [f["error"] for f in failures if f["stop"] == "error" and f["error"]]
    if errors:
        return StopReason.ERROR, errors[0]
    return StopReason.REPEATED, None


def first_drafts(count: int, start: int) -> list[Job]:
    """`count` first drafts made at once, each told to differ."""
    return [
        Job(op="draft", number=start + i, variant=Variant.spread(i, count) if count > 1 else None)
        for i in range(count)
    ]


def revisions(
    parent: Candidate,
    line: list[Candidate],
    count: int,
    start: int,
    existing: Sequence[Candidate] = (),
) -> list[Job]:
    """`count` revisions of `parent` made at once, each told to differ and shown the
    revisions of it that already exist."""
    return [
        Job(
            op="revise",
            number=start + i,
            variant=Variant.spread(i, count) if count > 1 else None,
            parent_id=parent.id,
            line_ids=[c.id for c in line],
            sibling_ids=[c.id for c in existing],
            batch=start,
        )
        for i in range(count)
    ]
