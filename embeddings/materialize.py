"""The text-embedding stage: raw items/queries -> item_text_emb.parquet / query_text_emb.parquet, incremental by
text."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embeddings.cache import embed_with_cache, embedding_array, text_hash
from embeddings.training_vectors import training_vectors
from unisr_data.paths import Paths

# queries have no creation time: stamping them at the epoch makes them valid in every point-in-time join
QUERY_EVENT_TIMESTAMP = np.datetime64("1970-01-01T00:00:00", "us")
TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")


def embedding_schema(id_column: str) -> pa.Schema:
    return pa.schema([(id_column, pa.string()), ("embedding", pa.list_(pa.float32())), ("text_hash", pa.string()),
                      ("event_timestamp", TIMESTAMP_UTC)])


def _read(path: Path, columns: list[str]) -> pa.Table:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run ingest (raw tables) before the text embeddings")
    table = pq.read_table(path)
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise ValueError(f"{path} has no column(s) {absent}: it does not follow docs/data-contract.md")
    return table.select(columns)


def _with_text(table: pa.Table) -> tuple[pa.Table, int]:
    """Rows whose text is non-null and not blank, and how many were dropped (those get no embedding row)."""
    has_text = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(table["text"])), 0), False)
    kept = table.filter(has_text)
    return kept, table.num_rows - kept.num_rows


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)  # readers see the old table or the new one, never half of one


def _embedding_table(id_column: str, ids: pa.Array, texts: list[str], vectors: np.ndarray, timestamps) -> pa.Table:
    return pa.Table.from_arrays(
        [ids.cast(pa.string()), embedding_array(vectors), pa.array([text_hash(t) for t in texts], pa.string()),
         timestamps.cast(TIMESTAMP_UTC)],
        schema=embedding_schema(id_column),
    )


def materialize_text_embeddings(paths: Paths, encoder, progress: bool = True,
                                cache_dir: str | Path | None = None) -> dict:
    """Write item_text_emb.parquet and query_text_emb.parquet under paths.embeddings_dir; embeds only unseen texts."""
    started = time.perf_counter()
    items, items_without_text = _with_text(_read(paths.raw_dir / "items.parquet", ["item_id", "text", "created_at"]))
    queries, queries_without_text = _with_text(_read(paths.raw_dir / "queries.parquet", ["query_id", "text"]))
    item_texts, query_texts = items["text"].to_pylist(), queries["text"].to_pylist()
    # one encode call for both tables: fuller, better length-sorted batches
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.embeddings_dir / "cache"
    vectors, cache_stats = embed_with_cache(encoder, item_texts + query_texts, cache_dir, progress=progress)
    item_table = _embedding_table("item_id", items["item_id"].combine_chunks(), item_texts,
                                  vectors[: len(item_texts)], items["created_at"].combine_chunks())
    epoch = pa.array(np.full(len(query_texts), QUERY_EVENT_TIMESTAMP), pa.timestamp("us"))
    query_table = _embedding_table("query_id", queries["query_id"].combine_chunks(), query_texts,
                                   vectors[len(item_texts):], epoch)
    for table, key, stem in ((item_table, "item_id", "item_text_emb"), (query_table, "query_id", "query_text_emb")):
        _write_atomic(table, paths.embeddings_dir / f"{stem}.parquet")
        training_vectors(paths.embeddings_dir / f"{stem}.parquet", key, table)  # what the training folders link
    seconds = time.perf_counter() - started
    return {
        "model": encoder.model_id, "dim": int(encoder.dim),
        "n_items": item_table.num_rows, "n_queries": query_table.num_rows,
        "items_without_text": int(items_without_text), "queries_without_text": int(queries_without_text),
        "embedded": cache_stats["embedded"], "cache_hits": cache_stats["cache_hits"],
        "seconds": round(seconds, 3),
        "texts_per_s": (round(cache_stats["embedded"] / cache_stats["embed_seconds"], 1)
                        if cache_stats["embed_seconds"] else 0.0),
    }
