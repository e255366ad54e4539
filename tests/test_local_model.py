"""The in-process model (`hf:`): loading, batching, cancellation, offline errors, a full loop.

Everything runs on CPU against a tiny random Qwen2 model and tokenizer built in a temporary
folder (tests/tiny_models.py): nothing is downloaded. Its replies are garbage, which is the
point for the structured-output test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from redraft import FunctionCritic, LLMCritic, refine
from redraft.errors import ConfigError, ModelError
from redraft.models.base import ModelRequest, ModelSettings, ToolSpec, system, user
from redraft.models.batching import BatchScheduler
from redraft.models.local import DEFAULT_LOCAL_MODEL, LocalModel
from redraft.models.resolve import check_credentials, resolve_model
from redraft.types import Task
from tests.tiny_models import build_tiny_model

GREEDY = ModelSettings(temperature=0.0, max_tokens=10)
PROMPTS = [
    "Write a haiku about the sea",
    "one two",
    "The draft is vague: name one concrete detail, and fix the second line.",
    "def mean(xs): return sum(xs) / len(xs) if xs else 0.0 and then some more words here",
    "Reply with JSON",
]


def ask(prompt: str, settings: ModelSettings = GREEDY) -> ModelRequest:
    return ModelRequest(messages=[user(prompt)], settings=settings)


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2")


@pytest.fixture
def model(tiny_path: Path) -> Iterator[LocalModel]:
    local = LocalModel(str(tiny_path), dtype="float32", device="cpu", batch_wait_ms=20)
    yield local
    local.close()


def test_hf_prefix_resolves_to_a_lazy_local_model(tiny_path: Path) -> None:
    resolved = resolve_model(f"hf:{tiny_path}")
    assert isinstance(resolved, LocalModel)
    assert resolved.name == f"hf:{tiny_path}"
    assert not resolved.loaded  # resolution never loads weights
    assert resolve_model(f"hf:{tiny_path}") is resolved  # every loop batches onto one model
    check_credentials(resolved)  # a folder is available: nothing to complain about
    assert not resolved.loaded


def test_chat_template_is_applied(model: LocalModel, tiny_path: Path) -> None:
    from transformers import AutoTokenizer

    messages = [system("You are a strict, fair reviewer."), user("Write a haiku")]
    completion = asyncio.run(model.complete(ModelRequest(messages=messages, settings=GREEDY)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    text = tokenizer.apply_chat_template(
        [m.to_openai() for m in messages], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert completion.usage.input_tokens == len(tokenizer(text, add_special_tokens=False).input_ids)
    assert 0 < completion.usage.output_tokens <= 10
    assert completion.usage.calls == 1
    assert completion.model == model.name
    assert completion.finish_reason in ("stop", "length")


def test_a_greedy_batch_equals_the_same_prompts_one_at_a_time(model: LocalModel) -> None:
    async def batched() -> list[tuple[str, int, int]]:
        completions = await asyncio.gather(*(model.complete(ask(p)) for p in PROMPTS))
        return [(c.text, c.usage.input_tokens, c.usage.output_tokens) for c in completions]

    async def one_at_a_time() -> list[tuple[str, int, int]]:
        out = []
        for prompt in PROMPTS:
            c = await model.complete(ask(prompt))
            out.append((c.text, c.usage.input_tokens, c.usage.output_tokens))
        return out

    together = asyncio.run(batched())
    assert list(model.scheduler.stats.sizes) == [len(PROMPTS)]  # one left-padded batch
    alone = asyncio.run(one_at_a_time())  # a new event loop: the model works across loops
    assert list(model.scheduler.stats.sizes)[1:] == [1] * len(PROMPTS)
    assert together == alone
    assert len({tokens for _, tokens, _ in together}) > 1  # prompts of different lengths
    assert any(text for text, _, _ in together)


def test_many_coroutines_are_batched_and_grouped_by_settings(tiny_path: Path) -> None:
    local = LocalModel(str(tiny_path), device="cpu", max_batch_size=8, batch_wait_ms=30)
    short = ModelSettings(temperature=0.0, max_tokens=3)

    async def main() -> list[tuple[str, int]]:
        calls = [
            local.complete(ask(PROMPTS[i % len(PROMPTS)], GREEDY if i % 2 else short))
            for i in range(40)
        ]
        return [(c.text, c.usage.output_tokens) for c in await asyncio.gather(*calls)]

    results = asyncio.run(main())
    stats = local.scheduler.stats
    assert stats.requests == 40
    assert stats.largest == 8  # capped at max_batch_size
    assert stats.batches <= 8  # 20 + 20 requests of two settings: 3 batches each at best
    for i, (_, tokens) in enumerate(results):
        assert tokens <= (10 if i % 2 else 3)
    # each caller gets its own answer: the same prompt with the same settings, the same reply
    assert all(results[i] == results[i % 10] for i in range(40))
    local.close()


def test_a_cancelled_caller_does_not_break_the_batch(tiny_path: Path) -> None:
    local = LocalModel(str(tiny_path), device="cpu", batch_wait_ms=200)

    async def main() -> tuple[list[str], bool]:
        expected = [(await local.complete(ask(p))).text for p in PROMPTS[:3]]
        tasks = [asyncio.create_task(local.complete(ask(p))) for p in PROMPTS[:3]]
        await asyncio.sleep(0.02)  # queued, waiting for company
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        texts = [c.text for c in done if not isinstance(c, BaseException)]
        return texts, texts == [expected[0], expected[2]]

    texts, same = asyncio.run(main())
    assert len(texts) == 2 and same
    assert list(local.scheduler.stats.sizes)[-1] == 2  # the cancelled request never ran
    local.close()


def test_cancelling_a_caller_while_its_batch_runs() -> None:
    entered, release = threading.Event(), threading.Event()

    def run_batch(requests: list[int]) -> list[int | BaseException]:
        entered.set()
        release.wait(10)
        return [r * 10 for r in requests]

    scheduler: BatchScheduler[int, int] = BatchScheduler(run_batch, batch_wait_ms=10)

    async def main() -> list[object]:
        tasks = [asyncio.create_task(scheduler.submit(i)) for i in range(3)]
        await asyncio.to_thread(entered.wait, 10)
        tasks[0].cancel()
        await asyncio.sleep(0.01)
        release.set()
        done: list[object] = list(await asyncio.gather(*tasks, return_exceptions=True))
        entered.clear()
        done.append(await scheduler.submit(7))  # the scheduler goes on serving
        return done

    done = asyncio.run(main())
    assert isinstance(done[0], asyncio.CancelledError)
    assert done[1:] == [10, 20, 70]
    assert list(scheduler.stats.sizes) == [3, 1]
    scheduler.close()


def test_timeouts_cancel_callers_cleanly(model: LocalModel) -> None:
    async def main() -> tuple[bool, str]:
        late = asyncio.create_task(asyncio.wait_for(model.complete(ask("one two")), 0.001))
        kept = asyncio.create_task(model.complete(ask("one two")))
        timed_out = isinstance((await asyncio.gather(late, return_exceptions=True))[0], Exception)
        return timed_out, (await kept).text

    timed_out, text = asyncio.run(main())
    assert timed_out
    assert text == asyncio.run(model.complete(ask("one two"))).text


def test_one_bad_request_fails_alone(model: LocalModel) -> None:
    too_long = "one two three four " * 2400  # beyond the model's 8192 positions

    async def main() -> list[object]:
        return await asyncio.gather(
            model.complete(ask(too_long)),
            model.complete(ask("one two")),
            return_exceptions=True,
        )

    bad, good = asyncio.run(main())
    assert isinstance(bad, ModelError)
    assert "prompt is too long" in str(bad)
    assert not isinstance(good, BaseException)


def test_stop_strings_cut_each_reply(model: LocalModel) -> None:
    settings = ModelSettings(temperature=0.0, max_tokens=16)
    full = asyncio.run(model.complete(ask(PROMPTS[0], settings)))
    # a stop string taken from the middle of the greedy reply: it must cut there
    stop = next(
        full.text[i : i + 2]
        for i in range(2, len(full.text) - 2)
        if full.text[i : i + 2].isascii() and full.text[i : i + 2].strip()
    )
    stopped = settings.model_copy(update={"stop": [stop]})

    async def main() -> list[str]:
        replies = await asyncio.gather(
            model.complete(ask(PROMPTS[0], stopped)),
            model.complete(ask(PROMPTS[1], stopped)),
        )
        return [r.text for r in replies]

    first, _ = asyncio.run(main())
    assert first == full.text[: full.text.find(stop)]
    alone = asyncio.run(model.complete(ask(PROMPTS[0], stopped)))
    assert alone.text == first
    assert alone.finish_reason == "stop"


def test_tools_with_a_template_that_takes_none_are_a_clear_error(model: LocalModel) -> None:
    async def main() -> list[object]:
        return await asyncio.gather(
            model.complete(ModelRequest(messages=[user("hi")], tools=[ToolSpec(name="search")])),
            model.complete(ask("one two")),
            return_exceptions=True,
        )

    refused, answered = asyncio.run(main())
    assert isinstance(refused, ConfigError)
    message = str(refused)
    assert message.startswith(f"{model.name}: its chat template takes no tools")
    assert "tokenizer.chat_template" in message and "\n" not in message
    assert not isinstance(answered, BaseException)  # the batch it was in went on


def test_a_missing_model_offline_is_a_clear_error_at_once() -> None:
    local = LocalModel("nobody/no-such-model")
    with pytest.raises(ConfigError) as caught:
        local.check_available()
    message = str(caught.value)
    assert "hf:nobody/no-such-model is not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message
    assert "hf download nobody/no-such-model" in message
    assert "hf:/path/to/model" in message
    with pytest.raises(ConfigError) as on_call:  # the first call says the same, not a hang
        asyncio.run(local.complete(ModelRequest(messages=[user("hi")])))
    assert str(on_call.value) == message


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model folder at"):
        LocalModel(str(tmp_path / "nope")).check_available()
    with pytest.raises(ConfigError, match=r"not a transformers model folder \(no config.json\)"):
        LocalModel(str(tmp_path)).check_available()


def test_the_default_model_offline_says_what_to_do() -> None:
    default = resolve_model(None)
    assert isinstance(default, LocalModel)
    assert default.name == f"hf:{DEFAULT_LOCAL_MODEL}"
    with pytest.raises(ConfigError) as caught:
        check_credentials(default)
    message = str(caught.value)
    assert message.startswith("no model configured, and the default local model")
    for needed in ("REDRAFT_MODEL", "--model", "--api-base", "hf:/path/to/model", "hf download"):
        assert needed in message
    assert "\n" not in message


def test_an_unreachable_hub_fails_fast_without_offline_mode() -> None:
    with socket.socket() as probe:  # a port nobody listens on: the hub is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "from redraft.models.local import LocalModel\n"
        "from redraft.errors import ConfigError\n"
        "try:\n"
        "    LocalModel('nobody/no-such-model').check_available()\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "the Hugging Face hub is unreachable" in run.stdout
    assert "hf download nobody/no-such-model" in run.stdout


def test_the_cli_without_a_model_exits_2_at_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDRAFT_MODEL", "REDRAFT_API_BASE")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # an empty cache, whatever this machine holds
    run = subprocess.run(
        [sys.executable, "-m", "redraft", "refine", "Write a haiku"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no model configured" in lines[0] and "REDRAFT_MODEL" in lines[0]


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def without_torch(name: str, *args: object) -> object:
        return None if name == "torch" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_torch)
    with pytest.raises(ConfigError, match=r"pip install 'redraft\[local\]'"):
        LocalModel("some/model").check_available()


def test_importing_and_resolving_do_not_import_torch(tiny_path: Path) -> None:
    code = (
        "import sys\n"
        "import redraft\n"
        "from redraft.models.resolve import resolve_model\n"
        "resolve_model('openai/gpt-4o-mini')\n"
        f"resolve_model('hf:{tiny_path}')\n"
        "resolve_model(None)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "REDRAFT_MODEL"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert run.stdout.strip() == "False False"


def test_structured_output_gets_one_repair_then_a_critic_error(tiny_path: Path) -> None:
    local = LocalModel(str(tiny_path), device="cpu", max_tokens=8, batch_wait_ms=1)
    result = refine(
        "Write a haiku about the sea",
        model=local,
        critics=[LLMCritic(name="judge")],
        max_rounds=1,
    )
    critique = result.rounds[0].critiques[0]
    assert critique.error is not None
    assert "gave no valid RubricVerdict after one repair" in critique.error
    assert critique.usage is not None and critique.usage.calls == 2  # the ask and the repair
    assert result.usage.critic.calls == 2


def test_a_full_refinement_loop_on_the_local_model(tiny_path: Path) -> None:
    local = resolve_model(f"hf:{tiny_path}")
    assert isinstance(local, LocalModel)
    local.max_tokens = 12  # the shared instance `refine` resolves the same string to
    seen: list[str] = []

    def never_satisfied(text: str) -> tuple[float, str]:
        seen.append(text)
        return 0.2, "name one concrete detail"

    result = refine(
        Task(instruction="Write a haiku about the sea"),
        model=f"hf:{tiny_path}",
        critics=[FunctionCritic(never_satisfied)],
        max_rounds=2,
    )
    assert len(result.rounds) == 2
    assert result.stop_reason.value == "max_rounds"
    assert seen == [r.draft.text for r in result.rounds]
    assert result.usage.actor.calls == 1 and result.usage.actor.input_tokens > 0
    assert result.usage.editor.calls == 1 and result.usage.editor.output_tokens > 0
    assert result.usage.critic.calls == 0  # a function critic calls no model
    assert local.loaded
