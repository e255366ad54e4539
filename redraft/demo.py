"""A complete refinement loop that runs offline: `redraft demo`, or `demo_refiner().run(DEMO_TASK)`.

The three models are `ScriptedModel`s, but they go through the real prompts, JSON parsing,
patching and stop rules. The critic is a function that reads the draft out of the prompt it is
shown and reviews that code, so its verdicts follow whatever the editor actually produced; the
editor answers with search/replace blocks for the problems the critic listed.

The story: a first draft of `median` has three bugs; the editor fixes them but slips in a floor
division; the critic catches that too, and the third draft passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from redraft.agents.critics.llm import LLMCritic
from redraft.agents.editor import LLMEditor
from redraft.models.base import Message
from redraft.models.scripted import ScriptedCall, ScriptedModel
from redraft.refiner import Refiner
from redraft.types import Rubric, Task

DEMO_RUBRIC = Rubric(
    description="A small, correct, documented Python function.",
    criteria=[
        "Correct: the middle value for an odd number of values, the mean of the two middle "
        "values for an even number.",
        "Leaves the list it is given unchanged.",
        "Raises ValueError with a clear message for an empty list.",
        "Has type hints and a docstring that states the behaviour, including the error.",
    ],
    pass_score=4,
)

DEMO_TASK = Task(
    instruction=(
        "Write a Python function `median(values)` that returns the median of a list of "
        "numbers. It must not modify the list it is given and must raise ValueError for an "
        "empty list. Include type hints and a docstring."
    ),
    rubric=DEMO_RUBRIC,
)

# What a capable model plausibly writes first: tidy, but it sorts in place, ignores the
# even-length case and lets an empty list fail with IndexError.
FIRST_DRAFT = '''```python
def median(values: list[float]) -> float:
    """Return the median of a list of numbers."""
    values.sort()
    middle = len(values) // 2
    return values[middle]
```'''

_DOCSTRING = '''    """Return the median of `values` without modifying the list.

    For an even number of values this is the mean of the two middle values.
    Raises ValueError if `values` is empty.
    """'''

_BODY = """    if not values:
        raise ValueError("median() arg is an empty list")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2"""

Severity = Literal["minor", "major", "critical"]


@dataclass(frozen=True)
class _Check:
    """One thing the reviewer looks for. `find` returns the offending line, or None if fine."""

    criterion: str
    find: Callable[[str], str | None]
    problem: str
    suggestion: str
    severity: Severity
    verb_phrase: str  # completes "it ...", for the one-sentence summary
    praise: str  # what the feedback says when the code gets this right


def _line_matching(pattern: str) -> Callable[[str], str | None]:
    def find(code: str) -> str | None:
        for line in code.splitlines():
            if re.search(pattern, line):
                return line.strip()
        return None

    return find


def _line_when_missing(missing: str, quoted: str) -> Callable[[str], str | None]:
    """The line at fault when `missing` appears nowhere in the code."""

    def find(code: str) -> str | None:
        if re.search(missing, code):
            return None
        return _line_matching(quoted)(code)

    return find


def _docstring_without_error(code: str) -> str | None:
    match = re.search(r'"""(.*?)"""', code, re.DOTALL)
    if match is None:
        return "def median"
    return None if "ValueError" in match.group(1) else match.group(0).splitlines()[0].strip()


_CHECKS = (
    _Check(
        criterion="Input left unchanged",
        find=_line_matching(r"\bvalues\.(sort|reverse|pop|remove|clear)\("),
        problem=(
            "`values.sort()` sorts the caller's list in place, so calling median() reorders "
            "the user's data; the task says the input must not be modified."
        ),
        suggestion="Sort a copy instead: `ordered = sorted(values)`, and index into `ordered`.",
        severity="critical",
        verb_phrase="sorts the caller's list in place",
        praise="It sorts a copy, so the caller's list is untouched.",
    ),
    _Check(
        criterion="Correctness",
        find=_line_when_missing(r"%\s*2", r"return\s+\w+\[middle\]"),
        problem=(
            "For an even number of values this returns the upper of the two middle elements: "
            "median([1, 2, 3, 4]) gives 3 instead of 2.5."
        ),
        suggestion=(
            "When the length is even, return the mean of the two middle elements: "
            "`(ordered[middle - 1] + ordered[middle]) / 2`."
        ),
        severity="major",
        verb_phrase="returns the wrong value for even-length lists",
        praise="Odd and even lengths are both handled.",
    ),
    _Check(
        criterion="Correctness",
        find=_line_matching(r"return\s*\(.*\)\s*//\s*2"),
        problem=(
            "`// 2` is floor division, so the mean of the two middle values is truncated: "
            "median([1, 2]) returns 1 instead of 1.5."
        ),
        suggestion="Use true division: `(ordered[middle - 1] + ordered[middle]) / 2`.",
        severity="major",
        verb_phrase="truncates the even-length median with floor division",
        praise="",  # the check above already praises the even-length case,
    ),
    _Check(
        criterion="Empty input",
        find=_line_when_missing(r"raise\s+ValueError", r"return\s+\w+\[middle\]"),
        problem=(
            "An empty list reaches the indexing and raises IndexError ('list index out of "
            "range') instead of the ValueError the task asks for."
        ),
        suggestion=(
            'Check first: `if not values: raise ValueError("median() arg is an empty list")`.'
        ),
        severity="major",
        verb_phrase="raises IndexError instead of ValueError on an empty list",
        praise="An empty list raises ValueError with a clear message.",
    ),
    _Check(
        criterion="Documentation",
        find=_docstring_without_error,
        problem="The docstring does not say that an empty list raises ValueError.",
        suggestion="Add a line such as 'Raises ValueError if `values` is empty.'",
        severity="minor",
        verb_phrase="has a docstring that leaves out the ValueError",
        praise="Type hints are present and the docstring states the behaviour and the error.",
    ),
)

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)
_FENCE = re.compile(r"```(?:python)?\n(.*?)\n?```", re.DOTALL)


def _shown_answer(messages: list[Message]) -> str:
    """The draft inside <answer> in the first user message (later ones are re-asks)."""
    prompt = next((m.content for m in messages if m.role == "user"), "")
    match = _ANSWER.search(prompt)
    return match.group(1) if match else ""


def _code_of(answer: str) -> str:
    match = _FENCE.search(answer)
    return match.group(1) if match else answer


def review(code: str) -> dict[str, object]:
    """The verdict a careful reviewer gives this code, as the critic's JSON reply."""
    lines = code.splitlines()
    issues: list[dict[str, object]] = []
    feedback: dict[str, list[str]] = {}
    phrases: list[str] = []
    for check in _CHECKS:
        quote = check.find(code)
        notes = feedback.setdefault(check.criterion, [])
        if quote is None:
            if check.praise:
                notes.append(check.praise)
            continue
        number = next((n for n, line in enumerate(lines, 1) if quote in line), None)
        issues.append(
            {
                "quote": quote,
                "location": f"line {number}" if number else None,
                "problem": check.problem,
                "suggestion": check.suggestion,
                "severity": check.severity,
            }
        )
        notes.append(check.problem)
        phrases.append(check.verb_phrase)
    severities = [issue["severity"] for issue in issues]
    majors = severities.count("major")
    if "critical" in severities or majors >= 2:
        score = 2
    elif majors == 1:
        score = 3
    else:
        score = 4 if issues else 5
    if not issues:
        summary = "Correct, leaves its input alone, rejects an empty list and is documented."
    else:
        summary = f"{'Nearly there' if score >= 3 else 'Needs work'}: it {_join(phrases)}."
    return {
        "feedback": " ".join(
            f"{criterion}: {' '.join(notes)}" for criterion, notes in feedback.items()
        ),
        "summary": summary,
        "issues": issues,
        "score": score,
    }


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _critic_reply(messages: list[Message], call: ScriptedCall) -> str:
    return json.dumps(review(_code_of(_shown_answer(messages))), indent=2)


# (the passage to replace, its replacement, words in the review that call for this fix)
_FIXES = (
    ('    """Return the median of a list of numbers."""', _DOCSTRING, "docstring"),
    (
        "    values.sort()\n    middle = len(values) // 2\n    return values[middle]",
        _BODY,
        "in place",
    ),
    (
        "    return (ordered[middle - 1] + ordered[middle]) // 2",
        "    return (ordered[middle - 1] + ordered[middle]) / 2",
        "floor division",
    ),
)


def _editor_reply(messages: list[Message], call: ScriptedCall) -> str:
    """Search/replace blocks for the problems the reviewers listed, as the prompt asks."""
    prompt = next(m.content for m in messages if m.role == "user")
    answer = _shown_answer(messages)
    found = prompt.split("# What the reviewers found", 1)[-1]
    fixes = [(old, new) for old, new, words in _FIXES if old in answer and words in found]
    if len(messages) > 2:  # the blocks did not apply and a full rewrite was asked for
        for old, new in fixes:
            answer = answer.replace(old, new)
        return answer
    blocks = [f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE" for old, new in fixes]
    return "\n\n".join(blocks) or answer


def demo_refiner(*, delay_s: float = 0.0) -> Refiner:
    """The demo loop: scripted actor, rubric critic and editor. `delay_s` paces each call."""
    actor = ScriptedModel([FIRST_DRAFT], model_name="demo-actor", delay_s=delay_s)
    critic = ScriptedModel(_critic_reply, model_name="demo-critic", delay_s=delay_s)
    editor = ScriptedModel(_editor_reply, model_name="demo-editor", delay_s=delay_s)
    return Refiner(
        actor,
        critics=[LLMCritic(critic, name="rubric")],
        editor=LLMEditor(editor),
        max_rounds=4,
    )
