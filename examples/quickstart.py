"""Refine a short text with any API model.

REDRAFT_MODEL=openai/gpt-4o-mini OPENAI_API_KEY=... python examples/quickstart.py
"""

from __future__ import annotations

from rich import print

import redraft

result = redraft.refine(
    redraft.Task(
        instruction="Write a two-sentence product description for a solar phone charger.",
        rubric=redraft.Rubric(
            criteria=[
                "Exactly two sentences.",
                "Names one concrete number (capacity, weight or charge time).",
                "No superlatives such as 'best' or 'ultimate'.",
            ]
        ),
    ),
    max_rounds=3,
)
print(result)  # rounds table, diff from the first draft, and the final text
