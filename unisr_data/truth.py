"""The evaluation-only ground truth of synthetic data: each impression's true click probability.

The synthetic generator writes it beside (never inside) the source folder; only evaluation reads it, to show
the Bayes-optimal AUC ceiling and each model's share of the achievable lift. Real datasets have none.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

TABLE = "click_probability"


def has_truth(truth_dir: Path) -> bool:
    return any((Path(truth_dir) / TABLE).glob("part-*.parquet"))


def click_probability(truth_dir: Path, impression_ids) -> np.ndarray | None:
    """True click probability [N] for `impression_ids` (NaN where unknown), or None when there is no truth."""
    if not has_truth(truth_dir):
        return None
    ids = np.asarray(impression_ids, dtype=object)
    with duckdb.connect() as con:
        con.register("wanted", _id_table(ids))
        found = con.execute(
            "SELECT w.row, t.click_probability FROM wanted AS w "
            "JOIN read_parquet(?) AS t ON t.impression_id = w.impression_id",
            [str(Path(truth_dir) / TABLE / "part-*.parquet")],
        ).fetchnumpy()
    out = np.full(len(ids), np.nan)
    out[found["row"].astype(np.int64)] = found["click_probability"].astype(np.float64)
    return out


def _id_table(ids: np.ndarray):
    import pyarrow as pa

    return pa.table({"row": pa.array(np.arange(len(ids), dtype=np.int64)),
                     "impression_id": pa.array(ids.tolist(), pa.string())})
