"""The raw data contract (docs/data-contract.md) as pyarrow schemas, plus landing-table writers."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "domains": pa.schema(
        [("domain_id", pa.int32()), ("name", pa.string()), ("task", pa.string()), ("role", pa.string())]
    ),
    "users": pa.schema(
        [("user_id", pa.string()), ("age_bucket", pa.string()), ("gender", pa.string()), ("segment", pa.string())]
    ),
    "items": pa.schema(
        [
            ("item_id", pa.string()),
            ("text", pa.string()),
            ("category", pa.string()),
            ("subcategory", pa.string()),
            ("created_at", TS),
        ]
    ),
    "queries": pa.schema([("query_id", pa.string()), ("text", pa.string())]),
    "impressions": pa.schema(
        [
            ("impression_id", pa.string()),
            ("event_time", TS),
            ("domain_id", pa.int32()),
            ("user_id", pa.string()),
            ("query_id", pa.string()),
            ("item_id", pa.string()),
            ("request_id", pa.string()),
            ("position", pa.int32()),
            ("clicked", pa.int8()),
        ]
    ),
}

TABLES = tuple(SCHEMAS)
#: Tables stored as one file; impressions are a folder of chunked parts.
SINGLE_FILE_TABLES = ("domains", "users", "items", "queries")
TASKS = ("search", "rec")
#: pretrain / coldstart domains give samples; a `history` domain holds clicks known only as behaviour (e.g. MIND's
#: click histories, older than the impression log): they feed user behaviour sequences and are never samples.
ROLES = ("pretrain", "coldstart", "history")
#: Roles every dataset must have.
REQUIRED_ROLES = ("pretrain", "coldstart")
PRIMARY_KEYS = {
    "domains": "domain_id",
    "users": "user_id",
    "items": "item_id",
    "queries": "query_id",
    "impressions": "impression_id",
}


class ContractError(ValueError):
    """Input that breaks the contract in a way rows cannot be quarantined for (missing file or column)."""

    def __init__(self, message: str, *, file: str | Path | None = None, column: str | None = None):
        where = []
        if file is not None:
            where.append(f"file {file}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.file = str(file) if file is not None else None
        self.column = column


def table_path(base_dir: Path, table: str) -> Path:
    """Where `table` lives under a landing/ or raw/ folder: `<table>.parquet`, or `impressions/` (parts)."""
    if table not in SCHEMAS:
        raise KeyError(f"unknown table {table!r}; expected one of {TABLES}")
    return base_dir / table if table == "impressions" else base_dir / f"{table}.parquet"


def write_table(base_dir: Path, table: str, data: pa.Table) -> Path:
    """Write a single-file table, cast to the contract schema; returns the file path."""
    if table == "impressions":
        raise ValueError("impressions are written in parts: use ImpressionWriter")
    path = table_path(base_dir, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data.select(SCHEMAS[table].names).cast(SCHEMAS[table]), path)
    return path


class ImpressionWriter:
    """Streams impression chunks to `impressions/part-NNNNN.parquet` so memory stays bounded."""

    def __init__(self, base_dir: Path):
        self.dir = table_path(base_dir, "impressions")
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("part-*.parquet"):
            old.unlink()
        self.parts = 0
        self.rows = 0

    def write(self, chunk: pa.Table) -> None:
        if chunk.num_rows == 0:
            return
        schema = SCHEMAS["impressions"]
        pq.write_table(chunk.select(schema.names).cast(schema), self.dir / f"part-{self.parts:05d}.parquet")
        self.parts += 1
        self.rows += chunk.num_rows


def parquet_rows(path: Path) -> int:
    """Rows in a parquet file or a folder of parquet parts, from the footers only (0 when absent)."""
    if path.is_dir():
        return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(path.glob("*.parquet")))
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
