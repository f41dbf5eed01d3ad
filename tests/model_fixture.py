"""Tiny training folders (docs/data-contract.md "Training folder") with a planted signal, for model tests.

Domains: 0 `search_warm` (search, pretrain), 1 `rec_warm` (rec, pretrain), 2 `cards_cold` (rec, coldstart).
Warm domains: a fixed pool of items seen many times; clicks follow a per-item bias that the text does NOT
reveal (ID signal). Cold-start domain: every impression shows a brand-new item (never seen before, in no
other split), and clicks follow the item's text vector (`text_score = t[:4].sum() / 2`): only text transfers.

`write_folders(root)` writes `root/pretrain` (domains 0,1: train/valid), `root/coldstart` (domain 2:
train/valid/test) and `root/joint` (all domains in train; valid = all domains; test = cold-start, new items).

`write_folders(root, behaviour=L)` adds user behaviour (docs/model-api.md): per (user, split, domain) a history of
0..L+2 clicked warm items (some unknown ids, some null lists) and 0..Lq+1 issued queries, the num_beh_* aggregates
and meta.json's "behaviour"; clicks then also follow `behaviour_strength * cos(mean text of the history, candidate
text)`, a signal neither the user id (the history changes with every split) nor the item reveals. It draws from its
own random stream, so the folders without behaviour are exactly as before.
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

    def __init__(self, seed: int, behaviour: int = 0, query_behaviour: int = 0, strength: float = 0.0):
        self.beh_len, self.beh_query_len, self.strength = behaviour, query_behaviour, strength
        self.beh_rng = np.random.default_rng([seed, 7])   # its own stream: the main draws stay as without behaviour
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
        beh = self.behaviour(users, t) if self.beh_len else None
        if beh is not None:
            logit = logit + beh.pop("_logit")
        label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        query = (np.repeat([f"q:{k}" for k in rng.integers(0, N_QUERIES, pages)], PAGE).astype(object)
                 if DOMAINS[domain]["task"] == "search" else np.full(n, None, dtype=object))
        num = rng.normal(size=n) + 0.0 * label
        num[rng.random(n) < 0.2] = np.nan  # missing numeric values are masked, not imputed
        seg = np.array([f"s{u % 4}" for u in users], dtype=object)
        seg[rng.random(n) < 0.1] = None
        frame = pd.DataFrame({
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
        return frame.assign(**beh) if beh is not None else frame

    def behaviour(self, users: np.ndarray, t: np.ndarray) -> dict:
        """Per user of this (split, domain) call a history; the click-logit term it plants; the beh_* columns."""
        rng, n = self.beh_rng, len(users)
        hist: dict[int, tuple] = {}
        for u in np.unique(users):
            k = int(rng.integers(0, self.beh_len + 3))
            items = [f"i:w{j}" for j in rng.integers(0, N_WARM_ITEMS, k)]
            items = [f"i:gone{j}" if rng.random() < 0.1 else it for j, it in enumerate(items)]  # unknown ids
            profile = (np.mean([self.text[i] for i in items if i in self.text], axis=0)
                       if any(i in self.text for i in items) else None)
            queries = [f"q:{j}" for j in rng.integers(0, N_QUERIES, int(rng.integers(0, self.beh_query_len + 2)))]
            null = rng.random() < 0.1   # a null list: no history at all
            hist[int(u)] = (None, None, None, 0) if null else (items, queries, profile, k)
        term = np.zeros(n)
        for r, u in enumerate(users):
            profile = hist[int(u)][2]
            if profile is not None:
                term[r] = self.strength * float(profile @ t[r] / (np.linalg.norm(profile) * np.linalg.norm(t[r])))
        share = rng.random(n)
        share[rng.random(n) < 0.2] = np.nan
        return {
            "_logit": term,
            "beh_item_ids": [hist[int(u)][0] for u in users],
            "beh_query_ids": [hist[int(u)][1] for u in users],
            "num_beh_clicks": np.array([float(hist[int(u)][3]) for u in users]),
            "num_beh_category_share": share,
            "num_beh_domain_share": rng.random(n),
        }


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
    meta = {"domains": DOMAINS, "emb_dim": D, "emb_model": "fixture"}
    if world.beh_len:
        meta["behaviour"] = {"length": world.beh_len, "query_length": world.beh_query_len}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def write_folders(root: str | Path, seed: int = 0, n_warm: int = 2000, n_cold: int = 1500, behaviour: int = 0,
                  query_behaviour: int | None = None, behaviour_strength: float = 4.0) -> dict[str, Path]:
    """Write root/{pretrain,coldstart,joint}; returns their paths. Row counts are per warm/cold domain (train).

    behaviour=L > 0: add behaviour sequences of length L (queries: query_behaviour, default L // 2 + 1) and a click
    signal of weight behaviour_strength on the history (module docstring)."""
    root = Path(root)
    w = _World(seed, behaviour, (behaviour // 2 + 1 if query_behaviour is None else query_behaviour) if behaviour
               else 0, behaviour_strength)
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


class DirectTrainer:
    """The TrainerResource interface (train / finetune), run in-process on tiny settings (4 epochs by default)."""

    def train(self, log, data_dir, out_dir, model, model_kwargs, epochs=0, small_data=False):
        from models.train import TrainConfig, train

        cfg = TrainConfig(model=model, model_kwargs={"hidden": 16, **model_kwargs}, epochs=epochs or 4,
                          batch_size=256, num_threads=1, progress=False, checkpoint_every=0, min_count=1)
        return train(cfg, data_dir, out_dir)

    def finetune(self, log, data_dir, pretrained, out_dir, freeze, epochs=0, init_from="closest", window_days=0.0):
        """`freeze` as the resource takes it, "auto" included (every level, the best on validation)."""
        from models.finetune import FinetuneConfig, finetune

        cfg = FinetuneConfig(freeze=freeze, epochs=epochs or 4, batch_size=256, num_threads=1, progress=False,
                             init_from=init_from, window_days=window_days)
        return finetune(cfg, data_dir, pretrained, out_dir)
