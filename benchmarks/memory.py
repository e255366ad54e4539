"""The correction memory against chromadb, on the same vectors in the same run.

Figures: ingest throughput (records/s: embedding included on real texts, and with the vectors
given), top-5 query latency p50/p95 (embedding excluded and included), recall@5 against exact
search, at each size. Targets at 100k records: top-5 query under 5 ms p50 (embedding
excluded), recall@5 of the approximate index at least 0.95, and no slower than chromadb.

Texts are real: docstring paragraphs of the installed Python (stdlib first, then packages),
embedded with all-MiniLM-L6-v2. A size beyond the real texts embedded (--real) is filled with
synthetic vectors: each real vector with Gaussian noise added (cosine about 0.85 to it), so
the vectors keep the clusters of real text. The output says which sizes hold synthetic ones.
Queries are held-out paragraphs, never stored.

    HF_HUB_OFFLINE=1 python benchmarks/memory.py [--sizes 10000,100000] [--real 10000]
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from redraft.memory import Correction, CorrectionMemory, Embedder
from redraft.memory.embedder import DEFAULT_MODEL
from redraft.memory.index import APPROX_ABOVE

Vectors = npt.NDArray[np.float32]
K = 5
BATCH = 2000
NOISE_COSINE = 0.85


def paragraphs(count: int) -> list[tuple[str, str]]:
    """(where, paragraph) pairs from docstrings: the stdlib first, then installed packages."""
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    seen: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if root.name != "site-packages" and "site-packages" in path.parts:
                continue
            for where, text in _docstrings(path, root):
                seen.setdefault(text, where)
                if len(seen) >= count:
                    return [(w, t) for t, w in seen.items()]
    return [(w, t) for t, w in seen.items()]


def _docstrings(path: Path, root: Path) -> Iterator[tuple[str, str]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            doc = ast.get_docstring(node)
            name = getattr(node, "name", "")
            for part in (doc or "").split("\n\n")[:2]:
                text = " ".join(part.split())
                if 40 <= len(text) <= 300:
                    yield f"{module}.{name}".rstrip("."), text


def correction(where: str, text: str, variant: int = 0) -> Correction:
    task = f"Document {where}" + (f" (variant {variant})" if variant else "")
    return Correction(task=task, problem=text, kind=where.split(".")[0], critic="docs")


def synthetic(real: Vectors, count: int, seed: int = 0) -> Vectors:
    """`count` vectors near the real ones: each a real vector plus noise, renormalised."""
    rng = np.random.default_rng(seed)
    base = real[rng.integers(0, len(real), count)]
    # Noise of norm s on a unit vector: cosine 1/sqrt(1+s^2) to it.
    scale = np.sqrt(1 / NOISE_COSINE**2 - 1) / np.sqrt(real.shape[1])
    mixed = base + scale * rng.normal(size=base.shape).astype(np.float32)
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return mixed.astype(np.float32)


class GivenVectors(Embedder):
    """The default model, answering from vectors already computed (the benchmark's store
    fills skip re-embedding); anything else is embedded for real."""

    def __init__(self, known: dict[str, Vectors]) -> None:
        super().__init__(DEFAULT_MODEL)
        self.known = known

    def embed(self, texts: Sequence[str]) -> Vectors:
        if all(t in self.known for t in texts):
            return np.stack([self.known[t] for t in texts])
        return super().embed(texts)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def timed(call: Callable[[], Any], repeats: Sequence[Any]) -> list[float]:
    times = []
    for _ in repeats:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hits / sum(len(t) for t in truth)


def measure_ingest(texts: list[tuple[str, str]], folder: Path) -> float:
    """records/s into a new memory, embedding included (the real model, batches of 256)."""
    records = [correction(w, t) for w, t in texts]
    with CorrectionMemory(folder / "ingest.db") as memory:
        memory.add_many(records[:8])  # the model loads outside the clock
        started = time.perf_counter()
        for i in range(8, len(records), 256):
            memory.add_many(records[i : i + 256])
        elapsed = time.perf_counter() - started
        return (len(records) - 8) / elapsed


def run_size(
    size: int,
    records: list[Correction],
    vectors: Vectors,
    queries: list[str],
    query_vectors: Vectors,
    folder: Path,
    embedder: Embedder,
) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    records, vectors = records[:size], vectors[:size]
    figures: dict[str, Any] = {}

    # -- redraft ----------------------------------------------------------------------------
    known = {r.key_text: v for r, v in zip(records, vectors, strict=True)}
    path = folder / f"memory-{size}.db"
    memory = CorrectionMemory(path, model=GivenVectors(known))
    kept: list[int] = []
    started = time.perf_counter()
    for i in range(0, size, BATCH):
        stored = memory.add_many(records[i : i + BATCH])
        kept += [i + j for j, r in enumerate(stored) if r.id == records[i + j].id]
    figures["redraft_ingest"] = size / (time.perf_counter() - started)
    # Near-identical docstrings ("Return the sine of x." / "... cosine ...") were merged;
    # both stores and the exact search hold only what was kept.
    figures["merged"] = size - len(kept)
    records, vectors = [records[i] for i in kept], vectors[kept]
    size = len(records)
    truth_scores = query_vectors @ vectors.T
    truth = [np.argsort(-row)[:K].tolist() for row in truth_scores]
    row_of = {r.id: i for i, r in enumerate(records)}
    memory.search_vector(query_vectors[0], K, min_score=-1.0)  # builds the index if not yet
    found: list[list[int]] = []

    def ours(q: Vectors) -> None:
        hits = memory.search_vector(q, K, min_score=-1.0)
        found.append([row_of[h.record.id] for h in hits])

    times = [0.0] * len(query_vectors)
    for i, q in enumerate(query_vectors):
        started = time.perf_counter()
        ours(q)
        times[i] = time.perf_counter() - started
    figures["redraft_query"] = percentiles(times)
    figures["redraft_recall"] = recall(found, truth)

    # -- chromadb, same vectors -------------------------------------------------------------
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection(
        f"bench-{size}", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    batch = min(BATCH, client.get_max_batch_size())
    started = time.perf_counter()
    for i in range(0, size, batch):
        part = records[i : i + batch]
        collection.add(
            ids=[str(i + j) for j in range(len(part))],
            embeddings=vectors[i : i + batch],
            documents=[r.problem for r in part],
            metadatas=[
                {"task": r.task, "kind": r.kind or "", "critic": r.critic or ""} for r in part
            ],
        )
    figures["chroma_ingest"] = size / (time.perf_counter() - started)
    chroma_found: list[list[int]] = []

    def theirs(q: Vectors) -> None:
        result = collection.query(query_embeddings=q[None, :], n_results=K)
        chroma_found.append([int(i) for i in result["ids"][0]])

    theirs(query_vectors[0])
    chroma_found.clear()
    times = [0.0] * len(query_vectors)
    for i, q in enumerate(query_vectors):
        started = time.perf_counter()
        theirs(q)
        times[i] = time.perf_counter() - started
    figures["chroma_query"] = percentiles(times)
    figures["chroma_recall"] = recall(chroma_found, truth)
    # Embedding included, taking turns so that both see the same load on the machine.
    ours_embedded, theirs_embedded = [], []
    for text in queries:
        ours_embedded += timed(lambda: memory.search(text, K, min_score=-1.0), [text])  # noqa: B023
        theirs_embedded += timed(lambda: theirs(embedder.embed([text])[0]), [text])  # noqa: B023
    figures["redraft_query_embedded"] = percentiles(ours_embedded)
    figures["chroma_query_embedded"] = percentiles(theirs_embedded)
    client.delete_collection(f"bench-{size}")
    memory.close()
    started = time.perf_counter()
    reopened = CorrectionMemory(path, model=GivenVectors(known))
    figures["redraft_open_s"] = time.perf_counter() - started
    started = time.perf_counter()
    reopened.search_vector(query_vectors[0], K)  # vectors from SQLite, the saved HNSW index
    figures["redraft_cold_query_s"] = time.perf_counter() - started
    reopened.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="store sizes, comma-separated")
    parser.add_argument("--real", type=int, default=10_000, help="real texts to embed")
    parser.add_argument("--queries", type=int, default=500, help="held-out query paragraphs")
    parser.add_argument("--ingest", type=int, default=2000, help="records for real ingest")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    real_count = min(args.real, max(sizes))

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, model {DEFAULT_MODEL}")
    print(f"approximate index (usearch HNSW) from {APPROX_ABOVE} records; exact search below")
    texts = paragraphs(real_count + args.queries)
    held_out, stored = texts[: args.queries], texts[args.queries :]
    print(f"{len(stored)} real texts to store, {len(held_out)} held-out queries")
    embedder = Embedder()
    embedder.embed(["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ingest = measure_ingest(stored[: args.ingest], folder)
        print(f"\ningest, embedding included: {ingest:,.0f} records/s ({args.ingest} real texts)")
        records = [correction(w, t) for w, t in stored]
        started = time.perf_counter()
        real_vectors = embedder.embed([r.key_text for r in records])
        print(
            f"embedding alone: {len(records) / (time.perf_counter() - started):,.0f} texts/s "
            f"({len(records)} texts)"
        )
        queries = [t for _, t in held_out]
        query_vectors = embedder.embed(queries)
        extra = max(sizes) - len(records)
        vectors = real_vectors
        if extra > 0:
            vectors = np.concatenate([real_vectors, synthetic(real_vectors, extra)])
            records += [
                correction(w, t, variant=1 + i // len(stored))
                for i, (w, t) in enumerate(stored[j % len(stored)] for j in range(extra))
            ]
        for size in sizes:
            kind = (
                "real"
                if size <= len(real_vectors)
                else (f"{len(real_vectors)} real + {size - len(real_vectors)} synthetic")
            )
            print(f"\n== {size:,} records ({kind} vectors), top-{K}, {len(queries)} queries ==")
            f = run_size(size, records, vectors, queries, query_vectors, folder, embedder)
            print(f"({f['merged']} near-identical texts merged on ingest, left out of both)")
            print(f"{'':34}{'redraft':>14}{'chromadb':>14}")
            print(
                f"{'ingest, vectors given (rec/s)':34}{f['redraft_ingest']:>14,.0f}"
                f"{f['chroma_ingest']:>14,.0f}"
            )
            for label, key in (
                ("query p50 / p95 (ms)", "query"),
                ("  embedding included", "query_embedded"),
            ):
                ours, theirs = f[f"redraft_{key}"], f[f"chroma_{key}"]
                print(
                    f"{label:34}{ours[0]:>7.2f} /{ours[1]:>5.2f}{theirs[0]:>8.2f} /"
                    f"{theirs[1]:>5.2f}"
                )
            print(
                f"{'recall@5 vs exact search':34}{f['redraft_recall']:>14.3f}"
                f"{f['chroma_recall']:>14.3f}"
            )
            print(
                f"reopened: opening the file (with its integrity check) "
                f"{f['redraft_open_s'] * 1000:.0f} ms, first query (loads the vectors and "
                f"the saved index) {f['redraft_cold_query_s']:.1f} s"
            )
            ratio = f["chroma_query"][0] / f["redraft_query"][0]
            print(f"redraft p50 query is {ratio:.1f}x chromadb's speed")


if __name__ == "__main__":
    main()
