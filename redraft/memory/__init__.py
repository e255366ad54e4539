"""A retrieval memory of past corrections: what was wrong, what fixed it, for what task.

Needs the [memory] extra (sentence-transformers, numpy, usearch): `pip install
'redraft[memory]'`. Give a `CorrectionMemory` to a loop with `refine(..., memory=...)`.
"""

from __future__ import annotations

try:
    import numpy  # noqa: F401
except ImportError:  # pragma: no cover - the extra is installed wherever the tests run
    from redraft.errors import ConfigError

    raise ConfigError("the memory needs numpy: pip install 'redraft[memory]'") from None

from redraft.memory.embedder import DEFAULT_MODEL, Embedder
from redraft.memory.records import Correction, Hit
from redraft.memory.retrieval import CorrectionMemory
from redraft.memory.store import default_path

__all__ = ["DEFAULT_MODEL", "Correction", "CorrectionMemory", "Embedder", "Hit", "default_path"]
