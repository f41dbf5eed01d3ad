"""Latency of the ranking read: 100 candidates with 384-dim text vectors from the SQLite online store."""
from __future__ import annotations

import numpy as np

from feature_fixture import write_feature_fixture
from features.online import OnlineFeatureReader
from features.store import apply, feature_store, materialize
from unisr_data.paths import Paths

CANDIDATES = 100
EMB_DIM = 384


def test_ranking_read_agrees_with_the_feast_sdk(tmp_path):
    """The direct read (the ranking path) returns what Feast's own online read returns; latency lives in benchmarks/."""
    fx = write_feature_fixture(Paths(tmp_path, "fx"), n_users=20, n_items=400, n_days=2, emb_dim=EMB_DIM)
    store = feature_store(fx.paths)
    apply(store, fx.paths)
    materialize(store, end=fx.end)
    reader = OnlineFeatureReader(store)
    candidates = fx.items[:CANDIDATES - 2] + ["i:unknown0", "i:unknown1"]
    got = reader.read("u:3", candidates, query_id="q:1")
    assert got.item_emb.shape == (CANDIDATES, EMB_DIM)
    sdk = store.get_online_features(
        features=["item_text_embedding:item_text_emb", "item_features:item_ctr_7d"],
        entity_rows=[{"item_id": i} for i in candidates],
    ).to_dict()
    expected_ctr = np.array([np.nan if v is None else v for v in sdk["item_ctr_7d"]], dtype=float)
    np.testing.assert_allclose(got.frame["num_item_ctr_7d"].to_numpy(dtype=float), expected_ctr, equal_nan=True)
    expected_emb = np.array([np.zeros(EMB_DIM) if v is None else v for v in sdk["item_text_emb"]], dtype=np.float32)
    np.testing.assert_allclose(got.item_emb, expected_emb, rtol=1e-6)
    assert list(got.known_items[-2:]) == [False, False]
