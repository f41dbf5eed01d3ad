"""Tiny training folders (docs/data-contract.md "Training folder") with a planted signal, for model tests.

Domains: 0 `search_warm` (search, pretrain), 1 `rec_warm` (rec, pretrain), 2 `cards_cold` (rec, coldstart).
Warm domains: a fixed pool of items seen many times; clicks follow a per-item bias that the text does NOT
reveal (ID signal). Cold-start domain: every impression shows a brand-new item (never seen before, in no
other split), and clicks follow the item's text vector (`text_score = t[:4].sum() / 2`): only text transfers.

`write_folders(root)` writes `root/pretrain` (domains 0,1: train/valid), `root/coldstart` (domain 2:
train/valid/test) and `root/joint` (all domains in train; valid = all domains; test = cold-start, new items).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

D = 16
DOMAINS = [
    {"domain_id": 0, "name": "search_warm", "task": "search", "role": "pretrain"},
    {"domain_id": 1, "name": "rec_warm", "task": "rec", "role": "pretrain"},
    {"domain_id": 2, "name": "cards_cold", "task": "rec", "role": "coldstart"},
]
N_WARM_ITEMS, N_USERS, N_QUERIES, PAGE = 120, 150, 20, 5


class _World:
    """The latent truth: item text vectors, item id biases, users, queries."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.text: dict[str, np.ndarray] = {}
        self.bias: dict[str, float] = {}
        for k in range(N_WARM_ITEMS):
            self.text[f"i:w{k}"] = self.rng.normal(size=D).astype(np.float32)
            self.bias[f"i:w{k}"] = float(self.rng.normal())
        self.query_text = {f"q:{k}": self.rng.normal(size=D).astype(np.float32) for k in range(N_QUERIES)}
        self.n_cold = 0

    @staticmethod
    def text_score(t: np.ndarray) -> np.ndarray:
        return t[..., :4].sum(-1) / 2.0

    def rows(self, domain: int, n: int, split: str, day: int) -> pd.DataFrame:
        rng = self.rng
        n = n - n % PAGE
        pages = n // PAGE
        users = np.repeat(rng.integers(0, N_USERS, pages), PAGE)
        if domain == 2:
            items = [f"i:c{self.n_cold + k}" for k in range(n)]  # every impression a brand-new item
            self.n_cold += n
            for it in items:
                self.text[it] = rng.normal(size=D).astype(np.float32)
            t = np.stack([self.text[it] for it in items])
            logit = -1.0 + 2.5 * self.text_score(t)
        else:
            items = [f"i:w{k}" for k in rng.integers(0, N_WARM_ITEMS, n)]
            t = np.stack([self.text[it] for it in items])
            logit = -1.0 + 2.0 * np.array([self.bias[it] for it in items]) + 1.0 * self.text_score(t)
        label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        query = (np.repeat([f"q:{k}" for k in rng.integers(0, N_QUERIES, pages)], PAGE).astype(object)
                 if DOMAINS[domain]["task"] == "search" else np.full(n, None, dtype=object))
        num = rng.normal(size=n) + 0.0 * label
        num[rng.random(n) < 0.2] = np.nan  # missing numeric values are masked, not imputed
        seg = np.array([f"s{u % 4}" for u in users], dtype=object)
        seg[rng.random(n) < 0.1] = None
        return pd.DataFrame({
            "impression_id": [f"{split}:{domain}:{self.n_cold}:{k}" for k in range(n)],
            "event_timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(day, unit="D"),
            "domain_id": np.full(n, domain, np.int32),
            "user_id": [f"u:{u}" for u in users],
            "item_id": items,
            "query_id": query,
            "request_id": [f"r:{split}:{domain}:{self.n_cold}:{p}" for p in np.repeat(np.arange(pages), PAGE)],
            "position": np.tile(np.arange(PAGE), pages).astype(np.int32),
            "label": label,
            "is_new_item": np.full(n, domain == 2),
            "cat_user_segment": seg,
            "num_user_activity": num,
        })


def _write(folder: Path, splits: dict[str, pd.DataFrame], world: _World) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        pq.write_table(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False),
                       folder / f"{name}.parquet")
    # Every 10th warm item has no text: the model must use its learned "no text" vector there.
    items = [k for k in world.text if not (k.startswith("i:w") and int(k[3:]) % 10 == 0)]
    for path, key, ids, table in ((folder / "item_text_emb.parquet", "item_id", items, world.text),
                                  (folder / "query_text_emb.parquet", "query_id", list(world.query_text),
                                   world.query_text)):
        emb = pa.array([table[i].tolist() for i in ids], type=pa.list_(pa.float32()))
        pq.write_table(pa.table({key: pa.array(ids, pa.string()), "embedding": emb}), path)
    (folder / "meta.json").write_text(json.dumps({"domains": DOMAINS, "emb_dim": D, "emb_model": "fixture"}))
    return folder


def write_folders(root: str | Path, seed: int = 0, n_warm: int = 2000, n_cold: int = 1500) -> dict[str, Path]:
    """Write root/{pretrain,coldstart,joint}; returns their paths. Row counts are per warm/cold domain (train)."""
    root = Path(root)
    w = _World(seed)
    pre_train = pd.concat([w.rows(0, n_warm, "train", 0), w.rows(1, n_warm, "train", 0)])
    pre_valid = pd.concat([w.rows(0, n_warm // 4, "valid", 1), w.rows(1, n_warm // 4, "valid", 1)])
    cold = {s: w.rows(2, n, s, day) for s, n, day in (("train", n_cold, 0), ("valid", n_cold // 3, 1),
                                                      ("test", n_cold // 3, 2))}
    for f in (pre_train, pre_valid):
        f["is_new_item"] = False
    out = {
        "pretrain": _write(root / "pretrain", {"train": pre_train, "valid": pre_valid}, w),
        "coldstart": _write(root / "coldstart", cold, w),
        "joint": _write(root / "joint", {"train": pd.concat([pre_train, cold["train"]]),
                                         "valid": pd.concat([pre_valid, cold["valid"]]), "test": cold["test"]}, w),
    }
    return out
