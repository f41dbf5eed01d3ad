"""`Vocabularies.encode` for small ranking frames through dict lookups: the same indices, a fraction of the time.

The checkpoint's `Vocabularies.encode` spends ~3 ms on a 100-row frame in pandas per-column overhead, half of a
ranking request; plain dict lookups over the object columns take ~0.3 ms. Anything that is not an object column
of strings/None goes through the original, so the indices stay identical (tests/test_serving_ranker.py checks).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.vocab import ID_COLUMNS, Vocab, Vocabularies


def _lookup(vocab: Vocab, mapping: dict[str, int], column: pd.Series) -> np.ndarray:
    if column.dtype != object:
        return vocab.encode(column)  # ints, categoricals, pandas strings: the original's conversion rules
    indices = []
    for v in column.to_numpy():
        if isinstance(v, str):
            indices.append(mapping.get(v, 0))
        elif v is None or v != v:  # None or NaN: missing
            indices.append(0)
        else:  # e.g. an int in an object column: the original matches its str()
            return vocab.encode(column)
    return np.array(indices, dtype=np.int64)

class DictVocabularies:
    """Wraps a checkpoint's Vocabularies; `encode` is dict-based, every other attribute is the original's."""

    def __init__(self, vocab: Vocabularies):
        self._vocab = vocab
        self._ids = {k: (getattr(vocab, k), {v: i + 1 for i, v in enumerate(getattr(vocab, k).values)})
                     for k in ID_COLUMNS}
        self._cats = [(c, v, {s: i + 1 for i, s in enumerate(v.values)}) for c, v in zip(vocab.cat_columns, vocab.cat)]

    def __getattr__(self, name: str):
        return getattr(self._vocab, name)

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Same contract as Vocabularies.encode: ids [N], cat [N, F_cat] int64, num / num_mask [N, F_num] float32."""
        n, vocab = len(frame), self._vocab
        out = {k: (_lookup(v, m, frame[ID_COLUMNS[k]]) if ID_COLUMNS[k] in frame else np.zeros(n, np.int64))
               for k, (v, m) in self._ids.items()}
        cat = np.zeros((n, len(self._cats)), dtype=np.int64)
        for j, (c, v, m) in enumerate(self._cats):
            if c in frame:
                cat[:, j] = _lookup(v, m, frame[c])
        num = np.full((n, len(vocab.num_columns)), np.nan)
        for j, c in enumerate(vocab.num_columns):
            if c in frame:
                num[:, j] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        mask = ~np.isnan(num)
        num = np.where(mask, (num - vocab.num_mean) / vocab.num_std, 0.0)
        out.update(cat=cat, num=num.astype(np.float32), num_mask=mask.astype(np.float32))
        return out
