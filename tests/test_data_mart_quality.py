"""Mart quality at the cost of the run: GE on the rebuilt rows or a sample, exact DuckDB aggregates over all rows."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from quality_frames import samples, user_features
from unisr_data.mart_quality import Scope, check_mart, exact_failures
from unisr_data.quality import SUITES, suite_expectations
from unisr_data.warehouse import MARTS


def _con(**tables: pd.DataFrame):
    con = duckdb.connect()
    for name, frame in tables.items():
        con.register(f"_{name}", frame)
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "_{name}"')
    return con


@pytest.mark.parametrize("suite", SUITES)
def test_every_suite_has_exact_sql(suite):
    con = _con()
    columns = [e.column for e in suite_expectations(suite, pd.DataFrame()) if type(e).__name__ == "ExpectColumnToExist"]
    failures, rows = exact_failures(con, "(SELECT 1 AS x)", suite_expectations(suite, pd.DataFrame()))
    assert failures == [f"missing column {c!r}" for c in columns]  # translated, and a missing column is named


def test_clean_marts_pass_with_ge_on_a_sample_and_on_the_run_window(raw):
    train = samples(raw, "train")
    con = _con(samples_coldstart_train=train, user_features=user_features(raw))
    full = check_mart(con, "samples_coldstart_train", Scope(sample_rows=500))
    assert full.success, full.failures
    assert full.statistics["rows"] == len(train) and full.statistics["ge_rows"] == 500
    assert "sample of 500" in full.statistics["ge_scope"]
    last_day = str(train.event_timestamp.max().date())
    window = check_mart(con, "samples_coldstart_train", Scope.from_day(last_day, sample_rows=10**9))
    assert window.success, window.failures
    assert window.statistics["ge_rows"] == (train.event_timestamp >= pd.Timestamp(last_day, tz="UTC")).sum()
    assert 0 < window.statistics["ge_rows"] < len(train)
    assert check_mart(con, "user_features").success


def test_a_bad_row_outside_the_tick_fails_the_every_row_check(raw):
    """A tick's check reads what it rebuilt (GE and the exact aggregates): a bad old row passes it and fails the
    weekly full retrain's check (every_row) and a full build's, exactly."""
    train = samples(raw, "train")
    first = train.event_timestamp.idxmin()
    train.loc[first, "label"] = 2                       # the oldest day: outside a tick's window
    train.loc[train.index[1], "impression_id"] = train.impression_id.iloc[2]
    con = _con(samples_coldstart_train=train)
    last_day = str(train.event_timestamp.max().date())
    tick = check_mart(con, "samples_coldstart_train", Scope.from_day(last_day))
    assert tick.success and tick.statistics["exact_scope"] == f"rows from {last_day} on"
    assert tick.statistics["rows"] == (train.event_timestamp >= pd.Timestamp(last_day, tz="UTC")).sum()
    assert not check_mart(con, "samples_coldstart_train", Scope(sample_rows=10)).success
    result = check_mart(con, "samples_coldstart_train", Scope.from_day(last_day, every_row=True))
    assert not result.success and result.statistics["exact_scope"] == "every row"
    exact = [f for f in result.failures if f.startswith("exact over all")]
    assert any("ExpectColumnValuesToBeInSet on label" in f and ": 1 rows unexpected" in f for f in exact), exact
    assert any("ExpectColumnValuesToBeUnique on impression_id" in f for f in exact), exact


def test_exact_counts_match_great_expectations(raw):
    from unisr_data.quality import check_frame

    features = user_features(raw)
    features.loc[features.index[:3], "user_ctr_7d"] = 1.5
    features.loc[features.index[3:5], "user_clicks_7d"] = features.user_impr_7d.iloc[3:5] + 1
    con = _con(user_features=features)
    exact, rows = exact_failures(con, "user_features", suite_expectations("user_features", features))
    assert rows == len(features)
    assert any("user_ctr_7d" in f and ": 3 rows unexpected" in f for f in exact), exact
    assert any("user_impr_7d >= user_clicks_7d" in f and ": 2 rows unexpected" in f for f in exact), exact
    assert len(exact) == len(check_frame(features, "user_features").failures)


def test_the_marts_all_have_suites():
    assert set(MARTS) <= set(SUITES)


def test_an_expectation_without_sql_is_refused():
    import great_expectations.expectations as gxe

    with pytest.raises(NotImplementedError, match="ExpectColumnMeanToBeBetween"):
        exact_failures(_con(), "(SELECT 1 AS x)", [gxe.ExpectColumnMeanToBeBetween(column="x", min_value=0)])
