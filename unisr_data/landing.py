"""Daily ingest: copy days of impressions (and the entities live by then) from source/ into landing/.

The source folder is the upstream system of record in contract layout. Landing holds one file per ingested
day, so re-ingesting a day overwrites exactly that day (idempotent) and a daily run costs one day of data.
Rows whose event time cannot be parsed belong to no day: they are copied to `part-undated.parquet` on every
ingest, so validation quarantines them instead of losing them.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

from unisr_data.contract import SINGLE_FILE_TABLES, ContractError, table_path
from unisr_data.sql import sql_string

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UNDATED = "part-undated.parquet"


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _impression_glob(base_dir: Path) -> str:
    folder = table_path(base_dir, "impressions")
    if not folder.is_dir() or not any(folder.glob("*.parquet")):
        raise ContractError("no impression parquet files found", file=folder)
    return str(folder / "*.parquet")


def _day_expr() -> str:
    return "CAST(TRY_CAST(event_time AS TIMESTAMPTZ) AS DATE)"


def source_days(source_dir: Path) -> list[str]:
    """The distinct UTC days (`YYYY-MM-DD`, sorted) that have impressions in the source."""
    with _connect() as con:
        rows = con.execute(
            f"SELECT DISTINCT {_day_expr()} AS d FROM read_parquet(?, union_by_name = true) "
            "WHERE d IS NOT NULL ORDER BY d",
            [_impression_glob(source_dir)],
        ).fetchall()
    return [r[0].isoformat() for r in rows]


def landed_days(landing_dir: Path) -> list[str]:
    """Days already present in landing/ (sorted)."""
    folder = table_path(landing_dir, "impressions")
    days = [p.stem.removeprefix("part-") for p in folder.glob("part-*.parquet")]
    return sorted(d for d in days if DAY.match(d))


def _copy(con: duckdb.DuckDBPyConnection, query: str, params: list, target: Path) -> int:
    """COPY a query's result to parquet atomically; returns rows written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    con.execute(f"COPY ({query}) TO {sql_string(tmp)} (FORMAT parquet)", params)  # COPY TO takes no parameter
    os.replace(tmp, target)
    return con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()[0]


def land_days(source_dir: Path, landing_dir: Path, days: Iterable[str]) -> dict[str, int]:
    """Copy the given days' impressions and the entity tables into landing/; returns rows written per file."""
    days = sorted(set(days))
    bad = [d for d in days if not DAY.match(d)]
    if bad:
        raise ValueError(f"days must look like YYYY-MM-DD, got {bad}")
    glob = _impression_glob(source_dir)
    out_dir = table_path(landing_dir, "impressions")
    counts: dict[str, int] = {}
    with _connect() as con:
        # One scan of the source for all requested days (a backfill can ask for thousands of them).
        con.execute(
            f"CREATE TEMP TABLE picked AS SELECT *, {_day_expr()} AS _day FROM read_parquet(?, union_by_name = true) "
            "WHERE _day IN (SELECT CAST(unnest(?::VARCHAR[]) AS DATE)) ORDER BY _day",
            [glob, days],
        )
        for day in days:
            counts[f"impressions_{day}"] = _copy(
                con,
                "SELECT * EXCLUDE (_day) FROM picked WHERE _day = CAST(? AS DATE)",
                [day],
                out_dir / f"part-{day}.parquet",
            )
        counts["impressions_undated"] = _copy(
            con,
            f"SELECT * FROM read_parquet(?, union_by_name = true) WHERE {_day_expr()} IS NULL",
            [glob],
            out_dir / UNDATED,
        )
        last_day = max(landed_days(landing_dir), default=None)
        for table in SINGLE_FILE_TABLES:
            source = table_path(source_dir, table)
            if not source.exists():
                raise ContractError(f"source table {table!r} is missing", file=source)
            query, params = "SELECT * FROM read_parquet(?)", [str(source)]
            if table == "items" and last_day:
                # Only items live by the last landed day: later items arrive with their day, as in production.
                # Items whose created_at does not parse are kept so that validation quarantines them.
                query += (
                    " WHERE TRY_CAST(created_at AS TIMESTAMPTZ) IS NULL"
                    " OR CAST(TRY_CAST(created_at AS TIMESTAMPTZ) AS DATE) <= CAST(? AS DATE)"
                )
                params.append(last_day)
            counts[table] = _copy(con, query, params, table_path(landing_dir, table))
    return counts
