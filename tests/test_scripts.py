"""The benchmark and example scripts keep working (tiny sizes: this checks they run, not speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run_script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_overhead_benchmark_prints_both_loops_and_a_ratio() -> None:
    out = run_script("benchmarks/overhead.py", "--rounds", "3", "--runs", "2")
    rows = re.findall(r"^(llm|function)\s+([\d.]+) ms\s+([\d.]+) ms\s+([\d.]+)x$", out, re.M)
    assert [row[0] for row in rows] == ["llm", "function"]
    assert all(float(hand) > 0 and float(ours) > 0 for _, hand, ours, _ in rows)


def test_concurrency_benchmark_runs_loops_over_http() -> None:
    out = run_script(
        "benchmarks/concurrency.py", "--loops", "8", "--concurrency", "8", "--latency", "0.01"
    )
    assert "8 loops x 3 rounds = 48 calls" in out
    assert re.search(r"achieved\s+[\d.]+ s", out)


def test_checkpoint_benchmark_prints_growth_per_round_and_the_target() -> None:
    out = run_script("benchmarks/checkpoints.py", "--draft-mib", "0.05", "--rounds", "2")
    rows = re.findall(r"^(\d+)\s+([\d.]+) MiB\s+([\d.]+) MiB\s+([\d.]+) MiB\s+([\d.]+)x", out, re.M)
    assert [row[0] for row in rows] == ["0", "1"]
    assert all(float(size) > 0 and float(new) > 0 for _, size, _, new, _ in rows)
    assert re.search(r"^final step \(writes the result\): [\d.]+ MiB", out, re.M)
    assert re.search(r"target <= 2x: (met|NOT met)$", out, re.M)


def test_offline_example_refines_to_a_pass() -> None:
    out = run_script("examples/offline_scripted.py")
    assert out.startswith("passed after 2 rounds")
    assert "return a + b" in out


def test_strategies_benchmark_prints_every_strategy_and_both_targets() -> None:
    out = run_script("benchmarks/strategies.py", "--quick")
    rows = re.findall(r"^(\S.*?)\s+([\d.]+)\s+(\d+)\s+([\d.]+) s\s+([\d.]+)\s+\d+/1$", out, re.M)
    assert [row[0] for row in rows] == [
        "Refine",
        "BestOfN(4)",
        "BestOfN(8, refine=False)",
        "TreeSearch beam",
        "TreeSearch mcts",
        "Reflexion(3)",
    ]
    assert all(float(calls) > 0 and int(tokens) > 0 for _, calls, tokens, _, _ in rows)
    # Eight first drafts, each judged; the searches branch past a single chain.
    by_name = {row[0]: row for row in rows}
    assert float(by_name["BestOfN(8, refine=False)"][1]) == 16
    assert float(by_name["TreeSearch beam"][4]) > float(by_name["Refine"][4])
    assert re.search(
        r"^BestOfN\(8, refine=False\) [\d.]+ s vs one judged draft [\d.]+ s .*: [\d.]+x, "
        r"target <= 1\.3x: (PASS|FAIL)$",
        out,
        re.M,
    )
    overhead = re.findall(
        r"^(TreeSearch beam|TreeSearch mcts)\s+\d+\s+\d+\s+([\d.]+) ms\s+-?[\d.]+ ms"
        r"\s+([\d.]+)x\s+-?[\d.]+x\s+(PASS|FAIL)$",
        out,
        re.M,
    )
    assert [row[0] for row in overhead] == ["TreeSearch beam", "TreeSearch mcts"]
    assert all(float(ms) > 0 and float(ratio) > 0 for _, ms, ratio, _ in overhead)
