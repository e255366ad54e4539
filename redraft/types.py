"""The data that flows through a refinement loop, as pydantic models.

Everything here serialises to JSON and back without loss, so a `Result` can be stored,
shipped between processes and checkpointed by LangGraph.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from redraft.checks import shown
from redraft.errors import ConfigError

Role = Literal["actor", "critic", "editor"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


if TYPE_CHECKING:
    # Type checkers see a plain model, so the pydantic mypy plugin checks every field of a
    # constructor call; the one-line errors below are a run-time matter only.
    class _Input(_Model):
        pass

else:

    class _OneLineErrors(type(BaseModel)):
        """Direct construction (`Task(...)`) turns pydantic's multi-line report into one line.

        A metaclass, not an `__init__`: pydantic routes all validation of a model with a
        custom `__init__` through it (loading stored results too), while `__call__` is
        reached only when user code builds the object.
        """

        def __call__(cls, *args, **kwargs):
            if args:  # pydantic's TypeError names BaseModel.__init__, not the fields
                first = next(iter(cls.model_fields), "field")
                raise ConfigError(
                    f"{cls.__name__} takes its fields by name, e.g. "
                    f"{cls.__name__}({first}={shown(args[0])}); its fields are "
                    f"{', '.join(cls.model_fields)}"
                )
            try:
                return super().__call__(*args, **kwargs)
            except ValidationError as exc:
                raise ConfigError(validation_message(exc, cls)) from None

    class _Input(_Model, metaclass=_OneLineErrors):
        """A model users build by hand: a bad value is a one-line `ConfigError` naming the
        field and what to give; `model_validate` keeps pydantic's `ValidationError`."""


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list", "none"})


def validation_message(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line for a pydantic error: the field, what it must be, what it was."""
    what = model.__name__
    errors = exc.errors(include_url=False)
    # The deepest error is the most specific (a union reports each branch it tried).
    first = max(errors, key=lambda e: len(e["loc"]))
    # Union branches and validators add tags such as 'str', 'Rubric' or 'function-after[...]'.
    fields = [
        str(p)
        for p in first["loc"]
        if not str(p)[:1].isupper() and "[" not in str(p) and str(p) not in _UNION_TAGS
    ]
    where = f"{what} {'.'.join(fields)}" if fields else what
    kind = first["type"]
    cause = first.get("ctx", {}).get("error")
    if cause is not None:  # our own validators' messages already say what to give
        text = f"{what}: {cause}" if fields and fields[-1] in str(cause) else f"{where}: {cause}"
    elif kind == "missing":
        text = f"{where} is required: pass {fields[-1] if fields else 'it'}=..."
    elif kind == "extra_forbidden":
        known = ", ".join(model.model_fields)
        text = f"{what} has no field '{fields[-1] if fields else '?'}'" + (
            f": its fields are {known}" if known else ""
        )
    else:
        message = str(first["msg"]).replace("Input should be", "must be")
        text = f"{where} {message[:1].lower()}{message[1:]} (got {shown(first.get('input'))})"
    # A union reports one error per branch it tried: count the fields at fault, not errors.
    more = len({e["loc"][:1] for e in errors}) - 1
    return text + (f" (and {more} more problem{'s' * (more != 1)})" if more else "")


class Usage(_Model):
    """Tokens, cost and time spent on model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage.total_of((self, other))

    @classmethod
    def total_of(cls, usages: Iterable[Usage]) -> Usage:
        input_tokens = output_tokens = calls = 0
        cost_usd = latency_s = 0.0
        for usage in usages:  # one pass: this runs in every round
            input_tokens += usage.input_tokens
            output_tokens += usage.output_tokens
            cost_usd += usage.cost_usd
            calls += usage.calls
            latency_s += usage.latency_s
        # Sums of valid fields are valid: no validation needed.
        return cls.model_construct(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            calls=calls,
            latency_s=latency_s,
        )


class Rubric(_Input):
    """What a rubric critic judges against (Prometheus style: criteria and a 1-5 scale)."""

    description: str = ""
    criteria: list[str] = Field(default_factory=list)
    scale: dict[int, str] = Field(
        default_factory=lambda: {
            1: "Fails the task: wrong, off-topic or missing most requirements.",
            2: "Major problems: several requirements missed or significant errors.",
            3: "Acceptable but flawed: the main requirement is met, with clear problems.",
            4: "Good: all requirements met, only minor problems remain.",
            5: "Excellent: fully correct and complete; nothing worth changing.",
        }
    )
    pass_score: int = Field(default=4, ge=1, le=5)

    @field_validator("pass_score", mode="before")
    @classmethod
    def _pass_score_on_the_scale(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would take True for 1
            raise ValueError(
                f"pass_score is the lowest passing score on the 1-5 scale: give 1, 2, 3, 4 "
                f"or 5 (got {value!r})"
            )
        if isinstance(value, int | float) and not 1 <= value <= 5:
            raise ValueError(
                f"pass_score is the lowest passing score on the 1-5 scale: give 1, 2, 3, 4 "
                f"or 5 (got {value!r})"
            )
        return value

    @field_validator("criteria")
    @classmethod
    def _criteria_not_empty(cls, criteria: list[str]) -> list[str]:
        if any(not criterion.strip() for criterion in criteria):
            raise ValueError("a criterion is empty: write what it asks for, or drop it")
        return criteria

    @field_validator("scale")
    @classmethod
    def _scale_is_one_to_five(cls, scale: dict[int, str]) -> dict[int, str]:
        if scale and set(scale) != {1, 2, 3, 4, 5}:
            raise ValueError("a rubric scale describes exactly the scores 1, 2, 3, 4 and 5")
        return scale


class Task(_Input):
    """What to produce. `instruction` is required; the rest sharpens the critics."""

    instruction: str
    context: str | None = None
    reference: str | None = Field(default=None, description="A reference answer for critics.")
    rubric: str | Rubric | None = None
    draft: str | None = Field(
        default=None, description="An existing draft to refine; the actor is skipped."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("instruction")
    @classmethod
    def _instruction_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task is empty: give an instruction saying what to produce")
        return value

    @field_validator("draft")
    @classmethod
    def _draft_not_empty(cls, value: str | None) -> str | None:
        # An empty draft would be judged as the first round (an empty edit never is).
        if value is not None and not value.strip():
            raise ValueError(
                "draft is empty: give the draft to refine, or leave draft unset for the actor "
                "to write one"
            )
        return value

    @classmethod
    def coerce(cls, task: str | Task) -> Task:
        """A `Task` as is, or a string as its instruction; anything else is a ConfigError."""
        if isinstance(task, Task):
            return task
        if not isinstance(task, str):
            raise ConfigError(
                f"the task must be a string (the instruction) or a redraft.Task, not "
                f"{type(task).__name__} {shown(task)}"
                + (
                    "; for a dict of fields use redraft.Task(**fields)"
                    if isinstance(task, dict)
                    else ""
                )
            )
        return cls(instruction=task)


class EditMode(str, Enum):
    REWRITE = "rewrite"
    PATCH = "patch"


class Lesson(_Model):
    """A past correction retrieved from memory and shown to the actor or editor."""

    id: str = Field(description="The correction's id in the memory.")
    task: str = Field(description="The task it was learned on.")
    problem: str
    fix: str = ""
    excerpt: str | None = Field(default=None, description="The flawed passage, as it was.")
    revised: str | None = Field(default=None, description="What the passage became.")
    critic: str | None = None
    score: float = Field(description="Cosine similarity to what was asked (0..1).")


class ToolInvocation(_Model):
    """One tool call a role made while writing a draft or a critique, and what came of it."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str | None = Field(default=None, description="The output the model was shown.")
    error: str | None = Field(default=None, description="Why the call failed, as shown.")
    duration_s: float = 0.0
    truncated: bool = Field(default=False, description="The output was cut to the tool's cap.")

    @property
    def ok(self) -> bool:
        return self.error is None


class Draft(_Model):
    """One version of the answer."""

    text: str
    round: int = 0
    author: Literal["actor", "editor", "user"] = "actor"
    edit_mode: EditMode | None = None
    patches_applied: int = 0
    patch_fallback: bool = Field(
        default=False, description="A patch did not apply and the editor rewrote instead."
    )
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0
    revises: int | None = Field(default=None, description="The round this draft revised.")
    lessons: list[Lesson] = Field(
        default_factory=list, description="Past corrections the author was given."
    )
    reflections: list[str] = Field(
        default_factory=list,
        description="What earlier failed attempts taught, given to the author (Reflexion).",
    )
    tool_calls: list[ToolInvocation] = Field(
        default_factory=list, description="The tools the author called, in order."
    )

    def __str__(self) -> str:
        return self.text


class Reflection(_Model):
    """A reflector's account of a failed attempt: what went wrong, what to do differently."""

    text: str
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0


class Issue(_Input):
    """One precise problem a critic found."""

    problem: str
    quote: str | None = Field(default=None, description="The exact passage at fault.")
    location: str | None = Field(default=None, description="Where, e.g. 'line 12' or 'step 3'.")
    suggestion: str | None = None
    severity: Literal["minor", "major", "critical"] = "major"


class ConstraintCheck(_Input):
    """One constraint of a checklist, and whether a draft meets it (`ChecklistCritic`)."""

    constraint: str
    passed: bool
    reason: str = ""
    quote: str | None = Field(default=None, description="The passage the verdict rests on.")


Preference = Literal["better", "worse", "tie"]


class Comparison(_Input):
    """A pairwise verdict on a candidate against another (its parent): is it better?"""

    against: str = Field(description="The id of the candidate it was compared with.")
    verdict: Preference
    orders: list[Preference] = Field(
        default_factory=list,
        description="The verdict of each order asked (candidate shown first, then second).",
    )
    note: str = Field(default="", description="How the verdict was reached, when not plain.")

    @property
    def regression(self) -> bool:
        return self.verdict == "worse"


class Critique(_Input):
    """A critic's verdict on one draft."""

    critic: str
    score: float = Field(ge=0.0, le=1.0, description="Normalised to 0..1.")
    raw_score: float | None = Field(default=None, description="The critic's own scale.")
    passed: bool
    summary: str = ""
    feedback: str = Field(default="", description="The critic's reasoning, in full.")
    issues: list[Issue] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Set when the critic itself failed.")
    weight: float = 1.0
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    duration_s: float = 0.0
    checks: list[ConstraintCheck] = Field(
        default_factory=list, description="A checklist critic's constraints, each judged."
    )
    comparison: Comparison | None = Field(
        default=None, description="A pairwise critic's verdict against the parent."
    )
    tool_calls: list[ToolInvocation] = Field(
        default_factory=list, description="The tools the critic called, in order."
    )

    @classmethod
    def failed(cls, critic: str, error: str, *, usage: Usage | None = None) -> Critique:
        return cls(
            critic=critic,
            score=0.0,
            passed=False,
            summary=f"critic failed: {error}",
            error=error,
            usage=usage or Usage(),
        )


class Variant(_Model):
    """One of `count` drafts or revisions a strategy asks for at once: it is told to differ
    from the others, and `temperature` (when set) replaces the agent's own, for diversity."""

    model_config = ConfigDict(frozen=True)

    index: int
    count: int
    temperature: float | None = None

    @classmethod
    def spread(cls, index: int, count: int) -> Variant:
        """Variant `index` of `count`: the first at the agent's own temperature, the others
        warmer in even steps from 0.7 to 1.1."""
        if index == 0 or count < 2:
            return cls(index=index, count=count)
        step = (index - 1) / max(count - 2, 1)
        return cls(index=index, count=count, temperature=round(0.7 + 0.4 * step, 3))


class Origin(str, Enum):
    """How a candidate came to be."""

    DRAFT = "draft"  # a first draft: the actor's, or the task's own
    REVISE = "revise"  # the editor's revision of its parent, from the parent's critiques
    REFLECT = "reflect"  # a fresh attempt written after a reflection on failed ones


class Candidate(_Model):
    """One draft in a run's tree of candidates and, once judged, what the critics said.

    `passed` is this candidate's own verdict (every critic passed it); `Result.passed` is
    whether the run as a whole succeeded.
    """

    id: str
    parent_id: str | None = Field(default=None, description="The candidate this one revises.")
    depth: int = Field(default=0, description="Revisions between this and its first draft.")
    origin: Origin = Origin.DRAFT
    draft: Draft
    critiques: list[Critique] = Field(default_factory=list)
    score: float = Field(
        default=0.0,
        description="Weighted mean of every critic's score, a critic that failed counting as 0.",
    )
    passed: bool = Field(
        default=False,
        description="Every critic passed the draft (never so if one failed), or a person "
        "accepted it.",
    )
    duration_s: float = Field(default=0.0, description="Time the critics took together.")

    @property
    def judged(self) -> bool:
        """No critic failed on this draft."""
        return all(c.error is None for c in self.critiques)

    @property
    def regression_of(self) -> str | None:
        """The candidate a pairwise critic judged this one worse than, if one did."""
        return regression_of(self.critiques)

    def as_round(self, index: int) -> Round:
        """This candidate as round `index` of a main line (its fields, not validated again)."""
        return Round.model_construct(
            index=index,
            draft=self.draft,
            critiques=self.critiques,
            score=self.score,
            passed=self.passed,
            duration_s=self.duration_s,
            candidate_id=self.id,
        )

    def judgment(self) -> Judgment:
        """What the critics said of this candidate, without its draft."""
        return Judgment.model_construct(
            candidate_id=self.id,
            critiques=self.critiques,
            score=self.score,
            passed=self.passed,
            duration_s=self.duration_s,
        )

    def judged_as(self, judgment: Judgment) -> Candidate:
        """This candidate with `judgment` (its own, made by `judgment()`)."""
        return self.model_copy(
            update={
                "critiques": judgment.critiques,
                "score": judgment.score,
                "passed": judgment.passed,
                "duration_s": judgment.duration_s,
            }
        )


def chain_from(start: Candidate, candidates: Iterable[Candidate]) -> list[Candidate]:
    """`start` and every revision made from it on (revisions of revisions too), in the
    order of `candidates`, which lists parents before their children: one attempt's chain,
    up to the next fresh draft or reflection."""
    chain, members = [start], {start.id}
    for candidate in candidates:
        if candidate.origin is Origin.REVISE and candidate.parent_id in members:
            members.add(candidate.id)
            chain.append(candidate)
    return chain


class Judgment(_Model):
    """A candidate's critiques, score and verdict apart from its draft: a run's state keeps
    the two apart, so that a checkpoint stores each draft once however often it is judged."""

    candidate_id: str
    critiques: list[Critique] = Field(default_factory=list)
    score: float = 0.0
    passed: bool = False
    duration_s: float = 0.0


class Round(_Model):
    """One draft and what every critic said about it: a candidate on the run's main line."""

    index: int
    draft: Draft
    critiques: list[Critique] = Field(default_factory=list)
    score: float = Field(
        description="Weighted mean of every critic's score, a critic that failed counting as 0."
    )
    passed: bool = Field(
        description="Every critic passed the draft (never so if one failed), or a person "
        "accepted it."
    )
    duration_s: float = Field(default=0.0, description="Time the critics took together.")
    candidate_id: str | None = Field(default=None, description="The candidate it shows.")

    @property
    def judged(self) -> bool:
        """No critic failed on this draft. Derived, so older checkpoints and results load."""
        return all(c.error is None for c in self.critiques)

    @property
    def regression_of(self) -> str | None:
        """The candidate a pairwise critic judged this one worse than, if one did."""
        return regression_of(self.critiques)


def regression_of(critiques: Iterable[Critique]) -> str | None:
    """The id of the candidate that `critiques` judge their draft worse than, if any."""
    for critique in critiques:
        if critique.comparison is not None and critique.comparison.regression:
            return critique.comparison.against
    return None


class StopReason(str, Enum):
    PASSED = "passed"
    THRESHOLD = "threshold"
    MAX_ROUNDS = "max_rounds"
    NO_IMPROVEMENT = "no_improvement"
    REPEATED = "repeated"
    BUDGET = "budget"
    EXHAUSTED = "exhausted"  # a search made every candidate it was to make
    CRITICS_FAILED = "critics_failed"
    ERROR = "error"
    WAITING = "waiting"  # paused for a person's critique: not over, resume it

    @property
    def succeeded(self) -> bool:
        return self in (StopReason.PASSED, StopReason.THRESHOLD)


class UsageReport(_Model):
    model_config = ConfigDict(extra="ignore")  # `total` is computed and dumped

    actor: Usage = Field(default_factory=Usage)
    critic: Usage = Field(default_factory=Usage)
    editor: Usage = Field(default_factory=Usage)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Usage:
        return self.actor + self.critic + self.editor

    def by_role(self, role: Role) -> Usage:
        usage: Usage = getattr(self, role)
        return usage


class Waiting(_Model):
    """What a paused run waits for: a person's critique of `candidate`, which the other
    critics have already judged (their critiques are on it)."""

    critic: str = Field(description="The human critic that asks.")
    candidate: Candidate
    question: str = ""


class HumanAnswer(_Input):
    """A person's critique of a waiting candidate: feedback for the editor, a score in 0..1,
    and/or `accept=True` to pass the draft. At least one of them is needed."""

    feedback: str | None = None
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    accept: bool | None = None

    @model_validator(mode="after")
    def _says_something(self) -> HumanAnswer:
        if self.feedback is not None and not self.feedback.strip():
            self.feedback = None
        if self.feedback is None and self.score is None and self.accept is None:
            raise ValueError(
                "the answer is empty: give feedback= (what to change), score= (0..1) or accept=True"
            )
        return self


class Result(_Model):
    """The outcome of a refinement run.

    `final` is the selected draft, or `None` when the run failed before any draft was
    written (the actor's model failed; `batch` returns such a result for a task that
    failed): then `rounds` is empty, `stop_reason` is `error` and `error` says what
    happened. `text` is the final draft's text, or "" when there is none.
    """

    model_config = ConfigDict(extra="ignore")  # `passed` is computed and dumped

    task: Task
    final: Draft | None = Field(description="The selected draft; None if no draft was made.")
    final_id: str | None = Field(default=None, description="The candidate `final` is.")
    best_round: int = Field(description="The index of the final candidate in `rounds`.")
    stop_reason: StopReason
    candidates: list[Candidate] = Field(
        default_factory=list, description="Every candidate of the run, in the order made."
    )
    chain: list[str] = Field(
        default_factory=list, description="The ids of the candidates `rounds` shows, in order."
    )
    usage: UsageReport
    wall_time_s: float
    error: str | None = None
    thread_id: str | None = None
    strategy: str = Field(default="refine", description="The strategy that ran: its `name`.")
    selected_because: str = Field(
        default="", description="Why `final` was chosen over the other candidates."
    )
    waiting: Waiting | None = Field(
        default=None,
        description="Set while the run is paused for a person (stop_reason 'waiting').",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_rounds(cls, data: Any) -> Any:
        """A result saved before candidates existed: its rounds become a chain of them."""
        if not isinstance(data, dict) or "candidates" in data or "rounds" not in data:
            return data
        rounds = [Round.model_validate(r) for r in data.get("rounds") or []]
        candidates = [
            Candidate(
                id=f"c{r.index}",
                parent_id=None if r.draft.revises is None else f"c{r.draft.revises}",
                depth=r.index,
                origin=Origin.DRAFT if r.draft.revises is None else Origin.REVISE,
                draft=r.draft,
                critiques=r.critiques,
                score=r.score,
                passed=r.passed,
                duration_s=r.duration_s,
            )
            for r in rounds
        ]
        best = data.get("best_round", 0)
        updated = {k: v for k, v in data.items() if k != "rounds"}
        updated["candidates"] = candidates
        updated["chain"] = [c.id for c in candidates]
        if candidates and isinstance(best, int) and 0 <= best < len(candidates):
            updated.setdefault("final_id", candidates[best].id)
        return updated

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return self.stop_reason.succeeded

    @property
    def rounds(self) -> list[Round]:
        """The run's main line as rounds: for `Refine`, every draft in order; for a search,
        the path to the final candidate."""
        by_id = {c.id: c for c in self.candidates}
        return [by_id[id_].as_round(index) for index, id_ in enumerate(self.chain)]

    def candidate(self, candidate_id: str) -> Candidate:
        """The candidate of that id (KeyError if the run has none)."""
        for candidate in self.candidates:
            if candidate.id == candidate_id:
                return candidate
        raise KeyError(candidate_id)

    @property
    def text(self) -> str:
        """The final draft's text; "" for a run that failed before any draft."""
        return self.final.text if self.final is not None else ""

    @classmethod
    def failed(
        cls,
        task: Task,
        error: str,
        *,
        wall_time_s: float = 0.0,
        thread_id: str | None = None,
        strategy: str = "refine",
    ) -> Result:
        """The result of a run that failed before any draft: no final draft, no rounds."""
        return cls(
            task=task,
            final=None,
            best_round=0,
            stop_reason=StopReason.ERROR,
            usage=UsageReport(),
            wall_time_s=wall_time_s,
            error=error,
            thread_id=thread_id,
            strategy=strategy,
        )

    @property
    def score(self) -> float:
        """The final candidate's score (0 without one)."""
        if self.final_id is None:
            return 0.0
        return self.candidate(self.final_id).score

    @property
    def lessons(self) -> list[Lesson]:
        """Every past correction given to the actor or editor in this run, once each."""
        unique = {lesson.id: lesson for c in self.candidates for lesson in c.draft.lessons}
        return list(unique.values())

    def __rich__(self) -> Any:
        from redraft.display import render_result

        return render_result(self)

    def _repr_html_(self) -> str:
        from redraft.display import result_html

        return result_html(self)


class DraftEvent(_Model):
    kind: Literal["draft"] = "draft"
    round: int
    draft: Draft


class CritiqueEvent(_Model):
    kind: Literal["critique"] = "critique"
    round: int
    critique: Critique


class RoundEvent(_Model):
    """Emitted when every critic of a round has answered and the stop rules were applied."""

    kind: Literal["round"] = "round"
    round: int  # as on every event: the round's index
    judged: Round  # the round, with every critique
    best_round: int
    stop_reason: StopReason | None


class EditEvent(_Model):
    kind: Literal["edit"] = "edit"
    round: int
    draft: Draft


class CandidateEvent(_Model):
    """Emitted by a search strategy when the critics have judged one of its candidates."""

    kind: Literal["candidate"] = "candidate"
    round: int  # the candidate's depth
    candidate: Candidate


class SelectEvent(_Model):
    """Emitted by a search strategy each time it chooses: the best candidate so far, the
    candidates it expands next (none when it stops), and why it stops, if it does."""

    kind: Literal["select"] = "select"
    round: int  # the depth the expanded candidates' children will have
    best_id: str
    expand: list[str] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    note: str = ""  # why these were chosen, for people


class ToolEvent(_Model):
    """A tool call that ended, made by a role while it wrote a draft or a critique."""

    kind: Literal["tool"] = "tool"
    round: int  # the round of the draft written or judged
    role: str  # "actor", "editor", or the critic's name
    invocation: ToolInvocation


class StopEvent(_Model):
    kind: Literal["stop"] = "stop"
    result: Result


Event = Annotated[
    DraftEvent
    | CritiqueEvent
    | RoundEvent
    | EditEvent
    | CandidateEvent
    | SelectEvent
    | ToolEvent
    | StopEvent,
    Field(discriminator="kind"),
]
