"""User-behaviour columns of a sample or ranking frame: the sequences the models read, and the per-row numerics
derived from the snapshot and the candidate (the same code for training folders and for `rank()`).

A frame carries the `user_behaviour` view's features (features.definitions.BEHAVIOUR_FEATURES) as lists, one per
row (None = the user has no snapshot: no behaviour before the row's day). `behaviour_columns` turns them into:
- `beh_item_ids`, `beh_query_ids`: list<string>, most recent first (never null: empty lists);
- `num_beh_clicks`: the user's clicks before the row's day (0 without a snapshot);
- `num_beh_category_share`: share of the user's clicks of the last `feature_window_days` whose item category is the
  candidate's (`cat_item_category`); missing (NaN, masked by the models) when the window holds no click;
- `num_beh_domain_share`: share of those clicks made in the row's domain; missing likewise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

SEQUENCE_COLUMNS = ("beh_item_ids", "beh_query_ids")
NUMERIC_COLUMNS = ("num_beh_clicks", "num_beh_category_share", "num_beh_domain_share")


def _lists(values, value_type: pa.DataType, n: int) -> pa.ListArray:
    """A column of lists (numpy arrays, lists or None) as a list array with nulls replaced by empty lists."""
    if values is None:
        return pa.array([[]] * n, pa.list_(value_type))
    array = pa.array(list(values) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values,
                     pa.list_(value_type), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pc.fill_null(array, pa.scalar([], pa.list_(value_type)))


def _share(keys: pa.ListArray, counts: pa.ListArray, wanted: np.ndarray) -> np.ndarray:
    """Per row: Σ counts where key == wanted[row] / Σ counts; NaN where the row's counts sum to 0."""
    n = len(keys)
    parents = pc.list_parent_indices(keys).to_numpy()
    flat_keys = pc.list_flatten(keys).to_numpy(zero_copy_only=False)
    flat_counts = pc.list_flatten(counts).to_numpy(zero_copy_only=False).astype(np.float64)
    if len(flat_keys) != len(flat_counts):
        raise ValueError("behaviour key and count lists differ in length")
    total = np.bincount(parents, weights=flat_counts, minlength=n)
    hit = flat_keys == np.asarray(wanted, dtype=object)[parents] if len(parents) else np.zeros(0, bool)
    matched = np.bincount(parents, weights=flat_counts * hit, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, matched / np.where(total > 0, total, 1.0), np.nan)


def behaviour_columns(frame: pd.DataFrame) -> dict[str, object]:
    """The model-facing behaviour columns of `frame` (see the module docstring), row-aligned with it."""
    n = len(frame)

    def get(name):
        return frame[name] if name in frame else None

    out: dict[str, object] = {
        name: _lists(get(name), pa.string(), n) for name in SEQUENCE_COLUMNS
    }
    clicks = get("beh_clicks")
    out["num_beh_clicks"] = (np.zeros(n) if clicks is None
                             else pd.to_numeric(clicks.astype("object"), errors="coerce").fillna(0).to_numpy(float))
    category = (frame["cat_item_category"].astype(object).where(frame["cat_item_category"].notna(), None).to_numpy()
                if "cat_item_category" in frame else np.full(n, None, dtype=object))
    out["num_beh_category_share"] = _share(_lists(get("beh_categories"), pa.string(), n),
                                           _lists(get("beh_category_clicks"), pa.int64(), n), category)
    out["num_beh_domain_share"] = _share(_lists(get("beh_domains"), pa.int64(), n),
                                         _lists(get("beh_domain_clicks"), pa.int64(), n),
                                         frame["domain_id"].to_numpy().astype(np.int64) if "domain_id" in frame
                                         else np.full(n, -1, np.int64))
    return out
