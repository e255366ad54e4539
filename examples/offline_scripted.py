"""The loop with scripted models: no network, no key. Useful to learn the events and types.

python examples/offline_scripted.py
"""

from __future__ import annotations

import redraft

actor = redraft.ScriptedModel(["def add(a, b):\n    return a - b"])
editor = redraft.ScriptedModel(["def add(a, b):\n    return a + b"])


def adds_correctly(code: str) -> tuple[bool, str]:
    namespace: dict[str, object] = {}
    exec(code, namespace)  # trusted, scripted code only; untrusted code belongs in a sandbox
    add = namespace["add"]
    ok = add(2, 3) == 5  # type: ignore[operator]
    return ok, "" if ok else "add(2, 3) should be 5"


result = redraft.refine(
    "Write add(a, b).",
    model=actor,
    critics=[redraft.FunctionCritic(adds_correctly)],
    editor=redraft.LLMEditor(editor, mode="rewrite"),
)
print(result.stop_reason.value, "after", len(result.rounds), "rounds")
print(result.text)
