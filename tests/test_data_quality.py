"""Great Expectations suites: pass on clean tables and marts, fail with readable messages on planted bad rows."""
from __future__ import annotations

import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from unisr_data.contract import TABLES, table_path
from unisr_data.quality import SUITES, check_frame
from unisr_data.synthetic import SyntheticConfig, generate
from unisr_data.validation import validate


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> dict[str, pd.DataFrame]:
    base = tmp_path_factory.mktemp("quality")
    generate(SyntheticConfig.tiny(), base / "landing")
    validate(base / "landing", base / "raw", base / "quarantine")
    return {t: pq.read_table(table_path(base / "raw", t)).to_pandas() for t in TABLES}


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


def test_suite_names_cover_raw_tables_and_marts():
    assert {f"raw_{t}" for t in TABLES} <= set(SUITES)
    assert {"samples_pretrain", "samples_coldstart_train", "samples_coldstart_valid", "samples_coldstart_test",
            "user_features", "item_features", "query_features"} <= set(SUITES)
    with pytest.raises(KeyError, match="unknown quality suite 'nope'"):
        check_frame(pd.DataFrame(), "nope")


@pytest.mark.parametrize("table", TABLES)
def test_raw_suites_pass_on_validated_data(raw, table):
    result = check_frame(raw[table], f"raw_{table}")
    assert result.success, result.failures
    assert result.failures == [] and result.statistics["unsuccessful_expectations"] == 0
    assert result.statistics["evaluated_expectations"] >= 3 and result.statistics["rows"] == len(raw[table])


def test_mart_suites_pass_on_well_formed_marts(raw):
    assert check_frame(samples(raw, "train"), "samples_coldstart_train").success
    assert check_frame(samples(raw, "valid"), "samples_pretrain").success
    result = check_frame(user_features(raw), "user_features")
    assert result.success, result.failures


def test_planted_bad_impressions_fail_with_readable_messages(raw):
    bad = raw["impressions"].copy()
    bad.loc[3, "clicked"] = 2
    bad.loc[5, "position"] = -4
    bad.loc[7, "impression_id"] = bad.impression_id[0]
    bad.loc[9, "user_id"] = None
    result = check_frame(bad, "raw_impressions")
    assert not result.success and result.statistics["unsuccessful_expectations"] == 4
    text = "\n".join(result.failures)
    assert "clicked" in text and "[2]" in text
    assert "position" in text and "-4" in text
    assert "impression_id" in text and "2 of" in text
    assert "user_id" in text and "1 of" in text


def test_planted_bad_marts_fail(raw):
    wrong_split = samples(raw, "train")
    wrong_split.loc[0, "split"] = "test"
    wrong_split.loc[1, "label"] = -1
    result = check_frame(wrong_split, "samples_coldstart_train")
    assert not result.success
    assert any("split" in f and "'test'" in f for f in result.failures)
    assert any("label" in f for f in result.failures)

    features = user_features(raw)
    features.loc[0, "user_ctr_7d"] = 1.5
    features = pd.concat([features, features.iloc[[1]]])  # same user and day twice
    failures = check_frame(features, "user_features").failures
    assert any("user_ctr_7d" in f for f in failures)
    assert any("compound_columns_to_be_unique" in f and "user_id" in f for f in failures)


def test_missing_column_is_reported_by_name(raw):
    result = check_frame(raw["items"].drop(columns=["created_at"]), "raw_items")
    assert not result.success and result.failures == [
        f"raw_items: missing column 'created_at' (have {['item_id', 'text', 'category', 'subcategory']})"]


def test_domains_must_be_dense_and_have_both_roles(raw):
    domains = raw["domains"].copy()
    domains.loc[0, "domain_id"] = 40
    domains["role"] = "pretrain"
    failures = check_frame(domains, "raw_domains").failures
    assert any("domain_id" in f and "40" in f for f in failures)
    assert any("distinct_values_to_contain_set" in f and "role" in f for f in failures)


def test_repeated_checks_are_quick_and_quiet(raw, capsys):
    check_frame(raw["users"], "raw_users")
    capsys.readouterr()
    started = time.perf_counter()
    for _ in range(5):
        check_frame(raw["impressions"], "raw_impressions")
    per_call = (time.perf_counter() - started) / 5
    captured = capsys.readouterr()
    assert per_call < 2.0
    assert "Calculating Metrics" not in captured.err + captured.out
