"""A mart's quality check that costs what the run changed: Great Expectations on the rows the run rebuilt (or a
bounded sample), and the same suite as exact DuckDB aggregates over every row.

Great Expectations validates pandas frames: over a whole mart it costs time and memory that grow with the history
(270 s and 6.6 GiB over the marts of 4M impressions), so a daily tick that re-validated every mart would be a full
rebuild's worth of checking. Here:

- **GE** runs on the rows in scope: those stamped on or after the run's first day (a daily tick, a range backfill:
  what dbt's day window rebuilt), else — a full build — every row up to `sample_rows`, a seeded reservoir sample above
  (DuckDB `USING SAMPLE`); a window larger than `sample_rows` is sampled the same way.
- **Exact**: every expectation of the suite is also translated to one DuckDB aggregate (violating rows) and run over
  the whole mart, so a bad row outside the GE sample still fails the check; on a daily tick over the rows it rebuilt
  (as its dbt tests, dbt_project/macros/tested_rows.sql), and over every row again in the weekly full retrain. An
  expectation type without a translation raises: adding one to a suite means adding its SQL here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import great_expectations.expectations as gxe

from unisr_data.quality import QualityResult, check_frame, suite_expectations
from unisr_data.sql import sql_identifier, sql_string, sql_timestamptz

#: Rows GE validates at most per mart and run (the exact aggregates always cover every row).
SAMPLE_ROWS = 100_000
SAMPLE_SEED = 7


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return sql_string(str(value))


def _violations(e: gxe.Expectation) -> tuple[str, str] | None:
    """(SQL aggregate counting the rows that break `e`, what it checks); None for ExpectColumnToExist (schema)."""
    kind = type(e).__name__
    if kind == "ExpectColumnToExist":
        return None
    if kind == "ExpectCompoundColumnsToBeUnique":
        columns = ", ".join(sql_identifier(c) for c in e.column_list)
        return f"count(*) - count(DISTINCT ({columns}))", f"{kind} on {list(e.column_list)}"
    if kind == "ExpectColumnPairValuesAToBeGreaterThanB":
        op = "<" if e.or_equal else "<="
        return (f"count(*) FILTER (WHERE {sql_identifier(e.column_A)} {op} {sql_identifier(e.column_B)})",
                f"{kind} on {e.column_A} >{'=' if e.or_equal else ''} {e.column_B}")
    column = sql_identifier(e.column)
    if kind == "ExpectColumnValuesToNotBeNull":
        return f"count(*) FILTER (WHERE {column} IS NULL)", f"{kind} on {e.column}"
    if kind == "ExpectColumnValuesToBeUnique":
        return f"count({column}) - count(DISTINCT {column})", f"{kind} on {e.column}"
    if kind == "ExpectColumnValuesToBeBetween":
        bounds = [f"{column} < {_literal(e.min_value)}" if e.min_value is not None else None,
                  f"{column} > {_literal(e.max_value)}" if e.max_value is not None else None]
        where = " OR ".join(b for b in bounds if b) or "false"
        return f"count(*) FILTER (WHERE {where})", f"{kind} on {e.column} [{e.min_value}, {e.max_value}]"
    if kind == "ExpectColumnValuesToBeInSet":
        values = ", ".join(_literal(v) for v in e.value_set)
        return (f"count(*) FILTER (WHERE {column} IS NOT NULL AND {column} NOT IN ({values}))",
                f"{kind} on {e.column} {list(e.value_set)}")
    if kind == "ExpectColumnValuesToNotMatchRegex":
        return (f"count(*) FILTER (WHERE regexp_matches({column}, {sql_string(e.regex)}))",
                f"{kind} on {e.column} {e.regex!r}")
    if kind == "ExpectColumnDistinctValuesToContainSet":
        values = ", ".join(_literal(v) for v in e.value_set)
        return (f"{len(e.value_set)} - count(DISTINCT {column}) FILTER (WHERE {column} IN ({values}))",
                f"{kind} on {e.column} {list(e.value_set)}")
    raise NotImplementedError(f"no exact SQL for {kind}: add it to unisr_data/mart_quality.py")


def exact_failures(con, relation: str, expectations: list[gxe.Expectation]) -> tuple[list[str], int]:
    """Run `expectations` as one DuckDB query over every row of `relation`; (readable failures, rows)."""
    checks = [c for c in map(_violations, expectations) if c is not None]  # raises on an untranslated type
    columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    missing = [e.column for e in expectations if type(e).__name__ == "ExpectColumnToExist" and e.column not in columns]
    if missing:
        return [f"missing column {c!r}" for c in missing], 0
    row = con.execute(f"SELECT count(*), {', '.join(sql for sql, _ in checks) or '0'} FROM {relation}").fetchone()
    rows, counts = int(row[0]), row[1:]
    failures = [f"exact over all {rows:,} rows: {what}: {int(n):,} rows unexpected"
                for (_, what), n in zip(checks, counts) if n]
    return failures, rows


@dataclass(frozen=True)
class Scope:
    """The rows Great Expectations validates: `where` (SQL condition, None = every row), at most `sample_rows`; the
    exact aggregates run over every row when `exact_every_row`, else over the rows `where` selects."""

    where: str | None = None
    sample_rows: int = SAMPLE_ROWS
    label: str = "every row"
    exact_every_row: bool = True

    @classmethod
    def from_day(cls, first_day: str | None, sample_rows: int = SAMPLE_ROWS, every_row: bool = False) -> Scope:
        """Rows stamped on or after `first_day` (YYYY-MM-DD, 00:00 UTC), for GE and the exact aggregates alike (a
        daily tick checks what it rebuilt, as its dbt tests do), or with `every_row` the aggregates over every row
        (the weekly full retrain); None: a full build, every row."""
        if first_day is None:
            return cls(sample_rows=sample_rows)
        start = sql_timestamptz(datetime.fromisoformat(first_day))
        return cls(f"event_timestamp >= {start}", sample_rows, f"rows from {first_day} on", every_row)


def _scoped_frame(con, relation: str, scope: Scope):
    source = relation if scope.where is None else f"(SELECT * FROM {relation} WHERE {scope.where})"
    rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    if rows <= scope.sample_rows:
        return con.execute(f"SELECT * FROM {source}").df(), rows, False
    sample = f"SELECT * FROM {source} USING SAMPLE reservoir({int(scope.sample_rows)} ROWS) REPEATABLE ({SAMPLE_SEED})"
    return con.execute(sample).df(), rows, True


def check_mart(con, mart: str, scope: Scope = Scope(),
               ge: Callable[..., QualityResult] = check_frame) -> QualityResult:
    """The quality suite of `mart` (a table or view on `con`): GE on `scope`, exact aggregates over every row."""
    relation = sql_identifier(mart)
    con.execute("SET TimeZone = 'UTC'")
    frame, in_scope, sampled = _scoped_frame(con, relation, scope)
    result = ge(frame, mart)
    exact_all = scope.exact_every_row or scope.where is None
    exact, rows = exact_failures(con, relation if exact_all else f"(SELECT * FROM {relation} WHERE {scope.where})",
                                 suite_expectations(mart, frame))
    statistics = {**result.statistics, "rows": rows, "ge_rows": len(frame), "ge_scope_rows": in_scope,
                  "ge_scope": scope.label + (f", a seeded sample of {len(frame):,}" if sampled else ""),
                  "exact_scope": "every row" if exact_all else scope.label}
    return QualityResult(result.success and not exact, statistics, [*result.failures, *exact])
