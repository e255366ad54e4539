"""Mix a plain Python check with an LLM judge, each on its own model, and stream progress.

    REDRAFT_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=... python examples/checks_and_judges.py

Works the same with a local server: `--model openai/<name>` plus an `api_base`, e.g.
`LiteLLMModel("hosted_vllm/Qwen2.5-7B-Instruct", api_base="http://localhost:8000/v1")`.
"""

from __future__ import annotations

import redraft


def at_most_280_chars(text: str) -> tuple[float, str]:
    """A deterministic critic: full marks within the limit, less the further over it is."""
    if len(text) <= 280:
        return 1.0, ""
    return max(0.0, 1 - (len(text) - 280) / 280), f"{len(text)} characters; the limit is 280"


refiner = redraft.Refiner(
    critics=[
        redraft.FunctionCritic(at_most_280_chars, name="length"),
        redraft.LLMCritic(name="clarity", criteria=["Clear to a non-expert.", "Accurate."]),
    ],
    max_rounds=4,
)
for event in refiner.stream("Explain what a hash table is, as a single post."):
    if event.kind == "critique":
        c = event.critique
        print(f"round {event.round} {c.critic}: {c.score:.2f} {'pass' if c.passed else c.summary}")
    elif event.kind == "stop":
        print(f"\nstopped: {event.result.stop_reason.value}\n\n{event.result.text}")
