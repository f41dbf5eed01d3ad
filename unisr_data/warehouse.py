"""The dbt-duckdb warehouse of a dataset: run the dbt project in-process, export its marts to parquet, read them."""
from __future__ import annotations

import calendar
import json
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from unisr_data.paths import REPO_ROOT, Paths
from unisr_data.sql import sql_string

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

#: The dbt marts the rest of the pipeline reads (docs/data-contract.md), in build order.
SAMPLE_MARTS = (
    "samples_pretrain",
    "samples_coldstart_train",
    "samples_coldstart_valid",
    "samples_coldstart_test",
)
FEATURE_MARTS = ("user_features", "item_features", "query_features", "user_behaviour")
MARTS = SAMPLE_MARTS + FEATURE_MARTS
#: user_behaviour: the last N clicks and the queries of the last N search requests before each day (dbt vars; the
#: models' sequence lengths come from here too, through meta.json of the training folders).
BEHAVIOUR_LENGTH = 20
BEHAVIOUR_QUERY_LENGTH = 10


#: Per-dataset dbt vars. Split windows are shares of each role's impressions by time (dbt_project.yml), so they
#: fit any time span; only the "new item" age differs: MovieLens items stay new for months, not days.
DATASET_SPLIT_VARS = {
    "movielens": {"new_item_days": 90},
}


_DAY_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_KEY = re.compile(r"^\d{4}-\d{2}$")


def day_window_vars(days: Sequence[str]) -> dict:
    """The dbt vars of an incremental build over `days`: `{"days_from": first, "days_to": last}` (ISO dates).

    Keys are days (`YYYY-MM-DD`) or months (`YYYY-MM`, standing for all their days); the window spans the gaps
    between them too. No keys: `{}` (a build over every day). The window must cover every raw day that changed
    since the last build (macros/day_window.sql).
    """
    bounds: list[date] = []
    for key in days:
        if _DAY_KEY.match(key):
            bounds += [date.fromisoformat(key)] * 2
        elif _MONTH_KEY.match(key):
            year, month = int(key[:4]), int(key[5:])
            bounds += [date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])]
        else:
            raise ValueError(f"day window key {key!r} is neither a day (YYYY-MM-DD) nor a month (YYYY-MM)")
    if not bounds:
        return {}
    return {"days_from": min(bounds).isoformat(), "days_to": max(bounds).isoformat()}


def dbt_vars(paths: Paths, days: Sequence[str] | None = None, **overrides) -> dict:
    """The `--vars` of a dataset: its absolute raw/ folder, its split vars, the day window of `days` (None: all
    days; see `day_window_vars`), plus overrides (test_share, …)."""
    return {"raw_dir": str(Path(paths.raw_dir).resolve()), "behaviour_length": BEHAVIOUR_LENGTH,
            "behaviour_query_length": BEHAVIOUR_QUERY_LENGTH, **DATASET_SPLIT_VARS.get(paths.dataset, {}),
            **day_window_vars(days or ()), **overrides}


def dbt_run_dir(paths: Paths) -> Path:
    """Per-dataset folder for dbt's target/ and logs/, so concurrent datasets never share compiled SQL."""
    return Path(paths.root) / "dbt" / paths.dataset


@contextmanager
def _warehouse_env(paths: Paths):
    # profiles.yml reads the DuckDB path from UNISR_WAREHOUSE; restore the caller's value afterwards.
    saved = {k: os.environ.get(k) for k in ("UNISR_WAREHOUSE", "DBT_SEND_ANONYMOUS_USAGE_STATS")}
    os.environ["UNISR_WAREHOUSE"] = str(paths.warehouse)
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_dbt(args: list[str], paths: Paths, vars: dict | None = None):
    """Run a dbt command (e.g. `["build"]`) on `paths`' warehouse in-process; returns the `dbtRunnerResult`.

    Check `.success`; `.result` lists node results (status "pass"/"fail"/"error"/"success").
    """
    from dbt.cli.main import dbtRunner

    run_dir = dbt_run_dir(paths)
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    full_args = [
        *args,
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(DBT_PROJECT_DIR),
        "--target-path", str(run_dir / "target"),
        "--log-path", str(run_dir / "logs"),
        "--vars", json.dumps(dbt_vars(paths) if vars is None else vars),
    ]
    with _warehouse_env(paths):
        try:
            return dbtRunner().invoke(full_args)
        finally:
            _release_duckdb()


def _release_duckdb() -> None:
    # dbt-duckdb keeps its DuckDB instance open in a class attribute after an in-process run, which blocks
    # other connections to the file (and ties the next run to the old path): close it. Private API, so guarded.
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
        if env is not None:
            env.close()


def _connect(paths: Paths):
    import duckdb

    if not paths.warehouse.exists():
        raise FileNotFoundError(f"warehouse {paths.warehouse} does not exist: run `dbt build` first "
                                "(run_dbt(['build'], paths))")
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    con.execute("SET TimeZone = 'UTC'")  # tz-aware columns come back in UTC, not the machine's zone
    return con


def _check_mart(name: str) -> None:
    if name not in MARTS:
        raise KeyError(f"unknown mart {name!r}; expected one of {MARTS}")


#: A mart folder's parts hold one UTC day of event_timestamp each, or one month when the mart spans more than
#: LONG_SPAN_DAYS (MovieLens: decades of sparse days).
DAY_PART, MONTH_PART = "%Y-%m-%d", "%Y-%m"
LONG_SPAN_DAYS = 400
#: Inside a mart folder: what each part was written from (hidden: DuckDB, pyarrow and Feast skip it).
PART_STAMPS = ".parts.json"
#: The part an empty mart holds, so its folder still reads as a table with the mart's schema.
EMPTY_PART = "none.parquet"


def export_marts(paths: Paths) -> dict[str, int]:
    """Export every mart to the folder `paths.marts_dir/<mart>.parquet/`, one parquet part per day (or month) of
    event_timestamp; returns rows per mart.

    DuckDB, pyarrow, pandas and Feast's file sources read the folder as one table. A part is rewritten only when its
    rows changed (their count and an order-free hash of every column, kept in the folder's hidden `.parts.json`), so
    a daily tick writes the days dbt rebuilt and the days whose split moved, not the history. Each part is written to
    a temporary file and renamed (a reader sees a whole part); the stamps are written last, so an interrupted
    export is completed by the next one. `event_timestamp` is written as timestamp[us, tz=UTC], the type Feast's file
    sources read; rows are sorted within a part, so files are byte-stable across rebuilds of the same data.
    """
    paths.marts_dir.mkdir(parents=True, exist_ok=True)
    with _connect(paths) as con:
        return {mart: _export_mart(con, mart, paths.marts_dir / f"{mart}.parquet") for mart in MARTS}


def _export_mart(con, mart: str, folder: Path) -> int:
    span = con.execute(f"SELECT date_diff('day', min(event_timestamp), max(event_timestamp)) FROM main.{mart}"
                       ).fetchone()[0]
    period = MONTH_PART if span is not None and span > LONG_SPAN_DAYS else DAY_PART
    schema = json.dumps(con.execute(f"DESCRIBE main.{mart}").fetchall())
    parts = {part_key(part, period): f"{n}:{digest}" for part, n, digest in con.execute(
        f"SELECT {part_expression(period)} AS part, count(*), sum(hash(m)) "
        f"FROM main.{mart} AS m GROUP BY part").fetchall()}
    if folder.is_file():  # a single-file export of an older version
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    stamps_path = folder / PART_STAMPS
    old = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
    if old.get("schema") != schema or old.get("period") != period:
        old = {}
    changed = sorted(part for part, stamp in parts.items()
                     if old.get("parts", {}).get(part) != stamp or not (folder / f"{part}.parquet").exists())
    if changed:
        _write_parts(con, mart, folder, period, changed)
    for stale in folder.glob("*.parquet"):
        if stale.stem not in parts:
            stale.unlink()
    if not parts:
        con.execute(f"COPY (SELECT * FROM main.{mart} LIMIT 0) TO {sql_string(folder / EMPTY_PART)} "
                    "(FORMAT parquet)")
    tmp = folder / f"{PART_STAMPS}.tmp"
    tmp.write_text(json.dumps({"schema": schema, "period": period, "parts": dict(sorted(parts.items()))}, indent=1))
    tmp.replace(stamps_path)
    return sum(int(stamp.split(":")[0]) for stamp in parts.values())


#: Microseconds per UTC day: a day part's rows grouped by their day number since the epoch, a third of the cost of
#: formatting every row's timestamp (the stamps of a whole mart are computed on every export).
_DAY_US = 86_400_000_000


def part_expression(period: str) -> str:
    """SQL: the part of a row, by its event_timestamp: a UTC day number for DAY_PART, else the formatted key."""
    if period == DAY_PART:
        return f"cast(floor(epoch_us(event_timestamp) / {_DAY_US}) as bigint)"
    return f"strftime(event_timestamp, '{period}')"


def part_key(part, period: str) -> str:
    """The part's name (`YYYY-MM-DD` / `YYYY-MM`) from `part_expression`'s value."""
    if period == DAY_PART and part is not None:
        return (date(1970, 1, 1) + timedelta(days=int(part))).isoformat()
    return part


def part_start(key: str, period: str) -> datetime:
    """The first instant (UTC) of the part `key` (a day or month in `period`'s format); ValueError otherwise."""
    return datetime.strptime(key, period).replace(tzinfo=timezone.utc)


def _write_parts(con, mart: str, folder: Path, period: str, parts: list[str]) -> None:
    """Write the `parts` of `mart` in one sorted pass (rows by part, then every column), a part at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = part_start(parts[0], period)  # lets DuckDB skip older row groups
    reader = con.execute(
        f"SELECT * FROM (SELECT strftime(event_timestamp, '{period}') AS _part, * FROM main.{mart} "
        f"WHERE event_timestamp >= ?) WHERE _part IN (SELECT unnest(?)) ORDER BY ALL", [first, parts]
    ).fetch_record_batch(200_000)
    schema = reader.schema.remove(0)
    buffered: list[pa.RecordBatch] = []
    current = None

    def flush() -> None:
        tmp = folder / f".{current}.parquet.tmp"
        pq.write_table(pa.Table.from_batches(buffered, schema), tmp)
        os.replace(tmp, folder / f"{current}.parquet")  # a reader sees the old part or the new one
        buffered.clear()

    for batch in reader:
        keys = batch.column(0).to_numpy(zero_copy_only=False)
        bounds = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1), len(keys)]
        rows = pa.RecordBatch.from_arrays(batch.columns[1:], schema=schema)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if current is not None and keys[lo] != current:
                flush()
            current = keys[lo]
            buffered.append(rows.slice(lo, hi - lo))
    if current is not None:
        flush()


def read_mart(paths: Paths, name: str) -> pd.DataFrame:
    """One mart as a DataFrame, read from the warehouse (timestamps tz-aware UTC)."""
    _check_mart(name)
    with _connect(paths) as con:
        return con.execute(f"SELECT * FROM main.{name} ORDER BY ALL").df()
