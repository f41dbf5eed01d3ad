"""Great Expectations suites: pass on clean tables and marts, fail with readable messages on planted bad rows."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from quality_frames import samples, user_features
from unisr_data.contract import TABLES
from unisr_data.quality import SUITES, check_frame


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
