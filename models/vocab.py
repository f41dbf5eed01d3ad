"""Vocabularies (string value -> index, 0 = OOV/missing) and numeric standardisation stats, saved in checkpoints."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

ID_COLUMNS = {"user": "user_id", "item": "item_id", "query": "query_id"}


class Vocab:
    """Values seen >= min_count times; index = position + 1, 0 = unseen or missing (the OOV bucket)."""

    def __init__(self, values: list[str]):
        self.values = [str(v) for v in values]
        self._index = pd.Index(self.values, dtype=object)  # built once: lookups are one hash probe per value

    @classmethod
    def build(cls, column: pd.Series, min_count: int = 1) -> "Vocab":
        """From a training column; values sorted by descending count then value, so the order is deterministic."""
        counts = column.dropna().astype(str).value_counts()
        counts = counts[counts >= min_count]
        keys = counts.index.to_numpy(dtype=object)
        order = np.lexsort((keys.astype(str), -counts.to_numpy()))   # count desc, then value
        return cls(keys[order].tolist())

    def __len__(self) -> int:
        """Embedding rows needed: values + the OOV row."""
        return len(self.values) + 1

    def encode(self, column) -> np.ndarray:
        """Values [N] (strings, None/NaN for missing) -> int64 indices [N], 0 where unseen or missing."""
        col = pd.Series(column, copy=False)
        if not (col.dtype == object or isinstance(col.dtype, pd.StringDtype)):
            col = col.astype(object).where(col.isna(), col.astype(str))  # ints/categoricals: match their text
        keys = col.astype(object).where(col.notna(), None)
        return (self._index.get_indexer(keys) + 1).astype(np.int64)


@dataclass
class Vocabularies:
    """Everything needed to turn a sample frame into model indices: id/categorical vocabs and numeric stats."""

    user: Vocab
    item: Vocab
    query: Vocab
    cat_columns: list[str]
    cat: list[Vocab]
    num_columns: list[str]
    num_mean: np.ndarray          # [F_num] float64
    num_std: np.ndarray           # [F_num] float64, 1 where a column is constant
    min_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, train: pd.DataFrame, min_count: int = 1) -> "Vocabularies":
        """From the train split: id/cat values with >= min_count rows; mean/std of non-null numeric values."""
        cat_cols = sorted(c for c in train.columns if c.startswith("cat_"))
        num_cols = sorted(c for c in train.columns if c.startswith("num_"))
        nums = train[num_cols].astype("float64") if num_cols else pd.DataFrame(index=train.index)
        mean = nums.mean().fillna(0.0).to_numpy() if num_cols else np.zeros(0)
        std = nums.std(ddof=0).fillna(0.0).to_numpy() if num_cols else np.zeros(0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(
            user=Vocab.build(train["user_id"], min_count), item=Vocab.build(train["item_id"], min_count),
            query=Vocab.build(train["query_id"], min_count) if "query_id" in train else Vocab([]),
            cat_columns=cat_cols, cat=[Vocab.build(train[c], min_count) for c in cat_cols],
            num_columns=num_cols, num_mean=mean, num_std=std, min_count=min_count,
        )

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Sample frame -> user/item/query [N] int64, cat [N, F_cat] int64, num / num_mask [N, F_num] float32.

        Columns absent from the frame count as missing everywhere (serving frames may lack a feature).
        """
        n = len(frame)
        out = {k: (v.encode(frame[ID_COLUMNS[k]]) if ID_COLUMNS[k] in frame else np.zeros(n, np.int64))
               for k, v in (("user", self.user), ("item", self.item), ("query", self.query))}
        cat = np.zeros((n, len(self.cat_columns)), dtype=np.int64)
        for j, (c, v) in enumerate(zip(self.cat_columns, self.cat)):
            if c in frame:
                cat[:, j] = v.encode(frame[c])
        num = np.full((n, len(self.num_columns)), np.nan)
        present = [j for j, c in enumerate(self.num_columns) if c in frame]
        if present:
            num[:, present] = frame[[self.num_columns[j] for j in present]].astype("float64").to_numpy()
        mask = ~np.isnan(num)
        num = np.where(mask, (num - self.num_mean) / self.num_std, 0.0)
        out.update(cat=cat, num=num.astype(np.float32), num_mask=mask.astype(np.float32))
        return out

    def sizes(self) -> dict[str, Any]:
        """Embedding sizes for the FeatureSpec: n_users, n_items, n_queries, cat_cardinalities, n_num."""
        return {"n_users": len(self.user), "n_items": len(self.item), "n_queries": len(self.query),
                "cat_cardinalities": [len(v) for v in self.cat], "n_num": len(self.num_columns)}

    def to_dict(self) -> dict[str, Any]:
        """Plain lists/floats (safe for torch.load(weights_only=True))."""
        return {"user": self.user.values, "item": self.item.values, "query": self.query.values,
                "cat_columns": list(self.cat_columns), "cat": [v.values for v in self.cat],
                "num_columns": list(self.num_columns), "num_mean": [float(x) for x in self.num_mean],
                "num_std": [float(x) for x in self.num_std], "min_count": self.min_count, "extra": self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Vocabularies":
        """Inverse of to_dict."""
        return cls(user=Vocab(d["user"]), item=Vocab(d["item"]), query=Vocab(d["query"]),
                   cat_columns=list(d["cat_columns"]), cat=[Vocab(v) for v in d["cat"]],
                   num_columns=list(d["num_columns"]), num_mean=np.asarray(d["num_mean"], dtype=np.float64),
                   num_std=np.asarray(d["num_std"], dtype=np.float64), min_count=int(d.get("min_count", 1)),
                   extra=dict(d.get("extra", {})))
