"""SQL text for DuckDB statements that take no parameters (COPY … TO, SET): literals with quotes escaped."""
from __future__ import annotations

from datetime import datetime, timezone


def sql_string(value) -> str:
    """`value` (a path, say) as a SQL string literal: `it's` → `'it''s'`."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def sql_timestamptz(moment: datetime) -> str:
    """A UTC `TIMESTAMPTZ` literal of an aware (or UTC-naive) datetime."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return f"TIMESTAMPTZ {sql_string(moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f+00'))}"
