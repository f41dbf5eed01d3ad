"""Incremental dbt builds by day window equal full builds: a daily tick, a rerun of the same day, a backfilled
older day and a window-less rebuild all leave every table row-for-row equal to a from-scratch build."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raw_fixture import N_DAYS, day, impression_rows, write_raw_fixture
from unisr_data.contract import SCHEMAS, table_path
from unisr_data.paths import Paths
from unisr_data.warehouse import day_window_vars, dbt_vars, run_dbt

SPLITS = {"test_share": 0.2, "valid_share": 0.2, "pretrain_valid_share": 8 / 45}
LAST = N_DAYS - 1
INCREMENTAL_MODELS = {"stg_impressions", "int_user_clicks", "int_entity_daily_activity", "int_entity_feature_days",
                      "user_features", "item_features", "query_features", "user_behaviour", "int_impressions_split",
                      "samples_pretrain", "samples_coldstart_train", "samples_coldstart_valid",
                      "samples_coldstart_test"}


def _fixture_rows() -> list[dict]:
    """The raw fixture's impressions, plus two verbatim repeats on day 0 and a repeat of a day-1 id on the last
    day (staging keeps the earliest row of an id, also when the repeat arrives in a later window)."""
    rows = impression_rows()
    day1 = next(r for r in rows if r["event_time"].date() == day(1).date())
    late = {**day1, "event_time": day(LAST, 20), "clicked": 1 - day1["clicked"]}
    return rows + rows[:2] + [late]


def _day_key(d: int) -> str:
    return day(d).date().isoformat()


def _write_raw(paths: Paths, days: set[int]) -> None:
    """The fixture's entity tables and its impressions of `days`, one part per UTC day as landing writes them."""
    write_raw_fixture(paths)
    folder = table_path(paths.raw_dir, "impressions")
    for old in folder.glob("*.parquet"):
        old.unlink()
    by_day: dict[int, list[dict]] = defaultdict(list)
    for row in _fixture_rows():
        by_day[(row["event_time"] - day(0)).days].append(row)
    for d in sorted(days):
        _add_day(paths, d, by_day[d])


def _add_day(paths: Paths, d: int, rows: list[dict] | None = None) -> None:
    if rows is None:
        rows = [r for r in _fixture_rows() if (r["event_time"] - day(0)).days == d]
    schema = SCHEMAS["impressions"]
    pq.write_table(pa.Table.from_pylist(rows).select(schema.names).cast(schema),
                   table_path(paths.raw_dir, "impressions") / f"part-{_day_key(d)}.parquet")


def _build(paths: Paths, *extra: str, days: list[str] | None = None, command: str = "build"):
    result = run_dbt([command, *extra], paths, vars=dbt_vars(paths, days=days, **SPLITS))
    assert result.result is not None, result.exception
    failed = {n.node.name: str(n.status) for n in result.result if str(n.status) not in ("pass", "success")}
    assert result.success and not failed, failed
    return result


def _differences(built: Path, reference: Path) -> dict[str, tuple[int, int, int, int]]:
    """Tables that differ: name -> (rows, reference rows, rows missing from the reference, rows it lacks)."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{built}' AS b (READ_ONLY)")
        con.execute(f"ATTACH '{reference}' AS r (READ_ONLY)")
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'r' AND schema_name = 'main'").fetchall()]
        assert INCREMENTAL_MODELS <= set(tables)
        out = {}
        for t in tables:
            counts = con.execute(
                f"SELECT (SELECT count(*) FROM b.main.{t}), (SELECT count(*) FROM r.main.{t}), "
                f"(SELECT count(*) FROM (FROM b.main.{t} EXCEPT ALL FROM r.main.{t})), "
                f"(SELECT count(*) FROM (FROM r.main.{t} EXCEPT ALL FROM b.main.{t}))").fetchone()
            if counts[0] != counts[1] or counts[2] or counts[3]:
                out[t] = counts
    return out


def _splits(paths: Paths) -> dict[str, str]:
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        return dict(con.execute("SELECT impression_id, split FROM int_impressions_split").fetchall())


def _materializations(paths: Paths) -> dict[str, str]:
    manifest = json.loads((paths.root / "dbt" / paths.dataset / "target" / "manifest.json").read_text())
    return {n["name"]: n["config"]["materialized"] for n in manifest["nodes"].values()
            if n["resource_type"] == "model"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Paths:
    """A from-scratch `--full-refresh` build over every day."""
    paths = Paths(tmp_path_factory.mktemp("reference"), "fixture")
    _write_raw(paths, set(range(N_DAYS)))
    _build(paths, "--full-refresh", command="run")
    return paths


def test_day_window_vars():
    assert day_window_vars(["2024-01-03", "2024-01-01"]) == {"days_from": "2024-01-01", "days_to": "2024-01-03"}
    assert day_window_vars(["2024-02"]) == {"days_from": "2024-02-01", "days_to": "2024-02-29"}
    assert day_window_vars(["2023-12", "2024-01-05"]) == {"days_from": "2023-12-01", "days_to": "2024-01-05"}
    assert day_window_vars([]) == {}
    with pytest.raises(ValueError, match="2024/01/01"):
        day_window_vars(["2024/01/01"])


def test_daily_tick_equals_a_full_build_and_reruns_idempotently(reference, tmp_path):
    paths = Paths(tmp_path, "fixture")
    _write_raw(paths, set(range(LAST)))
    _build(paths, command="run")  # the first build of an empty warehouse is a full one
    assert INCREMENTAL_MODELS <= {m for m, kind in _materializations(paths).items() if kind == "incremental"}
    before = _splits(paths)
    _add_day(paths, LAST)
    _build(paths, days=[_day_key(LAST)])  # the tick, with the dbt tests (no-leakage included) on its result
    assert _differences(paths.warehouse, reference.warehouse) == {}
    after = _splits(paths)
    # The new day moved the split cuts: impressions of older days changed split, and the incremental split models
    # (macros/split_rebuild.sql) followed them.
    assert {i for i, split in before.items() if after[i] != split}
    _build(paths, days=[_day_key(LAST)], command="run")
    assert _differences(paths.warehouse, reference.warehouse) == {}
    _build(paths, command="run")  # no window: every row recomputed
    assert _differences(paths.warehouse, reference.warehouse) == {}


def test_backfilled_older_day_equals_a_full_build(reference, tmp_path):
    """A day landing late (its successors already built) updates the later feature and behaviour rows too."""
    paths = Paths(tmp_path, "fixture")
    missing = 2
    _write_raw(paths, set(range(N_DAYS)) - {missing})
    _build(paths, command="run")
    _add_day(paths, missing)
    _build(paths, days=[_day_key(missing)], command="run")
    assert _differences(paths.warehouse, reference.warehouse) == {}


def test_dagster_run_builds_its_partitions_day_window(tmp_path):
    """The warehouse asset: a run over some days passes their window; one over every day rebuilds from scratch."""
    from orchestration.assets.warehouse import dbt_build_args

    paths = Paths(tmp_path, "fixture")
    _write_raw(paths, set(range(N_DAYS)))
    keys = [_day_key(d) for d in range(N_DAYS)]
    for full in (None, keys, ["2024-01"]):  # unpartitioned; every day; the month holding every day
        assert dbt_build_args(paths, full)[:2] == ["build", "--full-refresh"]
    for some, window in ((keys[-1:], (keys[-1], keys[-1])), (keys[1:3], (keys[1], keys[2]))):
        args = dbt_build_args(paths, some)
        assert "--full-refresh" not in args
        built_vars = json.loads(args[args.index("--vars") + 1])
        assert (built_vars["days_from"], built_vars["days_to"]) == window
        assert built_vars["raw_dir"] == str(paths.raw_dir.resolve())
        assert "test_scope" not in built_vars  # a tick tests the rows it rebuilt ...
        every_row = dbt_build_args(paths, some, test_every_row=True)  # ... the weekly full retrain every row
        assert json.loads(every_row[every_row.index("--vars") + 1])["test_scope"] == "all"


def test_the_weekly_full_retrain_tests_every_row():
    from orchestration.assets.warehouse import TEST_EVERY_ROW_JOBS
    from orchestration.jobs import finetune_job, full_retrain_job

    assert full_retrain_job.name in TEST_EVERY_ROW_JOBS and finetune_job.name not in TEST_EVERY_ROW_JOBS


WINDOW_SCOPED_TESTS = ("assert_user_behaviour_has_no_leakage", "assert_feature_rows_have_no_leakage",
                       "unique_combination_user_features_user_id__event_timestamp")


def test_window_build_tests_the_rows_it_rebuilt(tmp_path):
    """A day-window build's data tests read the rows it rebuilt (dbt_project/macros/tested_rows.sql): faults planted
    in older rows fail only `test_scope: all` (the weekly full retrain's), faults in the window's rows fail both."""
    paths = Paths(tmp_path, "fixture")
    _write_raw(paths, set(range(N_DAYS)))
    _build(paths, command="run")

    def failing(**scope) -> set[str]:
        result = run_dbt(["test", "--select", *WINDOW_SCOPED_TESTS], paths,
                         vars=dbt_vars(paths, days=[_day_key(LAST)], **SPLITS, **scope))
        assert result.result is not None and len(result.result) == len(WINDOW_SCOPED_TESTS), result.exception
        return {n.node.name for n in result.result if str(n.status) != "pass"}

    def plant(at: str) -> None:
        """A leak in user_behaviour and user_features and a duplicate user_features row, at the oldest or newest day."""
        with duckdb.connect(str(paths.warehouse)) as con:
            for table, column in (("user_behaviour", "beh_clicks"), ("user_features", "user_impr_7d")):
                day_row = f"(SELECT {at}(event_timestamp) FROM {table})"
                con.execute(f"UPDATE {table} SET {column} = {column} + 1 WHERE event_timestamp = {day_row}")
            con.execute("INSERT INTO user_features SELECT * FROM user_features "
                        f"WHERE event_timestamp = (SELECT {at}(event_timestamp) FROM user_features) LIMIT 1")

    assert failing() == set() and failing(test_scope="all") == set()
    plant("min")
    assert failing() == set()
    assert failing(test_scope="all") == set(WINDOW_SCOPED_TESTS)
    plant("max")
    assert failing() == set(WINDOW_SCOPED_TESTS)
