"""A ChatModel run in this process with torch + transformers, batching concurrent calls.

Selected with `hf:<model id or folder>`. Many loops share one model: their calls are gathered
by a `BatchScheduler` and run as one left-padded `generate` per batch, each caller getting its
own text and usage back. Loading happens on the first call (or `load()`), never at import or
resolution, and torch/transformers are imported only then: `import redraft` stays light.

With `tools`, the tools go to the chat template (`apply_chat_template(..., tools=...)`), which
shows them to the model in its own format; the calls it writes back are read from the text
(`tool_calls.py`). Tool requests batch with any others.

A model id is looked up in the local Hugging Face cache first; only when it is missing and the
hub is not known to be offline is the hub asked, with a short timeout, before downloading. So an
offline machine gets a ConfigError naming what to do at once, never a hang.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from redraft.errors import ConfigError, ModelError
from redraft.models.base import Completion, Message, ModelRequest, ToolCall, with_parsed
from redraft.models.batching import BatchScheduler
from redraft.models.tool_calls import TOOL_MARKUP, parse_tool_calls
from redraft.types import Usage

LOCAL_PREFIX = "hf:"
DEFAULT_LOCAL_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_MAX_TOKENS = 1024
# Long enough for a slow but working network, short enough that a dead one fails at once.
HUB_PROBE_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install 'redraft[local]'"
_TRUTHY = {"1", "on", "yes", "true"}
# A template that never reads `tools` drops them silently: the model would never know of them.
_READS_TOOLS = re.compile(r"\btools\b")


@dataclass(frozen=True)
class _Request:
    messages: list[dict[str, Any]]
    temperature: float | None
    max_tokens: int
    stop: tuple[str, ...]
    tools: list[dict[str, Any]] | None = None  # in the OpenAI shape chat templates take


@dataclass(frozen=True)
class _Output:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class LocalModel:
    """A transformers causal LM with its chat template, on CUDA, MPS or CPU.

    `device` ("cuda", "mps", "cpu", "cuda:1") and `dtype` ("bfloat16", "float16", "float32")
    default to the best available: the first GPU in bfloat16, else CPU in float32. `device_map`
    (e.g. "auto" to spread a large model over GPUs) is passed to `from_pretrained` instead.
    `temperature=None` keeps the model's own generation config (what its authors recommend);
    0 is greedy. Up to `max_batch_size` concurrent calls with the same settings are run
    together, after waiting at most `batch_wait_ms` for company.
    """

    # No response_format: a structured answer is asked for in the prompt (agents/structured.py).
    schema_in_prompt = True

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        dtype: str | None = None,
        temperature: float | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_batch_size: int = 32,
        batch_wait_ms: float = 5.0,
        revision: str | None = None,
        trust_remote_code: bool = False,
        is_default: bool = False,
    ) -> None:
        model = model.strip()
        if not model:
            raise ConfigError(
                f"{LOCAL_PREFIX} needs a model id or folder, e.g. "
                f"{LOCAL_PREFIX}{DEFAULT_LOCAL_MODEL} or {LOCAL_PREFIX}/path/to/model"
            )
        if max_batch_size < 1 or batch_wait_ms < 0:
            raise ConfigError(
                f"{LOCAL_PREFIX}{model}: max_batch_size must be at least 1 and batch_wait_ms "
                "at least 0"
            )
        self.model = model
        self.device = device
        self.device_map = device_map
        self.dtype = dtype
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.is_default = is_default  # chosen because nothing was configured: errors say so
        self.scheduler: BatchScheduler[_Request, _Output] = BatchScheduler(
            self._generate_batch,
            max_batch_size=max_batch_size,
            batch_wait_ms=batch_wait_ms,
            thread_name=f"redraft-local-{Path(model).name}",
        )
        self._load_lock = threading.Lock()
        self._torch: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos_ids: frozenset[int] = frozenset()
        self._pad_id = 0
        self._max_positions: int | None = None
        self._takes_tools = False
        self._hidden_ids: frozenset[int] = frozenset()  # dropped from a tool reply's text

    @property
    def name(self) -> str:
        return LOCAL_PREFIX + self.model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def __repr__(self) -> str:
        return f"LocalModel({self.model!r})"

    # -- finding and loading ---------------------------------------------------------------

    def check_available(self) -> None:
        """Raise ConfigError now when the model cannot be loaded here; loads no weights.

        Checks the `[local]` extra, then a folder's config, or a model id's presence in the
        local cache, else that the hub can be reached to fetch it.
        """
        self._require_extra()
        folder = self._folder()
        if folder is not None or self._cached():
            return
        self._probe_hub()

    def load(self) -> None:
        """Load the weights now (the first call does this otherwise)."""
        with self._load_lock:
            if self._model is None:
                self._load()

    def unload(self) -> None:
        """Free the weights; the next call loads them again."""
        with self._load_lock:
            self._model = self._tokenizer = None
            if self._torch is not None and self._torch.cuda.is_available():
                self._torch.cuda.empty_cache()

    def _require_extra(self) -> None:
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if not missing:
            return
        if self.is_default:
            raise ConfigError(
                "no model configured, and the default local model needs torch and "
                f"transformers: {INSTALL_HINT}, or pass --model / model=... or set "
                "REDRAFT_MODEL (e.g. openai/gpt-4o-mini)"
            )
        raise ConfigError(f"{self.name} needs torch and transformers: {INSTALL_HINT}")

    def _folder(self) -> Path | None:
        """The model's folder when `model` names one; None for a hub id."""
        path = Path(self.model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ConfigError(
                    f"{self.name}: {path} is not a transformers model folder (no config.json)"
                )
            return path
        if (
            self.model.startswith(("/", ".", "~"))
            or self.model.count("/") > 1
            or "\\" in self.model
        ):
            raise ConfigError(f"{self.name}: no model folder at {path}")
        return None

    def _cached(self) -> bool:
        hub = importlib.import_module("huggingface_hub")
        try:
            found = hub.try_to_load_from_cache(self.model, "config.json", revision=self.revision)
        except Exception as exc:  # not a valid repo id either
            raise ConfigError(
                f"{self.name}: not a model folder nor a Hugging Face model id "
                f"(such as {DEFAULT_LOCAL_MODEL}): {_one_line(exc)}"
            ) from exc
        return isinstance(found, str)

    def _probe_hub(self) -> None:
        """Return when the hub can serve the model; else a ConfigError saying what to do."""
        if _hub_offline():
            raise ConfigError(self._unavailable("HF_HUB_OFFLINE is set"))
        hub = importlib.import_module("huggingface_hub")
        try:
            hub.HfApi().model_info(self.model, revision=self.revision, timeout=HUB_PROBE_TIMEOUT_S)
        except Exception as exc:
            names = {cls.__name__ for cls in type(exc).__mro__}
            if "GatedRepoError" in names:
                raise ConfigError(
                    f"{self.name} is gated: accept its terms on huggingface.co and run "
                    "'hf auth login'"
                ) from exc
            if names & {"RepositoryNotFoundError", "RevisionNotFoundError"}:
                raise ConfigError(
                    f"{self.name}: no such model on the Hugging Face hub (a private one "
                    "needs 'hf auth login'); or pass hf:/path/to/model"
                ) from exc
            reason = f"the Hugging Face hub is unreachable: {_one_line(exc)}"
            raise ConfigError(self._unavailable(reason)) from exc

    def _unavailable(self, why: str) -> str:
        fetch = f"hf download {self.model}"
        if self.is_default:
            return (
                f"no model configured, and the default local model {self.model} is not "
                f"downloaded ({why}): pass --model / model=... or set REDRAFT_MODEL to an API "
                "model (e.g. openai/gpt-4o-mini), a local server (ollama/llama3.1, or "
                "hosted_vllm/<name> with --api-base URL) or a model folder "
                f"(hf:/path/to/model); or fetch it once with '{fetch}' where the hub is "
                "reachable (run 'redraft demo' to see a loop without a model)"
            )
        return (
            f"{self.name} is not in the local Hugging Face cache ({why}): fetch it with "
            f"'{fetch}' on a machine with access (and copy the cache over), pass "
            "hf:/path/to/model, or use an API model or a local server"
        )

    def _load(self) -> None:
        self._require_extra()
        torch: Any = importlib.import_module("torch")
        transformers: Any = importlib.import_module("transformers")
        folder = self._folder()
        source = str(folder) if folder is not None else self.model
        device = self.device or _best_device(torch)
        options: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.revision is not None:
            options["revision"] = self.revision
        if self.device_map is not None:
            options["device_map"] = self.device_map
        # transformers renamed `torch_dtype` to `dtype` in 4.56; older releases know only the first.
        dtype_option = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
        options[dtype_option] = _dtype(torch, self.dtype, device)
        try:
            tokenizer, model = self._from_pretrained(transformers, source, options, folder)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"{self.name}: cannot load the model: {_one_line(exc)}") from exc
        if self.device_map is None:
            model = model.to(device)
        model.eval()
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(
                f"{self.name} has no chat template: use an instruct (chat) model, or set "
                "tokenizer.chat_template in its folder"
            )
        self._eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else min(self._eos_ids, default=0)
        positions = getattr(model.config, "max_position_embeddings", None)
        self._max_positions = int(positions) if isinstance(positions, int) else None
        self._takes_tools = _template_takes_tools(tokenizer)
        self._hidden_ids = _hidden_ids(tokenizer)
        self._torch, self._tokenizer, self._model = torch, tokenizer, model

    def _from_pretrained(
        self, transformers: Any, source: str, options: dict[str, Any], folder: Path | None
    ) -> tuple[Any, Any]:
        def load(**extra: Any) -> tuple[Any, Any]:
            tokenizer_options = {
                k: v for k, v in options.items() if k in ("revision", "trust_remote_code")
            }
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, **tokenizer_options, **extra
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(source, **options, **extra)
            return tokenizer, model

        if folder is not None:
            return load()
        try:  # the cache alone first: no network at all when the model is there
            return load(local_files_only=True)
        except OSError:
            pass
        self._probe_hub()
        return load()

    # -- calling ---------------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> Completion:
        started = time.monotonic()
        settings = request.settings
        chat = [_chat_message(message) for message in request.messages]
        tools = [spec.to_openai() for spec in request.tools] if request.tools else None
        temperature = settings.temperature if settings else None
        temperature = self.temperature if temperature is None else temperature
        max_tokens = settings.max_tokens if settings and settings.max_tokens else self.max_tokens
        stop = tuple(settings.stop) if settings and settings.stop else ()
        job = _Request(chat, temperature, max_tokens, stop, tools)
        # Greedy calls share a batch whatever their temperature field said; tools change only
        # the prompt and the reading of the reply, so tool calls batch with the rest.
        key = (None if temperature is None else max(temperature, 0.0), max_tokens, stop)
        output = await self.scheduler.submit(job, key)
        text, finish_reason = output.text, output.finish_reason
        calls: list[ToolCall] = []
        if tools:
            reply = parse_tool_calls(text)
            text, calls = reply.text, reply.calls
            if calls:
                finish_reason = "tool_calls"  # as API models say it
        completion = Completion(
            text=text,
            tool_calls=calls,
            usage=Usage(
                input_tokens=output.prompt_tokens,
                output_tokens=output.completion_tokens,
                calls=1,
                latency_s=time.monotonic() - started,
            ),
            model=self.name,
            finish_reason=finish_reason,
        )
        return with_parsed(completion, request.output_schema)

    def _generate_batch(self, requests: list[_Request]) -> list[_Output | BaseException]:
        """In the worker thread: one left-padded `generate` for requests sharing settings."""
        self.load()
        torch, tokenizer, model = self._torch, self._tokenizer, self._model
        outcomes: list[_Output | BaseException] = []
        rows: list[list[int]] = []
        for request in requests:
            try:
                rows.append(self._encode(request))
                outcomes.append(_Output("", 0, 0, ""))  # a placeholder until generated
            except Exception as exc:
                outcomes.append(exc)
        if not rows:
            return outcomes
        first = requests[0]  # all share temperature, max_tokens and stop: the scheduler's key
        width = max(len(row) for row in rows)
        input_ids = torch.tensor(
            [[self._pad_id] * (width - len(row)) + row for row in rows], device=model.device
        )
        attention = torch.tensor(
            [[0] * (width - len(row)) + [1] * len(row) for row in rows], device=model.device
        )
        extra: dict[str, Any] = {}
        if first.stop:
            extra = {"stop_strings": list(first.stop), "tokenizer": tokenizer}
        with torch.inference_mode():
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                generation_config=self._generation_config(first),
                **extra,
            )
        new_tokens = generated[:, width:].tolist()
        results = iter(zip(rows, new_tokens, strict=True))
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, _Output):
                row, tokens = next(results)
                outcomes[index] = self._decode(row, tokens, first)
        return outcomes

    def _encode(self, request: _Request) -> list[int]:
        if request.tools and not self._takes_tools:
            raise ConfigError(
                f"{self.name}: its chat template takes no tools, so tool calling is not "
                "possible with it: use a model whose template does (e.g. "
                "hf:Qwen/Qwen2.5-7B-Instruct or hf:meta-llama/Llama-3.1-8B-Instruct), set a "
                "tokenizer.chat_template that renders `tools` in its folder, or give the role "
                "with tools an API model or a local server (e.g. ollama/...)"
            )
        try:
            text = self._render(request.messages, request.tools)
        except TemplateError as exc:  # the template's own raise_exception
            # Llama 3.1's takes one call a turn; its model asks for one, but may write several.
            split = _one_call_a_turn(request.messages)
            if split is None:
                raise self._refused(exc) from exc
            try:
                text = self._render(split, request.tools)
            except TemplateError as again:
                raise self._refused(again) from again
        # The template already holds any BOS token; the tokenizer must not add another.
        ids = [int(i) for i in self._tokenizer(text, add_special_tokens=False)["input_ids"]]
        if self._max_positions is not None and len(ids) >= self._max_positions:
            raise ModelError(
                f"{self.name}: the prompt is too long for the model: {len(ids)} tokens, "
                f"it takes at most {self._max_positions}"
            )
        return ids

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        text: str = self._tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        return text

    def _refused(self, exc: TemplateError) -> ModelError:
        why = _one_line(exc)
        return ModelError(f"{self.name}: its chat template refuses this conversation: {why}")

    def _generation_config(self, request: _Request) -> Any:
        config = copy.deepcopy(self._model.generation_config)
        config.max_new_tokens = request.max_tokens
        config.max_length = None
        config.pad_token_id = self._pad_id
        if self._eos_ids:
            config.eos_token_id = sorted(self._eos_ids)
        if request.temperature is not None:
            if request.temperature <= 0:
                config.do_sample = False
                # Unset, or transformers warns that sampling settings are ignored when greedy.
                config.temperature = config.top_p = config.top_k = None
            else:
                config.do_sample = True
                config.temperature = request.temperature
        return config

    def _decode(self, prompt: list[int], tokens: list[int], request: _Request) -> _Output:
        end = next((i for i, token in enumerate(tokens) if token in self._eos_ids), None)
        if end is not None:
            own, counted, finish = tokens[:end], end + 1, "stop"
        else:
            own, counted, finish = tokens, len(tokens), "length"
        if request.tools:  # the call markup may be special tokens: keep those for the parser
            kept = [token for token in own if token not in self._hidden_ids]
            text = self._tokenizer.decode(kept, skip_special_tokens=False)
        else:
            text = self._tokenizer.decode(own, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
            if end is None:  # a row stopped by a stop string is padded after it in a batch
                while counted and own[counted - 1] == self._pad_id:
                    counted -= 1
        return _Output(text, len(prompt), counted, finish)

    def close(self) -> None:
        """Stop the worker thread (the weights stay until `unload()` or garbage collection)."""
        self.scheduler.close()


def _chat_message(message: Message) -> dict[str, Any]:
    """A message as chat templates take it: like the OpenAI shape, but with each tool call's
    arguments as an object, which the templates write out as JSON themselves."""
    chat = message.to_openai()
    if message.tool_calls:
        chat["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return chat


def _one_call_a_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation with each assistant turn of several tool calls made one turn per call,
    each followed by its result (the tool loop sends the results in the order of the calls);
    None when no turn has several."""
    split: list[dict[str, Any]] = []
    at = 0
    while at < len(messages):
        message = messages[at]
        calls = message.get("tool_calls") or []
        at += 1
        if message["role"] != "assistant" or len(calls) < 2:
            split.append(message)
            continue
        results = []
        while at < len(messages) and messages[at]["role"] == "tool":
            results.append(messages[at])
            at += 1
        for index, call in enumerate(calls):
            split.append({**message, "content": message["content"] if index == 0 else ""})
            split[-1]["tool_calls"] = [call]
            split.extend(results[index : index + 1])
        split.extend(results[len(calls) :])
    return split if len(split) > len(messages) else None


def _template_takes_tools(tokenizer: Any) -> bool:
    """Whether the template used with tools (a "tool_use" one where the tokenizer has several)
    reads them."""
    try:
        template = tokenizer.get_chat_template(tools=[{}])
    except (AttributeError, TypeError, ValueError):  # transformers without it, or no template
        template = tokenizer.chat_template
        if isinstance(template, dict):
            template = template.get("tool_use", template.get("default"))
    return isinstance(template, str) and _READS_TOOLS.search(template) is not None


def _hidden_ids(tokenizer: Any) -> frozenset[int]:
    """The special tokens decoding drops, but for those that mark tool calls."""
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    markup: set[int] = set()
    for index, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "content", str(token)) in TOOL_MARKUP:
            markup.add(int(index))
        elif getattr(token, "special", False):
            special.add(int(index))
    return frozenset(special - markup)


def _best_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _dtype(torch: Any, name: str | None, device: str) -> Any:
    if name is not None and name != "auto":
        value = getattr(torch, name, None)
        if not isinstance(value, torch.dtype):
            raise ConfigError(f"unknown dtype '{name}': use bfloat16, float16 or float32")
        return value
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32  # CPU: half precision is slow there and changes greedy outputs


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every token that ends a reply: the generation config's (often several), the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _hub_offline() -> bool:
    if any(os.environ.get(name, "").strip().lower() in _TRUTHY for name in _OFFLINE_VARS):
        return True
    constants = importlib.import_module("huggingface_hub.constants")
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_shared: dict[str, LocalModel] = {}
_shared_lock = threading.Lock()


def shared_local_model(model: str, *, is_default: bool = False) -> LocalModel:
    """One LocalModel per model id in a process, so every loop batches onto the same weights.

    Kept for the life of the process (sync callers run each call in a fresh event loop and
    would reload the weights otherwise); `unload()` frees them.
    """
    key = model.strip()
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = LocalModel(key, is_default=is_default)
        return found
