"""Tiny marts, text embeddings and a domains table in the data-contract layout, for feature-store tests.

Feature values are a known function of (entity index, day) so tests can hand-compute point-in-time joins:
`item_impr_7d` of item k on day d is `100 * d + k`, `user_impr_7d` of user k on day d is `1000 * d + k`,
`query_impr_7d` of query k on day d is `10 * d + k`. Day d's feature row is stamped `DAY0 + d` 00:00 UTC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from unisr_data.paths import Paths

DAY0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
EMB_MODEL = "fixture-random"
COLD_USER = "u:cold"  # appears in samples but never in user_features
TEXTLESS_ITEM_EVERY = 4  # every 4th item has no text embedding

DOMAINS = pd.DataFrame(
    {
        "domain_id": pd.array([0, 1, 2], dtype="int32"),
        "name": ["search_a", "rec_a", "rec_cold"],
        "task": ["search", "rec", "rec"],
        "role": ["pretrain", "pretrain", "coldstart"],
    }
)


@dataclass
class FeatureFixture:
    """What was written, so tests can compute expectations."""

    paths: Paths
    n_days: int
    users: list[str]
    items: list[str]
    queries: list[str]
    emb_dim: int
    item_emb: dict[str, np.ndarray] = field(default_factory=dict)
    item_created: dict[str, datetime] = field(default_factory=dict)  # the item vectors' timestamps
    query_emb: dict[str, np.ndarray] = field(default_factory=dict)
    sample_rows: dict[str, int] = field(default_factory=dict)

    @property
    def end(self) -> datetime:
        """The first instant after all fixture data."""
        return DAY0 + timedelta(days=self.n_days + 1)


def _ts(values) -> pa.Array:
    return pa.array(pd.to_datetime(list(values), utc=True), type=pa.timestamp("us", tz="UTC"))


def _user_rows(users: list[str], n_days: int) -> pa.Table:
    rows = [(k, u, d) for d in range(n_days) for k, u in enumerate(users)]
    return pa.table(
        {
            "user_id": [u for _, u, _ in rows],
            "event_timestamp": _ts(DAY0 + timedelta(days=d) for *_, d in rows),
            "user_age_bucket": [f"age{k % 3}" if k % 5 else None for k, _, _ in rows],
            "user_gender": [["f", "m"][k % 2] for k, _, _ in rows],
            "user_segment": [f"seg{k % 4}" for k, _, _ in rows],
            "user_impr_7d": pa.array([1000 * d + k for k, _, d in rows], pa.int64()),
            "user_clicks_7d": pa.array([d + k % 3 for k, _, d in rows], pa.int64()),
            "user_ctr_7d": pa.array([(d + k % 3 + 1) / (1000 * d + k + 20) for k, _, d in rows], pa.float64()),
        }
    )


def _item_rows(items: list[str], n_days: int) -> pa.Table:
    # item k goes live on day k % n_days and has rows from that day on
    rows = [(k, i, d) for d in range(n_days) for k, i in enumerate(items) if d >= k % n_days]
    return pa.table(
        {
            "item_id": [i for _, i, _ in rows],
            "event_timestamp": _ts(DAY0 + timedelta(days=d) for *_, d in rows),
            "item_category": [f"cat{k % 3}" for k, _, _ in rows],
            "item_subcategory": [f"sub{k % 5}" if k % 2 else None for k, _, _ in rows],
            "item_has_text": pa.array([k % TEXTLESS_ITEM_EVERY != 0 for k, _, _ in rows], pa.bool_()),
            "item_age_days": pa.array([float(d - k % n_days) for k, _, d in rows], pa.float64()),
            "item_impr_7d": pa.array([100 * d + k for k, _, d in rows], pa.int64()),
            "item_clicks_7d": pa.array([d for _, _, d in rows], pa.int64()),
            "item_ctr_7d": pa.array([(d + 1) / (100 * d + k + 20) for k, _, d in rows], pa.float64()),
        }
    )


def _query_rows(queries: list[str], n_days: int) -> pa.Table:
    rows = [(k, q, d) for d in range(n_days) for k, q in enumerate(queries)]
    return pa.table(
        {
            "query_id": [q for _, q, _ in rows],
            "event_timestamp": _ts(DAY0 + timedelta(days=d) for *_, d in rows),
            "query_impr_7d": pa.array([10 * d + k for k, _, d in rows], pa.int64()),
            "query_clicks_7d": pa.array([d for _, _, d in rows], pa.int64()),
            "query_ctr_7d": pa.array([(d + 1) / (10 * d + k + 20) for k, _, d in rows], pa.float64()),
        }
    )


def behaviour_of(k: int, d: int, items: list[str], queries: list[str]) -> dict:
    """User k's behaviour snapshot of day d: d + k % 2 prior clicks on items k + d, k + d - 1, ... (newest first)."""
    n = d + k % 2
    shown = min(n, 20)
    return {
        "beh_item_ids": [items[(k + d - j) % len(items)] for j in range(shown)],
        "beh_item_domains": [1] * shown,
        "beh_click_times": [int((DAY0 + timedelta(days=d)).timestamp()) - 60 * (j + 1) for j in range(shown)],
        "beh_query_ids": [queries[(k + j) % len(queries)] for j in range(d % 3)],
        "beh_clicks": n,
        "beh_categories": ["cat0", "cat1"] if n else [],
        "beh_category_clicks": [n - n // 2, n // 2] if n else [],
        "beh_domains": [1] if n else [],
        "beh_domain_clicks": [n] if n else [],
    }


def _behaviour_rows(users: list[str], items: list[str], queries: list[str], n_days: int) -> pa.Table:
    rows = [(k, u, d) for d in range(n_days) for k, u in enumerate(users)]
    snapshots = [behaviour_of(k, d, items, queries) for k, _, d in rows]
    columns = {name: [s[name] for s in snapshots] for name in snapshots[0]}
    types = {"beh_item_ids": pa.list_(pa.string()), "beh_query_ids": pa.list_(pa.string()),
             "beh_categories": pa.list_(pa.string()), "beh_clicks": pa.int64()}
    return pa.table({
        "user_id": [u for _, u, _ in rows],
        "event_timestamp": _ts(DAY0 + timedelta(days=d) for *_, d in rows),
        **{name: pa.array(values, types.get(name, pa.list_(pa.int64()))) for name, values in columns.items()},
    })


def _samples(rng, n: int, domain_ids: list[int], users, items, queries, n_days: int, split_of_day) -> pd.DataFrame:
    domain = rng.choice(domain_ids, size=n).astype("int32")
    task = DOMAINS.set_index("domain_id").loc[domain, "task"].to_numpy()
    day = rng.integers(0, n_days, size=n)
    seconds = rng.integers(0, 86400, size=n)
    ts = pd.to_datetime(DAY0) + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    item_idx = rng.integers(0, len(items), size=n)
    user_ids = np.asarray(users + [COLD_USER], dtype=object)[rng.integers(0, len(users) + 1, size=n)]
    query_ids = np.where(task == "search", np.asarray(queries, dtype=object)[rng.integers(0, len(queries), size=n)],
                         None)
    return pd.DataFrame(
        {
            "impression_id": [f"imp{split_of_day.__name__}{i}" for i in range(n)],
            "event_timestamp": ts.astype("datetime64[us, UTC]"),
            "domain_id": domain,
            "task": task,
            "user_id": user_ids,
            "item_id": np.asarray(items, dtype=object)[item_idx],
            "query_id": pd.Series(query_ids, dtype="object"),
            "request_id": [f"req{i // 5}" for i in range(n)],
            "position": (np.arange(n) % 5).astype("int32"),
            "label": rng.integers(0, 2, size=n).astype("int8"),
            "is_new_item": (day - item_idx % n_days) < 3,
            "split": [split_of_day(d) for d in day],
        }
    )


SAMPLE_SCHEMA = pa.schema(
    [
        ("impression_id", pa.string()), ("event_timestamp", pa.timestamp("us", tz="UTC")), ("domain_id", pa.int32()),
        ("task", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()), ("query_id", pa.string()),
        ("request_id", pa.string()), ("position", pa.int32()), ("label", pa.int8()), ("is_new_item", pa.bool_()),
        ("split", pa.string()),
    ]
)


def _sample_table(frame: pd.DataFrame) -> pa.Table:
    # explicit schema: an all-null query_id (rec-only mart) must still be a string column, as dbt writes it
    return pa.Table.from_pandas(frame, schema=SAMPLE_SCHEMA, preserve_index=False)


def _write(table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path)


def _emb_table(id_col: str, ids: list[str], dim: int, rng,
               stamps: list[datetime] | None = None) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Vectors as embeddings/materialize.py writes them (text_hash: a stand-in per id), stamped at DAY0 or `stamps`."""
    vectors = rng.standard_normal((len(ids), dim)).astype(np.float32)
    table = pa.table(
        {
            id_col: ids,
            "embedding": pa.array(list(vectors), type=pa.list_(pa.float32())),
            "text_hash": [f"text-of-{i}" for i in ids],
            "event_timestamp": _ts(stamps or [DAY0] * len(ids)),
        }
    )
    return table, dict(zip(ids, vectors))


def write_feature_fixture(
    paths: Paths,
    n_users: int = 6,
    n_items: int = 8,
    n_queries: int = 3,
    n_days: int = 5,
    n_samples: int = 40,
    emb_dim: int = 8,
    seed: int = 0,
) -> FeatureFixture:
    """Write marts, embeddings and raw/domains.parquet under `paths`; sizes scale for benchmarks."""
    rng = np.random.default_rng(seed)
    users = [f"u:{k}" for k in range(n_users)]
    items = [f"i:{k}" for k in range(n_items)]
    queries = [f"q:{k}" for k in range(n_queries)]
    fx = FeatureFixture(paths, n_days, users, items, queries, emb_dim)

    _write(DOMAINS, paths.raw_dir / "domains.parquet")
    _write(_user_rows(users, n_days), paths.marts_dir / "user_features.parquet")
    _write(_item_rows(items, n_days), paths.marts_dir / "item_features.parquet")
    _write(_query_rows(queries, n_days), paths.marts_dir / "query_features.parquet")
    _write(_behaviour_rows(users, items, queries, n_days), paths.marts_dir / "user_behaviour.parquet")

    def pretrain(d):
        return "valid" if d == n_days - 1 else "train"

    def coldstart(d):
        return "test" if d == n_days - 1 else "valid" if d == n_days - 2 else "train"

    pre = _samples(rng, n_samples, [0, 1], users, items, queries, n_days, pretrain)
    _write(_sample_table(pre), paths.marts_dir / "samples_pretrain.parquet")
    fx.sample_rows["pretrain"] = len(pre)
    cold = _samples(rng, n_samples, [2], users, items, queries, n_days, coldstart)
    for split in ("train", "valid", "test"):
        part = cold[cold["split"] == split].reset_index(drop=True)
        _write(_sample_table(part), paths.marts_dir / f"samples_coldstart_{split}.parquet")
        fx.sample_rows[f"coldstart_{split}"] = len(part)

    with_text = [i for k, i in enumerate(items) if k % TEXTLESS_ITEM_EVERY != 0]
    # items are created at DAY0, the last one with text on the last day (a new item of a daily tick)
    created = [DAY0] * (len(with_text) - 1) + [DAY0 + timedelta(days=n_days - 1)]
    item_emb, fx.item_emb = _emb_table("item_id", with_text, emb_dim, rng, created)
    fx.item_created = dict(zip(with_text, created))
    query_emb, fx.query_emb = _emb_table("query_id", queries, emb_dim, rng)
    _write(item_emb, paths.embeddings_dir / "item_text_emb.parquet")
    _write(query_emb, paths.embeddings_dir / "query_text_emb.parquet")
    return fx
