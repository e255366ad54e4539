"""`--strategy` and its options on `redraft refine` and `redraft code`, over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from redraft import Result
from redraft.strategies import BestOfN, Refine, Reflexion, TreeSearch, strategy_from
from redraft.testing.openai_server import ChatRequest, OpenAIServer
from tests.test_cli import MODEL, clean_env, one_error_line, run

__all__ = ["clean_env"]  # the autouse fixture, for this module too

_ANSWER = re.compile(r"<answer>\n(.*?)\n</answer>", re.DOTALL)


def _reply(request: ChatRequest) -> str:
    """Critics score a draft by its revisions: 2 for a first draft, 3 once revised, 5 twice."""
    system = str(request.messages[0].get("content", "")) if request.messages else ""
    prompt = request.last_user_content
    if request.response_format is not None or "strict, fair reviewer" in system:
        match = _ANSWER.search(prompt)
        draft = match.group(1) if match else ""
        score = {0: 2, 1: 3}.get(draft.count("[rev]"), 5)
        return json.dumps(
            {"feedback": "ok", "summary": f"{draft.count('[rev]')} revisions", "score": score,
             "issues": [] if score == 5 else [{"problem": "not revised enough"}]}
        )  # fmt: skip
    if "expert editor" in system:
        match = _ANSWER.search(prompt)
        return (match.group(1) if match else "") + " [rev]"
    if "failed attempt" in prompt.lower() or "reflect" in system.lower():
        return "Revise more."
    return f"Draft {request.index}"


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(_reply) as running:
        yield running


@pytest.mark.parametrize(
    ("flags", "strategy", "least_candidates"),
    [
        (["--strategy", "best-of-n", "--n", "3"], "best-of-n", 5),
        (["--strategy", "beam", "--expand", "2", "--width", "2", "--max-depth", "2"], "beam", 6),
        (["--strategy", "mcts", "--expand", "2", "--max-depth", "3"], "mcts", 3),
        (["--strategy", "reflexion", "--trials", "2"], "reflexion", 3),
    ],
)
def test_each_strategy_runs_from_the_cli(
    server: OpenAIServer,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    strategy: str,
    least_candidates: int,
) -> None:
    code, out, err = run(
        capsys, "refine", "Write a haiku", "-m", MODEL, "--api-base", server.base_url,
        "--json", "--quiet", *flags,
    )  # fmt: skip
    assert code == 0, err
    result = Result.model_validate_json(out)
    assert result.strategy == strategy
    assert result.passed
    assert len(result.candidates) >= least_candidates
    assert result.selected_because
    # The JSON carries the tree: every parent is a candidate of the run.
    ids = {c.id for c in result.candidates}
    assert all(c.parent_id is None or c.parent_id in ids for c in result.candidates)


def test_max_candidates_bounds_a_search_from_the_cli(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "refine", "Write a haiku", "-m", MODEL, "--api-base", server.base_url,
        "--json", "--quiet", "--strategy", "beam", "--max-candidates", "4",
    )  # fmt: skip
    result = Result.model_validate_json(out)
    assert len(result.candidates) == 4
    assert result.stop_reason.value == "budget"
    assert code != 0  # not passed


@pytest.mark.parametrize(
    ("flags", "fix"),
    [
        (["--strategy", "greedy"], "choose one of refine, best-of-n, beam, mcts, reflexion"),
        (["--strategy", "beam", "--n", "3"], "--n applies to --strategy best-of-n, not beam"),
        (["--trials", "2"], "--trials applies to --strategy reflexion, not refine"),
        (["--strategy", "best-of-n", "--n", "0"], "greater than or equal to 1"),
        (["--strategy", "beam", "--expand", "0"], "greater than or equal to 1"),
        (["--strategy", "reflexion", "--trials", "0"], "greater than or equal to 1"),
        (["--max-time", "0"], "above 0"),
    ],
)
def test_bad_strategy_options_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], flags: list[str], fix: str
) -> None:
    code, _, err = run(capsys, "refine", "hi", "-m", MODEL, *flags)
    assert code == 2
    assert fix in one_error_line(err)


def test_settings_kept_beside_a_checkpoint_rebuild_the_same_strategy() -> None:
    assert isinstance(strategy_from({}), Refine)  # a run kept before strategies existed
    best = strategy_from({"strategy": "best-of-n", "n": 6})
    assert isinstance(best, BestOfN) and best.n == 6
    tree = strategy_from({"strategy": "mcts", "expand": 3, "width": None, "max_depth": 2})
    assert isinstance(tree, TreeSearch)
    assert (tree.policy, tree.expand, tree.width, tree.max_depth) == ("mcts", 3, 3, 2)
    trials = strategy_from({"strategy": "reflexion", "trials": 5})
    assert isinstance(trials, Reflexion) and trials.trials == 5


def test_a_search_resumes_from_the_cli_with_its_strategy(
    server: OpenAIServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    code, out, err = run(
        capsys, "refine", "Write a haiku", "-m", MODEL, "--api-base", server.base_url,
        "--json", "--quiet", "--strategy", "best-of-n", "--n", "2",
        "--checkpoint", str(db), "--thread-id", "t1",
    )  # fmt: skip
    assert code == 0, err
    first = Result.model_validate_json(out)
    code, out, err = run(capsys, "resume", "t1", "--checkpoint", str(db), "--json", "--quiet")
    assert code == 2  # finished: resume says so in one line
    assert "finished" in one_error_line(err)
    assert first.strategy == "best-of-n"


def test_configuration_keys_make_the_same_strategies_as_the_flags() -> None:
    from redraft import ConfigError

    beam = strategy_from({"strategy": "beam", "width": 2, "max_depth": 3})
    assert isinstance(beam, TreeSearch) and (beam.width, beam.max_depth) == (2, 3)
    with pytest.raises(ConfigError, match="n applies to strategy best-of-n, not mcts"):
        strategy_from({"strategy": "mcts", "n": 4})
    with pytest.raises(ConfigError, match="'greedy' is not a strategy: choose one of refine"):
        strategy_from({"strategy": "greedy"})
    with pytest.raises(ConfigError, match="trials must be a whole number of at least 1"):
        strategy_from({"strategy": "reflexion", "trials": 0})
