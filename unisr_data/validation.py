"""Split landing/ into clean raw/ rows and quarantined rows with a reason; nothing is silently dropped.

Landing files may have loose types (timestamps as strings, labels as int64, text as binary): every column is
cast leniently with DuckDB (`TRY_CAST`, `try(decode(...))`) and a row whose value does not fit the contract
goes to quarantine/ with one reason token (docs/data-contract.md). Quarantine mirrors raw/: one file per entity
table, and one part per landing impression part (`quarantine/impressions/part-<day>.parquet`), so re-validating
a day replaces exactly that day's clean and quarantined rows.

A full validation (`days=None`) judges every landing file. A daily run passes its `days`: only those days'
impression parts, `part-undated.parquet` and the (small, snapshot) entity tables are judged; other days' raw
and quarantine parts are left untouched. The only cross-part state is the list of duplicate impression ids,
found by one DuckDB aggregation that spills to disk, so memory stays bounded for 10M+ rows.
Everything is written to temporary folders and swapped in at the end (the whole folders for a full run, file
by file for a daily one), so a failure leaves the previous raw/ and quarantine/ intact, and re-running on the
same landing/ gives byte-identical files.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from unisr_data.contract import PRIMARY_KEYS, ROLES, SCHEMAS, SINGLE_FILE_TABLES, TASKS, ContractError, table_path
from unisr_data.landing import DAY, UNDATED, landed_days
from unisr_data.sanity import TIME_OUT_OF_RANGE, EventTimeWindow
from unisr_data.sql import sql_identifier, sql_string, sql_timestamptz

REASONS = (
    "null_key", "unparsable_timestamp", TIME_OUT_OF_RANGE, "unknown_domain", "unknown_item", "duplicate_impression",
    "label_out_of_range", "negative_position", "empty_text", "invalid_utf8", "query_missing_in_search", "bad_value",
)
QUARANTINE_META = [("_reason", pa.string()), ("_source_file", pa.string()), ("_row", pa.int64())]


@dataclass
class TableReport:
    """Row counts of one table: what landed, what is clean, what was quarantined and why."""

    landing: int = 0
    clean: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """Per-table counts of the landing files one validation run judged (for impressions: the validated days'
    parts and `part-undated.parquet`; every part when `full`)."""

    tables: dict[str, TableReport]
    #: Impression days (`YYYY-MM-DD`, sorted) whose landing part was judged: every landed day when `full`.
    validated_days: list[str] = field(default_factory=list)
    #: Whether every landing file was judged and raw/ + quarantine/ rebuilt from scratch.
    full: bool = True

    @property
    def validated_landing_rows(self) -> int:
        """Landing rows judged in this run, all tables together."""
        return sum(r.landing for r in self.tables.values())

    def to_dict(self) -> dict:
        """JSON-ready: {"tables": {table: {"landing", "clean", "quarantined", "by_reason"}}, "validated_days",
        "full"}."""
        return {"tables": {t: {"landing": r.landing, "clean": r.clean, "quarantined": r.quarantined,
                               "by_reason": dict(sorted(r.by_reason.items()))} for t, r in self.tables.items()},
                "validated_days": list(self.validated_days), "full": self.full}

    def quarantine_share(self, table: str) -> float:
        """Quarantined rows / landing rows of `table` (0.0 when nothing landed)."""
        report = self.tables[table]
        return report.quarantined / report.landing if report.landing else 0.0


def quarantine_share_exceeded(report: ValidationReport, max_share: float) -> dict[str, float]:
    """Tables whose quarantined share is above `max_share` (0..1), with their share."""
    shares = {t: report.quarantine_share(t) for t in report.tables}
    return {t: s for t, s in shares.items() if s > max_share}


def quarantine_schema(table: str) -> pa.Schema:
    """Landing columns as strings, then `_reason`, `_source_file`, `_row` (row number in the source file)."""
    return pa.schema([(name, pa.string()) for name in SCHEMAS[table].names] + QUARANTINE_META)


def impression_part_names(days: Sequence[str]) -> list[str]:
    """The impression part file names a validation of `days` judges: the days' parts and the undated part."""
    return sorted({f"part-{d}.parquet" for d in days} | {UNDATED})


def _source_files(landing_dir: Path, table: str) -> list[Path]:
    path = table_path(landing_dir, table)
    if table == "impressions":
        files = sorted(path.glob("*.parquet")) if path.is_dir() else []
        if not files:
            raise ContractError("no impression parquet parts found; run the generator/ingest first", file=path)
        return files
    if not path.is_file():
        raise ContractError(f"landing table {table!r} is missing; run the generator/ingest first", file=path)
    return [path]


def _check_columns(files: list[Path], table: str) -> None:
    for path in files:
        present = set(pq.read_schema(path).names)
        for column in SCHEMAS[table].names:
            if column not in present:
                raise ContractError(
                    f"landing table {table!r} lacks a required column; fix the generator/adapter that wrote it",
                    file=path, column=column)


_q = sql_identifier


def _typed_expr(column: str, arrow_type: pa.DataType, source_type: str) -> str:
    """Lenient cast of a landing column to its contract type (NULL where it does not fit)."""
    col = _q(column)
    if pa.types.is_string(arrow_type):
        return f"try(decode({col}))" if source_type == "BLOB" else f"CAST({col} AS VARCHAR)"
    if pa.types.is_timestamp(arrow_type):
        return f"TRY_CAST({col} AS TIMESTAMPTZ)"
    # Integers go through BIGINT so out-of-range values (clicked = 300) are seen, not turned into NULL.
    return f"TRY_CAST({col} AS BIGINT)"


def _blank(expr: str) -> str:
    return f"({expr} IS NULL OR trim({expr}) = '')"


def _reason_rules(table: str, window: tuple[datetime, datetime]) -> list[tuple[str, str]]:
    """(reason, SQL condition on the `typed` relation) in priority order: the first that holds is the reason.

    `window` is the (earliest, latest) plausible time: an `event_time`/`created_at` outside it is
    `time_out_of_range`.

    Beyond the contract's tokens: a repeated key in domains/users/items/queries is `bad_value` (first kept),
    a null required time (`event_time`, `created_at`) is `null_key`, and a query id in a rec domain, a domain
    with a task/role outside the allowed sets, or a null/out-of-range position is `bad_value`.
    """
    sql_list = lambda values: ", ".join(f"'{v}'" for v in values)  # noqa: E731
    outside = lambda column: f"({column} < {sql_timestamptz(window[0])} OR {column} > {sql_timestamptz(window[1])})"  # noqa: E731
    if table == "domains":
        return [
            ("null_key", "_raw_null_domain_id"),
            ("bad_value", "domain_id IS NULL OR domain_id < 0 OR domain_id > 2147483647 OR _dup_rank > 1"),
            ("empty_text", _blank("name")),
            ("bad_value", f"task IS NULL OR task NOT IN ({sql_list(TASKS)}) "
                          f"OR role IS NULL OR role NOT IN ({sql_list(ROLES)})"),
        ]
    if table == "users":
        return [("null_key", _blank("user_id")), ("bad_value", "_dup_rank > 1")]
    if table == "items":
        return [
            ("null_key", _blank("item_id")),
            ("bad_value", "_dup_rank > 1"),
            ("invalid_utf8", "NOT _raw_null_text AND text IS NULL"),
            ("empty_text", "text IS NOT NULL AND trim(text) = ''"),
            ("null_key", "_raw_null_created_at"),
            ("unparsable_timestamp", "created_at IS NULL"),
            (TIME_OUT_OF_RANGE, outside("created_at")),
        ]
    if table == "queries":
        return [
            ("null_key", _blank("query_id")),
            ("bad_value", "_dup_rank > 1"),
            ("invalid_utf8", "NOT _raw_null_text AND text IS NULL"),
            ("empty_text", _blank("text")),
        ]
    return [
        ("null_key", " OR ".join([_blank(c) for c in ("impression_id", "user_id", "item_id", "request_id")]
                                 + ["_raw_null_event_time", "_raw_null_domain_id"])),
        ("duplicate_impression", "_is_duplicate"),
        ("unparsable_timestamp", "event_time IS NULL"),
        (TIME_OUT_OF_RANGE, outside("event_time")),
        ("unknown_domain", "_domain_task IS NULL"),
        ("unknown_item", "NOT _item_known"),
        ("query_missing_in_search", f"_domain_task = 'search' AND {_blank('query_id')}"),
        ("bad_value", "_domain_task = 'rec' AND query_id IS NOT NULL"),
        ("bad_value", "position IS NULL OR position > 2147483647"),
        ("negative_position", "position < 0"),
        ("label_out_of_range", "clicked IS NULL OR clicked NOT IN (0, 1)"),
    ]


class _Validator:
    """One validation run: a DuckDB connection that spills to `work_dir`, writing into temp raw/quarantine."""

    def __init__(self, landing_dir: Path, raw_tmp: Path, quarantine_tmp: Path, work_dir: Path,
                 window: tuple[datetime, datetime]):
        self.landing_dir = landing_dir
        self.raw_tmp = raw_tmp
        self.quarantine_tmp = quarantine_tmp
        self.window = window
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET temp_directory = {sql_string(work_dir)}")
        self.con.execute("SET memory_limit = '512MB'")  # DuckDB spills beyond this, so 10M+ rows stay bounded
        self.con.execute("SET preserve_insertion_order = true")

    def close(self) -> None:
        self.con.close()

    def _judged_sql(self, table: str, path: Path) -> str:
        """SQL of the source file's rows: `_row`, the leniently typed contract columns and each row's `_reason`."""
        schema = SCHEMAS[table]
        source_types = {r[0]: r[1] for r in self.con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()}
        typed = [f"{_typed_expr(c, schema.field(c).type, source_types[c])} AS {_q(c)}" for c in schema.names]
        raw_null = [f"({_q(c)} IS NULL) AS {_q('_raw_null_' + c)}" for c in schema.names]
        key = PRIMARY_KEYS[table]
        typed_key = _typed_expr(key, schema.field(key).type, source_types[key])
        extra = []
        joins = ""
        if table == "impressions":
            extra.append("(d.file_row_number IS NOT NULL) AS _is_duplicate")
            extra.append("dom._domain_task AS _domain_task")
            extra.append("(it._item_key IS NOT NULL) AS _item_known")
            typed_domain = _typed_expr("domain_id", pa.int64(), source_types["domain_id"])
            typed_item = _typed_expr("item_id", pa.string(), source_types["item_id"])
            joins = (f" LEFT JOIN dup_rows d ON d.filename = s.filename AND d.file_row_number = s.file_row_number"
                     f" LEFT JOIN clean_domains dom ON dom._domain_key = {typed_domain}"
                     f" LEFT JOIN clean_items it ON it._item_key = {typed_item}")
        else:
            extra.append(f"row_number() OVER (PARTITION BY {typed_key} ORDER BY s.file_row_number) AS _dup_rank")
        cols = ", ".join(typed + raw_null + extra)
        source = f"read_parquet({sql_string(path)}, filename = true, file_row_number = true)"
        reason = " ".join(f"WHEN {cond} THEN '{r}'" for r, cond in _reason_rules(table, self.window))
        return (f"WITH typed AS (SELECT s.file_row_number AS _row, {cols} FROM {source} s{joins}) "
                f"SELECT _row, {', '.join(_q(c) for c in schema.names)}, CASE {reason} END AS _reason FROM typed")

    def validate_file(self, table: str, path: Path, clean_out: Path, quarantine_out: Path) -> TableReport:
        """Judge one landing file: clean rows to `clean_out`, bad rows to `quarantine_out` (written even when
        empty, so a re-validation replaces the file's previous quarantined rows)."""
        schema = SCHEMAS[table]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE judged AS {self._judged_sql(table, path)}")
        clean = self.con.execute(
            f"SELECT {', '.join(_q(c) for c in schema.names)} FROM judged WHERE _reason IS NULL ORDER BY _row"
        ).fetch_arrow_table()
        clean_out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(clean.cast(schema), clean_out)
        source_file = path.relative_to(self.landing_dir).as_posix()
        # Bad rows are usually few: re-read only those from the source to keep their original values as text.
        bad = self.con.execute(
            f"SELECT {', '.join(f'CAST(s.{_q(c)} AS VARCHAR) AS {_q(c)}' for c in schema.names)}, j._reason, "
            f"? AS _source_file, CAST(j._row AS BIGINT) AS _row "
            f"FROM (SELECT _row, _reason FROM judged WHERE _reason IS NOT NULL) j "
            f"JOIN read_parquet({sql_string(path)}, file_row_number = true) s ON s.file_row_number = j._row "
            f"ORDER BY j._row",
            [source_file],
        ).fetch_arrow_table()
        quarantine_out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(bad.cast(quarantine_schema(table)), quarantine_out)
        by_reason = {str(v["values"]): int(v["counts"]) for v in bad.column("_reason").value_counts().to_pylist()}
        landing = pq.ParquetFile(path).metadata.num_rows
        self.con.execute("DROP TABLE judged")
        return TableReport(landing, clean.num_rows, bad.num_rows, by_reason)

    def validate_table(self, table: str, files: list[Path], prior_parts: Sequence[Path] = ()) -> TableReport:
        """Validate the landing `files` of `table`; asserts landing = clean + quarantined over them.

        `prior_parts`: raw and quarantine impression parts validated earlier and not re-judged now; their ids
        count as earlier occurrences for the duplicate rule.
        """
        if table == "impressions":
            self._find_duplicate_impressions(files, prior_parts)
        total = TableReport()
        for path in files:
            raw_out, quarantine_out = table_path(self.raw_tmp, table), table_path(self.quarantine_tmp, table)
            if table == "impressions":
                raw_out, quarantine_out = raw_out / path.name, quarantine_out / path.name
            part = self.validate_file(table, path, raw_out, quarantine_out)
            total.landing += part.landing
            total.clean += part.clean
            total.quarantined += part.quarantined
            for reason, n in part.by_reason.items():
                total.by_reason[reason] = total.by_reason.get(reason, 0) + n
        if total.landing != total.clean + total.quarantined:
            raise AssertionError(f"{table}: landing rows {total.landing} != clean {total.clean} + quarantined "
                                 f"{total.quarantined}; validation lost rows, please report this bug")
        if table == "domains":
            self.con.execute("CREATE OR REPLACE TABLE clean_domains AS "
                             "SELECT domain_id AS _domain_key, task AS _domain_task FROM read_parquet(?)",
                             [str(table_path(self.raw_tmp, "domains"))])
        if table == "items":
            self.con.execute("CREATE OR REPLACE TABLE clean_items AS SELECT item_id AS _item_key FROM read_parquet(?)",
                             [str(table_path(self.raw_tmp, "items"))])
        return total

    def _find_duplicate_impressions(self, files: list[Path], prior_parts: Sequence[Path]) -> None:
        """Rows of `files` whose impression id already appeared earlier: all but the first occurrence, in
        (part file name, row) order over `files` and the already validated `prior_parts`.

        A prior part (raw or quarantine) holds every row of its landing part with its id, so judging day D
        against the parts sorted before it gives the same answer as judging all days at once, provided the
        days are validated in order.
        """
        paths = [str(p) for p in files]
        source_type = self.con.execute(
            "SELECT column_type FROM (DESCRIBE SELECT impression_id FROM read_parquet(?, union_by_name = true))",
            [paths]).fetchone()[0]
        key = _typed_expr("impression_id", pa.string(), source_type)
        ids = (f"SELECT filename, file_row_number, parse_filename(filename) AS part, {key} AS k "
               f"FROM read_parquet({_sql_list(paths)}, filename = true, file_row_number = true, union_by_name = true)")
        if prior_parts:
            # Prior rows rank by their part name only; they are never reported, so their row order is moot.
            ids += (" UNION ALL SELECT NULL, -1, parse_filename(filename), CAST(impression_id AS VARCHAR) FROM "
                    f"read_parquet({_sql_list([str(p) for p in prior_parts])}, filename = true, union_by_name = true)")
        self.con.execute(
            f"""CREATE OR REPLACE TABLE dup_rows AS
            WITH repeated AS (
                -- Aggregating 64-bit hashes, not strings, keeps this pass small; collisions only add candidates.
                SELECT hash(k) AS h FROM ({ids}) WHERE k IS NOT NULL GROUP BY 1 HAVING count(*) > 1
            ), ranked AS (
                SELECT filename, file_row_number,
                       row_number() OVER (PARTITION BY k ORDER BY part, file_row_number) AS rank
                FROM ({ids}) WHERE k IS NOT NULL AND hash(k) IN (SELECT h FROM repeated)
            )
            SELECT filename, file_row_number FROM ranked WHERE rank > 1 AND filename IS NOT NULL"""
        )


def _sql_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace `target` by `tmp` with renames, so readers never see a half-written folder for long."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old)


def _swap_in_files(tmp: Path, target: Path) -> None:
    """Move each file of `tmp` to the same place under `target` with one atomic rename, then drop `tmp`:
    files of `target` that `tmp` lacks (other days' parts) are left untouched."""
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        dest = target / path.relative_to(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
    shutil.rmtree(tmp)


def _impressions_to_judge(landing_dir: Path, raw_dir: Path, quarantine_dir: Path,
                          days: Sequence[str] | None) -> tuple[list[Path], list[str], bool]:
    """(landing impression parts to judge, their days, whether this is a full validation).

    `days` covering every landed day is a full validation (it also drops parts of days no longer in landing),
    and so is a first validation or one over the older single-file quarantine layout.
    """
    files = _source_files(landing_dir, "impressions")
    landed = landed_days(landing_dir)
    if days is None:
        return files, landed, True
    days = sorted(set(days))
    malformed = [d for d in days if not DAY.match(d)]
    if malformed:
        raise ValueError(f"days must look like YYYY-MM-DD, got {malformed[:5]}")
    missing = sorted(set(days) - set(landed))
    if missing:
        raise ContractError(f"no landing impressions for day(s) {missing[:5]}; land them first (landing_data)",
                            file=table_path(landing_dir, "impressions"))
    validated_before = all(table_path(d, "impressions").is_dir() for d in (raw_dir, quarantine_dir))
    if set(landed) <= set(days) or not validated_before:
        return files, landed, True
    names = set(impression_part_names(days))
    return [f for f in files if f.name in names], days, False


def validate(landing_dir: Path, raw_dir: Path, quarantine_dir: Path, time_window: EventTimeWindow | None = None,
             days: Sequence[str] | None = None) -> ValidationReport:
    """Validate landing tables into `raw_dir` (clean, contract schema) and `quarantine_dir` (bad rows).

    `days=None` judges every landing file and rebuilds both folders. With `days` (`YYYY-MM-DD`), only those
    days' impression parts, `part-undated.parquet` and the entity tables are judged and replaced; other days'
    parts stay as they are. An impression id is a duplicate when it appeared earlier in its part or in any part
    sorted before it, so validating days in order gives exactly the full validation's files. Impression and
    item times outside `time_window` (default 1990-01-01 to now + 1 day) are quarantined as `time_out_of_range`.
    """
    landing_dir, raw_dir, quarantine_dir = Path(landing_dir), Path(raw_dir), Path(quarantine_dir)
    window = (time_window or EventTimeWindow()).bounds()
    impression_files, validated_days, full = _impressions_to_judge(landing_dir, raw_dir, quarantine_dir, days)
    files = {table: _source_files(landing_dir, table) for table in SINGLE_FILE_TABLES}
    files["impressions"] = impression_files
    # Fail fast on missing files/columns before any work.
    for table, paths in files.items():
        _check_columns(paths, table)
    judged = {p.name for p in impression_files}
    prior_parts = [] if full else [
        p for folder in (table_path(raw_dir, "impressions"), table_path(quarantine_dir, "impressions"))
        for p in sorted(folder.glob("*.parquet")) if p.name not in judged]
    raw_tmp = raw_dir.with_name(f".{raw_dir.name}.tmp-{os.getpid()}")
    quarantine_tmp = quarantine_dir.with_name(f".{quarantine_dir.name}.tmp-{os.getpid()}")
    work_dir = raw_dir.with_name(f".validation-spill-{os.getpid()}")
    for folder in (raw_tmp, quarantine_tmp, work_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    validator = _Validator(landing_dir, raw_tmp, quarantine_tmp, work_dir, window)
    try:
        # Order matters: impressions are checked against the clean domains and items.
        reports = {table: validator.validate_table(table, files[table], prior_parts)
                   for table in ("domains", "users", "items", "queries", "impressions")}
    except BaseException:
        shutil.rmtree(raw_tmp, ignore_errors=True)
        shutil.rmtree(quarantine_tmp, ignore_errors=True)
        raise
    finally:
        validator.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    if full:
        _swap_in(raw_tmp, raw_dir)
        _swap_in(quarantine_tmp, quarantine_dir)
    else:
        # Each file is replaced atomically; a crash between two renames leaves every file whole (old or new),
        # and re-running the same days finishes the job.
        _swap_in_files(raw_tmp, raw_dir)
        _swap_in_files(quarantine_tmp, quarantine_dir)
    return ValidationReport(reports, validated_days, full)
