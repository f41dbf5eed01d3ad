"""Partition keys that fit the source's time span: one per day for daily data, one per month for long-span sources.

Dagster records every partition (its materializations, backfill status and UI row), so MovieLens over 22 years
would be ~4,100 daily partitions. A source whose impressions span more than `MAX_DAILY_SPAN_DAYS` is therefore
partitioned by month (`YYYY-MM`); shorter ones by day (`YYYY-MM-DD`). Everything below the orchestration layer
(landing files, validation, dbt day windows, training-set day caches) keeps working in days: a month key stands
for the days of that month that have impressions (`days_of`).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date

DAY_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH_KEY = re.compile(r"^\d{4}-\d{2}$")
#: Sources spanning more days than this get monthly partitions (a year of daily partitions is still browsable).
MAX_DAILY_SPAN_DAYS = 366


def granularity(days: Sequence[str]) -> str:
    """"day" or "month" for a source whose impressions fall on `days` (ISO dates)."""
    if not days:
        return "day"
    span = (date.fromisoformat(max(days)) - date.fromisoformat(min(days))).days + 1
    return "day" if span <= MAX_DAILY_SPAN_DAYS else "month"


def partition_keys(days: Sequence[str]) -> list[str]:
    """The sorted partition keys of a source with impressions on `days`: the days, or their months."""
    days = sorted(set(days))
    if granularity(days) == "day":
        return days
    return sorted({d[:7] for d in days})


def partition_key_of(day: str, keys: Iterable[str]) -> str | None:
    """The key among `keys` that holds `day` (the day itself, or its month); None when neither is a partition."""
    keys = set(keys)
    for key in (day, day[:7]):
        if key in keys:
            return key
    return None


def days_of(keys: Iterable[str], available_days: Iterable[str] | Callable[[], Iterable[str]]) -> list[str]:
    """The days (sorted) that partition `keys` stand for, among `available_days` (days with impressions; a callable
    is called only when a month key needs them, so a daily run does not list the whole source)."""
    keys = list(keys)
    if callable(available_days):
        available_days = available_days() if any(MONTH_KEY.match(k) for k in keys) else ()
    available = sorted(set(available_days))
    wanted: set[str] = set()
    for key in keys:
        if DAY_KEY.match(key):
            wanted.add(key)
        elif MONTH_KEY.match(key):
            wanted.update(d for d in available if d.startswith(key + "-"))
        else:
            raise ValueError(f"partition key {key!r} is neither a day (YYYY-MM-DD) nor a month (YYYY-MM)")
    return sorted(wanted)
