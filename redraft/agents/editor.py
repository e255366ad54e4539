"""The editor revises a draft from the critiques: full rewrite or search/replace patches."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, cast

from redraft.agents.base import AgentContext, optional_model
from redraft.agents.patches import PatchError, apply_patches, parse_patches
from redraft.checks import number, one_of, whole_number
from redraft.models.base import (
    ChatModel,
    Message,
    ModelRequest,
    ModelSettings,
    assistant,
    system,
    user,
)
from redraft.models.limits import call_model
from redraft.tools.base import Tool, tools_from
from redraft.types import Critique, Draft, EditMode, Round, Task, Usage

EditorMode = Literal["auto", "rewrite", "patch"]
_REJECTED_SHOWN = 3
_REJECTED_CHARS = 1500


class Editor(Protocol):
    """Anything that revises a draft given what the critics said about it."""

    async def edit(
        self,
        draft: Draft,
        critiques: Sequence[Critique],
        task: Task,
        ctx: AgentContext,
    ) -> Draft:
        """The revised draft (its text, model and usage); the run stamps the rest.
        `ctx.avoid` holds drafts the revision must not repeat."""
        ...


class LLMEditor:
    """Revises with a chat model.

    mode="auto" patches long drafts and code (fewer tokens, and untouched parts stay intact)
    and rewrites short prose; a patch that does not apply falls back to a full rewrite.
    """

    def __init__(
        self,
        model: ChatModel | str | None = None,
        *,
        mode: EditorMode = "auto",
        patch_min_chars: int = 2000,
        temperature: float | None = None,
        repeat_temperature: float = 0.8,
        tools: Sequence[Tool | Callable[..., Any]] | None = None,
    ) -> None:
        self.model = optional_model(model)
        # None: the Refiner's tools; [] for none at all.
        self.tools = None if tools is None else tools_from(tools, "LLMEditor tools")
        self.mode = cast(EditorMode, one_of("mode", mode, ("auto", "rewrite", "patch")))
        whole_number("patch_min_chars", patch_min_chars, minimum=0, example=2000)
        number("temperature", temperature, minimum=0.0, maximum=2.0, optional="the model's own")
        number("repeat_temperature", repeat_temperature, minimum=0.0, maximum=2.0)
        self.patch_min_chars = patch_min_chars
        self.temperature = temperature
        self.repeat_temperature = repeat_temperature

    def choose_mode(self, draft: Draft) -> EditMode:
        if self.mode != "auto":
            return EditMode(self.mode)
        is_code = "```" in draft.text
        return (
            EditMode.PATCH
            if is_code or len(draft.text) >= self.patch_min_chars
            else (EditMode.REWRITE)
        )

    async def edit(
        self,
        draft: Draft,
        critiques: Sequence[Critique],
        task: Task,
        ctx: AgentContext,
    ) -> Draft:
        model = ctx.pick_model(self.model, "editor")
        mode = self.choose_mode(draft)
        # Models resist feedback and repeat rejected answers; a warmer retry helps them move.
        temperature = self.repeat_temperature if ctx.avoid else self.temperature
        settings = ctx.settings(ModelSettings(temperature=temperature))
        messages = [
            system(ctx.prompts.render("editor_system.md")),
            user(
                ctx.prompts.render(
                    "editor.md",
                    task=task,
                    draft=draft,
                    critiques=critiques,
                    rejected=_rejected_versions(ctx.rounds, draft.round),
                    lessons=ctx.lessons,
                    repeated=[d.round for d in ctx.avoid],
                    siblings=[_clip(d.text) for d in ctx.siblings],
                    variant=ctx.variant,
                    mode=mode.value,
                    fenced=draft.text.lstrip().startswith("```"),
                )
            ),
        ]
        started = time.perf_counter()
        request = ModelRequest(messages=messages, settings=settings)
        run = await ctx.complete(
            model, request, self.tools, role="editor", task=task, draft=draft, round=len(ctx.rounds)
        )
        reply, usage = run.completion, run.usage
        text, patches_applied, fell_back = reply.text.strip(), 0, False
        if mode is EditMode.PATCH:
            try:
                patches = parse_patches(reply.text)
                text, patches_applied = apply_patches(draft.text, patches), len(patches)
            except PatchError as exc:
                text, retry_usage = await self._rewrite_after(
                    model, run.messages, reply.text, exc, ctx
                )
                usage, fell_back = usage + retry_usage, True
        return Draft(
            text=text,
            author="editor",
            edit_mode=EditMode.REWRITE if fell_back else mode,
            patches_applied=patches_applied,
            patch_fallback=fell_back,
            model=model.name,
            usage=usage,
            duration_s=time.perf_counter() - started,
            tool_calls=run.invocations,
        )

    async def _rewrite_after(
        self,
        model: ChatModel,
        messages: list[Message],
        failed_reply: str,
        error: PatchError,
        ctx: AgentContext,
    ) -> tuple[str, Usage]:
        retry = [
            *messages,
            assistant(failed_reply),
            user(ctx.prompts.render("patch_failed.md", error=str(error))),
        ]
        completion = await call_model(
            model,
            ModelRequest(messages=retry, settings=ModelSettings(temperature=self.temperature)),
        )
        return completion.text.strip(), completion.usage


def _rejected_versions(rounds: Sequence[Round], current: int) -> list[dict[str, object]]:
    """Earlier drafts that failed, with why, so the editor does not go back to them."""
    rejected: list[Round] = []
    for round_ in reversed(rounds):  # the latest few: a long run's early drafts are not read
        if round_.index != current and not round_.passed:
            rejected.insert(0, round_)
            if len(rejected) == _REJECTED_SHOWN:
                break
    return [
        {
            "index": r.index,
            "score": r.score,
            "text": _clip(r.draft.text),
            "reasons": "; ".join(c.summary for c in r.critiques if c.summary and not c.passed)
            or "it scored lower",
        }
        for r in rejected
    ]


def _clip(text: str) -> str:
    if len(text) <= _REJECTED_CHARS:
        return text
    return text[:_REJECTED_CHARS] + f"\n[... {len(text) - _REJECTED_CHARS} more characters]"
