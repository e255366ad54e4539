"""Bad values given to the Python API: each is refused when the object is built, with one
line that names what to give; and what users mean by a near-miss value is accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redraft import (
    ConfigError,
    FunctionCritic,
    LiteLLMModel,
    LLMActor,
    LLMCritic,
    LLMEditor,
    Refiner,
    Result,
    Rubric,
    ScriptedModel,
    Task,
    TestsCritic,
    TestSuite,
    arefine,
    refine,
)
from redraft.engine.budgets import Budgets
from redraft.models.resolve import check_api_base

TESTS_SOURCE = "from solution import mean\n\ndef test_mean():\n    assert mean([1, 3]) == 2\n"


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDRAFT_MODEL", "REDRAFT_API_BASE", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def model() -> ScriptedModel:
    return ScriptedModel(["a draft"])


def refiner(**options: Any) -> Refiner:
    return Refiner(model(), critics=[FunctionCritic(lambda text: True)], **options)


def never_called(text: str) -> bool:
    raise AssertionError("a refused configuration must not run")


CHECK_SOURCE = "def check(candidate):\n    assert candidate([1, 3]) == 2\n"


class SyncActor:
    def draft(self, task: Task, ctx: object) -> str:  # a plain def: the loop awaits it
        return "a draft"


class SyncEditor:
    def edit(self, *args: object, **kwargs: object) -> str:
        return "an edit"


class SyncCritic:
    name = "sync"
    weight = 1.0

    def critique(self, draft: object, task: object, ctx: object) -> None:
        return None


class OldSignatureModel:
    """A user's model written for complete(messages, *, output_schema, tools, settings)."""

    name = "old"

    async def complete(self, messages: list[object], **options: object) -> object:
        raise AssertionError("a refused model must not be called")


# (case id, what to build, fragments the one-line message must hold: the field and the fix)
BAD: list[tuple[str, Callable[[], object], tuple[str, ...]]] = [
    # stop rules
    ("max_rounds str", lambda: refiner(max_rounds="3"), ("max_rounds", "whole number", "'3'")),
    ("max_rounds float", lambda: refiner(max_rounds=2.5), ("max_rounds", "whole number", "2.5")),
    ("max_rounds zero", lambda: refiner(max_rounds=0), ("max_rounds", "at least 1")),
    ("max_rounds bool", lambda: refiner(max_rounds=True), ("max_rounds", "whole number")),
    ("max_tokens zero", lambda: refiner(max_tokens=0), ("max_tokens", "at least 1", "None")),
    ("max_tokens str", lambda: refiner(max_tokens="1k"), ("max_tokens", "whole number")),
    ("max_cost negative", lambda: refiner(max_cost_usd=-1), ("max_cost_usd", "above 0")),
    ("max_cost nan", lambda: refiner(max_cost_usd=float("nan")), ("max_cost_usd", "nan")),
    ("max_cost str", lambda: refiner(max_cost_usd="1"), ("max_cost_usd", "number")),
    ("threshold above 1", lambda: refiner(threshold=1.5), ("threshold", "from 0 to 1")),
    ("threshold nan", lambda: refiner(threshold=float("nan")), ("threshold", "from 0 to 1")),
    ("threshold str", lambda: refiner(threshold="0.8"), ("threshold", "number")),
    ("patience zero", lambda: refiner(patience=0), ("patience", "at least 1", "None")),
    ("patience float", lambda: refiner(patience=1.5), ("patience", "whole number")),
    ("select worst", lambda: refiner(select="worst"), ("select", "'best', 'last'", "'worst'")),
    ("lessons negative", lambda: refiner(lessons=-1), ("lessons", "at least 0")),
    ("stop rules direct", lambda: Budgets(max_rounds="3"), ("max_rounds", "whole number")),  # type: ignore[arg-type]
    # agents
    ("critics of str", lambda: Refiner(model(), critics=["str"]), ("critics[0]", "LLMCritic()")),
    (
        "critics a str",
        lambda: Refiner(model(), critics="rubric"),
        ("critics[0]", "LLMCritic(rubric"),
    ),
    ("critics of int", lambda: Refiner(model(), critics=[42]), ("critics[0]", "int 42")),
    ("critics empty", lambda: Refiner(model(), critics=[]), ("at least one critic",)),
    (
        "critic class",
        lambda: Refiner(model(), critics=[LLMCritic]),
        ("pass an instance", "LLMCritic()"),
    ),
    (
        "editor str",
        lambda: Refiner(model(), editor="editor"),
        ("editor", "LLMEditor()", "editor_model="),
    ),
    ("editor int", lambda: Refiner(model(), editor=3), ("editor", "edit()", "int 3")),
    (
        "editor class",
        lambda: Refiner(model(), editor=LLMEditor),
        ("pass an instance", "LLMEditor()"),
    ),
    ("actor int", lambda: Refiner(model(), actor=42), ("actor", "LLMActor()", "int 42")),
    ("actor str", lambda: Refiner(model(), actor="gpt"), ("actor", "model='gpt'")),
    ("model int", lambda: Refiner(42), ("model", "LiteLLM model string", "openai/gpt-4o-mini")),
    ("model unknown", lambda: Refiner("gpt-nonsense"), ("unknown model 'gpt-nonsense'",)),
    ("critic_model int", lambda: Refiner(model(), critic_model=3.5), ("model must be",)),
    ("memory int", lambda: refiner(memory=42), ("memory", "CorrectionMemory", "memory.db")),
    ("memory empty path", lambda: refiner(memory=""), ("memory", "empty path")),
    ("checkpointer int", lambda: refiner(checkpointer=7), ("checkpointer", "runs.db")),
    ("prompts int", lambda: refiner(prompts=5), ("prompts", "PromptLibrary")),
    (
        "prompts missing",
        lambda: refiner(prompts="/nonexistent/prompts"),
        ("prompt directory not found",),
    ),
    # critics and agents built on their own
    ("llm pass_score 9", lambda: LLMCritic(pass_score=9), ("pass_score", "1-5", "got 9")),
    ("llm pass_score 0", lambda: LLMCritic(pass_score=0), ("pass_score", "1-5")),
    ("llm pass_score float", lambda: LLMCritic(pass_score=3.5), ("pass_score", "1-5")),
    ("llm weight negative", lambda: LLMCritic(weight=-1), ("weight", "at least 0")),
    ("llm rubric int", lambda: LLMCritic(rubric=3), ("rubric", "Rubric")),
    ("llm criteria str", lambda: LLMCritic(criteria="be brief"), ("criteria", "list of strings")),
    ("llm name empty", lambda: LLMCritic(name=""), ("name", "non-empty")),
    ("llm temperature", lambda: LLMCritic(temperature=-0.5), ("temperature", "from 0 to 2")),
    (
        "function not callable",
        lambda: FunctionCritic("len"),
        ("FunctionCritic", "fn(text)", "'len'"),
    ),
    ("function no args", lambda: FunctionCritic(lambda: True), ("takes no arguments", "fn(text)")),
    ("function pass_score", lambda: FunctionCritic(len, pass_score=2), ("pass_score", "0 to 1")),
    ("function weight", lambda: FunctionCritic(len, weight=float("inf")), ("weight", "inf")),
    (
        "tests sandbox nope",
        lambda: TestsCritic(TESTS_SOURCE, sandbox="nope"),
        ("sandbox", "'bwrap'", "'nope'"),
    ),
    (
        "tests sandbox int",
        lambda: TestsCritic(TESTS_SOURCE, sandbox=3),
        ("sandbox", "Sandbox instance"),
    ),
    ("tests int", lambda: TestsCritic(42), ("tests must be", "path to a test file")),
    (
        "tests missing file",
        lambda: TestsCritic("/nonexistent/test_x.py"),
        ("tests file not found",),
    ),
    ("tests no tests", lambda: TestsCritic("x = 1"), ("no tests found", "test_* functions")),
    ("tests syntax", lambda: TestsCritic("def test(:"), ("invalid tests", "line 1")),
    ("tests kind", lambda: TestsCritic(TESTS_SOURCE, kind="unit"), ("kind", "'functions'")),
    ("tests timeout", lambda: TestsCritic(TESTS_SOURCE, timeout_s=0), ("timeout_s", "above 0")),
    (
        "tests memory",
        lambda: TestsCritic(TESTS_SOURCE, memory_mb=1.5),
        ("memory_mb", "whole number"),
    ),
    (
        "tests plugins str",
        lambda: TestsCritic(TESTS_SOURCE, pytest_plugins="x"),
        ("pytest_plugins", "list"),
    ),
    ("editor mode", lambda: LLMEditor(mode="fast"), ("mode", "'rewrite'", "'fast'")),
    ("editor patch_min", lambda: LLMEditor(patch_min_chars=-1), ("patch_min_chars", "at least 0")),
    ("actor temperature", lambda: LLMActor(temperature="hot"), ("temperature", "number")),
    # pydantic models built by hand
    ("task empty", lambda: Task(instruction=""), ("the task is empty", "give an instruction")),
    ("task blank", lambda: Task(instruction="   "), ("the task is empty",)),
    ("task int", lambda: Task(instruction=123), ("instruction", "valid string", "123")),  # type: ignore[arg-type]
    ("task missing", lambda: Task(), ("instruction", "is required", "instruction=")),  # type: ignore[call-arg]
    (
        "task unknown field",
        lambda: Task(instruction="x", rubrc="y"),
        ("no field 'rubrc'", "rubric"),
    ),  # type: ignore[call-arg]
    ("task rubric int", lambda: Task(instruction="x", rubric=5), ("rubric", "got 5")),  # type: ignore[arg-type]
    (
        "task nested rubric",
        lambda: Task(instruction="x", rubric={"pass_score": 9}),
        ("pass_score", "1-5"),
    ),  # type: ignore[arg-type]
    ("rubric pass_score 9", lambda: Rubric(pass_score=9), ("pass_score", "1-5", "got 9")),
    ("rubric scale", lambda: Rubric(scale={1: "bad"}), ("scale", "1, 2, 3, 4 and 5")),
    # run-time arguments, refused before any model is called
    ("refine int", lambda: refine(123, model=model()), ("the task must be a string", "int 123")),  # type: ignore[arg-type]
    ("refine None", lambda: refine(None, model=model()), ("the task must be a string", "None")),  # type: ignore[arg-type]
    ("refine dict", lambda: refine({}, model=model()), ("Task(**fields)",)),  # type: ignore[arg-type]
    ("refine before model", lambda: refine(123, model="gpt-nonsense"), ("the task must be",)),  # type: ignore[arg-type]
    ("arefine int", lambda: asyncio.run(arefine(7, model=model())), ("the task must be",)),  # type: ignore[arg-type]
    ("run list", lambda: refiner().run(["a"]), ("the task must be", "list")),  # type: ignore[arg-type]
    ("run thread_id", lambda: refiner().run("x", thread_id=5), ("thread_id", "non-empty string")),  # type: ignore[arg-type]
    ("batch str", lambda: refiner().batch("abc"), ("batch takes a list of tasks", "batch([task])")),
    ("batch task", lambda: refiner().batch(Task(instruction="x")), ("batch takes a list",)),  # type: ignore[arg-type]
    ("batch int", lambda: refiner().batch(5), ("batch takes a list of tasks", "int 5")),  # type: ignore[arg-type]
    ("batch bad item", lambda: refiner().batch(["ok", 1]), ("tasks[1]", "the task must be")),  # type: ignore[list-item]
    (
        "batch concurrency",
        lambda: refiner().batch(["x"], concurrency=0),
        ("concurrency", "at least 1"),
    ),
    (
        "batch model_concurrency",
        lambda: refiner().batch(["x"], model_concurrency=0),
        ("model_concurrency", "at least 1"),
    ),
    ("stream int", lambda: refiner().stream(3), ("the task must be",)),  # type: ignore[arg-type]
    # where models are served, and their keys
    (
        "api_base words",
        lambda: refine("x", model="openai/m", api_base="not a url"),
        ("api_base", "http://localhost:8000/v1"),
    ),
    (
        "api_base no scheme",
        lambda: Refiner("openai/m", api_base="localhost:8000/v1"),
        ("api_base", "http:// or https://"),
    ),
    (
        "api_base ftp",
        lambda: Refiner("openai/m", api_base="ftp://host/v1"),
        ("api_base", "http:// or https://"),
    ),
    (
        "api_base port",
        lambda: Refiner("openai/m", api_base="http://host:99999/v1"),
        ("api_base", "Port out of range"),
    ),
    (
        "api_base no host",
        lambda: Refiner("openai/m", api_base="http:///v1"),
        ("api_base", "names no host"),
    ),
    ("api_base int", lambda: Refiner("openai/m", api_base=8000), ("api_base", "URL")),  # type: ignore[arg-type]
    (
        "api_base instance only",
        lambda: refiner(api_base="http://localhost:8000/v1"),
        ("api_base", "LiteLLMModel("),
    ),
    (
        "api_base local model",
        lambda: Refiner("hf:org/model", api_base="http://localhost:1/v1"),
        ("does not apply",),
    ),
    (
        "api_base no model",
        lambda: Refiner(api_base="http://localhost:1/v1"),
        ("needs the name of the model", "REDRAFT_MODEL"),
    ),
    (
        "litellm api_base",
        lambda: LiteLLMModel("openai/m", api_base="localhost"),
        ("api_base", "http://"),
    ),
    ("missing key", lambda: Refiner("openai/gpt-4o-mini"), ("missing API key", "OPENAI_API_KEY")),
    (
        "missing critic key",
        lambda: Refiner(model(), critics=[LLMCritic("anthropic/claude-3-5-haiku-latest")]),
        ("missing API key", "ANTHROPIC_API_KEY"),
    ),
    # -- found by an adversarial pass ------------------------------------------------------------
    (
        "refine misspelt option",
        lambda: refine("x", model=model(), max_round=3),
        ("unknown option max_round=", "did you mean max_rounds=?"),
    ),
    (
        "arefine misspelt option",
        lambda: asyncio.run(arefine("x", model=model(), treshold=0.5)),
        ("unknown option treshold=", "did you mean threshold=?"),
    ),
    (
        "model class",
        lambda: Refiner(ScriptedModel),  # type: ignore[arg-type]
        ("the class ScriptedModel", "pass an instance"),
    ),
    (
        "model old complete",
        lambda: Refiner(OldSignatureModel()),  # type: ignore[arg-type]
        ("OldSignatureModel.complete() takes messages", "complete(request: ModelRequest)"),
    ),
    (
        "critic_model old complete",
        lambda: Refiner(model(), critic_model=OldSignatureModel()),  # type: ignore[arg-type]
        ("complete() takes messages", "complete(request: ModelRequest)"),
    ),
    (
        "actor own model old complete",
        lambda: LLMActor(OldSignatureModel()),  # type: ignore[arg-type]
        ("complete() takes messages", "request.messages"),
    ),
    ("model empty", lambda: Refiner(""), ("model is an empty string", "REDRAFT_MODEL")),
    ("model blank", lambda: Refiner("  "), ("model is an empty string",)),
    (
        "critic model class",
        lambda: LLMCritic(ScriptedModel),  # type: ignore[arg-type]
        ("the class ScriptedModel",),
    ),
    (
        "api_base credentials",
        lambda: Refiner("openai/m", api_base="http://user:secret@localhost:8000/v1"),
        ("api_base", "user name or password", "OPENAI_API_KEY"),
    ),
    (
        "checkpointer dir",
        lambda: refiner(checkpointer=Path(__file__).parent),
        ("is a directory", "give a file name"),
    ),
    (
        "checkpointer no folder",
        lambda: refiner(checkpointer="/nonexistent/dir/runs.db"),
        ("does not exist", "create it first"),
    ),
    ("prompts empty", lambda: refiner(prompts=""), ("prompts is an empty path",)),
    ("prompts a file", lambda: refiner(prompts=__file__), ("is a file", "folder")),
    ("actor sync", lambda: Refiner(model(), actor=SyncActor()), ("draft() is not async",)),  # type: ignore[arg-type]
    ("editor sync", lambda: Refiner(model(), editor=SyncEditor()), ("edit() is not async",)),  # type: ignore[arg-type]
    (
        "critic sync",
        lambda: Refiner(model(), critics=[SyncCritic()]),  # type: ignore[list-item]
        ("critics[0].critique() is not async", "async def"),
    ),
    (
        "function three args",
        lambda: FunctionCritic(lambda a, b, c: True),
        ("needs 3 arguments", "fn(text) or fn(text, task)"),
    ),
    (
        "function in_thread str",
        lambda: FunctionCritic(len, in_thread="no"),  # type: ignore[arg-type]
        ("in_thread", "True or False", "'no'"),
    ),
    (
        "llm use_reference str",
        lambda: LLMCritic(use_reference="no"),  # type: ignore[arg-type]
        ("use_reference", "True or False"),
    ),
    ("llm criteria blank", lambda: LLMCritic(criteria=["short", " "]), ("criteria", "each")),
    (
        "tests entry_point keyword",
        lambda: TestsCritic(CHECK_SOURCE, entry_point="class"),
        ("entry_point", "name of the function", "'class'"),
    ),
    (
        "tests entry_point not a name",
        lambda: TestsCritic(CHECK_SOURCE, entry_point="my func"),
        ("entry_point", "'my func'"),
    ),
    (
        "tests memory huge",
        lambda: TestsCritic(TESTS_SOURCE, memory_mb=10**20),
        ("memory_mb", "from 16 to 1048576"),
    ),
    ("tests module empty", lambda: TestsCritic(TESTS_SOURCE, module=""), ("module", "''")),
    (
        "tests module not a name",
        lambda: TestsCritic(TESTS_SOURCE, module=["mean", "my module"]),
        ("module", "'my module'"),
    ),
    (
        "tests plugin missing",
        lambda: TestsCritic(TESTS_SOURCE, pytest_plugins=["no_such_pytest_plugin"]),
        ("pytest plugin 'no_such_pytest_plugin' is not installed", "pytest_plugins"),
    ),
    (
        "tests case not a mapping",
        lambda: TestSuite.from_cases([{"input": "1", "output": "1"}, 3]),  # type: ignore[list-item]
        ("invalid I/O case 2", "not a mapping"),
    ),
    (
        "tests nul byte",
        lambda: TestsCritic("def test_x():\n    assert '\x00'\n"),
        ("null bytes",),
    ),
    (
        "task positional",
        lambda: Task("Write a haiku"),  # type: ignore[misc]
        ("Task takes its fields by name", "Task(instruction='Write a haiku')"),
    ),
    ("rubric positional", lambda: Rubric("be brief"), ("Rubric(description='be brief')",)),  # type: ignore[misc]
    ("task draft empty", lambda: Task(instruction="x", draft=""), ("draft is empty",)),
    ("rubric pass_score bool", lambda: Rubric(pass_score=True), ("pass_score", "got True")),
    ("rubric criterion blank", lambda: Rubric(criteria=["ok", ""]), ("a criterion is empty",)),
    ("batch bytes", lambda: refiner().batch(b"abc"), ("batch takes a list of tasks", "bytes")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("build", "fragments"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_value_is_one_line_naming_the_fix(
    build: Callable[[], object], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    message = str(caught.value)
    assert "\n" not in message, message
    assert "errors.pydantic.dev" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_there_are_at_least_forty_cases() -> None:
    assert len(BAD) >= 40


def test_a_config_error_is_also_a_value_error() -> None:
    # Code written against pydantic (which raises ValueErrors) still catches a refused value.
    with pytest.raises(ValueError, match="the task is empty"):
        Task(instruction="")
    with pytest.raises(ValueError, match="max_rounds"):
        refiner(max_rounds="3")


def test_loading_stored_data_keeps_pydantic_errors() -> None:
    # Only construction by hand is reworded; validating stored JSON still says where it broke.
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Task.model_validate({"instruction": ""})


def test_batch_of_a_string_runs_nothing() -> None:
    calls = ScriptedModel(["x"] * 5)
    loop = Refiner(calls, critics=[FunctionCritic(lambda text: True)])
    with pytest.raises(ConfigError):
        loop.batch("abc")
    assert calls.calls == []  # not three loops on "a", "b" and "c"


# -- what users mean is accepted -------------------------------------------------------------


def test_a_plain_function_among_the_critics_is_a_function_critic() -> None:
    def short(text: str) -> bool:
        return len(text) < 20

    loop = Refiner(ScriptedModel(["tiny"]), critics=[short, LLMCritic(ScriptedModel())])
    assert isinstance(loop.critics[0], FunctionCritic) and loop.critics[0].name == "short"
    result = Refiner(ScriptedModel(["tiny"]), critics=[short]).run("Write something short")
    assert result.passed and result.rounds[0].critiques[0].critic == "short"


def test_a_single_critic_needs_no_list() -> None:
    result = refine("t", model=ScriptedModel(["ok"]), critics=FunctionCritic(lambda t: True))
    assert result.passed


def test_memory_given_as_a_path_opens_a_correction_memory(tmp_path: Path) -> None:
    from redraft.memory import CorrectionMemory

    loop = refiner(memory=str(tmp_path / "x.db"))
    assert isinstance(loop.memory, CorrectionMemory)
    assert loop.memory.path == tmp_path / "x.db"
    assert (tmp_path / "x.db").is_file()


def test_tests_critic_given_a_path_string_reads_the_file(tmp_path: Path) -> None:
    file = tmp_path / "test_mean.py"
    file.write_text(TESTS_SOURCE, encoding="utf-8")
    critic = TestsCritic(str(file))
    assert critic.suite.kind == "functions"
    assert critic.suite.names == ("test_mean",)
    assert critic.suite.origin == str(file)
    cases = tmp_path / "cases.yaml"
    cases.write_text("- {input: '1 2', output: '3'}\n", encoding="utf-8")
    assert TestsCritic(str(cases)).suite.kind == "io"


def test_one_line_test_source_is_still_source() -> None:
    assert TestsCritic("assert mean([2, 4]) == 3").suite.kind == "asserts"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('- {input: "1", output: "2"\n', "line 2"),  # truncated JSON/YAML
        ("[1, 2", "line 1"),
    ],
)
def test_a_broken_cases_file_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "cases.json"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        TestsCritic(file)
    assert "\n" not in str(caught.value) and problem in str(caught.value)


def test_a_binary_tests_file_says_it_is_not_text(tmp_path: Path) -> None:
    file = tmp_path / "test_bin.py"
    file.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        TestsCritic(file)


@pytest.mark.parametrize(
    "url", ["http://localhost:8000/v1", "https://api.example.com/v1/", " http://10.0.0.2:80 "]
)
def test_check_api_base_accepts_server_urls(url: str) -> None:
    checked = check_api_base(url)
    assert checked == url.strip().rstrip("/")


def test_check_api_base_names_the_option_it_checks() -> None:
    with pytest.raises(ConfigError, match=r"^--api-base 'not a url' is not a server URL"):
        check_api_base("not a url", name="--api-base")


@pytest.fixture
def key_free_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    yield


async def test_a_missing_key_is_named_before_any_call(key_free_env: None) -> None:
    # This provider reports a missing key as a server error 500 (and was retried as one).
    from redraft.models.base import ModelRequest, user

    gemini = LiteLLMModel("gemini/gemini-1.5-flash", max_attempts=3)
    with pytest.raises(ConfigError) as caught:
        await gemini.complete(ModelRequest(messages=[user("hi")]))
    message = str(caught.value)
    assert message.startswith("missing API key for gemini/gemini-1.5-flash: set ")
    assert "GEMINI_API_KEY" in message and "500" not in message


def test_results_keep_round_tripping_with_an_optional_final() -> None:
    failed = Result.failed(Task(instruction="t"), "actor down", wall_time_s=0.5)
    assert failed.final is None and failed.text == "" and failed.score == 0.0
    assert Result.model_validate_json(failed.model_dump_json()) == failed


# -- refused when built, where the check needs files -----------------------------------------


@pytest.mark.parametrize("content", [b"x", b"my notes\n" * 50])
def test_a_checkpointer_file_that_is_not_a_database_is_refused_and_kept(
    tmp_path: Path, content: bytes
) -> None:
    notes = tmp_path / "notes.db"
    notes.write_bytes(content)  # SQLite took over a 1-byte file at the first run
    with pytest.raises(ConfigError, match="not a redraft checkpoint database") as caught:
        refiner(checkpointer=notes)
    assert "\n" not in str(caught.value) and "new file name" in str(caught.value)
    assert notes.read_bytes() == content


def test_a_broken_prompt_template_is_refused_when_built(tmp_path: Path) -> None:
    (tmp_path / "editor_system.md").write_text("{% if %}broken", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"editor_system\.md:1: .*fix the template"):
        refiner(prompts=tmp_path)


def test_a_tests_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    file = tmp_path / "test_mean.py"
    file.write_bytes(b"\xef\xbb\xbf" + TESTS_SOURCE.encode())  # as Windows editors save it
    assert TestsCritic(file).suite.names == ("test_mean",)


MEMORY_BAD: list[tuple[str, Callable[[Any], object], tuple[str, ...]]] = [
    ("path int", lambda memory: type(memory)(5), ("path must be the path", "memory.db")),
    ("model int", lambda memory: type(memory)(memory.path, 5), ("model must be",)),
    ("model empty", lambda memory: type(memory)(memory.path, " "), ("model is empty",)),
    ("read_only str", lambda memory: type(memory)(memory.path, read_only="yes"), ("read_only",)),
    ("add tags str", lambda memory: memory.add("t", "p", tags="poem"), ("tags=['poem']",)),
    ("add kind blank", lambda memory: memory.add("t", "p", kind=" "), ("kind is empty",)),
    ("add tag blank", lambda memory: memory.add("t", "p", tags=["a", ""]), ("empty tag",)),
    ("search k str", lambda memory: memory.search("q", "5"), ("k must be at least 1", "'5'")),
    ("search query int", lambda memory: memory.search(5), ("the query must be a string",)),
    (
        "search min_score nan",
        lambda memory: memory.search("q", min_score=float("nan")),
        ("min_score", "from -1 to 1"),
    ),
    ("records limit str", lambda memory: list(memory.records(limit="5")), ("limit", "'5'")),
    ("get int", lambda memory: memory.get(5), ("id is a string",)),
]


@pytest.mark.parametrize(
    ("call", "fragments"), [c[1:] for c in MEMORY_BAD], ids=[c[0] for c in MEMORY_BAD]
)
def test_a_bad_memory_value_is_one_line_naming_the_fix(
    tmp_path: Path, call: Callable[[Any], object], fragments: tuple[str, ...]
) -> None:
    from redraft.memory import CorrectionMemory

    # Each is refused before any embedding model loads.
    with CorrectionMemory(tmp_path / "m.db") as memory, pytest.raises(ConfigError) as caught:
        call(memory)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_a_huge_records_limit_is_no_limit(tmp_path: Path) -> None:
    from redraft.memory import CorrectionMemory

    with CorrectionMemory(tmp_path / "m.db") as memory:
        assert list(memory.records(limit=10**30)) == []  # was "unreadable (datatype mismatch)"
