"""Choosing a model from a string, an instance or the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from redraft.errors import ConfigError
from redraft.models.litellm import LiteLLMModel
from redraft.models.local import LocalModel
from redraft.models.resolve import check_credentials, resolve_model
from redraft.models.scripted import ScriptedModel


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDRAFT_MODEL", raising=False)
    monkeypatch.delenv("REDRAFT_API_BASE", raising=False)


def test_an_instance_is_returned_as_is() -> None:
    model = ScriptedModel(["hi"])
    assert resolve_model(model) is model
    litellm_model = LiteLLMModel("openai/gpt-4o-mini")
    assert resolve_model(litellm_model) is litellm_model


def test_resolving_an_instance_does_not_import_litellm() -> None:
    code = (
        "import sys\n"
        "from redraft.models.resolve import resolve_model\n"
        "from redraft.models.scripted import ScriptedModel\n"
        "resolve_model(ScriptedModel())\n"
        "print('litellm' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


@pytest.mark.parametrize(
    "spec",
    [
        "openai/gpt-4o-mini",
        "gpt-4o-mini",
        "anthropic/claude-3-5-haiku-latest",
        "ollama/llama3.1",
        "hosted_vllm/my-local-model",
    ],
)
def test_litellm_model_strings(spec: str) -> None:
    model = resolve_model(spec)
    assert isinstance(model, LiteLLMModel)
    assert model.name == spec


def test_api_base_is_passed_on() -> None:
    model = resolve_model("hosted_vllm/qwen", api_base="http://127.0.0.1:8000/v1")
    assert isinstance(model, LiteLLMModel)
    assert model.api_base == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("spec", ["foo", "claude-3-5-haiku-latest", "nosuchprovider/model"])
def test_unknown_model_string(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model(spec)
    assert str(caught.value) == (
        f"unknown model '{spec}': use a LiteLLM model string such as 'openai/gpt-4o-mini', "
        "'anthropic/claude-3-5-haiku-latest', 'ollama/llama3.1' or 'hosted_vllm/<name>' "
        "with --api-base, or pass a ChatModel instance"
    )


def test_not_a_model_at_all() -> None:
    with pytest.raises(ConfigError, match="not int"):
        resolve_model(42)  # type: ignore[arg-type]


def test_model_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDRAFT_MODEL", "hosted_vllm/qwen")
    monkeypatch.setenv("REDRAFT_API_BASE", "http://127.0.0.1:8000/v1")
    model = resolve_model(None)
    assert isinstance(model, LiteLLMModel)
    assert model.name == "hosted_vllm/qwen"
    assert model.api_base == "http://127.0.0.1:8000/v1"
    # an explicit api_base wins over the environment
    other = resolve_model(None, api_base="http://127.0.0.1:9000/v1")
    assert isinstance(other, LiteLLMModel)
    assert other.api_base == "http://127.0.0.1:9000/v1"


def test_custom_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_CRITIC_MODEL", "openai/gpt-4o-mini")
    assert resolve_model(None, env_var="MY_CRITIC_MODEL").name == "openai/gpt-4o-mini"


def test_an_unknown_model_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDRAFT_MODEL", "gpt-nonsense")
    with pytest.raises(ConfigError, match="unknown model 'gpt-nonsense'"):
        resolve_model(None)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_model_configured_means_the_local_default(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("REDRAFT_MODEL", value)
    model = resolve_model(None)
    assert isinstance(model, LocalModel)
    assert model.name == "hf:Qwen/Qwen2.5-0.5B-Instruct"
    assert model.is_default
    assert not model.loaded  # weights load on the first call, never on resolution


def test_the_default_model_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and tests/conftest.py sets it for the session
    with pytest.raises(ConfigError) as caught:
        check_credentials(resolve_model(None))
    message = str(caught.value)
    assert message.startswith(
        "no model configured, and the default local model Qwen/Qwen2.5-0.5B-Instruct is not "
        "downloaded (HF_HUB_OFFLINE is set): pass --model / model=... or set REDRAFT_MODEL"
    )
    assert "--api-base" in message and "hf:/path/to/model" in message


def test_an_api_base_without_a_model_name() -> None:
    with pytest.raises(ConfigError, match="needs the name of the model it serves"):
        resolve_model(None, api_base="http://127.0.0.1:8000/v1")


def test_hf_model_strings() -> None:
    model = resolve_model("hf:some-org/some-model")
    assert isinstance(model, LocalModel)
    assert model.name == "hf:some-org/some-model" and not model.is_default
    assert resolve_model(" hf:some-org/some-model ") is model  # one instance: shared batches
    with pytest.raises(ConfigError, match="needs a model id or folder"):
        resolve_model("hf:")
    with pytest.raises(ConfigError, match="--api-base does not apply"):
        resolve_model("hf:some-org/some-model", api_base="http://127.0.0.1:8000/v1")


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        check_credentials(resolve_model("openai/gpt-4o-mini"))
    assert str(caught.value) == "missing API key for openai/gpt-4o-mini: set OPENAI_API_KEY"

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"set ANTHROPIC_API_KEY$"):
        check_credentials(resolve_model("anthropic/claude-3-5-haiku-latest"))


def test_credentials_present_or_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    check_credentials(ScriptedModel())
    check_credentials(LiteLLMModel("openai/gpt-4o-mini", api_base="http://127.0.0.1:8000/v1"))
    check_credentials(LiteLLMModel("openai/gpt-4o-mini", api_key="sk-test"))
    check_credentials(resolve_model("ollama/llama3.1"))  # a local server needs no key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    check_credentials(resolve_model("openai/gpt-4o-mini"))


def test_redraft_api_base_applies_to_openai_compatible_model_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDRAFT_API_BASE", "http://127.0.0.1:8000/v1/")
    for spec in ("openai/local", "hosted_vllm/qwen", "lm_studio/x", "gpt-4o-mini"):
        model = resolve_model(spec)  # given explicitly, not only through REDRAFT_MODEL
        assert isinstance(model, LiteLLMModel)
        assert model.api_base == "http://127.0.0.1:8000/v1", spec
    # Other providers keep their own endpoints.
    anthropic = resolve_model("anthropic/claude-3-5-haiku-latest")
    assert isinstance(anthropic, LiteLLMModel) and anthropic.api_base is None
    # A model run in this process ignores it (it has no endpoint to take).
    assert isinstance(resolve_model("hf:some-org/some-model"), LocalModel)
    # An explicit api_base wins.
    chosen = resolve_model("openai/local", api_base="http://127.0.0.1:9000/v1")
    assert isinstance(chosen, LiteLLMModel) and chosen.api_base == "http://127.0.0.1:9000/v1"


def test_a_bad_redraft_api_base_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDRAFT_API_BASE", "localhost:8000")
    with pytest.raises(ConfigError, match=r"^REDRAFT_API_BASE 'localhost:8000' is not a server"):
        resolve_model("openai/local")


def test_api_base_does_not_apply_to_an_instance() -> None:
    with pytest.raises(ConfigError, match="api_base applies to model strings"):
        resolve_model(ScriptedModel(), api_base="http://127.0.0.1:8000/v1")


@pytest.mark.parametrize("url", ["not a url", "127.0.0.1:8000", "file:///tmp/x", "http://"])
def test_an_api_base_that_is_not_a_url_fails_before_any_call(url: str) -> None:
    with pytest.raises(ConfigError, match="is not a server URL"):
        resolve_model("hosted_vllm/qwen", api_base=url)
