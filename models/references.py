"""Trivial reference rankers scored beside the models: what a one-line rule gets on the same rows.

- `popularity`: the item's clicks over the trailing 7 days (point in time, from the feature store).
- `item age`: how long the item has been live; the direction (newer or older first) is chosen on the
  validation split, never on the rows being reported.
- `category click rate`: each (domain, item subcategory)'s smoothed click rate in the training split.

Every function takes training-folder frames (columns of features/training_set.py) and returns scores [N].
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models import metrics as M

POPULARITY, ITEM_AGE, CATEGORY_CTR = "ref: popularity", "ref: item age", "ref: category click rate"
REFERENCES = (POPULARITY, ITEM_AGE, CATEGORY_CTR)


def _column(frame: pd.DataFrame, name: str, fill: float) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), fill)
    return pd.to_numeric(frame[name], errors="coerce").astype("float64").fillna(fill).to_numpy()


def popularity(frame: pd.DataFrame) -> np.ndarray:
    """Trailing-7-day clicks of the item (0 for items never shown before)."""
    return _column(frame, "num_item_clicks_7d", 0.0)


def item_age(frame: pd.DataFrame, newer_first: bool) -> np.ndarray:
    """Days since the item went live, negated when newer items rank first (unknown age ranks last)."""
    age = _column(frame, "num_item_age_days", np.nan)
    score = -age if newer_first else age
    return np.where(np.isnan(score), -np.inf, score)


def item_age_direction(valid: pd.DataFrame) -> bool:
    """True when newer-first ranks the validation rows better (AUC ≥ 0.5) — chosen on validation only."""
    if valid.empty or valid["label"].nunique() < 2:
        return True
    return M.auc(valid["label"].to_numpy(), item_age(valid, newer_first=True)) >= 0.5


def category_click_rate(train: pd.DataFrame, frame: pd.DataFrame, prior_weight: float = 20.0) -> np.ndarray:
    """Click rate of the row's (domain, item subcategory) in `train`, shrunk toward the domain's click rate."""
    key = ["domain_id", "cat_item_subcategory"]
    train, frame = (f.assign(cat_item_subcategory=f["cat_item_subcategory"].astype("string").fillna("<none>")
                             if "cat_item_subcategory" in f else "<none>") for f in (train, frame))
    by_domain = train.groupby("domain_id")["label"].mean()
    overall = float(train["label"].mean()) if len(train) else 0.0
    stats = train.groupby(key, dropna=False)["label"].agg(["sum", "count"]).reset_index()
    stats["prior"] = stats["domain_id"].map(by_domain).fillna(overall)
    stats["rate"] = (stats["sum"] + prior_weight * stats["prior"]) / (stats["count"] + prior_weight)
    joined = frame[key].merge(stats[key + ["rate"]], on=key, how="left")
    fallback = frame["domain_id"].map(by_domain).fillna(overall).to_numpy()
    return np.where(joined["rate"].isna(), fallback, joined["rate"].to_numpy())


def reference_scores(train: pd.DataFrame, valid: pd.DataFrame, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every reference's scores on `frame` (its rules fitted on `train`, directions chosen on `valid`)."""
    return {
        POPULARITY: popularity(frame),
        ITEM_AGE: item_age(frame, item_age_direction(valid)),
        CATEGORY_CTR: category_click_rate(train, frame),
    }
