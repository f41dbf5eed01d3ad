"""The synthetic generator: contract shape, determinism, domain mix, new items, and a planted text signal."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from unisr_data.contract import SCHEMAS, table_path
from unisr_data.synthetic import SyntheticConfig, generate
from unisr_data.topic_vocabulary import TOPIC_NAMES, TOPICS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    landing = tmp_path_factory.mktemp("synthetic") / "landing"
    return landing, generate(SyntheticConfig.tiny(), landing)


def read(landing: Path, table: str) -> pd.DataFrame:
    return pq.read_table(table_path(landing, table)).to_pandas()


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def test_tables_follow_the_contract_schema(tiny):
    landing, counts = tiny
    for table, schema in SCHEMAS.items():
        data = pq.read_table(table_path(landing, table))
        assert data.schema.equals(schema), table
        assert data.num_rows == counts[table] > 0


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tiny, tmp_path):
    landing, _ = tiny
    generate(SyntheticConfig.tiny(), tmp_path / "again")
    assert digests(tmp_path / "again") == digests(landing)
    generate(replace(SyntheticConfig.tiny(), seed=8), tmp_path / "other")
    assert digests(tmp_path / "other") != digests(landing)


def test_impressions_are_streamed_in_chunked_parts(tiny):
    landing, counts = tiny
    config = SyntheticConfig.tiny()
    parts = sorted(table_path(landing, "impressions").glob("part-*.parquet"))
    assert len(parts) == counts["impressions"] // config.chunk_rows >= 4
    assert all(pq.ParquetFile(p).metadata.num_rows <= config.chunk_rows for p in parts)
    # Parts cover consecutive time slices.
    bounds = [pq.read_table(p, columns=["event_time"]).column(0).to_pandas() for p in parts]
    assert all(a.max() <= b.min() for a, b in zip(bounds, bounds[1:]))


def test_domain_mix_roles_and_imbalance(tiny):
    landing, _ = tiny
    domains = read(landing, "domains")
    assert list(domains.domain_id) == list(range(len(domains)))
    assert (domains.task == "search").sum() >= 2 and (domains.task == "rec").sum() >= 4
    assert (domains.role == "coldstart").sum() >= 1 and (domains.role == "pretrain").sum() >= 1
    per_domain = read(landing, "impressions").domain_id.value_counts()
    assert set(per_domain.index) == set(domains.domain_id)
    assert per_domain.max() / per_domain.min() >= 50


def test_queries_only_in_search_domains(tiny):
    landing, _ = tiny
    impressions = read(landing, "impressions").merge(read(landing, "domains"), on="domain_id")
    search = impressions.task == "search"
    assert impressions.loc[search, "query_id"].notna().all()
    assert impressions.loc[~search, "query_id"].isna().all()
    assert set(impressions.query_id.dropna()) <= set(read(landing, "queries").query_id)


def test_new_items_appear_every_day_and_are_shown_after_going_live(tiny):
    landing, _ = tiny
    config = SyntheticConfig.tiny()
    items = read(landing, "items")
    impressions = read(landing, "impressions")
    event_days = impressions.event_time.dt.normalize().unique()
    assert len(event_days) >= 14
    new_days = items.created_at[items.created_at >= event_days.min()].dt.normalize()
    assert set(new_days.unique()) == set(event_days)
    assert (new_days.value_counts() == config.new_items_per_day).all()
    joined = impressions.merge(items[["item_id", "created_at"]], on="item_id", how="left")
    assert joined.created_at.notna().all()
    assert (joined.created_at <= joined.event_time).all()


def test_cold_start_domain_mostly_shows_new_items(tiny):
    landing, _ = tiny
    domains = read(landing, "domains")
    impressions = read(landing, "impressions").merge(read(landing, "items"), on="item_id")
    young = (impressions.event_time - impressions.created_at) < pd.Timedelta(days=3)
    cold = impressions.domain_id.isin(domains.domain_id[domains.role == "coldstart"])
    assert young[cold].mean() > 0.6
    assert young[~cold].mean() < 0.3


def test_texts_are_topical_english_and_users_have_attributes(tiny):
    landing, _ = tiny
    items = read(landing, "items")
    words = {w for _, topic_words in TOPICS.values() for w in topic_words}
    with_text = items.text.dropna()
    assert 0.9 < len(with_text) / len(items) < 1.0  # a few items lack text, as the contract allows
    assert with_text.map(lambda t: any(w in t for w in words)).all()
    assert set(items.subcategory) <= set(TOPIC_NAMES)
    users = read(landing, "users")
    assert users.age_bucket.nunique() >= 3 and users.segment.nunique() >= 3 and users.gender.nunique() == 2


def text_topic(texts: pd.Series) -> pd.Series:
    """The topic whose words occur most in each text (what a text encoder can see)."""
    hits = np.stack([texts.fillna("").map(lambda t, ws=ws: sum(w in t for w in ws)).to_numpy()
                     for _, ws in TOPICS.values()], axis=1)
    return pd.Series(np.where(hits.max(axis=1) > 0, hits.argmax(axis=1), -1), index=texts.index)


def test_text_predicts_clicks_on_items_never_seen_before(tiny):
    """On item ids absent from the past an ID-only model can only guess (AUC 0.5); the text topic cannot."""
    landing, _ = tiny
    items = read(landing, "items").assign(topic=lambda f: text_topic(f.text))
    queries = read(landing, "queries").assign(query_topic=lambda f: text_topic(f.text))
    impressions = (read(landing, "impressions").merge(items[["item_id", "topic"]], on="item_id")
                   .merge(queries[["query_id", "query_topic"]], on="query_id", how="left"))
    impressions = impressions[impressions.topic >= 0]
    cut = impressions.event_time.dt.normalize().max() - pd.Timedelta(days=3)
    train, test = impressions[impressions.event_time < cut], impressions[impressions.event_time >= cut]
    test = test[~test.item_id.isin(train.item_id)]
    rec, search = test[test.query_id.isna()], test[test.query_id.notna()]
    assert len(rec) > 300 and len(search) > 100
    # Rec: the user's past CTR on the item's text topic, smoothed towards the global CTR.
    stats = train.groupby(["user_id", "topic"]).clicked.agg(["sum", "count"])
    prior = train.clicked.mean()
    stats["score"] = (stats["sum"] + 5 * prior) / (stats["count"] + 5)
    score = rec.join(stats["score"], on=["user_id", "topic"]).score.fillna(prior)
    assert roc_auc_score(rec.clicked, score) > 0.57
    # Search: an item whose text matches the query's topic is clicked far more often.
    matches = search.topic == search.query_topic
    assert search.clicked[matches].mean() > 5 * search.clicked[~matches].mean() + 0.05
