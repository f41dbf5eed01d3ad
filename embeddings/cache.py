"""Content-keyed vector cache: parquet parts of (key, embedding) under a folder, one subfolder per model."""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# past this many part files a run compacts them into one, so lookups stay one or two file reads
MAX_PARTS = 16


def dtype_name(dtype) -> str:
    """"float32", "bfloat16", ... for a torch dtype or its name ("torch.bfloat16", "bf16" stay as given)."""
    return str(dtype).removeprefix("torch.")


def text_key(model_id: str, pooling: str, text: str, dtype: str = "float32") -> str:
    """sha256 hex of (model_id, pooling, text, compute dtype): the identity of one cached vector.

    The dtype the encoder ran in is part of it: bf16 vectors (GPU default) differ from float32 ones (CPU default)
    and must not be served for each other. float32 keeps the key it had before dtypes were keyed, so existing
    caches stay valid.
    """
    dtype = dtype_name(dtype)
    suffix = "" if dtype == "float32" else f"\x1fdtype={dtype}"
    return hashlib.sha256(f"{model_id}\x1f{pooling}\x1f{text}{suffix}".encode("utf-8", "surrogatepass")).hexdigest()


def text_hash(text: str) -> str:
    """sha256 hex of the text alone (the `text_hash` column of the embedding tables)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def embedding_array(vectors: np.ndarray) -> pa.ListArray:
    """[N, D] float32 -> arrow list<float32> (each row length D), without a Python loop."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))


def embedding_matrix(column: pa.ChunkedArray | pa.Array, dim: int | None = None) -> np.ndarray:
    """arrow list<float32> with equal-length rows -> [N, D] float32."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32()))
    n = len(column)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    width = dim if dim is not None else (len(values) // n if n else 0)
    if n and len(values) != n * width:
        raise ValueError(f"embedding rows are not all {width} long: the cache or table was written by another model")
    return values.reshape(n, width)


class EmbeddingCache:
    """All vectors one encoder (model_id) has produced, stored as append-only parquet parts."""

    def __init__(self, cache_dir: str | Path, model_id: str):
        self.folder = Path(cache_dir) / hashlib.sha256(model_id.encode()).hexdigest()[:16]
        self.model_id = model_id

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []

    def lookup(self, keys: list[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(found [K] bool, vectors [K, dim] float32; rows where found is False are garbage) for unique keys."""
        found = np.zeros(len(keys), dtype=bool)
        vectors = np.empty((len(keys), dim), dtype=np.float32)
        if not keys:
            return found, vectors
        wanted = pa.array(keys, pa.string())
        for part in reversed(self.parts()):  # newest first: a key stored twice takes its latest vector
            where = pc.index_in(wanted, value_set=pq.read_table(part, columns=["key"])["key"])
            where = where.fill_null(-1).to_numpy(zero_copy_only=False)
            take = np.flatnonzero((where >= 0) & ~found)
            if not len(take):
                continue  # read the vectors only from parts that hold something we need
            matrix = embedding_matrix(pq.read_table(part, columns=["embedding"])["embedding"])
            if matrix.shape[1] != dim:
                raise ValueError(f"cache part {part} holds {matrix.shape[1]}-dim vectors, the encoder gives {dim}: "
                                 f"delete {self.folder}")
            if not found.any():  # first part with hits (the usual re-run): one gather, no scatter; misses get garbage
                np.take(matrix, np.maximum(where, 0), axis=0, out=vectors)
            else:
                vectors[take] = matrix[where[take]]
            found[take] = True
            if found.all():
                break
        return found, vectors

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        """Append one part with these (key, vector) rows, atomically; compacts when there are too many parts."""
        if not keys:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({"key": pa.array(keys, pa.string()), "embedding": embedding_array(vectors)})
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        _write_atomic(table, self.folder / name)
        parts = self.parts()
        if len(parts) > MAX_PARTS:
            merged = pa.concat_tables([pq.read_table(p) for p in parts])
            _write_atomic(merged, self.folder / f"part-{time.time_ns():020d}-compacted.parquet")
            for part in parts:
                part.unlink(missing_ok=True)


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    # random hex keys and float vectors do not compress: skipping it makes reads and writes several times faster
    pq.write_table(table, tmp, compression="none", use_dictionary=False)
    os.replace(tmp, path)


def embed_with_cache(encoder, texts: list[str], cache_dir: str | Path,
                     progress: bool = False) -> tuple[np.ndarray, dict]:
    """[N, D] float32 vectors for `texts`, embedding only unique texts missing from the cache; stats count unique
    texts."""
    started = time.perf_counter()
    texts = list(texts)
    unique_texts = list(dict.fromkeys(texts))  # duplicates are embedded once
    dtype = dtype_name(getattr(encoder, "dtype", "float32"))  # encoders without a dtype attribute compute in float32
    keys = [text_key(encoder.model_id, encoder.pooling, t, dtype) for t in unique_texts]
    cache = EmbeddingCache(cache_dir, encoder.model_id)
    found, unique_vectors = cache.lookup(keys, encoder.dim)
    missing = np.flatnonzero(~found)
    embed_seconds = 0.0
    if len(missing):
        t0 = time.perf_counter()
        new_vectors = encoder.encode([unique_texts[i] for i in missing], progress=progress)
        embed_seconds = time.perf_counter() - t0
        unique_vectors[missing] = new_vectors
        cache.add([keys[i] for i in missing], new_vectors)
    if len(unique_texts) == len(texts):
        vectors = unique_vectors  # no duplicates: already in input order, skip a copy of the whole matrix
    else:
        slot = {text: i for i, text in enumerate(unique_texts)}
        vectors = unique_vectors[[slot[t] for t in texts]]
    stats = {
        "n": len(texts), "unique": len(unique_texts), "embedded": int(len(missing)),
        "cache_hits": int(found.sum()), "embed_seconds": embed_seconds,
        "seconds": time.perf_counter() - started,
    }
    return vectors, stats
