"""Text-embedding stage: output tables, incremental re-runs, null texts, changed texts, the cache."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embeddings.cache import embed_with_cache, text_hash
from embeddings.encoder import TextEncoder
from embeddings.materialize import materialize_text_embeddings
from unisr_data.paths import Paths

CREATED = datetime(2026, 11, 1, tzinfo=timezone.utc)


class CountingEncoder:
    """Wraps the real encoder and records how many texts each encode call received."""

    def __init__(self, encoder):
        self.inner, self.calls = encoder, []
        self.model_id, self.pooling, self.dim = encoder.model_id, encoder.pooling, encoder.dim

    def encode(self, texts, progress=False):
        self.calls.append(len(texts))
        return self.inner.encode(texts, progress=progress)


@pytest.fixture(scope="module")
def real_encoder():
    return TextEncoder(device="cpu", batch_size=16)


def write_raw(paths, items, queries):
    paths.raw_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "item_id": pa.array([i for i, _ in items], pa.string()),
        "text": pa.array([t for _, t in items], pa.string()),
        "category": pa.array(["c"] * len(items), pa.string()),
        "subcategory": pa.array([None] * len(items), pa.string()),
        "created_at": pa.array([CREATED] * len(items), pa.timestamp("us", tz="UTC")),
    }), paths.raw_dir / "items.parquet")
    pq.write_table(pa.table({
        "query_id": pa.array([q for q, _ in queries], pa.string()),
        "text": pa.array([t for _, t in queries], pa.string()),
    }), paths.raw_dir / "queries.parquet")


ITEMS = [(f"i{k}", f"item number {k} with some words") for k in range(12)] + [("i_null", None), ("i_blank", "  ")]
QUERIES = [(f"q{k}", f"query {k}") for k in range(5)] + [("q_dup", "item number 3 with some words")]


def test_first_run_writes_both_tables(tmp_path, real_encoder):
    paths = Paths(tmp_path)
    write_raw(paths, ITEMS, QUERIES)
    stats = materialize_text_embeddings(paths, real_encoder, progress=False)
    assert stats["n_items"] == 12 and stats["n_queries"] == 6 and stats["items_without_text"] == 2
    assert stats["embedded"] == 17 and stats["cache_hits"] == 0  # q_dup's text equals item 3's: embedded once
    assert stats["dim"] == 384 and stats["model"] == real_encoder.model_id

    items = pq.read_table(paths.embeddings_dir / "item_text_emb.parquet")
    assert items.schema.field("embedding").type == pa.list_(pa.float32())
    assert items.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert set(items["item_id"].to_pylist()) == {f"i{k}" for k in range(12)}  # null and blank texts: no row
    assert items["text_hash"][0].as_py() == text_hash("item number 0 with some words")
    assert items["event_timestamp"][0].as_py() == CREATED
    vectors = np.array(items["embedding"].to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors[0], real_encoder.encode(["item number 0 with some words"])[0], atol=1e-5)

    queries = pq.read_table(paths.embeddings_dir / "query_text_emb.parquet")
    assert queries["event_timestamp"][0].as_py() == datetime(1970, 1, 1, tzinfo=timezone.utc)
    q_dup = queries.filter(pa.compute.equal(queries["query_id"], "q_dup"))["embedding"][0].as_py()
    np.testing.assert_allclose(q_dup, vectors[3], atol=1e-6)


def test_rerun_embeds_nothing_and_new_items_cost_only_themselves(tmp_path, real_encoder):
    paths = Paths(tmp_path)
    write_raw(paths, ITEMS, QUERIES)
    encoder = CountingEncoder(real_encoder)
    materialize_text_embeddings(paths, encoder, progress=False)
    before = pq.read_table(paths.embeddings_dir / "item_text_emb.parquet")

    again = materialize_text_embeddings(paths, encoder, progress=False)
    assert again["embedded"] == 0 and again["cache_hits"] == 17 and encoder.calls == [17]
    assert pq.read_table(paths.embeddings_dir / "item_text_emb.parquet").equals(before)

    new_items = [("n1", "brand new gadget"), ("n2", "fresh arrival sofa"), ("n3", "new season jacket")]
    write_raw(paths, ITEMS + new_items, QUERIES)
    grown = materialize_text_embeddings(paths, encoder, progress=False)
    assert grown["embedded"] == 3 and encoder.calls[-1] == 3 and grown["n_items"] == 15


def test_changed_text_is_reembedded(tmp_path, real_encoder):
    paths = Paths(tmp_path)
    write_raw(paths, ITEMS, QUERIES)
    encoder = CountingEncoder(real_encoder)
    materialize_text_embeddings(paths, encoder, progress=False)
    old = pq.read_table(paths.embeddings_dir / "item_text_emb.parquet").to_pandas().set_index("item_id")

    changed = [(i, "a completely different description") if i == "i5" else (i, t) for i, t in ITEMS]
    write_raw(paths, changed, QUERIES)
    stats = materialize_text_embeddings(paths, encoder, progress=False)
    assert stats["embedded"] == 1 and encoder.calls[-1] == 1
    new = pq.read_table(paths.embeddings_dir / "item_text_emb.parquet").to_pandas().set_index("item_id")
    assert new.loc["i5", "text_hash"] == text_hash("a completely different description") != old.loc["i5", "text_hash"]
    assert float(np.dot(new.loc["i5", "embedding"], old.loc["i5", "embedding"])) < 0.95
    np.testing.assert_allclose(new.loc["i4", "embedding"], old.loc["i4", "embedding"])


def test_embed_with_cache_dedups_and_keys_by_model(tmp_path, real_encoder):
    encoder = CountingEncoder(real_encoder)
    texts = ["red shoes", "blue hat", "red shoes", "green scarf", "blue hat"]
    vectors, stats = embed_with_cache(encoder, texts, tmp_path)
    assert stats == {**stats, "n": 5, "unique": 3, "embedded": 3, "cache_hits": 0} and encoder.calls == [3]
    np.testing.assert_array_equal(vectors[0], vectors[2])
    again, stats = embed_with_cache(encoder, texts + ["purple gloves"], tmp_path)
    assert stats["embedded"] == 1 and stats["cache_hits"] == 3
    np.testing.assert_allclose(again[:5], vectors, atol=0)

    other = CountingEncoder(real_encoder)
    other.model_id = real_encoder.model_id + "|other"  # another model must not reuse these vectors
    _, stats = embed_with_cache(other, texts, tmp_path)
    assert stats["embedded"] == 3


def test_missing_raw_table_says_what_to_run(tmp_path, real_encoder):
    with pytest.raises(FileNotFoundError, match="items.parquet"):
        materialize_text_embeddings(Paths(tmp_path), real_encoder, progress=False)
