"""The dbt project on the hand-controlled raw fixture: build, marts, point-in-time features, and that its
row-conservation and no-leakage tests catch deliberately broken warehouses."""
from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from raw_fixture import COLD_USER, DAY0, NEW_ITEM, PROBE_ITEM, TEXTLESS_ITEM, day, impression_rows, write_raw_fixture
from unisr_data.contract import SCHEMAS
from unisr_data.paths import Paths
from unisr_data.warehouse import MARTS, dbt_vars, export_marts, read_mart, run_dbt

DUPLICATES = 2  # raw rows repeated verbatim: staging must drop them
# Split shares that cut the fixture's calendar at whole days: cold-start 20 rows (4 a day) -> test = day 4,
# valid = day 3; pretrain 45 rows, day 4 holds the last 8.
FIXTURE_SPLITS = {"test_share": 0.2, "valid_share": 0.2, "pretrain_valid_share": 8 / 45}
SAMPLE_COLUMNS = [
    "impression_id", "event_timestamp", "domain_id", "task", "user_id", "item_id", "query_id",
    "request_id", "position", "label", "is_new_item", "split",
]
FEATURE_COLUMNS = {
    "user_features": ["user_id", "event_timestamp", "user_age_bucket", "user_gender", "user_segment",
                      "user_impr_7d", "user_clicks_7d", "user_ctr_7d"],
    "item_features": ["item_id", "event_timestamp", "item_category", "item_subcategory", "item_has_text",
                      "item_age_days", "item_impr_7d", "item_clicks_7d", "item_ctr_7d"],
    "query_features": ["query_id", "event_timestamp", "query_impr_7d", "query_clicks_7d", "query_ctr_7d"],
    "user_behaviour": ["user_id", "event_timestamp", "beh_item_ids", "beh_item_domains", "beh_click_times",
                       "beh_query_ids", "beh_clicks", "beh_categories", "beh_category_clicks", "beh_domains",
                       "beh_domain_clicks"],
}
CALENDAR_MARTS = ("user_features", "item_features", "query_features")


def _statuses(result) -> dict[str, str]:
    return {node.node.name: str(node.status) for node in result.result}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One `dbt build` of the fixture (with duplicated raw rows); returns (paths, dbt result)."""
    paths = Paths(tmp_path_factory.mktemp("wh"), "fixture")
    write_raw_fixture(paths, duplicate_impressions=DUPLICATES)
    result = run_dbt(["build"], paths, vars=dbt_vars(paths, **FIXTURE_SPLITS))
    return paths, result


@pytest.fixture
def broken(built, tmp_path):
    """A copy of the built warehouse to damage; dbt tests on it read the original raw/ folder."""
    paths, _ = built
    copy = Paths(tmp_path, "broken")
    copy.warehouse.parent.mkdir(parents=True)
    shutil.copy(paths.warehouse, copy.warehouse)
    return copy, dbt_vars(paths, **FIXTURE_SPLITS)


def test_build_runs_every_model_and_test_green(built):
    _, result = built
    statuses = _statuses(result)
    assert result.success, {k: v for k, v in statuses.items() if v not in ("pass", "success")}
    assert set(MARTS) <= set(statuses)
    assert {"assert_feature_rows_have_no_leakage", "assert_each_impression_in_one_sample",
            "assert_sample_rows_sum_to_impressions"} <= set(statuses)
    assert set(statuses.values()) == {"pass", "success"}


def test_staging_drops_duplicate_impressions(built):
    paths, _ = built
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        staged = con.execute("select count(*), count(distinct impression_id) from stg_impressions").fetchone()
        has_text = dict(con.execute("select item_id, has_text from stg_items").fetchall())
    assert staged == (len(impression_rows()), len(impression_rows()))
    assert has_text[TEXTLESS_ITEM] is False and has_text[PROBE_ITEM] is True


def test_sample_marts_row_counts_and_time_splits(built):
    paths, _ = built
    marts = {name: read_mart(paths, name) for name in MARTS[:4]}
    # 5 days x 2 requests x 2 positions per domain; domains 0-1 pretrain (+5 probe rows), domain 2 cold-start.
    assert {k: len(v) for k, v in marts.items()} == {
        "samples_pretrain": 45, "samples_coldstart_train": 12, "samples_coldstart_valid": 4,
        "samples_coldstart_test": 4,
    }
    days = {k: sorted(set((v.event_timestamp - pd.Timestamp(DAY0)).dt.days)) for k, v in marts.items()}
    pre = marts["samples_pretrain"]
    assert sorted(set((pre[pre.split == "valid"].event_timestamp - pd.Timestamp(DAY0)).dt.days)) == [4]
    assert sorted(set((pre[pre.split == "train"].event_timestamp - pd.Timestamp(DAY0)).dt.days)) == [0, 1, 2, 3]
    assert days["samples_coldstart_train"] == [0, 1, 2]
    assert days["samples_coldstart_valid"] == [3]
    assert days["samples_coldstart_test"] == [4]
    assert set(pre.domain_id) == {0, 1} and set(marts["samples_coldstart_test"].domain_id) == {2}
    assert pre[pre.task == "rec"].query_id.isna().all() and pre[pre.task == "search"].query_id.notna().all()
    # The probe item went live day 1 06:00: its day-1/day-2 impressions are new (< 3 days), grid items are old.
    assert pre[pre.item_id == PROBE_ITEM].is_new_item.all() and not pre[pre.item_id != PROBE_ITEM].is_new_item.any()


def _expected_calendar_sizes() -> dict[str, int]:
    """Feature rows per mart by the contract's rule, recomputed in Python from the fixture's events."""
    activity: dict[tuple[str, str], set[int]] = defaultdict(set)
    for row in impression_rows():
        d = (row["event_time"] - DAY0).days
        activity[("user", row["user_id"])].add(d)
        activity[("item", row["item_id"])].add(d)
        if row["query_id"] is not None:
            activity[("query", row["query_id"])].add(d)
    first = {key: min(days) for key, days in activity.items()}
    first[("item", NEW_ITEM)] = 3
    first[("item", PROBE_ITEM)] = 1
    for k in range(5):  # grid items went live on day -10
        first[("item", f"i:{k}")] = -10
    sizes: dict[str, int] = defaultdict(int)
    for key, first_day in first.items():
        days = {first_day} | {d + o for d in activity.get(key, ()) for o in range(1, 8)}
        sizes[f"{key[0]}_features"] += len(days)
    return dict(sizes)


def test_feature_marts_have_the_contract_calendar(built):
    paths, _ = built
    counts = {name: len(read_mart(paths, name)) for name in CALENDAR_MARTS}
    assert counts == _expected_calendar_sizes()


def test_probe_item_features_are_point_in_time(built):
    paths, _ = built
    items = read_mart(paths, "item_features")
    probe = items[items.item_id == PROBE_ITEM].set_index("event_timestamp")
    at = {d: probe.loc[pd.Timestamp(day(d))] for d in range(1, 11) if pd.Timestamp(day(d)) in probe.index}
    # Events: day 1 -> 2 impressions / 1 click, day 2 -> 3 / 2. Rows from go-live day 1 to day 2 + 7.
    assert sorted(at) == list(range(1, 10))
    assert (at[1].item_impr_7d, at[1].item_clicks_7d, at[1].item_age_days) == (0, 0, 0.0)
    assert (at[2].item_impr_7d, at[2].item_clicks_7d) == (2, 1)  # day 2's own events excluded
    assert (at[3].item_impr_7d, at[3].item_clicks_7d) == (5, 3)
    assert at[3].item_ctr_7d == pytest.approx((3 + 1) / (5 + 20))
    assert at[2].item_age_days == pytest.approx(0.75)  # live since day 1 06:00
    assert (at[9].item_impr_7d, at[9].item_clicks_7d) == (3, 2)  # day 1 has left the 7-day window
    new = items[items.item_id == NEW_ITEM]
    assert list(new.event_timestamp) == [pd.Timestamp(day(3))] and int(new.item_impr_7d.iloc[0]) == 0


def test_cold_user_has_features_with_null_attributes(built):
    paths, _ = built
    users = read_mart(paths, "user_features")
    cold = users[users.user_id == COLD_USER]
    assert len(cold) > 0 and cold.user_age_bucket.isna().all()
    assert cold.event_timestamp.min() == pd.Timestamp(DAY0)
    known = users[users.user_id == "u:0"]
    assert set(known.user_age_bucket) == {"18-24"}


def test_planted_leakage_fails_the_no_leakage_test(broken):
    paths, vars = broken
    with duckdb.connect(str(paths.warehouse)) as con:
        # As if the day-2 row had counted day 2's own events (3 impressions, 2 clicks).
        con.execute(
            "update item_features set item_impr_7d = 5, item_clicks_7d = 3 where item_id = ? and event_timestamp = ?",
            [PROBE_ITEM, day(2)],
        )
    result = run_dbt(["test", "--select", "assert_feature_rows_have_no_leakage"], paths, vars=vars)
    assert not result.success
    [node] = result.result
    assert str(node.status) == "fail" and node.failures == 1


def _clicks() -> pd.DataFrame:
    rows = pd.DataFrame(impression_rows())
    return rows[rows.clicked == 1].sort_values(["event_time", "item_id"])


def test_user_behaviour_is_the_history_strictly_before_each_day(built):
    """A click on day D is in the user's snapshot of D + 1 (first: the most recent) and not in that of D."""
    paths, _ = built
    behaviour = read_mart(paths, "user_behaviour").set_index(["user_id", "event_timestamp"])
    clicks = _clicks()
    checked = 0
    for user, events in clicks.groupby("user_id"):
        for d in sorted({(t - DAY0).days for t in events.event_time}):
            before = events[events.event_time < day(d)]
            through = events[events.event_time < day(d + 1)]
            row_next = behaviour.loc[(user, pd.Timestamp(day(d + 1)))]
            assert row_next.beh_clicks == len(through)
            assert list(row_next.beh_item_ids) == list(through.item_id[::-1][:20])
            assert list(row_next.beh_item_domains) == list(through.domain_id[::-1][:20])
            key = (user, pd.Timestamp(day(d)))
            if key in behaviour.index:
                row = behaviour.loc[key]
                assert row.beh_clicks == len(before) < len(through)
                assert list(row.beh_item_ids) == list(before.item_id[::-1][:20])
                assert all(t < day(d).timestamp() for t in row.beh_click_times)
            checked += 1
    assert checked >= 5


def test_user_behaviour_has_a_snapshot_on_every_impression_day(built):
    """Each impression finds its snapshot at 00:00 of its own day, which is what lets Feast join user_behaviour with a
    one-day TTL (features/definitions.py): also the day a user returns after a quiet spell longer than the window."""
    paths, _ = built
    behaviour = read_mart(paths, "user_behaviour")
    stamps = behaviour.event_timestamp
    have = set(zip(behaviour.user_id, stamps if stamps.dt.tz is None else stamps.dt.tz_convert(None)))
    rows = pd.DataFrame(impression_rows())
    need = {(u, pd.Timestamp(day((t - DAY0).days)).tz_localize(None)) for u, t in zip(rows.user_id, rows.event_time)}
    assert need and need <= have
    returns = [(u, d) for u, d in need if (u, d - pd.Timedelta(days=1)) not in have]
    assert returns  # first days and returns after a quiet spell: rows the day-after calendar alone would not write


def test_user_behaviour_window_counts_expire(built):
    """Clicks per domain count only days [D - 7, D); the row of the day the window empties says 0."""
    paths, _ = built
    behaviour = read_mart(paths, "user_behaviour")
    clicks = _clicks()
    for row in behaviour.itertuples():
        d = row.event_timestamp.to_pydatetime()
        window = clicks[(clicks.user_id == row.user_id) & (clicks.event_time < d)
                        & (clicks.event_time >= d - pd.Timedelta(days=7))]
        expected = window.groupby("domain_id").size()
        assert dict(zip(row.beh_domains, row.beh_domain_clicks)) == {int(k): int(v) for k, v in expected.items()}
    last = behaviour.groupby("user_id").event_timestamp.max()
    final = behaviour.set_index(["user_id", "event_timestamp"]).loc[list(last.items())]
    assert (final.beh_domain_clicks.map(len) == 0).all()


def test_planted_behaviour_leakage_fails_the_no_leakage_test(broken):
    paths, vars = broken
    clicks = _clicks()
    first = clicks.iloc[0]
    d = (first.event_time - DAY0).days
    with duckdb.connect(str(paths.warehouse)) as con:
        # As if the day-(D+1) snapshot had counted a click of day D + 1 itself.
        changed = con.execute(
            "update user_behaviour set beh_clicks = beh_clicks + 1 where user_id = ? and event_timestamp = ? "
            "returning 1", [first.user_id, day(d + 1)]).fetchall()
    assert changed
    result = run_dbt(["test", "--select", "assert_user_behaviour_has_no_leakage"], paths, vars=vars)
    assert not result.success
    [node] = result.result
    assert str(node.status) == "fail" and node.failures == 1


def test_broken_row_conservation_fails(broken):
    paths, vars = broken
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute("delete from samples_coldstart_valid "
                    "where impression_id = (select min(impression_id) from samples_coldstart_valid)")
    tests = ["assert_each_impression_in_one_sample", "assert_sample_rows_sum_to_impressions"]
    result = run_dbt(["test", "--select", *tests], paths, vars=vars)
    assert not result.success
    assert _statuses(result) == {name: "fail" for name in tests}


def test_duplicated_feature_row_fails_uniqueness(broken):
    paths, vars = broken
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute("insert into query_features select * from query_features limit 1")
    result = run_dbt(["test", "--select", "query_features,test_name:unique_combination"], paths, vars=vars)
    assert not result.success and set(_statuses(result).values()) == {"fail"}


def test_export_marts_writes_feast_ready_parquet(built):
    paths, _ = built
    counts = export_marts(paths)
    assert set(counts) == set(MARTS)
    for name in MARTS:
        table = pq.read_table(paths.marts_dir / f"{name}.parquet")
        assert table.num_rows == counts[name]
        assert table.column_names == FEATURE_COLUMNS.get(name, SAMPLE_COLUMNS)
        assert str(table.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    samples = pq.read_table(paths.marts_dir / "samples_pretrain.parquet").schema
    assert samples.field("domain_id").type == SCHEMAS["domains"].field("domain_id").type
    assert str(samples.field("label").type) == "int8" and str(samples.field("is_new_item").type) == "bool"
    assert not list(paths.marts_dir.glob("**/.*tmp"))
    # one part per day of event_timestamp; an export of unchanged marts rewrites none
    folder = paths.marts_dir / "user_features.parquet"
    days = sorted(f.stem for f in folder.glob("*.parquet"))
    stamps = pq.read_table(folder).column("event_timestamp").to_pandas().dt.strftime("%Y-%m-%d")
    assert days == sorted(set(stamps)) and len(days) > 1
    written = {f: f.stat().st_mtime_ns for f in paths.marts_dir.glob("*/*.parquet")}
    assert export_marts(paths) == counts
    assert {f: f.stat().st_mtime_ns for f in paths.marts_dir.glob("*/*.parquet")} == written


def test_export_rewrites_only_the_changed_days(built, tmp_path):
    """A changed row rewrites its day's part and nothing else; a day gone from the mart loses its part; an empty
    mart still reads as a table with its columns."""
    paths, _ = built
    copy = Paths(tmp_path, paths.dataset)
    copy.warehouse.parent.mkdir(parents=True)
    shutil.copy(paths.warehouse, copy.warehouse)
    export_marts(copy)
    folder = copy.marts_dir / "user_features.parquet"
    before = {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
    first, last = min(before), max(before)
    with duckdb.connect(str(copy.warehouse)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("UPDATE user_features SET user_impr_7d = user_impr_7d + 1 WHERE event_timestamp = "
                    "(SELECT max(event_timestamp) FROM user_features)")
        con.execute("DELETE FROM user_features WHERE strftime(event_timestamp, '%Y-%m-%d') = ?", [Path(first).stem])
        con.execute("DELETE FROM query_features")
    export_marts(copy)
    after = {f.name: f.stat().st_mtime_ns for f in folder.glob("*.parquet")}
    assert set(after) == set(before) - {first}
    assert [name for name in after if after[name] != before[name]] == [last]
    with duckdb.connect(str(copy.warehouse), read_only=True) as con:
        expected = con.execute("SELECT count(*), sum(user_impr_7d) FROM user_features").fetchone()
    table = pq.read_table(folder)
    assert (table.num_rows, sum(table.column("user_impr_7d").to_pylist())) == expected
    empty = pq.read_table(copy.marts_dir / "query_features.parquet")
    assert empty.num_rows == 0 and empty.column_names == FEATURE_COLUMNS["query_features"]


def test_parse_needs_no_warehouse(tmp_path):
    paths = Paths(tmp_path, "unbuilt")
    result = run_dbt(["parse"], paths)
    assert result.success
    assert not paths.warehouse.exists()
    assert (tmp_path / "dbt" / "unbuilt" / "target" / "manifest.json").exists()


def test_synthetic_tiny_builds(tmp_path):
    synthetic = pytest.importorskip("unisr_data.synthetic")
    validation = pytest.importorskip("unisr_data.validation")
    paths = Paths(tmp_path, "synthetic")
    synthetic.generate(synthetic.SyntheticConfig.tiny(), paths.landing_dir)
    validation.validate(paths.landing_dir, paths.raw_dir, paths.quarantine_dir)
    result = run_dbt(["build"], paths)
    failed = {k: v for k, v in _statuses(result).items() if v not in ("pass", "success")}
    assert result.success, failed
    counts = export_marts(paths)
    raw_impressions = pq.read_table(paths.raw_dir / "impressions").num_rows
    assert sum(counts[name] for name in MARTS[:4]) == raw_impressions
    assert min(counts.values()) > 0
