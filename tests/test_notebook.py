"""redraft in a notebook: cells run by a real Jupyter kernel (nbclient + ipykernel), as a
person would run them. A run paused for a person's critique is shown, answered and continued
from later cells, on the refiner's own event loop beside the kernel's."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from redraft.testing import ChatRequest, OpenAIServer, role_of


def reply(request: ChatRequest) -> str:
    role = role_of(request)
    if role == "actor":
        return "Tides rise and fall."
    if role == "editor":
        return "Tides rise and fall twice a day, pulled by the moon."
    return json.dumps({"feedback": "Fine.", "summary": "fine", "issues": [], "score": 3})


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(reply) as running:
        yield running


def run_cells(*cells: str, timeout_s: int = 120) -> list[list[dict[str, Any]]]:
    """Run `cells` in one fresh kernel; each cell's outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells]
    NotebookClient(notebook, timeout=timeout_s, kernel_name="python3").execute()
    return [list(cell.outputs) for cell in notebook.cells]


def text_of(outputs: list[dict[str, Any]]) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def test_a_human_critique_is_paused_and_answered_from_cells(server: OpenAIServer) -> None:
    outputs = run_cells(
        f"""
        import redraft
        model = redraft.LiteLLMModel("openai/test-model", api_base="{server.base_url}")
        refiner = redraft.Refiner(model, critics=[redraft.LLMCritic(), redraft.HumanCritic()])
        result = refiner.run("Explain tides in one sentence")
        print(result.stop_reason.value, result.waiting.candidate.id)
        result
        """,
        """
        result = refiner.resume(result.thread_id, feedback="Say what causes them", score=0.3)
        print(result.stop_reason.value, result.waiting.candidate.id)
        """,
        """
        result = refiner.resume(result.thread_id, accept=True)
        print(result.stop_reason.value, result.final_id, result.text)
        refiner.close()
        """,
    )
    first, second, third = (text_of(o) for o in outputs)
    assert "waiting c0" in first
    html = next(o["data"]["text/html"] for o in outputs[0] if "text/html" in o.get("data", {}))
    assert "c0 waits for human" in html and "refiner.resume(" in html
    assert "waiting c1" in second
    assert "passed c1 Tides rise and fall twice a day, pulled by the moon." in third
    roles = [role_of(r) for r in server.requests]
    assert roles == ["actor", "critic", "editor", "critic"]  # nothing redone across cells
    editor = next(r for r in server.requests if role_of(r) == "editor")
    assert "Say what causes them" in editor.last_user_content
