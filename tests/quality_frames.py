"""Mart-shaped frames built from validated raw tables, for the quality suites' tests."""
from __future__ import annotations

import pandas as pd


def samples(raw: dict[str, pd.DataFrame], split: str) -> pd.DataFrame:
    """A mart-shaped samples frame (docs/data-contract.md) built from the raw tables."""
    frame = raw["impressions"].merge(raw["domains"][["domain_id", "task"]], on="domain_id")
    frame = frame.merge(raw["items"][["item_id", "created_at"]], on="item_id")
    return pd.DataFrame({
        "impression_id": frame.impression_id, "event_timestamp": frame.event_time, "domain_id": frame.domain_id,
        "task": frame.task, "user_id": frame.user_id, "item_id": frame.item_id, "query_id": frame.query_id,
        "request_id": frame.request_id, "position": frame.position, "label": frame.clicked,
        "is_new_item": (frame.event_time - frame.created_at) < pd.Timedelta(days=3), "split": split,
    })


def user_features(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per user and day: impressions, clicks and smoothed CTR (the mart's shape, not its exact windowing)."""
    imp = raw["impressions"].assign(event_timestamp=raw["impressions"].event_time.dt.normalize())
    daily = (imp.groupby(["user_id", "event_timestamp"]).clicked
             .agg(user_impr_7d="size", user_clicks_7d="sum").reset_index())
    daily = daily.merge(raw["users"], on="user_id", how="left").rename(
        columns={"age_bucket": "user_age_bucket", "gender": "user_gender", "segment": "user_segment"})
    daily["user_clicks_7d"] = daily.user_clicks_7d.astype("int64")
    daily["user_ctr_7d"] = (daily.user_clicks_7d + 1) / (daily.user_impr_7d + 20)
    return daily
