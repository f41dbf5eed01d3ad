"""A training folder where a small domain inverts the majority's user-topic affinity (like the synthetic generator's
rec_coupons, `affinity_weight` -0.4) and has its own topic shift, with users and items seen a few dozen times.

Domains: 0 `major` (90 % of rows, clicks rise with the user's affinity to the item's topic), 1 `inverted` (10 %,
clicks fall with it). `cat_item_subcategory` is the topic, item texts are noisy topic vectors. Valid is the last
20,000 rows. `write_folder(root)` returns the valid frame with the true click probability (`truth`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TOPICS, D = 8, 8
DOMAINS = [{"domain_id": 0, "name": "major", "task": "rec", "role": "pretrain"},
           {"domain_id": 1, "name": "inverted", "task": "rec", "role": "pretrain"}]


def write_folder(root: str | Path, seed: int = 0, n_users: int = 1500, n_items: int = 1000, n_train: int = 24_000,
                 n_valid: int = 20_000, inverted_share: float = 0.1, weight=(1.0, -0.6)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pref = rng.dirichlet(np.full(TOPICS, 0.3), n_users)
    affinity = 2.0 * (np.sqrt(TOPICS * pref) - 1)
    topic = rng.integers(0, TOPICS, n_items)
    quality = rng.normal(0, 0.3, n_items)
    shift = rng.normal(0, 0.6, (2, TOPICS))
    text = (np.eye(TOPICS)[topic] @ rng.normal(size=(TOPICS, D)) + 0.5 * rng.normal(size=(n_items, D)))
    n = n_train + n_valid
    domain = (rng.random(n) < inverted_share).astype(np.int64)
    user = np.minimum((n_users * rng.random(n) ** 1.3).astype(np.int64), n_users - 1)
    # half the candidates come from a topic the user likes (retrieval), half at random
    liked = np.array([rng.choice(TOPICS, p=pref[u]) for u in user])
    by_topic = [np.flatnonzero(topic == t) for t in range(TOPICS)]
    item = np.where(rng.random(n) < 0.5, [rng.choice(by_topic[t]) for t in liked], rng.integers(0, n_items, n))
    t = topic[item]
    prob = 1 / (1 + np.exp(-(-1.5 + np.array(weight)[domain] * affinity[user, t] + shift[domain, t] + quality[item])))
    frame = pd.DataFrame({
        "impression_id": [f"i{k}" for k in range(n)], "domain_id": domain.astype(np.int32),
        "user_id": [f"u{u}" for u in user], "item_id": [f"it{i}" for i in item], "query_id": None,
        "request_id": [f"r{k // 5}" for k in range(n)], "label": (rng.random(n) < prob).astype(np.int8),
        "cat_item_subcategory": [f"t{x}" for x in t],
    })
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", frame.iloc[:n_train]), ("valid", frame.iloc[n_train:])):
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, root / f"{name}.parquet")
    pq.write_table(pa.table({"item_id": [f"it{i}" for i in range(n_items)],
                             "embedding": pa.array(text.astype(np.float32).tolist(), type=pa.list_(pa.float32()))}),
                   root / "item_text_emb.parquet")
    pq.write_table(pa.table({"query_id": pa.array([], pa.string()), "embedding": pa.array([], pa.list_(pa.float32()))}),
                   root / "query_text_emb.parquet")
    (root / "meta.json").write_text(json.dumps({"domains": DOMAINS, "emb_dim": D}))
    return frame.iloc[n_train:].assign(truth=prob[n_train:])
